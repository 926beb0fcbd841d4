//! The simulator's own randomness: ChaCha8 streams derived from the seed, integer arithmetic
//! only, so a seed draws the same world on every machine.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// A deterministic random stream for one purpose (world generation, faults, one relay's
/// latencies). Streams are independent so removing a relay does not disturb the others.
#[derive(Clone, Debug)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// The stream `stream` of `seed`.
    #[must_use]
    pub fn new(seed: u64, stream: u64) -> Self {
        let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
            ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        Self(ChaCha8Rng::seed_from_u64(mixed))
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.0.next_u64() % n
        }
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.below(hi - lo + 1)
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice (the first when empty is impossible by construction).
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a: Vec<u64> = (0..5).map(|_| SimRng::new(7, 1).below(1000)).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]), "same seed, same draw");
        let mut x = SimRng::new(7, 1);
        let mut y = SimRng::new(7, 2);
        let xs: Vec<u64> = (0..8).map(|_| x.below(1 << 40)).collect();
        let ys: Vec<u64> = (0..8).map(|_| y.below(1 << 40)).collect();
        assert_ne!(xs, ys);
        let mut r = SimRng::new(1, 1);
        for _ in 0..1000 {
            let v = r.range(3, 5);
            assert!((3..=5).contains(&v));
        }
    }
}
