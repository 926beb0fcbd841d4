//! REQ pacing (docs/architecture.md, "REQ pacing"): how fast the core sends new requests to a
//! relay that has rate-limited us, learned from its answers and relaxed again over time.

use crate::time::Mono;

/// The first REQ pace a rate limit teaches: one new historic request per this many ms.
pub const PACE_START_MS: u64 = 500;

/// The pace doubles at each further rate limit, up to one request per this many ms.
pub const PACE_MAX_MS: u64 = 8_000;

/// After this long without a rate limit the pace halves (and below [`PACE_START_MS`] ends).
pub const PACE_RELAX_MS: u64 = 5 * 60_000;

/// The REQ pace learned from one relay's rate limits (docs/architecture.md, "REQ pacing"):
/// the least time between two new historic requests (REQs and NEG-OPENs). A rate limit that
/// starts a cooldown (not one answering a request sent before it) sets the pace to
/// [`PACE_START_MS`] or doubles it, capped at [`PACE_MAX_MS`]; every [`PACE_RELAX_MS`]
/// without one halves it, and under [`PACE_START_MS`] it ends. Kept across reconnects and
/// daily resyncs (it is what the relay is like, not what the connection did).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pace {
    /// Least time between two new requests; 0: unpaced.
    pub(crate) interval_ms: u64,
    /// When the last request (historic, negentropy or live) was sent.
    pub(crate) last_send: Option<Mono>,
    /// Start of the current quiet period (the last rate limit or the last halving).
    pub(crate) quiet_since: Option<Mono>,
}

impl Pace {
    /// Halves the interval for every full quiet period since `quiet_since`.
    pub(crate) fn relax(&mut self, now: Mono) {
        while self.interval_ms > 0 {
            let Some(q) = self
                .quiet_since
                .filter(|q| now.since_ms(*q) >= PACE_RELAX_MS)
            else {
                break;
            };
            self.interval_ms /= 2;
            if self.interval_ms < PACE_START_MS {
                self.interval_ms = 0;
            }
            self.quiet_since = Some(q.plus_ms(PACE_RELAX_MS));
        }
    }

    /// The relay rate-limited us (a new episode): start or double the pace.
    pub(crate) fn rate_limited(&mut self, now: Mono) {
        self.relax(now);
        self.interval_ms = if self.interval_ms == 0 {
            PACE_START_MS
        } else {
            self.interval_ms.saturating_mul(2).min(PACE_MAX_MS)
        };
        self.quiet_since = Some(now);
    }

    /// A request was sent at `now`.
    pub(crate) fn sent(&mut self, now: Mono) {
        self.last_send = Some(now);
    }

    /// When the pace allows the next request (`None`: unpaced, or nothing sent yet).
    pub(crate) fn next_at(&self) -> Option<Mono> {
        (self.interval_ms > 0)
            .then_some(self.last_send)
            .flatten()
            .map(|l| l.plus_ms(self.interval_ms))
    }

    /// Whether a request may be sent at `now`.
    pub(crate) fn allows(&self, now: Mono) -> bool {
        self.next_at().is_none_or(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_starts_doubles_caps_and_relaxes() {
        let mut p = Pace::default();
        assert!(
            p.allows(Mono(0)) && p.next_at().is_none(),
            "unpaced at first"
        );
        p.rate_limited(Mono(1_000));
        assert_eq!(p.interval_ms, PACE_START_MS);
        p.sent(Mono(66_000));
        assert!(!p.allows(Mono(66_499)));
        assert!(p.allows(Mono(66_500)));
        assert_eq!(p.next_at(), Some(Mono(66_500)));
        for want in [1_000, 2_000, 4_000, 8_000, 8_000] {
            p.rate_limited(Mono(70_000));
            assert_eq!(p.interval_ms, want);
        }
        // Quiet for one period: halved; for three more: 1 000 → 500 → gone.
        p.relax(Mono(70_000 + PACE_RELAX_MS - 1));
        assert_eq!(p.interval_ms, 8_000);
        p.relax(Mono(70_000 + PACE_RELAX_MS));
        assert_eq!(p.interval_ms, 4_000);
        p.relax(Mono(70_000 + 3 * PACE_RELAX_MS));
        assert_eq!(p.interval_ms, 1_000);
        p.relax(Mono(70_000 + 5 * PACE_RELAX_MS));
        assert_eq!(p.interval_ms, 0);
        assert!(p.allows(Mono(70_000 + 5 * PACE_RELAX_MS)));
        // A rate limit after relaxing starts over from the relaxed value.
        p.rate_limited(Mono(70_000 + 6 * PACE_RELAX_MS));
        assert_eq!(p.interval_ms, PACE_START_MS);
    }

    proptest::proptest! {
        /// Whatever the history of rate limits, the pace stays 0 or within
        /// [`PACE_START_MS`, `PACE_MAX_MS`], and a quiet period never raises it.
        #[test]
        fn pace_stays_bounded(steps in proptest::collection::vec((0u64..2_000_000, proptest::bool::ANY), 1..80)) {
            let mut p = Pace::default();
            let mut now = Mono(0);
            for (gap, limited) in steps {
                now = now.plus_ms(gap);
                let before = p.interval_ms;
                if limited {
                    p.rate_limited(now);
                } else {
                    p.relax(now);
                    proptest::prop_assert!(p.interval_ms <= before);
                }
                proptest::prop_assert!(p.interval_ms == 0 || (PACE_START_MS..=PACE_MAX_MS).contains(&p.interval_ms));
            }
        }
    }
}
