//! The command line: `grasp-sync run` and `grasp-sync demo`, parsed with clap.
//!
//! Every `run` option is also read from the environment variable `GRASP_SYNC_<NAME>` (clap does
//! flag > env) and from the TOML file given with `--config` (merged in `settings.rs`: flag > env >
//! file > default). That is why every option here is an `Option`: `None` means "not given on the
//! command line or in the environment", so the file and then the default may fill it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// A syncing GRASP relay: serves NIP-01 and NIP-77 from an embedded LMDB store and proactively
/// syncs every repository its accepted announcements list from the other relays they list.
#[derive(Debug, Parser)]
#[command(name = "grasp-sync", version, about, long_about = None)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the syncing relay.
    Run(Box<RunArgs>),
    /// Run the main job end to end on this machine: generated NIP-34 data on in-process source
    /// relays, synced into a fresh grasp-sync relay, verified event by event.
    Demo(DemoArgs),
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Options of `grasp-sync run`.
#[derive(Debug, Default, Args)]
pub(crate) struct RunArgs {
    /// TOML file with any of the options below (keys as the long flag names with `_` for `-`;
    /// the sync tunables in a `[sync]` table). Flags and environment variables override it.
    #[arg(long, value_name = "FILE", env = "GRASP_SYNC_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address the relay listens on [default: 127.0.0.1:7777].
    #[arg(long, value_name = "ADDR", env = "GRASP_SYNC_LISTEN")]
    pub(crate) listen: Option<String>,
    /// A URL this relay is known by (repeatable; comma-separated in the environment).
    /// Announcements must list one of them; they are never sync targets [default: ws://<listen>].
    #[arg(
        long = "service-url",
        value_name = "URL",
        env = "GRASP_SYNC_SERVICE_URL",
        value_delimiter = ','
    )]
    pub(crate) service_url: Vec<String>,
    /// Directory for the LMDB store, the rejected-events memory and traces
    /// [default: ./grasp-sync-data].
    #[arg(long = "data-dir", value_name = "DIR", env = "GRASP_SYNC_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A relay to sync from even if no announcement lists it (repeatable; comma-separated in
    /// the environment).
    #[arg(
        long,
        value_name = "URL",
        env = "GRASP_SYNC_BOOTSTRAP",
        value_delimiter = ','
    )]
    pub(crate) bootstrap: Vec<String>,
    /// Accept every valid announcement, not only those listing this relay.
    #[arg(long = "archive-all", env = "GRASP_SYNC_ARCHIVE_ALL", num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub(crate) archive_all: Option<bool>,
    /// Lab setting: let relay URLs taken from events point at loopback, private, link-local and
    /// other non-global addresses. Off (the default), an announcement cannot make this relay
    /// connect into your network (docs/spec.md §13); --bootstrap relays are always allowed.
    #[arg(long = "allow-private-targets", env = "GRASP_SYNC_ALLOW_PRIVATE_TARGETS", num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub(crate) allow_private_targets: Option<bool>,
    /// Largest event accepted, from sync and from clients, in bytes of JSON [default: 524288].
    #[arg(
        long = "max-event-bytes",
        env = "GRASP_SYNC_MAX_EVENT_BYTES",
        value_name = "N"
    )]
    pub(crate) max_event_bytes: Option<usize>,
    /// Most repositories one author may announce here; further announcements are rejected
    /// (replacements of stored ones are not) [default: 100].
    #[arg(
        long = "max-announcements-per-author",
        env = "GRASP_SYNC_MAX_ANNOUNCEMENTS_PER_AUTHOR",
        value_name = "N"
    )]
    pub(crate) max_announcements_per_author: Option<usize>,
    /// Most tags an accepted event may carry, from sync and from clients [default: 2000].
    #[arg(
        long = "max-event-tags",
        env = "GRASP_SYNC_MAX_EVENT_TAGS",
        value_name = "N"
    )]
    pub(crate) max_event_tags: Option<usize>,
    /// Never use NIP-77 negentropy when syncing (REQ+EOSE with pagination only).
    #[arg(long = "disable-negentropy", env = "GRASP_SYNC_DISABLE_NEGENTROPY", num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub(crate) disable_negentropy: Option<bool>,
    /// Address of the HTTP server for `/metrics` (Prometheus) and `/status` (JSON)
    /// [default: 127.0.0.1:9777].
    #[arg(
        long = "metrics-listen",
        value_name = "ADDR",
        env = "GRASP_SYNC_METRICS_LISTEN"
    )]
    pub(crate) metrics_listen: Option<String>,
    /// Seed of every random choice (jitter, resync times) [default: from the OS, logged].
    #[arg(long, value_name = "N", env = "GRASP_SYNC_SEED")]
    pub(crate) seed: Option<u64>,
    /// Record every input of the sync engine to this JSONL trace (replayable by `sync-sim`).
    #[arg(
        long = "record-trace",
        value_name = "FILE",
        env = "GRASP_SYNC_RECORD_TRACE"
    )]
    pub(crate) record_trace: Option<PathBuf>,
    /// Log format [default: pretty]. The level comes from `RUST_LOG` (default `info`).
    #[arg(long, value_name = "FORMAT", env = "GRASP_SYNC_LOG")]
    pub(crate) log: Option<LogFormat>,
    /// The sync engine's tunables (SPEC §12).
    #[command(flatten)]
    pub(crate) sync: Tunables,
    /// Limits on the relay's own clients.
    #[command(flatten)]
    pub(crate) clients: crate::client_options::ClientArgs,
}

/// Options of `grasp-sync demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Events generated on the source relays before the sync starts.
    #[arg(long, default_value_t = 3000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(50..=1_000_000))]
    pub(crate) events: u32,
    /// Number of source relays (at least 4: each has a different behaviour, see `--help`).
    #[arg(long, default_value_t = 5, value_name = "N",
          value_parser = clap::value_parser!(u32).range(4..=32))]
    pub(crate) relays: u32,
    /// Seed of the generated data and of the syncing relay.
    #[arg(long, default_value_t = 7, value_name = "N")]
    pub(crate) seed: u64,
    /// Give up (and report what is missing) after this many seconds.
    #[arg(long = "timeout-secs", default_value_t = 180, value_name = "SECS")]
    pub(crate) timeout_secs: u64,
    /// Keep the demo's data directory here instead of a temporary one.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Log format for the demo's own logs (the demo logs at WARN unless `RUST_LOG` says otherwise).
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    pub(crate) log: LogFormat,
}

/// Declares the tunables once: the clap flags, the `[sync]` TOML table, the merge and the
/// mapping onto `sync_core::Config` all come from this list, so they cannot drift apart.
macro_rules! tunables {
    ($( $(#[doc = $doc:literal])* $field:ident : $ty:ty = $flag:literal, $env:literal; )*) => {
        /// The tunables of SPEC §12, each a flag, an environment variable and a `[sync]` key.
        /// Unset values keep `sync_core::Config::default()`.
        #[derive(Clone, Debug, Default, Args, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[command(next_help_heading = "Sync tunables (SPEC §12; defaults in brackets)")]
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
    /// First connection attempts after start are spread over 0..=this [10000].
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
    /// Relays tracked at once; new relays beyond it are refused and counted [2000].
    max_tracked_relays: usize = "max-tracked-relays", "GRASP_SYNC_MAX_TRACKED_RELAYS";
    /// Relay URLs from events longer than this (bytes) are refused and counted [512].
    max_relay_url_bytes: usize = "max-relay-url-bytes", "GRASP_SYNC_MAX_RELAY_URL_BYTES";
    /// Derive relay URLs from `clone` URLs, https://h/... -> wss://h (true|false) [true].
    derive_relays_from_clone_urls: bool = "derive-relays-from-clone-urls", "GRASP_SYNC_DERIVE_RELAYS_FROM_CLONE_URLS";
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

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
