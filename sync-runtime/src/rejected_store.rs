//! Persistence of the core's rejected-events memory (docs/spec.md §9) across restarts: a JSON array of
//! `sync_core::RejectedEntry` (ids with wall-clock rejection times) in `<state_dir>/rejected.json`,
//! written atomically (temporary file, then rename) so a crash never leaves half a file.

use std::path::{Path, PathBuf};

use sync_core::RejectedEntry;

use crate::error::RuntimeError;

/// The file name inside the state directory.
pub const REJECTED_FILE: &str = "rejected.json";

/// Where the rejected memory is kept.
#[derive(Clone, Debug)]
pub(crate) struct RejectedStore {
    /// `<state_dir>/rejected.json`.
    path: PathBuf,
}

impl RejectedStore {
    /// A store in `dir` (created if missing).
    pub(crate) fn open(dir: &Path) -> Result<Self, RuntimeError> {
        Ok(Self {
            path: crate::state_file::path_in(dir, REJECTED_FILE)?,
        })
    }

    /// The entries saved by the previous run. A missing file is an empty memory; an unreadable
    /// or corrupt one is logged and ignored (the memory is an optimisation, never a reason not
    /// to start).
    pub(crate) fn load(&self) -> Vec<RejectedEntry> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "rejected memory unreadable; starting empty");
                return Vec::new();
            }
        };
        match serde_json::from_str(&text) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "rejected memory corrupt; starting empty");
                Vec::new()
            }
        }
    }

    /// Replaces the saved entries (temporary file, synced, renamed over the old one).
    pub(crate) fn save(&self, entries: &[RejectedEntry]) -> Result<(), RuntimeError> {
        crate::state_file::write_json_atomic(&self.path, &entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventId, Keys, Timestamp};

    fn temp_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("rejected-store-{name}-{}", std::process::id()))
    }

    #[test]
    fn saved_entries_load_back_and_corruption_is_ignored() {
        let dir = temp_dir("roundtrip");
        let store = RejectedStore::open(&dir).unwrap();
        assert!(store.load().is_empty(), "no file yet: empty memory");
        let entry = RejectedEntry {
            id: EventId::all_zeros(),
            kind: 30617,
            author: Keys::generate().public_key(),
            identifier: "repo".into(),
            rejected_at: Timestamp::from(1_700_000_000),
        };
        store.save(std::slice::from_ref(&entry)).unwrap();
        assert_eq!(store.load(), vec![entry]);
        std::fs::write(dir.join(REJECTED_FILE), b"{not json").unwrap();
        assert!(store.load().is_empty(), "a corrupt file is ignored");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
