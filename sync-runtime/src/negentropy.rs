//! `Command::NegentropyDiff`: NIP-77 reconciliation of one filter against the host's real store.
//!
//! nostr-sdk runs the NEG-OPEN / NEG-MSG exchange (`sync_with_items` in dry-run mode: it only
//! finds the ids, it downloads nothing, avoiding the SDK's early-returning download mode,
//! findings note G1). The ids the relay has and the store lacks go back to the core, which
//! removes the ids the host rejected recently and fetches the rest with its own `ids` REQs.

use std::sync::Arc;
use std::time::Duration;

use nostr::Filter;
use nostr_database::NostrDatabase;
use nostr_sdk::pool::relay::Error as RelayError;
use nostr_sdk::{Relay, SyncOptions};
use sync_core::NegentropyResult;

/// Maps an SDK error to the core's view: does the relay not speak NIP-77, or did this one
/// reconciliation fail?
fn classify(error: &RelayError) -> NegentropyResult {
    let message = error.to_string();
    let unsupported = match error {
        RelayError::NegentropyNotSupported | RelayError::UnknownNegentropyError => true,
        RelayError::Negentropy(_) => true,
        // No answer to NEG-OPEN within the initial timeout: a relay that stays silent.
        RelayError::Timeout => true,
        RelayError::RelayMessage(text) => {
            sync_core::relay::health::is_negentropy_unsupported(text)
                || text.to_ascii_lowercase().contains("unsupported")
        }
        _ => false,
    };
    if unsupported {
        NegentropyResult::Unsupported { message }
    } else {
        NegentropyResult::Failed { message }
    }
}

/// Reconciles `filter` on `relay` against `db`; `initial_timeout` bounds the wait for the
/// relay's first answer.
pub(crate) async fn diff(
    relay: Relay,
    db: Arc<dyn NostrDatabase>,
    filter: Filter,
    initial_timeout: Duration,
) -> NegentropyResult {
    let items = match db.negentropy_items(filter.clone()).await {
        Ok(items) => items,
        Err(e) => {
            return NegentropyResult::Failed {
                message: format!("reading the local set: {e}"),
            }
        }
    };
    let opts = SyncOptions::default()
        .dry_run()
        .initial_timeout(initial_timeout);
    match relay.sync_with_items(filter, items, &opts).await {
        Ok(reconciliation) => {
            let mut ids: Vec<_> = reconciliation.remote.into_iter().collect();
            ids.sort();
            NegentropyResult::Missing { ids }
        }
        Err(e) => classify(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_silence_mean_unsupported_other_errors_fail_once() {
        let unsupported = [
            RelayError::NegentropyNotSupported,
            RelayError::Timeout,
            RelayError::RelayMessage("unsupported: negentropy disabled".into()),
        ];
        for e in unsupported {
            assert!(
                matches!(classify(&e), NegentropyResult::Unsupported { .. }),
                "{e}"
            );
        }
        let failed = classify(&RelayError::RelayMessage("error: closed, too slow".into()));
        assert!(matches!(failed, NegentropyResult::Failed { .. }));
    }
}
