//! The seconds of a first page's newest deliveries, so that a filter whose first page shared a
//! REQ can tell down to which second its own events are complete ([`super::Cursor::on_group_eose`],
//! docs/spec.md §7.4).

use std::collections::BTreeMap;

use nostr::Timestamp;
use serde::{Deserialize, Serialize};

/// Deliveries tracked per page: the newest this many (a relay may send any number; the rest
/// are forgotten oldest first). A filter's share of a group is judged from its newest
/// `alone_at_most` deliveries, which is at most the page limit.
pub const NEWEST_TRACKED: usize = 5_000;

/// How many deliveries of the current page fell in each second, the newest
/// [`NEWEST_TRACKED`] (at least) of them. Invariant: `total` is the sum of the counts, and the
/// oldest second is dropped only while the rest hold at least `NEWEST_TRACKED`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewestSeconds {
    /// Deliveries per second.
    counts: BTreeMap<Timestamp, usize>,
    /// Their sum.
    total: usize,
}

impl NewestSeconds {
    /// Counts one delivery at `created_at`.
    pub fn add(&mut self, created_at: Timestamp) {
        *self.counts.entry(created_at).or_default() += 1;
        self.total += 1;
        while let Some((_, &oldest)) = self.counts.first_key_value() {
            if self.total - oldest < NEWEST_TRACKED {
                break;
            }
            self.total -= oldest;
            self.counts.pop_first();
        }
    }

    /// The second of the `k`-th newest delivery (`k ≥ 1`), if at least `k` are tracked.
    #[must_use]
    pub fn kth_newest(&self, k: usize) -> Option<Timestamp> {
        let mut seen = 0;
        for (t, n) in self.counts.iter().rev() {
            seen += n;
            if seen >= k.max(1) {
                return Some(*t);
            }
        }
        None
    }

    /// Forgets every delivery.
    pub fn clear(&mut self) {
        self.counts.clear();
        self.total = 0;
    }

    /// Whether nothing is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The k-th newest second is what sorting every delivery newest first gives, for
        /// every k up to what is tracked, however many deliveries came.
        #[test]
        fn kth_newest_matches_a_sort(
            secs in proptest::collection::vec(0u64..400, 0..(NEWEST_TRACKED + 300)),
            k in 1usize..=NEWEST_TRACKED,
        ) {
            let mut n = NewestSeconds::default();
            for s in &secs {
                n.add(Timestamp::from(*s));
            }
            let mut sorted = secs.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            let want = sorted.get(k - 1).map(|s| Timestamp::from(*s));
            prop_assert_eq!(n.kth_newest(k), want);
            prop_assert!(n.total <= secs.len());
            prop_assert_eq!(n.total, n.counts.values().sum::<usize>());
        }
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let mut n = NewestSeconds::default();
        for s in 0..(3 * NEWEST_TRACKED as u64) {
            n.add(Timestamp::from(s));
        }
        assert_eq!(n.counts.len(), NEWEST_TRACKED);
        assert_eq!(
            n.kth_newest(1),
            Some(Timestamp::from(3 * NEWEST_TRACKED as u64 - 1))
        );
        assert_eq!(n.kth_newest(NEWEST_TRACKED + 1), None);
        n.clear();
        assert!(n.is_empty());
    }
}
