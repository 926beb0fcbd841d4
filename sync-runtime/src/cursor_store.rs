//! Persistence of the core's per-relay sync cursors (docs/spec.md §16) across restarts:
//! `sync_core::Cursors` as JSON in `<state_dir>/cursors.json`, written atomically (temporary
//! file, synced, then renamed) every [`crate::driver`] persist period and at shutdown, so a
//! `kill -9` loses at most that period (which the catch-up `since` margin covers). A missing,
//! oversized, corrupt or over-full file is a fresh start for every relay (logged), never a
//! reason not to start.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sync_core::{Cursors, MAX_CURSOR_ITEMS};

use crate::error::RuntimeError;

/// The file name inside the state directory.
pub const CURSORS_FILE: &str = "cursors.json";

/// The file format version this build reads and writes.
const CURSORS_VERSION: u32 = 1;

/// A larger file is not read (a fresh start): 256 MiB holds millions of items.
pub(crate) const MAX_CURSORS_FILE_BYTES: u64 = 256 << 20;

/// Upper bound on relay cursors read from the file.
pub(crate) const MAX_CURSOR_RELAYS: usize = 100_000;

/// The file's content.
#[derive(Debug, Serialize, Deserialize)]
struct CursorFile {
    /// [`CURSORS_VERSION`].
    version: u32,
    /// Wall-clock seconds when it was written (for humans and logs).
    saved_at: u64,
    /// The cursors.
    cursors: Cursors,
}

/// Where the cursors are kept.
#[derive(Clone, Debug)]
pub(crate) struct CursorStore {
    /// `<state_dir>/cursors.json`.
    path: PathBuf,
}

impl CursorStore {
    /// A store in `dir` (created if missing).
    pub(crate) fn open(dir: &Path) -> Result<Self, RuntimeError> {
        Ok(Self {
            path: crate::state_file::path_in(dir, CURSORS_FILE)?,
        })
    }

    /// The cursors saved by the previous run, or `None` (a fresh start for every relay): no
    /// file, or one that is unreadable, too large, corrupt, of another version or over the
    /// bounds (each logged at warn). `now_wall`/`window_ms` only decide what is logged: how
    /// many cursors are already too old to be used (the core drops those itself).
    pub(crate) fn load(&self, now_wall: u64, window_ms: u64) -> Option<Cursors> {
        let file = self.read()?;
        let total = file.cursors.relays.len();
        let stale = file
            .cursors
            .relays
            .iter()
            .filter(|c| {
                let seen = c.seen_at.as_secs();
                seen > now_wall || (now_wall - seen).saturating_mul(1000) >= window_ms
            })
            .count();
        if stale > 0 {
            tracing::warn!(
                path = %self.path.display(),
                stale,
                total,
                saved_at = file.saved_at,
                "sync cursors older than the quick-reconnect window: those relays start afresh"
            );
        }
        tracing::info!(path = %self.path.display(), relays = total, items = file.cursors.items.len(), saved_at = file.saved_at, "sync cursors loaded");
        Some(file.cursors)
    }

    fn read(&self) -> Option<CursorFile> {
        let warn = |what: &str, error: String| {
            tracing::warn!(path = %self.path.display(), %error, "sync cursors {what}; every relay starts afresh");
        };
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn("unreadable", e.to_string());
                return None;
            }
            Ok(m) if m.len() > MAX_CURSORS_FILE_BYTES => {
                let error = format!("{} bytes, over {MAX_CURSORS_FILE_BYTES}", m.len());
                warn("file too large", error);
                return None;
            }
            Ok(_) => {}
        }
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                warn("unreadable", e.to_string());
                return None;
            }
        };
        let file: CursorFile = match serde_json::from_slice(&bytes) {
            Ok(f) => f,
            Err(e) => {
                warn("corrupt", e.to_string());
                return None;
            }
        };
        let c = &file.cursors;
        if file.version != CURSORS_VERSION {
            warn("of another version", format!("version {}", file.version));
            None
        } else if c.items.len() > MAX_CURSOR_ITEMS || c.relays.len() > MAX_CURSOR_RELAYS {
            let error = format!("{} items, {} relays", c.items.len(), c.relays.len());
            warn("over the bounds", error);
            None
        } else {
            Some(file)
        }
    }

    /// Replaces the saved cursors (temporary file, synced, renamed over the old one).
    pub(crate) fn save(&self, cursors: &Cursors, now_wall: u64) -> Result<(), RuntimeError> {
        let file = CursorFile {
            version: CURSORS_VERSION,
            saved_at: now_wall,
            cursors: cursors.clone(),
        };
        crate::state_file::write_json_atomic(&self.path, &file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::Timestamp;
    use sync_core::{Item, LearnedLimits, NegSupport, RelayCursor, RelayUrl};

    fn temp_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("cursor-store-{name}-{}", std::process::id()))
    }

    fn sample(seen_at: u64) -> Cursors {
        Cursors {
            items: vec![Item::Announcements],
            relays: vec![RelayCursor {
                relay: RelayUrl::parse("wss://r.example").unwrap(),
                through: Timestamp::from(seen_at - 10),
                seen_at: Timestamp::from(seen_at),
                neg: NegSupport::Unsupported,
                items: vec![0],
                learned: LearnedLimits {
                    subs_at_most: Some(5),
                    req_pace_ms: 1_000,
                    ..LearnedLimits::default()
                },
            }],
        }
    }

    #[test]
    fn saved_cursors_load_back_and_bad_files_are_a_fresh_start() {
        let dir = temp_dir("roundtrip");
        let store = CursorStore::open(&dir).unwrap();
        assert!(store.load(1_000, 900_000).is_none(), "no file yet");
        let c = sample(1_000);
        store.save(&c, 1_000).unwrap();
        assert_eq!(store.load(1_010, 900_000), Some(c.clone()));
        assert_eq!(
            store.load(1_000_000, 900_000),
            Some(c),
            "stale entries are logged; the core drops them"
        );
        let path = dir.join(CURSORS_FILE);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(store.load(1_000, 900_000).is_none(), "corrupt");
        std::fs::write(
            &path,
            br#"{"version":9,"saved_at":1,"cursors":{"items":[],"relays":[]}}"#,
        )
        .unwrap();
        assert!(store.load(1_000, 900_000).is_none(), "another version");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_CURSORS_FILE_BYTES + 1).unwrap();
        assert!(store.load(1_000, 900_000).is_none(), "too large");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file written before cursors carried learned limits loads, with nothing learned.
    #[test]
    fn a_file_without_learned_limits_loads_with_defaults() {
        let dir = temp_dir("old-format");
        let store = CursorStore::open(&dir).unwrap();
        let c = sample(1_000);
        store.save(&c, 1_000).unwrap();
        let path = dir.join(CURSORS_FILE);
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let relay = &mut json["cursors"]["relays"][0];
        assert!(relay.as_object_mut().unwrap().remove("learned").is_some());
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let loaded = store.load(1_010, 900_000).expect("old format loads");
        assert_eq!(loaded.relays[0].learned, LearnedLimits::default());
        assert_eq!(loaded.relays[0].items, c.relays[0].items);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
