//! Errors the runtime reports to its host.

use std::path::PathBuf;

/// Why the runtime could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The builder was not given a database (`SyncRuntimeBuilder::database` is required).
    #[error("no database: call SyncRuntimeBuilder::database(..) before spawn()")]
    MissingDatabase,
    /// The sync-core configuration is invalid; the message names the field.
    #[error("invalid configuration: {0}")]
    Config(#[from] sync_core::ConfigError),
    /// Reading the host's store at startup failed.
    #[error("reading the store at startup: {0}")]
    Store(String),
    /// A file (trace, state directory) could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Registering a metric in the host's prometheus registry failed (e.g. a name clash).
    #[error("metrics registration: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The driver task is gone (it panicked or was already shut down).
    #[error("the sync driver is not running")]
    Stopped,
}
