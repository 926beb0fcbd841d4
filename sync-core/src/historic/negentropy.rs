//! The id-fetch half of a negentropy batch (docs/spec.md §7.1–7.3): ids the diff found missing are
//! fetched with `ids` REQs; receipt is counted at the transport (any delivery on the batch's
//! subscription, whatever the host decided); missing ids are retried while rounds make progress;
//! a round that delivers nothing means the relay does not really serve negentropy results.

use std::collections::BTreeSet;

use nostr::EventId;

/// What follows a completed id-fetch round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchNext {
    /// Everything requested arrived.
    Done,
    /// Fetch these (still missing) ids again, in chunks of the given size.
    Retry(Vec<EventId>, usize),
    /// Give up on ids: fall back to REQ+EOSE with the batch's semantic filters.
    Fallback,
}

/// Id-fetch progress of one batch. Invariant: `received ⊆ requested`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdFetch {
    /// Rounds completed.
    pub round: u32,
    /// Ids asked for in the current round.
    pub requested: BTreeSet<EventId>,
    /// Requested ids delivered in the current round.
    pub received: BTreeSet<EventId>,
    /// The most ids one `ids` subscription delivered while falling short (a relay's id cap).
    pub observed_cap: Option<usize>,
    /// Ids the diff found missing that another relay's open or queued `ids` round was
    /// already asking for: not asked for here unless that round ends without them (then they
    /// move to `requested`) or the host stores them (then they are dropped). Invariant:
    /// disjoint from `requested`; while non-empty the round is not complete.
    pub deferred: BTreeSet<EventId>,
}

impl IdFetch {
    /// Starts round 0 for `ids`.
    #[must_use]
    pub fn new(ids: impl IntoIterator<Item = EventId>) -> Self {
        Self {
            requested: ids.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Counts a delivery; `true` if it was one of the requested ids.
    pub fn record(&mut self, id: EventId) -> bool {
        self.requested.contains(&id) && self.received.insert(id)
    }

    /// Notes that one subscription asked for `asked` ids and delivered `delivered`.
    pub fn note_sub(&mut self, asked: usize, delivered: usize) {
        if delivered > 0 && delivered < asked {
            self.observed_cap = Some(self.observed_cap.map_or(delivered, |c| c.max(delivered)));
        }
    }

    /// Decides what follows the round that just completed.
    pub fn on_round_complete(&mut self, max_rounds: u32, chunk: usize) -> FetchNext {
        self.round += 1;
        let missing: Vec<EventId> = self.requested.difference(&self.received).copied().collect();
        let progressed = !self.received.is_empty();
        if missing.is_empty() {
            return FetchNext::Done;
        }
        if !progressed || self.round >= max_rounds {
            return FetchNext::Fallback;
        }
        self.requested = missing.iter().copied().collect();
        self.received.clear();
        FetchNext::Retry(
            missing,
            self.observed_cap.unwrap_or(chunk).clamp(1, chunk.max(1)),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A test event id whose first four bytes are `n` (big-endian).
    pub(crate) fn id(n: u32) -> EventId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        EventId::from_byte_array(b)
    }

    #[test]
    fn relay_capping_id_queries_at_150_is_completed_by_a_retry() {
        let ids: Vec<EventId> = (0..300).map(id).collect();
        let mut f = IdFetch::new(ids.clone());
        ids.iter().take(150).for_each(|i| assert!(f.record(*i)));
        f.note_sub(300, 150);
        let FetchNext::Retry(missing, chunk) = f.on_round_complete(3, 300) else {
            panic!()
        };
        assert_eq!((missing.len(), chunk), (150, 150));
        missing.iter().for_each(|i| assert!(f.record(*i)));
        assert_eq!(f.on_round_complete(3, 300), FetchNext::Done);
    }

    #[test]
    fn a_round_delivering_nothing_falls_back() {
        let mut f = IdFetch::new((0..10).map(id));
        assert_eq!(f.on_round_complete(3, 300), FetchNext::Fallback);
    }

    #[test]
    fn unrequested_and_duplicate_deliveries_do_not_count() {
        let mut f = IdFetch::new([id(1)]);
        assert!(!f.record(id(2)));
        assert!(f.record(id(1)));
        assert!(!f.record(id(1)));
    }

    proptest! {
        /// Whatever the relay delivers, rounds end within `max_rounds` and never re-request
        /// an id that was received.
        #[test]
        fn rounds_terminate_and_never_rerequest_received(n in 1u32..400, keep in prop::collection::vec(any::<bool>(), 400)) {
            let mut f = IdFetch::new((0..n).map(id));
            let mut received_all = BTreeSet::new();
            for _ in 0..10 {
                let asked: Vec<EventId> = f.requested.iter().copied().collect();
                for (i, x) in asked.iter().enumerate() {
                    if keep[i % keep.len()] { f.record(*x); received_all.insert(*x); }
                }
                match f.on_round_complete(3, 300) {
                    FetchNext::Retry(ids, _) => prop_assert!(ids.iter().all(|i| !received_all.contains(i))),
                    FetchNext::Done | FetchNext::Fallback => return Ok(()),
                }
            }
            prop_assert!(false, "did not terminate");
        }
    }
}
