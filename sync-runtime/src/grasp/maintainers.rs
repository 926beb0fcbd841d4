//! The recursive maintainer closure of a repository (docs/spec.md §1, NIP-34): who may publish state
//! events (30618) and maintainer announcements for one `d` identifier.
//!
//! An owner's announcement lists `maintainers`; each maintainer's own announcement for the same
//! `d` may list more, and so on. Pure functions over the announcements the store holds for one
//! identifier, so they are property-tested without a database.

use std::collections::{BTreeMap, BTreeSet};

use nostr::PublicKey;

/// The announcements stored for one `d` identifier: author → the `maintainers` its announcement
/// lists. Invariant: at most one entry per author (an announcement is addressable, so the store
/// holds one per `(author, d)`).
pub type MaintainerLists = BTreeMap<PublicKey, Vec<PublicKey>>;

/// Everyone in `owner`'s recursive maintainer closure: `owner`, the maintainers its announcement
/// lists, the maintainers *their* announcements list, … Cycle-safe; the result is bounded by the
/// number of keys mentioned in `lists` plus one.
#[must_use]
pub fn maintainer_closure(lists: &MaintainerLists, owner: &PublicKey) -> BTreeSet<PublicKey> {
    let mut closure = BTreeSet::from([*owner]);
    let mut frontier = vec![*owner];
    while let Some(member) = frontier.pop() {
        for maintainer in lists.get(&member).into_iter().flatten() {
            if closure.insert(*maintainer) {
                frontier.push(*maintainer);
            }
        }
    }
    closure
}

/// Whether `author` may publish a state event for the identifier: it is in the maintainer
/// closure of at least one owner with a stored announcement.
#[must_use]
pub fn authorised_for_state(lists: &MaintainerLists, author: &PublicKey) -> bool {
    lists
        .keys()
        .any(|owner| maintainer_closure(lists, owner).contains(author))
}

/// Whether `author` is a maintainer of *another* owner's repository with this identifier, which
/// lets its announcement in even when it does not list our relay (the public implementation's
/// maintainer exception). The author's own stored announcement does not count as a root, so a
/// replacement that drops our relay is not let in by its predecessor.
#[must_use]
pub fn maintainer_of_other_owner(lists: &MaintainerLists, author: &PublicKey) -> bool {
    lists
        .keys()
        .filter(|owner| *owner != author)
        .any(|owner| maintainer_closure(lists, owner).contains(author))
}

#[cfg(test)]
mod tests {
    use nostr::Keys;
    use proptest::prelude::*;

    use super::*;

    fn key(n: u8) -> PublicKey {
        Keys::parse(&format!("{:064x}", u64::from(n) + 1))
            .expect("key")
            .public_key()
    }

    #[test]
    fn maintainer_of_a_maintainer_is_in_the_closure() {
        let (owner, m1, m2, stranger) = (key(0), key(1), key(2), key(3));
        let lists = MaintainerLists::from([(owner, vec![m1]), (m1, vec![m2])]);
        let closure = maintainer_closure(&lists, &owner);
        assert_eq!(closure, BTreeSet::from([owner, m1, m2]));
        assert!(authorised_for_state(&lists, &m2));
        assert!(!authorised_for_state(&lists, &stranger));
        assert!(maintainer_of_other_owner(&lists, &m2));
        assert!(!maintainer_of_other_owner(&lists, &owner));
    }

    #[test]
    fn cycles_terminate() {
        let (a, b) = (key(0), key(1));
        let lists = MaintainerLists::from([(a, vec![b]), (b, vec![a])]);
        assert_eq!(maintainer_closure(&lists, &a), BTreeSet::from([a, b]));
        // Both are maintainers of the other, so each is let in by the other's announcement.
        assert!(maintainer_of_other_owner(&lists, &a));
    }

    #[test]
    fn a_maintainer_without_its_own_announcement_ends_the_chain() {
        let (owner, m1, m2) = (key(0), key(1), key(2));
        // m1 is listed, but m1's announcement (which would list m2) is not stored.
        let lists = MaintainerLists::from([(owner, vec![m1]), (m2, vec![])]);
        assert!(!maintainer_closure(&lists, &owner).contains(&m2));
        assert!(!maintainer_of_other_owner(&lists, &m2));
    }

    fn lists_strategy() -> impl Strategy<Value = MaintainerLists> {
        proptest::collection::btree_map(0u8..12, proptest::collection::vec(0u8..12, 0..4), 0..8)
            .prop_map(|raw| {
                raw.into_iter()
                    .map(|(a, ms)| (key(a), ms.into_iter().map(key).collect()))
                    .collect()
            })
    }

    proptest! {
        /// The closure contains the owner, is closed under "listed as maintainer by a member",
        /// and holds nobody who is neither the owner nor listed somewhere.
        #[test]
        fn closure_is_the_least_closed_superset(lists in lists_strategy(), owner in 0u8..12) {
            let owner = key(owner);
            let closure = maintainer_closure(&lists, &owner);
            prop_assert!(closure.contains(&owner));
            for member in &closure {
                for m in lists.get(member).into_iter().flatten() {
                    prop_assert!(closure.contains(m));
                }
            }
            let mentioned: BTreeSet<PublicKey> =
                lists.values().flatten().copied().chain([owner]).collect();
            prop_assert!(closure.is_subset(&mentioned));
        }

        /// State authorisation equals "owns a stored announcement or is listed in one": the
        /// recursion reaches exactly the keys stored announcements mention.
        #[test]
        fn state_authorisation_is_owners_and_listed_maintainers(
            lists in lists_strategy(), author in 0u8..12,
        ) {
            let author = key(author);
            let expected = lists.contains_key(&author)
                || lists.values().flatten().any(|m| *m == author);
            prop_assert_eq!(authorised_for_state(&lists, &author), expected);
        }
    }
}
