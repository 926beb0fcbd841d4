//! One process per data directory: an advisory lock on `<data-dir>/grasp-sync.lock`, taken
//! before the store is opened and held until the process is done with the directory.
//!
//! Two processes on one directory would share the LMDB store and overwrite each other's
//! rejected-events memory, so the second one refuses to start. The lock is the operating
//! system's (`flock` on Unix), released by the kernel when the holder exits, even on a crash:
//! a stale lock file never blocks a restart. The file is never deleted (deleting it while
//! another process waits for it would let two processes hold locks on different files); it
//! holds the holder's process id, for the error message and for the operator.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Name of the lock file inside the data directory.
pub(crate) const LOCK_FILE: &str = "grasp-sync.lock";

/// The held lock. Dropping it (or exiting) releases it.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    /// The open lock file; invariant: this process holds its exclusive lock (or the file
    /// system does not support locks, which was logged).
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` (which must exist) without waiting. The error names the
    /// directory and says that another grasp-sync holds it, with that process's id if known.
    pub(crate) fn acquire(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = holder_pid(&mut file)
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default();
                return Err(format!(
                    "data directory {} is in use: another grasp-sync{holder} holds its lock file {}; \
                     stop it or choose another --data-dir",
                    data_dir.display(),
                    path.display()
                ));
            }
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                // Some network file systems have no locks; refusing to start there would leave
                // the operator no way to run at all.
                tracing::warn!(
                    lock = %path.display(),
                    "the file system of the data directory does not support locks: \
                     make sure only one grasp-sync uses it"
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        // Only the holder writes, so a reader never sees a half-written id for long.
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()));
        if let Err(e) = written {
            tracing::warn!(lock = %path.display(), error = %e, "cannot write the pid into the lock file");
        }
        Ok(Self { _file: file })
    }
}

/// The process id the holder wrote into the lock file, if it reads as one.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("grasp-sync-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let first = DataDirLock::acquire(&dir).expect("first lock");
        assert!(dir.join(LOCK_FILE).is_file());
        let err = DataDirLock::acquire(&dir).unwrap_err();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains("another grasp-sync"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        let again = DataDirLock::acquire(&dir).expect("free again after drop");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
