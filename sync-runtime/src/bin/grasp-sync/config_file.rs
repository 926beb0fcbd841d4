//! The optional TOML configuration file (`--config FILE`).
//!
//! Keys are the long flag names with `_` for `-` (`listen`, `service_url = [..]`, `data_dir`,
//! `bootstrap = [..]`, `archive_all`, `allow_private_targets`, `sync_plus`, `index_relay = [..]`, `on_withdrawal`, `disable_negentropy`, `metrics_listen`, `seed`,
//! `record_trace`, `log`, `client_max_subscriptions`, `client_events_per_minute`,
//! `client_max_message_bytes`, `client_max_connections`); the sync tunables go in a `[sync]` table with the same names as their
//! flags (`[sync] chunk_size = 100`). Unknown keys are errors, so a typo never passes silently.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::logging::LogFormat;
use crate::tunables::Tunables;

/// Everything the file may set. Every field is optional: what is missing falls back to the
/// default (flags and environment variables override what is present).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// `--listen`.
    pub(crate) listen: Option<String>,
    /// `--service-url`, as a list.
    #[serde(default)]
    pub(crate) service_url: Vec<String>,
    /// `--data-dir`.
    pub(crate) data_dir: Option<PathBuf>,
    /// `--bootstrap`, as a list.
    #[serde(default)]
    pub(crate) bootstrap: Vec<String>,
    /// `--archive-all`.
    pub(crate) archive_all: Option<bool>,
    /// `--allow-private-targets`.
    pub(crate) allow_private_targets: Option<bool>,
    /// `--sync-plus`.
    pub(crate) sync_plus: Option<bool>,
    /// `--index-relay`, as a list.
    #[serde(default)]
    pub(crate) index_relay: Vec<String>,
    /// `--on-withdrawal` (`"keep"` or `"delete"`).
    pub(crate) on_withdrawal: Option<String>,
    /// `--relay-key-file`.
    pub(crate) relay_key_file: Option<PathBuf>,
    /// `--max-event-bytes`.
    pub(crate) max_event_bytes: Option<usize>,
    /// `--max-announcements-per-author`.
    pub(crate) max_announcements_per_author: Option<usize>,
    /// `--max-event-tags`.
    pub(crate) max_event_tags: Option<usize>,
    /// `--disable-negentropy`.
    pub(crate) disable_negentropy: Option<bool>,
    /// `--metrics-listen`.
    pub(crate) metrics_listen: Option<String>,
    /// `--seed`.
    pub(crate) seed: Option<u64>,
    /// `--record-trace`.
    pub(crate) record_trace: Option<PathBuf>,
    /// `--log` (`"pretty"` or `"json"`).
    pub(crate) log: Option<LogFormat>,
    /// `--client-max-subscriptions`.
    pub(crate) client_max_subscriptions: Option<usize>,
    /// `--client-events-per-minute`.
    pub(crate) client_events_per_minute: Option<u32>,
    /// `--client-max-message-bytes`.
    pub(crate) client_max_message_bytes: Option<usize>,
    /// `--client-max-connections`.
    pub(crate) client_max_connections: Option<usize>,
    /// The `[sync]` table: tunables of docs/spec.md §12.
    #[serde(default)]
    pub(crate) sync: Tunables,
}

/// Reads and parses `path`; the error names the file and, for syntax or unknown keys, the
/// line and the key.
pub(crate) fn load(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

/// Parses the text of a configuration file.
pub(crate) fn parse(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_top_level_key_and_the_sync_table() {
        let file = parse(
            r#"
            listen = "127.0.0.1:8000"
            service_url = ["wss://relay.example.com"]
            data_dir = "/tmp/x"
            bootstrap = ["wss://a.example", "ws://127.0.0.1:9"]
            archive_all = true
            allow_private_targets = true
            on_withdrawal = "delete"
            disable_negentropy = false
            metrics_listen = "127.0.0.1:9000"
            seed = 5
            record_trace = "trace.jsonl"
            log = "json"
            client_max_subscriptions = 20
            client_events_per_minute = 120
            client_max_message_bytes = 65536
            client_max_connections = 100
            [sync]
            chunk_size = 50
            derive_relays_from_clone_urls = false
            "#,
        )
        .expect("valid file");
        assert_eq!(file.listen.as_deref(), Some("127.0.0.1:8000"));
        assert_eq!(file.bootstrap.len(), 2);
        assert_eq!(file.archive_all, Some(true));
        assert_eq!(file.allow_private_targets, Some(true));
        assert_eq!(file.on_withdrawal.as_deref(), Some("delete"));
        assert_eq!(file.log, Some(LogFormat::Json));
        assert_eq!(file.client_max_subscriptions, Some(20));
        assert_eq!(file.client_events_per_minute, Some(120));
        assert_eq!(file.client_max_message_bytes, Some(65536));
        assert_eq!(file.client_max_connections, Some(100));
        assert_eq!(file.sync.chunk_size, Some(50));
        assert_eq!(file.sync.derive_relays_from_clone_urls, Some(false));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse("lisen = \"x\"").unwrap_err();
        assert!(err.contains("lisen"), "{err}");
        let err = parse("[sync]\nchunk = 3").unwrap_err();
        assert!(err.contains("chunk"), "{err}");
    }

    #[test]
    fn wrong_types_are_reported() {
        let err = parse("seed = \"abc\"").unwrap_err();
        assert!(err.contains("seed") || err.contains("integer"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = load(Path::new("/nonexistent/grasp.toml")).unwrap_err();
        assert!(err.contains("/nonexistent/grasp.toml"), "{err}");
    }
}
