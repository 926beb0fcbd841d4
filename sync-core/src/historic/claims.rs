//! Which relay is fetching which id (issue 12, deliverable 4): an id that a relay's diff found
//! missing while another relay is already fetching it by id, or that is already stored, is not
//! fetched a second time. The relay that found it waits ("defers") instead, and fetches it
//! itself only if the other relay's fetch ends without it (see `core/dedup.rs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use nostr::EventId;

use crate::url::RelayUrl;

/// Ids remembered at most; beyond it the oldest entry is forgotten (a forgotten claim only
/// means a relay fetches the id itself, as without the registry).
pub(crate) const ID_CLAIMS_MAX: usize = 65_536;

/// What is known about one id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This relay's diff found it and an id fetch of that relay asks for it. Not trusted
    /// blindly: a deferring relay re-checks that the fetch is still live (see
    /// `SyncCore::resume_deferred`).
    Fetching(RelayUrl),
    /// The host reported it saved (or already stored) after a delivery.
    Stored,
}

/// The registry of claimed ids. Invariants: `order` holds exactly the keys of `entries`, oldest
/// first; `entries.len() <= ID_CLAIMS_MAX`; `waiting` holds (at least) every relay with a batch
/// that has deferred ids.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdClaims {
    /// The claim on each remembered id.
    entries: BTreeMap<EventId, Claim>,
    /// Keys of `entries` in insertion order (for forgetting the oldest).
    order: VecDeque<EventId>,
    /// Relays that have deferred ids to re-check.
    pub(crate) waiting: BTreeSet<RelayUrl>,
    /// Some relay deferred ids this step: re-check even if no fetch changed.
    pub(crate) fresh: bool,
    /// The id-fetch state of every relay when deferred ids were last re-checked (see
    /// `SyncCore::fetch_print`): while it is unchanged no claim can have ended.
    pub(crate) last_print: Vec<u64>,
}

impl IdClaims {
    /// The claim on `id`, if remembered.
    pub(crate) fn get(&self, id: &EventId) -> Option<&Claim> {
        self.entries.get(id)
    }

    /// Records `claim` on `id` (replacing an earlier one), forgetting the oldest if full.
    pub(crate) fn set(&mut self, id: EventId, claim: Claim) {
        if self.entries.insert(id, claim).is_none() {
            self.order.push_back(id);
            while self.entries.len() > ID_CLAIMS_MAX {
                if let Some(old) = self.order.pop_front() {
                    self.entries.remove(&old);
                }
            }
        }
    }

    /// Notes that the host stored `id` after a delivery. Every stored id is remembered, not
    /// only claimed ones: a relay without NIP-77 pages events that another relay's diff may
    /// report missing a moment later, and that diff must not fetch them again.
    pub(crate) fn mark_stored(&mut self, id: &EventId) {
        self.set(*id, Claim::Stored);
    }

    /// Number of remembered ids.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::historic::negentropy::tests::id;

    #[test]
    fn the_registry_stays_bounded_and_forgets_the_oldest() {
        let mut c = IdClaims::default();
        let n = u32::try_from(ID_CLAIMS_MAX).unwrap() + 10;
        for i in 0..n {
            c.set(id(i), Claim::Stored);
        }
        assert_eq!(c.len(), ID_CLAIMS_MAX);
        assert!(c.get(&id(0)).is_none());
        assert_eq!(c.get(&id(n - 1)), Some(&Claim::Stored));
    }

    #[test]
    fn an_id_stored_by_paging_is_remembered_without_a_claim() {
        let mut c = IdClaims::default();
        c.mark_stored(&id(1));
        assert_eq!(c.get(&id(1)), Some(&Claim::Stored), "a later diff drops it");
        c.set(
            id(2),
            Claim::Fetching(RelayUrl::parse("wss://r0.example").unwrap()),
        );
        c.mark_stored(&id(2));
        assert_eq!(c.get(&id(2)), Some(&Claim::Stored));
    }
}
