//! Time as the core sees it: a monotonic clock that drives every deadline and a wall clock that
//! is only ever written into `since` / `until`. Both are passed in by the shell with every input.

use nostr::Timestamp;
use serde::{Deserialize, Serialize};

/// Monotonic milliseconds since an epoch the shell picks (production: process start;
/// simulation: 0). Never goes backwards; the core clamps a reading that does.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Mono(pub u64);

impl Mono {
    /// This instant plus `ms` milliseconds (saturating).
    #[must_use]
    pub const fn plus_ms(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    #[must_use]
    pub const fn since_ms(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The shell's reading of both clocks, passed with every input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Now {
    /// Drives every deadline: backoff, batch deadlines, daily resync, discovery window.
    pub mono: Mono,
    /// Unix seconds. Used only to write `since` / `until` into filters. May jump (NTP).
    pub wall: Timestamp,
}

impl Now {
    /// A reading at `mono_ms` milliseconds and `wall_secs` Unix seconds.
    #[must_use]
    pub fn at(mono_ms: u64, wall_secs: u64) -> Self {
        Self {
            mono: Mono(mono_ms),
            wall: Timestamp::from(wall_secs),
        }
    }

    /// The same reading advanced by `ms` on both clocks.
    #[must_use]
    pub fn plus_ms(self, ms: u64) -> Self {
        Self {
            mono: self.mono.plus_ms(ms),
            wall: Timestamp::from(self.wall.as_secs().saturating_add(ms / 1000)),
        }
    }
}

/// Why the core wants to be woken up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// A disconnected relay may be connected again (backoff elapsed, or first attempt).
    Reconnect,
    /// A connection attempt has not been answered in time.
    ConnectTimeout,
    /// An intentional disconnect has not been confirmed in time.
    DisconnectTimeout,
    /// A historic batch made no progress for too long.
    BatchDeadline,
    /// The relay's 23–25 h full reconciliation is due.
    DailyResync,
    /// The discovery batch window closes and buffered updates are applied.
    DiscoveryWindow,
    /// A rate-limit cooldown ends and deferred work is replayed.
    RateLimitCooldown,
    /// Rejected-memory entries expire.
    RejectedExpiry,
    /// A failed historic batch's retry backoff ends.
    BatchRetry,
    /// The relay's learned REQ pace lets the next historic request go.
    RequestPace,
    /// Items without live coverage are due for their poll (`relay/poll.rs`).
    LivePoll,
}

/// The earliest moment the shell must send `Input::Tick`, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// When.
    pub at: Mono,
    /// Why.
    pub why: TimerKind,
    /// The relay concerned, if any.
    pub relay: Option<crate::RelayUrl>,
}

/// Keeps the earliest of several candidate deadlines (ties: the first offered wins).
#[derive(Debug, Default)]
pub(crate) struct Earliest(pub(crate) Option<Deadline>);

impl Earliest {
    /// Offers a candidate.
    pub(crate) fn offer(
        &mut self,
        at: Option<Mono>,
        why: TimerKind,
        relay: Option<&crate::RelayUrl>,
    ) {
        let Some(at) = at else { return };
        if self.0.as_ref().is_none_or(|d| at < d.at) {
            self.0 = Some(Deadline {
                at,
                why,
                relay: relay.cloned(),
            });
        }
    }
}
