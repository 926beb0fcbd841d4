//! Many "is this item in the relay's target?" tests at once. `WantIndex::wants` answers one
//! key by walking the repository table (a root asks each of its repositories whether it lists
//! the relay, a binary search over URLs); a reconnect or a daily resync asks it for every item
//! of the relay, several times. Above [`BULK_KEYS`] keys the relay's target is collected and
//! sorted once, and each test is a binary search over keys.

use crate::index::want::WantIndex;
use crate::item::Key;
use crate::url::RelayUrl;

/// From this many keys to test on, collecting the target first is cheaper.
const BULK_KEYS: usize = 512;

/// Membership in one relay's target. Invariant: `sorted`, when present, is sorted, distinct
/// and exactly the keys `want.wants(relay, ·)` holds for (`WantIndex::target_keys`).
pub(crate) struct Wanted<'w> {
    /// The want index.
    want: &'w WantIndex,
    /// The relay.
    relay: RelayUrl,
    /// The relay's whole target, for many tests.
    sorted: Option<Vec<Key>>,
}

impl<'w> Wanted<'w> {
    /// Tests against `relay`'s target, for about `keys` tests.
    pub(crate) fn new(want: &'w WantIndex, relay: &RelayUrl, keys: usize) -> Self {
        let sorted = (keys >= BULK_KEYS).then(|| {
            let mut all: Vec<Key> = want.target_keys(relay).collect();
            all.sort_unstable();
            all.dedup();
            all
        });
        Self {
            want,
            relay: relay.clone(),
            sorted,
        }
    }

    /// Whether `key` is in the relay's target.
    pub(crate) fn wants(&self, key: &Key) -> bool {
        match &self.sorted {
            Some(all) => {
                let found = all.binary_search(key).is_ok();
                debug_assert_eq!(found, self.want.wants(&self.relay, key), "{key:?}");
                found
            }
            None => self.want.wants(&self.relay, key),
        }
    }
}
