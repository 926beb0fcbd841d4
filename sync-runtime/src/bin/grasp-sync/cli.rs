//! The command line: `grasp-sync run` and `grasp-sync demo`, parsed with clap.
//!
//! Every `run` option is also read from the environment variable `GRASP_SYNC_<NAME>` (clap does
//! flag > env) and from the TOML file given with `--config` (merged in `settings.rs`: flag > env >
//! file > default). That is why every option here is an `Option`: `None` means "not given on the
//! command line or in the environment", so the file and then the default may fill it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::client_options::ClientArgs;
use crate::logging::LogFormat;
use crate::tunables::Tunables;

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
    /// Sync+ (docs/spec.md §15): also sync each repository's conversation from its
    /// participants' outbox relays (kind 10002 write relays, kind 10317 GRASP lists), bounded
    /// by the --sync-plus-* tunables [default: true]. `--sync-plus false` is exactly GRASP-02.
    #[arg(long = "sync-plus", env = "GRASP_SYNC_SYNC_PLUS", num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub(crate) sync_plus: Option<bool>,
    /// Sync+: a relay to ask for participants' relay lists (repeatable; comma-separated in the
    /// environment) [default: none].
    #[arg(
        long = "index-relay",
        value_name = "URL",
        env = "GRASP_SYNC_INDEX_RELAY",
        value_delimiter = ','
    )]
    pub(crate) index_relay: Vec<String>,
    /// What happens to a withdrawn repository's stored events (a newer announcement no longer
    /// lists this relay, or the announcement was deleted): `keep` them, or `delete` them
    /// (docs/operations.md) [default: keep].
    #[arg(
        long = "on-withdrawal",
        env = "GRASP_SYNC_ON_WITHDRAWAL",
        value_name = "keep|delete"
    )]
    pub(crate) on_withdrawal: Option<sync_runtime::OnWithdrawal>,
    /// The relay's own secret key (64 hex digits or nsec1…, one line), used to answer NIP-42
    /// AUTH challenges of source relays; created with permissions 0600 if missing
    /// [default: DATA_DIR/relay.key].
    #[arg(
        long = "relay-key-file",
        value_name = "PATH",
        env = "GRASP_SYNC_RELAY_KEY_FILE"
    )]
    pub(crate) relay_key_file: Option<PathBuf>,
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
    /// The sync engine's tunables (docs/spec.md §12).
    #[command(flatten)]
    pub(crate) sync: Tunables,
    /// Limits on the relay's own clients.
    #[command(flatten)]
    pub(crate) clients: ClientArgs,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
