//! Relay health (docs/spec.md §5): failure backoff with seeded jitter, `Dead` after 24 h of continuous
//! failure, rate-limit detection and cooldown, connection-error classification and the naughty
//! list, and the bookkeeping the exported health is derived from (`RelayView::health`).

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::relay::pace::Pace;
use crate::rng::RelayRng;
use crate::time::Mono;

/// What kind of connection error a relay produced. Repeated DNS, TLS or protocol errors put the
/// relay on the "naughty list" (see [`NAUGHTY_AFTER_FAILURES`]): it is retried at most every
/// `naughty_retry_ms`, unless it is a bootstrap relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorClass {
    /// The host name does not resolve.
    Dns,
    /// TLS handshake or certificate failure.
    Tls,
    /// The server is not a WebSocket (nostr) server.
    Protocol,
    /// The shell refused to dial: the host resolves to a non-global address
    /// (docs/spec.md §13). A deliberate refusal, not a transient fault: naughty at the first
    /// one (retried every `naughty_retry_ms` in case the name changes), except for bootstrap
    /// relays.
    Address,
    /// Anything else (refused, reset, timeout, …): ordinary backoff.
    Other,
    /// Not a connection error: the relay refused our subscriptions with `auth-required:` even
    /// after the NIP-42 authentication and the one retry (docs/spec.md §14). The core closes the
    /// connection; ordinary backoff, never the naughty list.
    Auth,
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
            Self::Auth => "auth",
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

/// Whether a NOTICE or CLOSED text says we hold too many subscriptions or filters. "Too many
/// requests" (the HTTP 429 wording) is about the request rate, which the REQ pace answers, not
/// about how many are open: it does not shrink the budget ("REQ"/"REQs" as a word does).
#[must_use]
pub fn is_too_many(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("too many")
        && (t.contains("sub")
            || t.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == "req" || w == "reqs")
            || t.contains("filter")
            || t.contains("concurrent"))
}

/// Whether a CLOSED text carries the NIP-42 `auth-required:` prefix (docs/spec.md §14).
#[must_use]
pub fn is_auth_required(text: &str) -> bool {
    text.trim_start()
        .get(..14)
        .is_some_and(|p| p.eq_ignore_ascii_case("auth-required:"))
}

/// How long the core holds a relay's REQs after its first `auth-required:` CLOSED on a
/// connection before sending them again, once (docs/spec.md §14): time for the shell to answer
/// the relay's AUTH challenge. A further `auth-required:` CLOSED from then on means the relay
/// refuses us even authenticated: the connection is closed and backed off ([`ErrorClass::Auth`]).
pub const AUTH_RETRY_MS: u64 = 3_000;

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
    /// ... and the text names filters: a REQ of several filters lowers the filters per REQ
    /// instead ([`crate::budget`]).
    pub(crate) too_many_filters: bool,
    /// The relay wants NIP-42 authentication first (`auth-required:`): retried once per
    /// connection, then a failure (docs/spec.md §14).
    pub(crate) auth_required: bool,
}

impl CloseReason {
    /// A REQ the shell could not send: not a rate limit.
    pub(crate) const NOT_SENT: Self = Self {
        rate_limited: false,
        too_many: false,
        too_many_filters: false,
        auth_required: false,
    };

    /// The reason a CLOSED message gives.
    pub(crate) fn of(message: &str) -> Self {
        let rate_limited = is_rate_limited(message);
        let too_many = rate_limited && is_too_many(message);
        Self {
            rate_limited,
            too_many,
            too_many_filters: too_many && message.to_ascii_lowercase().contains("filter"),
            auth_required: !rate_limited && is_auth_required(message),
        }
    }
}

/// A relay goes on the naughty list after this many connection failures in a row of the same
/// naughty class (DNS, TLS, protocol; no successful connection and no other failure between)…
pub const NAUGHTY_AFTER_FAILURES: u32 = 3;

/// … spanning at least this long (first to last of the run). Before that: ordinary backoff, so
/// a relay started before its resolver is up is not shut out for `naughty_retry_ms`.
pub const NAUGHTY_AFTER_MS: u64 = 10 * 60_000;

/// A live relay that lost its connection twice within `FLAP_WINDOW_FACTOR · stable_connection_ms`
/// (30 min by default) is flapping: exported as `Degraded` while connected.
pub const FLAP_WINDOW_FACTOR: u64 = 6;

/// Backoff before jitter: `base · 2^(failures−1)` capped at `max` (0 for no failure).
#[must_use]
pub fn backoff_ms(failures: u32, base_ms: u64, max_ms: u64) -> u64 {
    if failures == 0 {
        return 0;
    }
    let exp = (failures - 1).min(63);
    base_ms.saturating_mul(1u64 << exp.min(62)).min(max_ms)
}

/// Health as exported (`ngit_sync_relay_status`), derived by `RelayView::health` from the
/// present: a relay in a live status is never `Dead`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HealthState {
    /// In a live status, historic sync without failures, not flapping.
    Healthy,
    /// Not in a live status, no failure recorded.
    Disconnected,
    /// Live but flapping (two connection losses within `FLAP_WINDOW_FACTOR ·
    /// stable_connection_ms`) or with failed historic batches; or not live with failures
    /// recorded, for less than `dead_after_ms`.
    Degraded,
    /// Not in a live status and failing continuously (no stable connection) for `dead_after_ms`.
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
    /// The naughty class the relay is listed for: set by a connection failure that completes
    /// the rule of [`NAUGHTY_AFTER_FAILURES`] (or by an `Address` refusal), cleared by any
    /// other failure and by a successful connection.
    pub(crate) naughty: Option<ErrorClass>,
    /// The current run of connection failures of one naughty class: (class, count, first).
    pub(crate) class_run: Option<(ErrorClass, u32, Mono)>,
    /// The last two losses of a live connection, newest first (for flapping).
    pub(crate) losses: [Option<Mono>; 2],
    /// The class of the newest failure of the current run (`None` iff `failures == 0`): the
    /// reason `/status` shows for a relay that is backed off.
    pub(crate) last_failure: Option<ErrorClass>,
    /// No new subscription before this: a rate-limit cooldown, or the short wait
    /// ([`AUTH_RETRY_MS`]) for NIP-42 authentication before the one retry.
    pub(crate) rate_limited_until: Option<Mono>,
    /// The REQ pace learned from rate limits.
    pub(crate) pace: Pace,
}

impl Health {
    /// Records a failure at `now` and schedules the next attempt: `backoff_ms` with jitter;
    /// for a non-bootstrap relay, `dead_retry_ms` once dead and at least `naughty_retry_ms` while
    /// naughty. A bootstrap relay (named by the operator) always gets the ordinary backoff, so it
    /// never waits longer than `backoff_max_ms` plus jitter; it is still reported as naughty.
    pub(crate) fn record_failure(
        &mut self,
        now: Mono,
        class: ErrorClass,
        bootstrap: bool,
        cfg: &Config,
        rng: &mut RelayRng,
    ) {
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(class);
        let first = *self.first_failure_at.get_or_insert(now);
        let mut wait = rng.jitter(
            backoff_ms(self.failures, cfg.backoff_base_ms, cfg.backoff_max_ms),
            cfg.backoff_jitter_percent,
        );
        self.naughty = self.note_class(now, class);
        if !bootstrap {
            if now.since_ms(first) >= cfg.dead_after_ms {
                wait = cfg.dead_retry_ms;
            }
            if self.naughty.is_some() {
                wait = wait.max(cfg.naughty_retry_ms);
            }
        }
        self.next_attempt_at = now.plus_ms(wait);
    }

    /// Extends or restarts the run of same-class failures with a failure of `class` at `now`;
    /// the naughty class if the run now qualifies: [`NAUGHTY_AFTER_FAILURES`] failures spanning
    /// [`NAUGHTY_AFTER_MS`], or any `Address` refusal.
    fn note_class(&mut self, now: Mono, class: ErrorClass) -> Option<ErrorClass> {
        if matches!(class, ErrorClass::Other | ErrorClass::Auth) {
            self.class_run = None;
            return None;
        }
        let (count, since) = match self.class_run {
            Some((c, n, since)) if c == class => (n.saturating_add(1), since),
            _ => (1, now),
        };
        self.class_run = Some((class, count, since));
        let repeated = count >= NAUGHTY_AFTER_FAILURES && now.since_ms(since) >= NAUGHTY_AFTER_MS;
        (repeated || class == ErrorClass::Address).then_some(class)
    }

    /// A connection was established: the relay does not fail that way now, so the run of
    /// same-class failures ends and it leaves the naughty list. The failure count (backoff)
    /// stays until the connection proves stable.
    pub(crate) fn connected(&mut self) {
        self.class_run = None;
        self.naughty = None;
    }

    /// A live connection was lost at `now` (for flapping).
    pub(crate) fn record_loss(&mut self, now: Mono) {
        self.losses = [Some(now), self.losses[0]];
    }

    /// Whether the connection was lost twice within `FLAP_WINDOW_FACTOR · stable_connection_ms`.
    pub(crate) fn is_flapping(&self, now: Mono, cfg: &Config) -> bool {
        let window = cfg.stable_connection_ms.saturating_mul(FLAP_WINDOW_FACTOR);
        self.losses[1].is_some_and(|t| now.since_ms(t) < window)
    }

    /// Forgets failures (a connection proved stable). Backoff and the dead-retry wait start
    /// over; the loss history (flapping) is kept.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
        self.last_failure = None;
        self.first_failure_at = None;
        self.naughty = None;
        self.class_run = None;
    }

    /// Whether the current run of failures (not ended by a stable connection) has lasted
    /// `dead_after_ms`. This drives the dead-retry wait; the exported `Dead` also requires the
    /// relay not to be live.
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
        assert!(is_too_many("rate-limited: too many REQs"));
        assert!(!is_too_many("too many requests, slow down"));
        assert!(!is_too_many("slow down"));
        assert!(is_negentropy_unsupported(
            "ERROR: unknown envelope label: NEG-OPEN"
        ));
        assert!(!is_negentropy_unsupported("rate-limited: slow down"));
    }

    #[test]
    fn auth_required_is_the_nip42_prefix_only() {
        assert!(is_auth_required(
            "auth-required: we only serve authenticated users"
        ));
        assert!(is_auth_required("AUTH-REQUIRED:"));
        assert!(!is_auth_required("restricted: not on the list"));
        assert!(!is_auth_required("error: auth-required: nested"));
        assert!(!is_auth_required("auth"));
        let r = CloseReason::of("auth-required: please authenticate");
        assert!(r.auth_required && !r.rate_limited);
    }

    #[test]
    fn dead_after_a_day_of_failures_then_daily_retry() {
        let cfg = Config::default();
        let mut rng = RelayRng::new(1, &crate::RelayUrl::parse("wss://x").unwrap());
        let mut h = Health::default();
        h.record_failure(Mono(0), ErrorClass::Other, false, &cfg, &mut rng);
        assert!(h.next_attempt_at.0 >= 4_000 && h.next_attempt_at.0 <= 6_000);
        let day = Mono(cfg.dead_after_ms);
        h.record_failure(day, ErrorClass::Other, false, &cfg, &mut rng);
        assert!(h.is_dead(day, &cfg));
        assert_eq!(h.next_attempt_at, day.plus_ms(cfg.dead_retry_ms));
    }

    fn rng() -> RelayRng {
        RelayRng::new(1, &crate::RelayUrl::parse("wss://x").unwrap())
    }

    const MIN: u64 = 60_000;

    #[test]
    fn one_dns_failure_is_ordinary_backoff() {
        let cfg = Config::default();
        let mut h = Health::default();
        h.record_failure(Mono(0), ErrorClass::Dns, false, &cfg, &mut rng());
        assert_eq!(h.naughty, None);
        assert!(h.next_attempt_at.0 <= 6_000, "{:?}", h.next_attempt_at);
    }

    #[test]
    fn three_dns_failures_are_naughty_only_once_they_span_ten_minutes() {
        let cfg = Config::default();
        let (mut h, mut rng) = (Health::default(), rng());
        for t in [0, MIN, 2 * MIN] {
            h.record_failure(Mono(t), ErrorClass::Dns, false, &cfg, &mut rng);
            assert_eq!(h.naughty, None, "three within two minutes");
        }
        let t = Mono(10 * MIN);
        h.record_failure(t, ErrorClass::Dns, false, &cfg, &mut rng);
        assert_eq!(h.naughty, Some(ErrorClass::Dns));
        assert!(h.next_attempt_at >= t.plus_ms(cfg.naughty_retry_ms));
    }

    #[test]
    fn another_class_or_a_connection_restarts_the_run() {
        let cfg = Config::default();
        let (mut h, mut rng) = (Health::default(), rng());
        h.record_failure(Mono(0), ErrorClass::Dns, false, &cfg, &mut rng);
        h.record_failure(Mono(5 * MIN), ErrorClass::Dns, false, &cfg, &mut rng);
        h.record_failure(Mono(6 * MIN), ErrorClass::Tls, false, &cfg, &mut rng);
        h.record_failure(Mono(11 * MIN), ErrorClass::Tls, false, &cfg, &mut rng);
        assert_eq!(h.naughty, None, "two DNS, then two TLS");
        h.record_failure(Mono(12 * MIN), ErrorClass::Other, false, &cfg, &mut rng);
        h.record_failure(Mono(13 * MIN), ErrorClass::Tls, false, &cfg, &mut rng);
        h.record_failure(Mono(20 * MIN), ErrorClass::Tls, false, &cfg, &mut rng);
        h.connected();
        h.record_failure(Mono(30 * MIN), ErrorClass::Tls, false, &cfg, &mut rng);
        assert_eq!(h.naughty, None, "the runs were broken");
        h.record_failure(Mono(40 * MIN), ErrorClass::Tls, false, &cfg, &mut rng);
        h.record_failure(Mono(41 * MIN), ErrorClass::Tls, false, &cfg, &mut rng);
        assert_eq!(h.naughty, Some(ErrorClass::Tls));
        h.connected();
        assert_eq!(h.naughty, None, "a connection leaves the naughty list");
    }

    #[test]
    fn an_address_refusal_is_naughty_at_once_except_for_bootstrap_relays() {
        let cfg = Config::default();
        let mut h = Health::default();
        h.record_failure(Mono(0), ErrorClass::Address, false, &cfg, &mut rng());
        assert_eq!(h.naughty, Some(ErrorClass::Address));
        assert_eq!(h.next_attempt_at, Mono(cfg.naughty_retry_ms));
        let mut b = Health::default();
        b.record_failure(Mono(0), ErrorClass::Address, true, &cfg, &mut rng());
        assert_eq!(b.naughty, Some(ErrorClass::Address), "reported");
        assert!(b.next_attempt_at.0 <= 6_000, "but not waited for");
    }

    fn class() -> impl proptest::strategy::Strategy<Value = ErrorClass> {
        proptest::sample::select(vec![
            ErrorClass::Dns,
            ErrorClass::Tls,
            ErrorClass::Protocol,
            ErrorClass::Address,
            ErrorClass::Other,
        ])
    }

    proptest::proptest! {
        /// Over any failure history: a bootstrap relay never waits longer than the capped
        /// backoff with jitter (dead or naughty); another relay is naughty only for an address
        /// refusal or for three failures in a row of one class spanning ten minutes, and then
        /// waits at least `naughty_retry_ms`.
        #[test]
        fn naughty_rule_and_bootstrap_cap(
            bootstrap: bool,
            steps in proptest::collection::vec((class(), 0u64..3_000_000, proptest::bool::weighted(0.05)), 1..60),
        ) {
            let cfg = Config::default();
            let cap = cfg.backoff_max_ms * (100 + cfg.backoff_jitter_percent) / 100;
            let (mut h, mut rng) = (Health::default(), rng());
            let mut now = Mono(0);
            let mut run: Vec<(ErrorClass, Mono)> = Vec::new();
            for (c, gap, connects) in steps {
                now = now.plus_ms(gap);
                if connects {
                    h.connected();
                    run.clear();
                }
                h.record_failure(now, c, bootstrap, &cfg, &mut rng);
                if run.last().is_some_and(|(last, _)| *last != c) || c == ErrorClass::Other {
                    run.clear();
                }
                if c != ErrorClass::Other {
                    run.push((c, now));
                }
                let wait = h.next_attempt_at.since_ms(now);
                if bootstrap {
                    proptest::prop_assert!(wait <= cap, "bootstrap waits {} ms", wait);
                } else if h.naughty.is_some() {
                    proptest::prop_assert!(wait >= cfg.naughty_retry_ms);
                }
                let expect = c == ErrorClass::Address
                    || (run.len() >= 3 && now.since_ms(run[0].1) >= NAUGHTY_AFTER_MS);
                proptest::prop_assert_eq!(h.naughty.is_some(), expect);
            }
        }
    }
}
