//! Files the runtime keeps in its state directory (`rejected.json`, `cursors.json`): where they
//! live, and how they are replaced so that a crash never leaves half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::RuntimeError;

/// `dir/name`, creating `dir` if it is missing.
pub(crate) fn path_in(dir: &Path, name: &str) -> Result<PathBuf, RuntimeError> {
    std::fs::create_dir_all(dir).map_err(|source| RuntimeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(dir.join(name))
}

/// Replaces `path` with `value` as JSON: written to a temporary file beside it, synced, then
/// renamed over the old one.
pub(crate) fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), RuntimeError> {
    let io = |source| RuntimeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let json = serde_json::to_vec(value).map_err(|e| io(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&json).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}
