//! Seeded randomness: one ChaCha8 stream per relay derived from `(seed, relay url)`, so adding or
//! removing one relay leaves every other relay's jitter unchanged. Integer arithmetic only.

use nostr::hashes::{sha256, Hash};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::url::RelayUrl;

/// A relay's own random stream.
#[derive(Clone, Debug)]
pub(crate) struct RelayRng(ChaCha8Rng);

impl RelayRng {
    /// The stream for `relay` under `seed`: ChaCha8 seeded with `sha256(seed_le ‖ url)`.
    pub(crate) fn new(seed: u64, relay: &RelayUrl) -> Self {
        let mut bytes = seed.to_le_bytes().to_vec();
        bytes.extend_from_slice(relay.as_str().as_bytes());
        Self(ChaCha8Rng::from_seed(
            sha256::Hash::hash(&bytes).to_byte_array(),
        ))
    }

    /// Uniform in `min..=max` (`min` if `max < min`).
    pub(crate) fn uniform(&mut self, min: u64, max: u64) -> u64 {
        uniform(min, max, self.0.next_u64())
    }

    /// `base` scaled by a factor uniform in `[1 − percent/100, 1 + percent/100]`.
    pub(crate) fn jitter(&mut self, base: u64, percent: u64) -> u64 {
        jittered(base, percent, self.0.next_u64())
    }
}

/// Uniform in `min..=max` from one random word (`min` if `max < min`).
#[must_use]
pub(crate) fn uniform(min: u64, max: u64, word: u64) -> u64 {
    if max <= min {
        return min;
    }
    let span = u128::from(max - min) + 1;
    min + (u128::from(word) % span) as u64
}

/// `base · (100 − p + (word mod (2p + 1))) / 100`: within `[base·(1−p), base·(1+p)]`.
#[must_use]
pub(crate) fn jittered(base: u64, percent: u64, word: u64) -> u64 {
    let percent = percent.min(99);
    let factor = 100 - percent + uniform(0, 2 * percent, word);
    ((u128::from(base) * u128::from(factor)) / 100).min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn streams_are_per_relay_and_reproducible() {
        let a = RelayUrl::parse("wss://a").unwrap();
        let b = RelayUrl::parse("wss://b").unwrap();
        let draw = |seed, r: &RelayUrl| {
            let mut rng = RelayRng::new(seed, r);
            (0..4)
                .map(|_| rng.uniform(0, 1_000_000))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7, &a), draw(7, &a));
        assert_ne!(draw(7, &a), draw(7, &b));
        assert_ne!(draw(7, &a), draw(8, &a));
    }

    proptest! {
        #[test]
        fn jitter_stays_within_bounds(base in 0u64..10_000_000_000, percent in 0u64..100, word in any::<u64>()) {
            let j = jittered(base, percent, word);
            let lo = u128::from(base) * u128::from(100 - percent) / 100;
            let hi = u128::from(base) * u128::from(100 + percent) / 100;
            prop_assert!(u128::from(j) >= lo && u128::from(j) <= hi, "{} not in [{}, {}]", j, lo, hi);
        }

        #[test]
        fn uniform_stays_within_bounds(min in any::<u64>(), span in any::<u64>(), word in any::<u64>()) {
            let max = min.saturating_add(span);
            let v = uniform(min, max, word);
            prop_assert!(v >= min && v <= max);
        }
    }
}
