//! Sync+ participants (docs/spec.md §15): per repository its owner and maintainers, and the
//! authors of its conversation, bounded; and the deterministic, rotating choice of whose relay
//! lists are followed.

use std::collections::{BTreeMap, BTreeSet};

use nostr::hashes::{sha256, Hash};
use nostr::PublicKey;

/// Conversation authors remembered per repository besides its owner and maintainers; later
/// ones are ignored (so a flood of throw-away keys cannot grow memory).
pub const MAX_CANDIDATES_PER_REPO: usize = 256;

/// Owners and maintainers remembered per repository.
const MAX_CORE_PER_REPO: usize = 64;

/// The candidates of one repository. Invariant: `core` is distinct and at most
/// [`MAX_CORE_PER_REPO`]; `others` holds no member of `core` and at most
/// [`MAX_CANDIDATES_PER_REPO`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Candidates {
    /// Owner then maintainers, in announcement order: always followed first.
    pub(crate) core: Vec<PublicKey>,
    /// Authors of the repository's accepted root events and replies.
    pub(crate) others: BTreeSet<PublicKey>,
}

/// Every repository's candidates, and the reverse author → repositories map. Invariant:
/// `by_author[pk]` contains `n` iff `repos[n]` holds `pk` (in `core` or `others`); no empty
/// entries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Participants {
    /// Repository (want-table index) → candidates.
    pub(crate) repos: BTreeMap<u32, Candidates>,
    /// Author → repositories it participates in.
    pub(crate) by_author: BTreeMap<PublicKey, BTreeSet<u32>>,
}

impl Participants {
    /// Sets repository `n`'s owner and maintainers; returns whether anything changed.
    pub(crate) fn set_core(&mut self, n: u32, owner: PublicKey, maintainers: &[PublicKey]) -> bool {
        let mut core = vec![owner];
        for m in maintainers {
            if core.len() < MAX_CORE_PER_REPO && !core.contains(m) {
                core.push(*m);
            }
        }
        let entry = self.repos.entry(n).or_default();
        if entry.core == core {
            return false;
        }
        let old = std::mem::replace(&mut entry.core, core.clone());
        for pk in &core {
            entry.others.remove(pk);
        }
        for pk in old.iter().filter(|pk| !core.contains(pk)) {
            if let Some(set) = self.by_author.get_mut(pk) {
                set.remove(&n);
                if set.is_empty() {
                    self.by_author.remove(pk);
                }
            }
        }
        for pk in core {
            self.by_author.entry(pk).or_default().insert(n);
        }
        true
    }

    /// Adds `author` as a participant of repository `n`; returns whether it is new.
    pub(crate) fn add(&mut self, n: u32, author: PublicKey) -> bool {
        let entry = self.repos.entry(n).or_default();
        if entry.core.contains(&author)
            || entry.others.contains(&author)
            || entry.others.len() >= MAX_CANDIDATES_PER_REPO
        {
            return false;
        }
        entry.others.insert(author);
        self.by_author.entry(author).or_default().insert(n);
        true
    }

    /// Whether `pk` participates in some repository.
    pub(crate) fn contains(&self, pk: &PublicKey) -> bool {
        self.by_author.contains_key(pk)
    }

    /// The participants of repository `n` followed during `epoch`: owner and maintainers
    /// first, then the others ranked by a hash of `(seed, epoch, key)`, `max` in all. Each
    /// epoch ranks the others afresh, so every candidate is followed in some epoch.
    pub(crate) fn select(&self, n: u32, seed: u64, epoch: u64, max: usize) -> Vec<PublicKey> {
        let Some(c) = self.repos.get(&n) else {
            return Vec::new();
        };
        let mut out: Vec<PublicKey> = c.core.iter().take(max).copied().collect();
        let mut ranked: Vec<(u64, PublicKey)> = c
            .others
            .iter()
            .map(|pk| (rank(seed, epoch, pk), *pk))
            .collect();
        ranked.sort_unstable();
        let room = max.saturating_sub(out.len());
        out.extend(ranked.into_iter().take(room).map(|(_, pk)| pk));
        out
    }
}

/// A stable pseudo-random rank of `pk` in `epoch` (first 8 bytes of a SHA-256).
fn rank(seed: u64, epoch: u64, pk: &PublicKey) -> u64 {
    let mut bytes = seed.to_le_bytes().to_vec();
    bytes.extend_from_slice(&epoch.to_le_bytes());
    bytes.extend_from_slice(pk.as_bytes());
    let digest = sha256::Hash::hash(&bytes).to_byte_array();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pk(n: u16) -> PublicKey {
        crate::event_meta::tests::keys((n % 250) as u8).public_key()
    }

    #[test]
    fn owner_and_maintainers_come_first_and_others_rotate() {
        let mut p = Participants::default();
        p.set_core(0, pk(1), &[pk(2)]);
        for i in 10..40 {
            p.add(0, pk(i));
        }
        let a = p.select(0, 7, 0, 5);
        assert_eq!(&a[..2], &[pk(1), pk(2)]);
        assert_eq!(a.len(), 5);
        let covered: BTreeSet<PublicKey> = (0..200).flat_map(|e| p.select(0, 7, e, 5)).collect();
        assert_eq!(
            covered.len(),
            32,
            "every participant is followed in some epoch"
        );
    }

    proptest! {
        /// Whatever arrives, a repository keeps at most the candidate bounds and follows at
        /// most `max` of them, distinct.
        #[test]
        fn bounds_hold(adds in proptest::collection::vec((0u32..3, 0u16..600), 0..900),
                       max in 0usize..40, epoch in 0u64..5) {
            let mut p = Participants::default();
            for (n, a) in &adds {
                if *a % 97 == 0 {
                    p.set_core(*n, pk(*a), &[pk(a + 1), pk(a + 2)]);
                } else {
                    p.add(*n, PublicKey::from_byte_array({
                        let mut b = [0u8; 32];
                        b[..2].copy_from_slice(&a.to_be_bytes());
                        b
                    }));
                }
            }
            for (n, c) in &p.repos {
                prop_assert!(c.others.len() <= MAX_CANDIDATES_PER_REPO);
                prop_assert!(c.core.len() <= MAX_CORE_PER_REPO);
                let sel = p.select(*n, 1, epoch, max);
                prop_assert!(sel.len() <= max);
                let distinct: BTreeSet<_> = sel.iter().collect();
                prop_assert_eq!(distinct.len(), sel.len());
            }
        }
    }
}
