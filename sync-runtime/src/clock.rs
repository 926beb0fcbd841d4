//! The runtime's reading of both clocks for `sync_core::Now`: monotonic milliseconds since the
//! runtime started (drives every core deadline) and the wall clock (only written into
//! `since`/`until` filters).

use std::time::{Duration, Instant};

use nostr::Timestamp;
use sync_core::{Mono, Now};

/// Both clocks, anchored at the runtime's start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    /// `Mono(0)`. Invariant: never changes after construction.
    start: Instant,
}

impl Clock {
    /// A clock whose monotonic epoch is now.
    pub(crate) fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// The current reading.
    pub(crate) fn now(&self) -> Now {
        Now {
            mono: self.mono(),
            wall: Timestamp::now(),
        }
    }

    /// The current monotonic reading only.
    pub(crate) fn mono(&self) -> Mono {
        Mono(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// The `Instant` of a core deadline (for `tokio::time::sleep_until`).
    pub(crate) fn instant_of(&self, at: Mono) -> Instant {
        self.start + Duration::from_millis(at.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_starts_near_zero_and_maps_back_to_instants() {
        let clock = Clock::start();
        let now = clock.now();
        assert!(now.mono.0 < 1_000, "mono starts at the clock's creation");
        let at = clock.instant_of(Mono(2_500));
        assert_eq!(at.duration_since(clock.start), Duration::from_millis(2_500));
    }
}
