//! Logging: `tracing` to stderr, human-readable or JSON lines.
//!
//! The level comes from `RUST_LOG` when set; otherwise INFO for grasp-sync and WARN for the
//! nostr libraries, whose INFO lines (one per connection, per subscription) would flood the log
//! of a relay syncing from hundreds of relays. nostr-relay-pool is off: it logs every remote
//! connection reset at ERROR, while the runtime already logs connects, failures and lost
//! connections itself (`RUST_LOG=info,nostr_relay_pool=debug` brings it back).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use clap::ValueEnum;
use serde::Deserialize;

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

/// The filter used when `RUST_LOG` is not set.
pub(crate) const DEFAULT_FILTER: &str =
    "info,nostr_relay_pool=off,nostr_sdk=warn,nostr_relay_builder=warn,nostr_lmdb=warn,nostr_database=warn";

/// Installs the global subscriber with `default_filter` unless `RUST_LOG` is set. A second
/// call (tests) is ignored.
pub(crate) fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    // Already installed (only possible when called twice in one process): keep the first.
    drop(result);
}
