//! Many "is this item in the relay's target?" tests at once. `WantIndex::wants` answers one
//! key by walking the repository table (a root asks each of its repositories whether it lists
//! the relay, a binary search over URLs); a reconnect or a daily resync asks it for every item
//! of the relay, several times. Above [`BULK_KEYS`] keys the relay's target is collected once
//! into a bit set over encoded keys, and each test is one bit.

use crate::index::want::WantIndex;
use crate::item::Key;
use crate::url::RelayUrl;

/// From this many keys to test on, collecting the target first is cheaper.
const BULK_KEYS: usize = 512;

/// Membership in one relay's target. Invariant: `bits`, when present, has bit `k.bits()` set
/// exactly for the keys `k` that `want.wants(relay, ·)` holds for (`WantIndex::target_keys`).
pub(crate) struct Wanted<'w> {
    /// The want index.
    want: &'w WantIndex,
    /// The relay.
    relay: RelayUrl,
    /// The relay's whole target as a bit set, for many tests.
    bits: Option<Vec<u64>>,
}

impl<'w> Wanted<'w> {
    /// Tests against `relay`'s target, for about `keys` tests.
    pub(crate) fn new(want: &'w WantIndex, relay: &RelayUrl, keys: usize) -> Self {
        let bits = (keys >= BULK_KEYS).then(|| {
            let mut bits: Vec<u64> = Vec::new();
            for key in want.target_keys(relay) {
                let i = key.bits() as usize;
                if i / 64 >= bits.len() {
                    bits.resize(i / 64 + 1, 0);
                }
                bits[i / 64] |= 1 << (i % 64);
            }
            bits
        });
        Self {
            want,
            relay: relay.clone(),
            bits,
        }
    }

    /// The relay's target, sorted and distinct: read off the bit set when there is one.
    pub(crate) fn sorted_target(&self) -> Vec<Key> {
        let Some(bits) = &self.bits else {
            let mut keys: Vec<Key> = self.want.target_keys(&self.relay).collect();
            keys.sort_unstable();
            keys.dedup();
            return keys;
        };
        let mut keys = Vec::new();
        for (w, word) in bits.iter().enumerate() {
            let mut rest = *word;
            while rest != 0 {
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                // Bits are only ever set at `key.bits()`, a u32.
                keys.push(Key::from_bits((w * 64) as u32 + bit));
            }
        }
        debug_assert!({
            let mut all: Vec<Key> = self.want.target_keys(&self.relay).collect();
            all.sort_unstable();
            all.dedup();
            all == keys
        });
        keys
    }

    /// Whether `key` is in the relay's target.
    pub(crate) fn wants(&self, key: &Key) -> bool {
        match &self.bits {
            Some(bits) => {
                let i = key.bits() as usize;
                let found = bits.get(i / 64).is_some_and(|w| (w >> (i % 64)) & 1 == 1);
                debug_assert_eq!(found, self.want.wants(&self.relay, key), "{key:?}");
                found
            }
            None => self.want.wants(&self.relay, key),
        }
    }
}
