//! The sync tunables (docs/spec.md §12), declared once: each is a `grasp-sync run` flag, an
//! environment variable `GRASP_SYNC_<NAME>` and a key of the config file's `[sync]` table, and
//! maps onto one `sync_core::Config` field.

use clap::Args;
use serde::Deserialize;

/// Declares the tunables once: the clap flags, the `[sync]` TOML table, the merge and the
/// mapping onto `sync_core::Config` all come from this list, so they cannot drift apart.
macro_rules! tunables {
    ($( $(#[doc = $doc:literal])* $field:ident : $ty:ty = $flag:literal, $env:literal; )*) => {
        /// The tunables of docs/spec.md §12, each a flag, an environment variable and a `[sync]` key.
        /// Unset values keep `sync_core::Config::default()`.
        #[derive(Clone, Debug, Default, Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[command(next_help_heading = "Sync tunables (docs/spec.md §12; defaults in brackets)")]
        pub(crate) struct Tunables {
            $(
                $(#[doc = $doc])*
                #[arg(long = $flag, env = $env, value_name = "N")]
                pub(crate) $field: Option<$ty>,
            )*
        }

        impl Tunables {
            /// Field by field: `self` where set, else `fallback`.
            pub(crate) fn or(self, fallback: Self) -> Self {
                Self { $( $field: self.$field.or(fallback.$field), )* }
            }

            /// Writes every set value into `config`.
            pub(crate) fn apply(&self, config: &mut sync_core::Config) {
                $( if let Some(value) = self.$field { config.$field = value; } )*
            }
        }
    };
}

tunables! {
    /// Values per filter: repo coordinates, identifiers, root ids [100].
    chunk_size: usize = "chunk-size", "GRASP_SYNC_CHUNK_SIZE";
    /// Ids per `ids` filter when fetching what negentropy found missing [300].
    id_chunk_size: usize = "id-chunk-size", "GRASP_SYNC_ID_CHUNK_SIZE";
    /// Discovery updates are coalesced for this fixed window [5000].
    discovery_window_ms: u64 = "discovery-window-ms", "GRASP_SYNC_DISCOVERY_WINDOW_MS";
    /// A reconnect within this long after a disconnect is a quick reconnect [900000].
    quick_reconnect_window_ms: u64 = "quick-reconnect-window-ms", "GRASP_SYNC_QUICK_RECONNECT_WINDOW_MS";
    /// Catch-up `since` = last known complete time minus this margin [900].
    since_margin_secs: u64 = "since-margin-secs", "GRASP_SYNC_SINCE_MARGIN_SECS";
    /// Daily resync interval, lower bound [82800000].
    daily_resync_min_ms: u64 = "daily-resync-min-ms", "GRASP_SYNC_DAILY_RESYNC_MIN_MS";
    /// Daily resync interval, upper bound [90000000].
    daily_resync_max_ms: u64 = "daily-resync-max-ms", "GRASP_SYNC_DAILY_RESYNC_MAX_MS";
    /// Failure backoff base: base * 2^(failures-1) [5000].
    backoff_base_ms: u64 = "backoff-base-ms", "GRASP_SYNC_BACKOFF_BASE_MS";
    /// Failure backoff cap [3600000].
    backoff_max_ms: u64 = "backoff-max-ms", "GRASP_SYNC_BACKOFF_MAX_MS";
    /// Backoff jitter, plus or minus this percent [20].
    backoff_jitter_percent: u64 = "backoff-jitter-percent", "GRASP_SYNC_BACKOFF_JITTER_PERCENT";
    /// A relay failing continuously this long is Dead [86400000].
    dead_after_ms: u64 = "dead-after-ms", "GRASP_SYNC_DEAD_AFTER_MS";
    /// A dead relay is tried once per this interval [86400000].
    dead_retry_ms: u64 = "dead-retry-ms", "GRASP_SYNC_DEAD_RETRY_MS";
    /// A connection this old resets the failure count when it drops [300000].
    stable_connection_ms: u64 = "stable-connection-ms", "GRASP_SYNC_STABLE_CONNECTION_MS";
    /// A connection attempt unanswered this long fails [10000].
    connect_timeout_ms: u64 = "connect-timeout-ms", "GRASP_SYNC_CONNECT_TIMEOUT_MS";
    /// An intentional disconnect unconfirmed this long completes anyway [5000].
    disconnect_timeout_ms: u64 = "disconnect-timeout-ms", "GRASP_SYNC_DISCONNECT_TIMEOUT_MS";
    /// First connection attempts after start spread 5 ms per relay, at most this [10000].
    startup_jitter_ms: u64 = "startup-jitter-ms", "GRASP_SYNC_STARTUP_JITTER_MS";
    /// No new subscription to a rate-limited relay for this long [65000].
    rate_limit_cooldown_ms: u64 = "rate-limit-cooldown-ms", "GRASP_SYNC_RATE_LIMIT_COOLDOWN_MS";
    /// Relays failing with DNS, TLS or protocol errors retry at most this often [43200000].
    naughty_retry_ms: u64 = "naughty-retry-ms", "GRASP_SYNC_NAUGHTY_RETRY_MS";
    /// Rejected events are re-offerable for this long (hot cache) [120000].
    rejected_hot_ms: u64 = "rejected-hot-ms", "GRASP_SYNC_REJECTED_HOT_MS";
    /// Rejected ids are excluded from negentropy fetches this long (cold set) [604800].
    rejected_cold_secs: u64 = "rejected-cold-secs", "GRASP_SYNC_REJECTED_COLD_SECS";
    /// Cap on remembered rejected ids, oldest forgotten first [1000000].
    rejected_max_entries: usize = "rejected-max-entries", "GRASP_SYNC_REJECTED_MAX_ENTRIES";
    /// Subscriptions per relay unless NIP-11 says fewer, at least 2 [20].
    max_subscriptions: usize = "max-subscriptions", "GRASP_SYNC_MAX_SUBSCRIPTIONS";
    /// Filters per REQ unless NIP-11 says otherwise [10].
    max_filters_per_req: usize = "max-filters-per-req", "GRASP_SYNC_MAX_FILTERS_PER_REQ";
    /// Bytes per REQ message unless NIP-11 says otherwise [65536].
    max_message_bytes: usize = "max-message-bytes", "GRASP_SYNC_MAX_MESSAGE_BYTES";
    /// A historic batch without progress this long fails or falls back [120000].
    batch_deadline_ms: u64 = "batch-deadline-ms", "GRASP_SYNC_BATCH_DEADLINE_MS";
    /// `limit` written into historic REQ filters [500].
    page_limit: usize = "page-limit", "GRASP_SYNC_PAGE_LIMIT";
    /// A page with at least this many deliveries is full and followed by the next [50].
    page_full_threshold: usize = "page-full-threshold", "GRASP_SYNC_PAGE_FULL_THRESHOLD";
    /// Pages per historic filter before the batch fails (pagination guard) [10000].
    max_pages_per_filter: u32 = "max-pages-per-filter", "GRASP_SYNC_MAX_PAGES_PER_FILTER";
    /// Id-fetch rounds per negentropy batch [3].
    id_fetch_max_rounds: u32 = "id-fetch-max-rounds", "GRASP_SYNC_ID_FETCH_MAX_ROUNDS";
    /// Relays taken from one announcement; the rest are ignored and counted [64].
    max_relays_per_repo: usize = "max-relays-per-repo", "GRASP_SYNC_MAX_RELAYS_PER_REPO";
    /// Attempts in all at a failed historic batch, retried after the relay's backoff [3].
    batch_retry_max_attempts: u32 = "batch-retry-max-attempts", "GRASP_SYNC_BATCH_RETRY_MAX_ATTEMPTS";
    /// A NIP-77 reconciliation unanswered this long counts as a timeout [10000].
    negentropy_timeout_ms: u64 = "negentropy-timeout-ms", "GRASP_SYNC_NEGENTROPY_TIMEOUT_MS";
    /// Events arriving this long after their subscription closed are still offered [120000].
    late_event_window_ms: u64 = "late-event-window-ms", "GRASP_SYNC_LATE_EVENT_WINDOW_MS";
    /// Relays tracked at once; new relays beyond it are refused and counted [2000].
    max_tracked_relays: usize = "max-tracked-relays", "GRASP_SYNC_MAX_TRACKED_RELAYS";
    /// Relay URLs from events longer than this (bytes) are refused and counted [512].
    max_relay_url_bytes: usize = "max-relay-url-bytes", "GRASP_SYNC_MAX_RELAY_URL_BYTES";
    /// Items over a relay's live budget are polled this often (docs/spec.md §8) [120000].
    live_poll_interval_ms: u64 = "live-poll-interval-ms", "GRASP_SYNC_LIVE_POLL_INTERVAL_MS";
    /// Each poll reaches back this far before the previous one [120].
    live_poll_margin_secs: u64 = "live-poll-margin-secs", "GRASP_SYNC_LIVE_POLL_MARGIN_SECS";
    /// Derive relay URLs from `clone` URLs, https://h/... -> wss://h (true|false) [true].
    derive_relays_from_clone_urls: bool = "derive-relays-from-clone-urls", "GRASP_SYNC_DERIVE_RELAYS_FROM_CLONE_URLS";
    /// Sync+: participants whose relay lists are followed per repository, owner and maintainers first, the others rotating hourly [32].
    sync_plus_max_authors_per_repo: usize = "sync-plus-max-authors-per-repo", "GRASP_SYNC_SYNC_PLUS_MAX_AUTHORS_PER_REPO";
    /// Sync+: relays taken from participants' lists per repository [24].
    sync_plus_max_relays_per_repo: usize = "sync-plus-max-relays-per-repo", "GRASP_SYNC_SYNC_PLUS_MAX_RELAYS_PER_REPO";
    /// Sync+: relays tracked for Sync+ in all, within --max-tracked-relays [256].
    sync_plus_max_relays: usize = "sync-plus-max-relays", "GRASP_SYNC_SYNC_PLUS_MAX_RELAYS";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunables_merge_prefers_self_and_apply_writes_config() {
        let flags = Tunables {
            chunk_size: Some(7),
            ..Tunables::default()
        };
        let file = Tunables {
            chunk_size: Some(9),
            page_limit: Some(42),
            ..Tunables::default()
        };
        let merged = flags.or(file);
        let mut config = sync_core::Config::default();
        merged.apply(&mut config);
        assert_eq!(config.chunk_size, 7);
        assert_eq!(config.page_limit, 42);
        assert_eq!(
            config.id_chunk_size,
            sync_core::Config::default().id_chunk_size
        );
    }
}
