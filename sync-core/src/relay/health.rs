//! Relay health (docs/spec.md §5): failure backoff with seeded jitter, `Dead` after 24 h of continuous
//! failure, rate-limit detection and cooldown, and connection-error classification.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::rng::RelayRng;
use crate::time::Mono;

/// What kind of connection error a relay produced. DNS, TLS and protocol errors put the relay
/// on the "naughty list": it is retried at most every `naughty_retry_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorClass {
    /// The host name does not resolve.
    Dns,
    /// TLS handshake or certificate failure.
    Tls,
    /// The server is not a WebSocket (nostr) server.
    Protocol,
    /// The shell refused to dial: the host resolves to a non-global address
    /// (docs/spec.md §13). Retried like the naughty classes, in case the name changes.
    Address,
    /// Anything else (refused, reset, timeout, …): ordinary backoff.
    Other,
}

impl ErrorClass {
    /// Label for metrics.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Protocol => "protocol",
            Self::Address => "address",
            Self::Other => "other",
        }
    }
}

/// Classifies a transport error text. URLs are ignored, so a relay whose name contains "dns"
/// or "ssl" is not misclassified.
#[must_use]
pub fn classify(error: &str) -> ErrorClass {
    let text: String = error
        .split_whitespace()
        .filter(|w| !w.contains("://"))
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    let timeout = any(&["timeout", "timed out"]);
    if any(&[
        "failed to lookup address",
        "name or service not known",
        "nodename nor servname",
        "dns error",
        "dns lookup",
        "dns resolution",
        "getaddrinfo",
        "no such host",
    ]) {
        ErrorClass::Dns
    } else if !timeout
        && any(&[
            "certificate",
            "tls",
            "ssl",
            "handshake failure",
            "unknownissuer",
        ])
    {
        ErrorClass::Tls
    } else if !timeout
        && !any(&["connection", "refused"])
        && any(&["websocket", "invalid frame", "http error", "handshake"])
    {
        ErrorClass::Protocol
    } else {
        ErrorClass::Other
    }
}

/// Whether a NOTICE or CLOSED text says we are rate limited.
#[must_use]
pub fn is_rate_limited(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.starts_with("rate-limited:")
        || (t.contains("rate") && t.contains("limit"))
        || t.contains("too many")
        || t.contains("slow down")
        || t.contains("throttl")
}

/// Whether a NOTICE or CLOSED text says we hold too many subscriptions or filters.
#[must_use]
pub fn is_too_many(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("too many")
        && (t.contains("sub")
            || t.contains("req")
            || t.contains("filter")
            || t.contains("concurrent"))
}

/// Whether a NOTICE says the relay does not speak NIP-77.
#[must_use]
pub fn is_negentropy_unsupported(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("neg-")
        || t.contains("negentropy")
        || (t.contains("unknown") && t.contains("envelope"))
        || t.contains("unknown message type")
}

/// Why a subscription ended without EOSE, as far as the core's decisions go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CloseReason {
    /// The relay asked us to slow down (cooldown, re-queue).
    pub(crate) rate_limited: bool,
    /// ... because of too many subscriptions/REQs/filters (the budget shrinks).
    pub(crate) too_many: bool,
}

impl CloseReason {
    /// A REQ the shell could not send: not a rate limit.
    pub(crate) const NOT_SENT: Self = Self {
        rate_limited: false,
        too_many: false,
    };

    /// The reason a CLOSED message gives.
    pub(crate) fn of(message: &str) -> Self {
        let rate_limited = is_rate_limited(message);
        Self {
            rate_limited,
            too_many: rate_limited && is_too_many(message),
        }
    }
}

/// Backoff before jitter: `base · 2^(failures−1)` capped at `max` (0 for no failure).
#[must_use]
pub fn backoff_ms(failures: u32, base_ms: u64, max_ms: u64) -> u64 {
    if failures == 0 {
        return 0;
    }
    let exp = (failures - 1).min(63);
    base_ms.saturating_mul(1u64 << exp.min(62)).min(max_ms)
}

/// Health as exported (`ngit_sync_relay_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HealthState {
    /// Connected, no recent failure.
    Healthy,
    /// Not connected, no failure recorded.
    Disconnected,
    /// Failing, or recovering from failures.
    Degraded,
    /// Failing continuously for `dead_after_ms`.
    Dead,
    /// In a rate-limit cooldown.
    RateLimited,
}

impl HealthState {
    /// The metric value (1 Healthy … 5 RateLimited).
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Healthy => 1,
            Self::Disconnected => 2,
            Self::Degraded => 3,
            Self::Dead => 4,
            Self::RateLimited => 5,
        }
    }
}

/// Failure bookkeeping of one relay. Invariant: `first_failure_at.is_some() == failures > 0`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Health {
    /// Consecutive failures (connect failures and unstable connections).
    pub(crate) failures: u32,
    /// When the current run of failures began.
    pub(crate) first_failure_at: Option<Mono>,
    /// No connection attempt before this.
    pub(crate) next_attempt_at: Mono,
    /// Class of the last connection error, while it is within `naughty_retry_ms`.
    pub(crate) naughty: Option<ErrorClass>,
    /// No new subscription before this (rate-limit cooldown).
    pub(crate) rate_limited_until: Option<Mono>,
}

impl Health {
    /// Records a failure at `now` and schedules the next attempt.
    pub(crate) fn record_failure(
        &mut self,
        now: Mono,
        class: ErrorClass,
        cfg: &Config,
        rng: &mut RelayRng,
    ) {
        self.failures = self.failures.saturating_add(1);
        let first = *self.first_failure_at.get_or_insert(now);
        let mut wait = rng.jitter(
            backoff_ms(self.failures, cfg.backoff_base_ms, cfg.backoff_max_ms),
            cfg.backoff_jitter_percent,
        );
        if now.since_ms(first) >= cfg.dead_after_ms {
            wait = cfg.dead_retry_ms;
        }
        self.naughty = (class != ErrorClass::Other).then_some(class);
        if self.naughty.is_some() {
            wait = wait.max(cfg.naughty_retry_ms);
        }
        self.next_attempt_at = now.plus_ms(wait);
    }

    /// Forgets failures (a connection proved stable).
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
        self.first_failure_at = None;
        self.naughty = None;
    }

    /// Whether the relay has failed continuously for `dead_after_ms`.
    pub(crate) fn is_dead(&self, now: Mono, cfg: &Config) -> bool {
        self.first_failure_at
            .is_some_and(|f| now.since_ms(f) >= cfg.dead_after_ms)
    }

    /// Whether a cooldown is running.
    pub(crate) fn is_rate_limited(&self, now: Mono) -> bool {
        self.rate_limited_until.is_some_and(|t| t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_sequence_doubles_from_five_seconds_and_caps_at_an_hour() {
        let seq: Vec<u64> = (1..=12)
            .map(|n| backoff_ms(n, 5_000, 3_600_000) / 1000)
            .collect();
        assert_eq!(
            seq,
            vec![5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(backoff_ms(0, 5_000, 3_600_000), 0);
        assert_eq!(backoff_ms(u32::MAX, 5_000, 3_600_000), 3_600_000);
    }

    #[test]
    fn errors_are_classified_without_reading_urls() {
        assert_eq!(
            classify("failed to lookup address information: Name or service not known"),
            ErrorClass::Dns
        );
        assert_eq!(
            classify("invalid peer certificate: UnknownIssuer"),
            ErrorClass::Tls
        );
        assert_eq!(
            classify("WebSocket protocol error: Handshake not finished"),
            ErrorClass::Protocol
        );
        assert_eq!(
            classify("Connection refused (os error 111)"),
            ErrorClass::Other
        );
        assert_eq!(
            classify("connect to wss://dns.ssl.example failed: timed out"),
            ErrorClass::Other
        );
    }

    #[test]
    fn rate_limit_and_negentropy_texts_are_recognised() {
        assert!(is_rate_limited("rate-limited: too many REQs"));
        assert!(is_rate_limited("Slow down!"));
        assert!(!is_rate_limited("error: bad filter"));
        assert!(is_too_many("too many concurrent REQs"));
        assert!(!is_too_many("slow down"));
        assert!(is_negentropy_unsupported(
            "ERROR: unknown envelope label: NEG-OPEN"
        ));
        assert!(!is_negentropy_unsupported("rate-limited: slow down"));
    }

    #[test]
    fn dead_after_a_day_of_failures_then_daily_retry() {
        let cfg = Config::default();
        let mut rng = RelayRng::new(1, &crate::RelayUrl::parse("wss://x").unwrap());
        let mut h = Health::default();
        h.record_failure(Mono(0), ErrorClass::Other, &cfg, &mut rng);
        assert!(h.next_attempt_at.0 >= 4_000 && h.next_attempt_at.0 <= 6_000);
        let day = Mono(cfg.dead_after_ms);
        h.record_failure(day, ErrorClass::Other, &cfg, &mut rng);
        assert!(h.is_dead(day, &cfg));
        assert_eq!(h.next_attempt_at, day.plus_ms(cfg.dead_retry_ms));
    }
}
