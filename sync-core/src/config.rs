//! Configuration of the engine (docs/spec.md §12). Every duration carries its unit in its name.

use serde::{Deserialize, Serialize};

use crate::url::RelayUrl;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;

/// Each relay the core starts tracking at once widens the spread of their first connection
/// attempts by this much, up to `startup_jitter_ms` (docs/spec.md §5): a handful of relays
/// connect within tens of milliseconds, while 2 000 (the default `max_tracked_relays`) are
/// still spread over the default 10 s.
pub const STARTUP_JITTER_SLOT_MS: u64 = 5;

/// Every tunable of the engine, with the defaults of docs/spec.md §12.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The URLs our own relay is known by: never sync targets.
    pub own_relay_urls: Vec<String>,
    /// Relays that are targets even with no repository listing them; never reaped.
    pub bootstrap_relays: Vec<String>,
    /// Values per filter (repo coordinates, identifiers, root ids).
    pub chunk_size: usize,
    /// Ids per `ids` filter when fetching what negentropy found missing.
    pub id_chunk_size: usize,
    /// Discovery updates are coalesced for this long (fixed window, not reset by new updates).
    pub discovery_window_ms: u64,
    /// A reconnect within this long after a disconnect is a quick reconnect.
    pub quick_reconnect_window_ms: u64,
    /// Catch-up `since` is the last known complete time minus this margin.
    pub since_margin_secs: u64,
    /// Daily resync interval lower bound.
    pub daily_resync_min_ms: u64,
    /// Daily resync interval upper bound (inclusive).
    pub daily_resync_max_ms: u64,
    /// Failure backoff base: `base · 2^(failures−1)`.
    pub backoff_base_ms: u64,
    /// Failure backoff cap.
    pub backoff_max_ms: u64,
    /// Jitter applied to every backoff, in percent either side (`[1−j, 1+j]`).
    pub backoff_jitter_percent: u64,
    /// A relay not connected and failing continuously for this long is `Dead`.
    pub dead_after_ms: u64,
    /// A dead relay is tried once per this interval (bootstrap relays: ordinary backoff).
    pub dead_retry_ms: u64,
    /// A connection that lived this long resets the failure count when it drops.
    pub stable_connection_ms: u64,
    /// How long a connection attempt may take before it counts as failed.
    pub connect_timeout_ms: u64,
    /// How long an intentional disconnect may take before the relay is removed anyway.
    pub disconnect_timeout_ms: u64,
    /// Upper bound on the spread of first connection attempts in the core's first minute:
    /// relays tracked at once (the bootstrap relays, the new relays of one discovery flush)
    /// first try within `0..=min(startup_jitter_ms, STARTUP_JITTER_SLOT_MS × their number)`.
    pub startup_jitter_ms: u64,
    /// No new subscription is sent to a rate-limited relay for this long.
    pub rate_limit_cooldown_ms: u64,
    /// Naughty relays (`NAUGHTY_AFTER_FAILURES` DNS, TLS or protocol failures of one class over
    /// `NAUGHTY_AFTER_MS`, or an address refusal) retry at most this often; bootstrap relays
    /// never wait longer than `backoff_max_ms` plus jitter.
    pub naughty_retry_ms: u64,
    /// Rejected events are re-offerable for this long after rejection.
    pub rejected_hot_ms: u64,
    /// Rejected ids are excluded from negentropy fetches for this long (wall-clock seconds).
    pub rejected_cold_secs: u64,
    /// Upper bound on remembered rejected ids; the oldest are forgotten first.
    pub rejected_max_entries: usize,
    /// Subscriptions per relay unless NIP-11 says fewer.
    pub max_subscriptions: usize,
    /// Filters per REQ unless NIP-11 says otherwise.
    pub max_filters_per_req: usize,
    /// Bytes per REQ message unless NIP-11 says otherwise.
    pub max_message_bytes: usize,
    /// A historic batch without progress for this long is resolved as failed (or falls back).
    pub batch_deadline_ms: u64,
    /// Attempts in all at a failed historic batch's items (the first included): a failed
    /// batch (deadline, rate limits beyond the re-queue bound, page cap, CLOSED) is started
    /// again after the relay's backoff (`backoff_base_ms · 2^(attempt−1)`, capped at
    /// `backoff_max_ms`, jittered) until this many attempts failed; then its items count as
    /// done and the relay shows `ConnectedHistoricSyncFailures` with the reason until its next
    /// fresh start. 1 turns retries off.
    pub batch_retry_max_attempts: u32,
    /// After a subscription is closed, EVENTs still arriving on it that match its filters are
    /// offered to the host for this long (they were asked for and queued behind other
    /// traffic); 0 turns the window off. See `Command::Unsubscribe`.
    pub late_event_window_ms: u64,
    /// How long the shell waits for a relay's first answer to NEG-OPEN before it reports
    /// `NegentropyResult::Timeout` (capped at `batch_deadline_ms`).
    pub negentropy_timeout_ms: u64,
    /// `limit` written into historic REQ filters (clamped to NIP-11 `max_limit`).
    pub page_limit: usize,
    /// A page with at least this many deliveries (or `page_limit`, if lower) is "full" and
    /// is followed by the next page.
    pub page_full_threshold: usize,
    /// Pages per historic filter before the batch is failed (infinite-pagination guard).
    pub max_pages_per_filter: u32,
    /// Id-fetch rounds per negentropy batch (the first fetch plus retries while they progress).
    pub id_fetch_max_rounds: u32,
    /// Upper bound on relays taken from one announcement (the rest are ignored and counted).
    pub max_relays_per_repo: usize,
    /// Disable NIP-77 negentropy everywhere (REQ+EOSE only).
    pub disable_negentropy: bool,
    /// Derive relay URLs from `clone` URLs (`https://h/…` → `wss://h`).
    pub derive_relays_from_clone_urls: bool,
    /// Let targets taken from events point at non-global addresses (loopback, private,
    /// link-local, …). A lab setting: off, a stranger's announcement cannot make us connect
    /// into the operator's network (docs/spec.md §13). Bootstrap relays are always allowed.
    pub allow_private_targets: bool,
    /// Upper bound on relays tracked at once (bootstrap relays included); relays beyond it
    /// are refused when an announcement names them, and counted.
    pub max_tracked_relays: usize,
    /// Relay URLs longer than this (bytes, as written in the event) are refused and counted.
    pub max_relay_url_bytes: usize,
    /// How often confirmed items that a relay's subscription budget could not cover live are
    /// polled with a since-bounded catch-up (docs/spec.md §8), so a new event on them waits
    /// at most about this long instead of the daily resync.
    pub live_poll_interval_ms: u64,
    /// Each poll asks from the previous poll's start minus this (relay clocks and slow
    /// publication); it overlaps the previous poll by this much.
    pub live_poll_margin_secs: u64,
    /// Sync+ (docs/spec.md §15): also sync each repository's conversation from its
    /// participants' outbox relays. Off here (the library default: exactly GRASP-02); the
    /// `grasp-sync` binary turns it on unless told otherwise.
    pub sync_plus: bool,
    /// Sync+: participants whose relay lists are followed per repository at a time (owner and
    /// maintainers first, the others rotating hourly).
    pub sync_plus_max_authors_per_repo: usize,
    /// Sync+: relays taken from participants' lists per repository.
    pub sync_plus_max_relays_per_repo: usize,
    /// Sync+: relays tracked for Sync+ in all (also counted in `max_tracked_relays`).
    pub sync_plus_max_relays: usize,
    /// Sync+: operator-named relays asked for participants' relay lists (trusted, like
    /// bootstrap relays; tracked while some participant is followed).
    pub index_relays: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            own_relay_urls: Vec::new(),
            bootstrap_relays: Vec::new(),
            chunk_size: 100,
            id_chunk_size: 300,
            discovery_window_ms: 5_000,
            quick_reconnect_window_ms: 15 * MINUTE_MS,
            since_margin_secs: 15 * 60,
            daily_resync_min_ms: 23 * HOUR_MS,
            daily_resync_max_ms: 25 * HOUR_MS,
            backoff_base_ms: 5_000,
            backoff_max_ms: HOUR_MS,
            backoff_jitter_percent: 20,
            dead_after_ms: 24 * HOUR_MS,
            dead_retry_ms: 24 * HOUR_MS,
            stable_connection_ms: 5 * MINUTE_MS,
            connect_timeout_ms: 10_000,
            disconnect_timeout_ms: 5_000,
            startup_jitter_ms: 10_000,
            rate_limit_cooldown_ms: 65_000,
            naughty_retry_ms: 12 * HOUR_MS,
            rejected_hot_ms: 120_000,
            rejected_cold_secs: 7 * 24 * 3600,
            rejected_max_entries: 1_000_000,
            max_subscriptions: 20,
            max_filters_per_req: 10,
            max_message_bytes: 65_536,
            batch_deadline_ms: 120_000,
            batch_retry_max_attempts: 3,
            negentropy_timeout_ms: 10_000,
            late_event_window_ms: 120_000,
            page_limit: 500,
            page_full_threshold: 50,
            max_pages_per_filter: 10_000,
            id_fetch_max_rounds: 3,
            max_relays_per_repo: 64,
            disable_negentropy: false,
            derive_relays_from_clone_urls: true,
            allow_private_targets: false,
            max_tracked_relays: 2_000,
            max_relay_url_bytes: 512,
            live_poll_interval_ms: 120_000,
            live_poll_margin_secs: 120,
            sync_plus: false,
            sync_plus_max_authors_per_repo: 32,
            sync_plus_max_relays_per_repo: 24,
            sync_plus_max_relays: 256,
            index_relays: Vec::new(),
        }
    }
}

/// A configuration value that cannot work, with the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The field name.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config `{}`: {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Checks every value; the first problem found is returned with its field name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, problem: &str| {
            Err(ConfigError {
                field,
                problem: problem.to_string(),
            })
        };
        let named = self.own_relay_urls.iter().chain(&self.bootstrap_relays);
        for url in named.chain(&self.index_relays) {
            if RelayUrl::parse(url).is_none() {
                return err(
                    "own_relay_urls/bootstrap_relays/index_relays",
                    &format!("invalid relay URL {url:?}"),
                );
            }
        }
        let positive: [(&'static str, u64); 14] = [
            ("live_poll_interval_ms", self.live_poll_interval_ms),
            ("max_tracked_relays", self.max_tracked_relays as u64),
            ("max_relay_url_bytes", self.max_relay_url_bytes as u64),
            ("chunk_size", self.chunk_size as u64),
            ("id_chunk_size", self.id_chunk_size as u64),
            ("backoff_base_ms", self.backoff_base_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("batch_deadline_ms", self.batch_deadline_ms),
            (
                "batch_retry_max_attempts",
                u64::from(self.batch_retry_max_attempts),
            ),
            ("max_filters_per_req", self.max_filters_per_req as u64),
            ("page_limit", self.page_limit as u64),
            ("page_full_threshold", self.page_full_threshold as u64),
            ("max_pages_per_filter", u64::from(self.max_pages_per_filter)),
            ("id_fetch_max_rounds", u64::from(self.id_fetch_max_rounds)),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return err(field, "must be greater than 0");
        }
        if self.max_subscriptions < 2 {
            return err(
                "max_subscriptions",
                "must be at least 2 (one live, one historic)",
            );
        }
        if self.daily_resync_min_ms == 0 || self.daily_resync_min_ms > self.daily_resync_max_ms {
            return err(
                "daily_resync_min_ms",
                "must be > 0 and <= daily_resync_max_ms",
            );
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            return err("backoff_base_ms", "must be <= backoff_max_ms");
        }
        if self.backoff_jitter_percent >= 100 {
            return err("backoff_jitter_percent", "must be below 100");
        }
        Ok(())
    }

    /// The spread of first connection attempts for `count` relays tracked at once during
    /// startup: `min(startup_jitter_ms, STARTUP_JITTER_SLOT_MS × count)`.
    #[must_use]
    pub fn startup_spread_ms(&self, count: usize) -> u64 {
        let slots = u64::try_from(count).unwrap_or(u64::MAX);
        self.startup_jitter_ms
            .min(STARTUP_JITTER_SLOT_MS.saturating_mul(slots))
    }

    /// Canonical own URLs (invalid ones were rejected by `validate`).
    pub(crate) fn own_urls(&self) -> Vec<RelayUrl> {
        self.own_relay_urls
            .iter()
            .filter_map(|u| RelayUrl::parse(u))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn startup_spread_grows_with_the_relays_up_to_the_jitter() {
        let cfg = Config::default();
        assert_eq!(cfg.startup_spread_ms(0), 0);
        assert_eq!(
            cfg.startup_spread_ms(3),
            15,
            "a handful of relays wait milliseconds"
        );
        assert_eq!(cfg.startup_spread_ms(100), 500);
        assert_eq!(
            cfg.startup_spread_ms(2_000),
            10_000,
            "the cap fills the whole jitter"
        );
        assert_eq!(cfg.startup_spread_ms(usize::MAX), 10_000);
        let off = Config {
            startup_jitter_ms: 0,
            ..Config::default()
        };
        assert_eq!(off.startup_spread_ms(2_000), 0);
        for n in 0..3_000 {
            assert!(cfg.startup_spread_ms(n) <= cfg.startup_spread_ms(n + 1));
        }
    }

    #[test]
    fn bad_values_name_their_field() {
        let cfg = Config {
            chunk_size: 0,
            ..Config::default()
        };
        assert_eq!(cfg.validate().unwrap_err().field, "chunk_size");
        let cfg = Config {
            bootstrap_relays: vec!["ftp://x".into()],
            ..Config::default()
        };
        assert!(cfg.validate().unwrap_err().problem.contains("ftp://x"));
        let cfg = Config {
            max_subscriptions: 1,
            ..Config::default()
        };
        assert_eq!(cfg.validate().unwrap_err().field, "max_subscriptions");
    }
}
