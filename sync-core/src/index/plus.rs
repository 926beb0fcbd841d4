//! The Sync+ part of the want index (docs/spec.md §15): per repository the participants whose
//! relay lists are followed and the relays taken from those lists, with the reverse indexes
//! that make a relay's Sync+ target cheap to compute. What is selected is decided by
//! `crate::sync_plus`; this module only indexes it. Empty when Sync+ is off.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexSet;
use nostr::PublicKey;

use crate::item::MAX_INTERNED;
use crate::url::RelayUrl;

/// The Sync+ selection of one repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PlusRepo {
    /// Participant indexes whose relay lists are wanted, sorted and distinct.
    pub(crate) authors: Vec<u32>,
    /// Relays its conversation is also synced from, sorted and distinct (never one of the
    /// repository's announced relays or our own).
    pub(crate) relays: Vec<RelayUrl>,
}

/// The Sync+ index. Invariants: `relay_repos[r]` contains `n` iff `repos[n].relays` contains
/// `r`; `author_repos[a]` contains `n` iff `repos[n].authors` contains `a`; no map holds an
/// empty entry. Participants are interned for good (their index is their key), at most
/// [`MAX_INTERNED`].
#[derive(Clone, Debug, Default)]
pub(crate) struct PlusIndex {
    /// Interned participants (hash lookups only; iteration is insertion order).
    authors: IndexSet<PublicKey>,
    /// Repository index → its selection.
    pub(crate) repos: BTreeMap<u32, PlusRepo>,
    /// Sync+ relay → repositories whose selection uses it.
    pub(crate) relay_repos: BTreeMap<RelayUrl, BTreeSet<u32>>,
    /// Selected participant → repositories selecting it.
    pub(crate) author_repos: BTreeMap<u32, BTreeSet<u32>>,
    /// Operator-named index relays: asked for every selected participant's relay lists.
    pub(crate) index: BTreeSet<RelayUrl>,
    /// Bootstrap relays: they want layer 1 whatever Sync+ uses them for.
    pub(crate) anchored: BTreeSet<RelayUrl>,
}

impl PlusIndex {
    /// The index of participant `pk`, interning it if new (`None` once the table is full).
    pub(crate) fn intern(&mut self, pk: &PublicKey) -> Option<u32> {
        if let Some(a) = self.authors.get_index_of(pk) {
            return Some(a as u32);
        }
        if self.authors.len() >= MAX_INTERNED {
            return None;
        }
        Some(self.authors.insert_full(*pk).0 as u32)
    }

    /// The participant of table index `a`.
    pub(crate) fn author(&self, a: u32) -> Option<&PublicKey> {
        self.authors.get_index(a as usize)
    }

    /// The table index of participant `pk`, if interned.
    pub(crate) fn author_index(&self, pk: &PublicKey) -> Option<u32> {
        self.authors.get_index_of(pk).map(|a| a as u32)
    }

    /// Replaces repository `n`'s selection (an empty one removes it); returns the old one.
    pub(crate) fn set(&mut self, n: u32, new: PlusRepo) -> PlusRepo {
        let old = self.repos.remove(&n).unwrap_or_default();
        for r in &old.relays {
            unlink(&mut self.relay_repos, r, n);
        }
        for a in &old.authors {
            unlink(&mut self.author_repos, a, n);
        }
        for r in &new.relays {
            self.relay_repos.entry(r.clone()).or_default().insert(n);
        }
        for a in &new.authors {
            self.author_repos.entry(*a).or_default().insert(n);
        }
        if !new.authors.is_empty() || !new.relays.is_empty() {
            self.repos.insert(n, new);
        }
        old
    }

    /// Whether repository `n` syncs its conversation from `relay` through Sync+.
    pub(crate) fn uses(&self, n: u32, relay: &RelayUrl) -> bool {
        self.repos
            .get(&n)
            .is_some_and(|p| p.relays.binary_search(relay).is_ok())
    }

    /// Whether some participant's relay lists are wanted (index relays have a target).
    pub(crate) fn follows_anyone(&self) -> bool {
        !self.author_repos.is_empty()
    }

    /// Whether `relay` is tracked for Sync+ only: a Sync+ or index relay that no announcement
    /// lists (`announced`) and that is not a bootstrap relay. Such a relay is not asked for
    /// layer 1.
    pub(crate) fn only_plus(&self, relay: &RelayUrl, announced: bool) -> bool {
        !announced
            && !self.anchored.contains(relay)
            && (self.relay_repos.contains_key(relay) || self.index.contains(relay))
    }

    /// Whether `relay` has a Sync+ target (a Sync+ relay, or an index relay while someone is
    /// followed).
    pub(crate) fn has_target(&self, relay: &RelayUrl) -> bool {
        self.relay_repos.contains_key(relay)
            || (self.index.contains(relay) && self.follows_anyone())
    }

    /// Every relay with a Sync+ target.
    pub(crate) fn relays(&self) -> impl Iterator<Item = &RelayUrl> {
        let index = self.index.iter().filter(|_| self.follows_anyone());
        self.relay_repos.keys().chain(index)
    }
}

/// Removes `n` from `map[key]`, dropping the entry once empty.
fn unlink<K: Ord + Clone>(map: &mut BTreeMap<K, BTreeSet<u32>>, key: &K, n: u32) {
    if let Some(set) = map.get_mut(key) {
        set.remove(&n);
        if set.is_empty() {
            map.remove(key);
        }
    }
}
