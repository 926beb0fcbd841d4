//! The relay's own key (docs/spec.md §14): the identity it answers NIP-42 AUTH challenges of
//! source relays with. Kept in a file of its own — the secret key as 64 hex digits or an
//! `nsec1…` string, one line — created on first start with permissions 0600 (owner only).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use nostr::{Keys, ToBech32};

/// The key file's name in the data directory when no `--relay-key-file` is given.
pub const RELAY_KEY_FILE: &str = "relay.key";

/// Why the relay key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum RelayKeyError {
    /// The file could not be read or created.
    #[error("relay key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not hold a secret key (the text itself is not repeated: it is a secret).
    #[error(
        "relay key file {path} does not hold a secret key (64 hex digits or nsec1…): {reason}"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
}

/// Reads the key in `path`, or creates the file with a new key (0600) if there is none.
/// Returns the keys and whether they were created now.
///
/// # Errors
/// An unreadable file, one that does not hold a key (a clear error, never a panic), or a file
/// that cannot be created.
pub fn load_or_create(path: &Path) -> Result<(Keys, bool), RelayKeyError> {
    let io = |source| RelayKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text).map(|k| (k, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = Keys::generate();
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(io)?;
            let line = format!("{}\n", keys.secret_key().to_secret_hex());
            file.write_all(line.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok((keys, true))
        }
        Err(e) => Err(io(e)),
    }
}

fn parse(path: &Path, text: &str) -> Result<Keys, RelayKeyError> {
    Keys::parse(text.trim()).map_err(|e| RelayKeyError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The public identity of `keys` as shown at start and in the status: hex and `npub1…`.
#[must_use]
pub fn identity(keys: &Keys) -> RelayIdentity {
    let pk = keys.public_key();
    RelayIdentity {
        pubkey: pk.to_hex(),
        npub: pk.to_bech32().unwrap_or_default(),
    }
}

/// The relay's public key, for the status page and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelayIdentity {
    /// Hex.
    pub pubkey: String,
    /// Bech32 (`npub1…`).
    pub npub: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_owner_only_permissions_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RELAY_KEY_FILE);
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.public_key(), again.public_key());
    }

    #[test]
    fn nsec_is_accepted_and_a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let keys = Keys::generate();
        std::fs::write(&path, keys.secret_key().to_bech32().unwrap()).unwrap();
        assert_eq!(
            load_or_create(&path).unwrap().0.public_key(),
            keys.public_key()
        );
        std::fs::write(&path, "not a key\n").unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("does not hold a secret key"), "{err}");
        assert!(
            !err.contains("not a key"),
            "the file's text is not echoed: {err}"
        );
    }
}
