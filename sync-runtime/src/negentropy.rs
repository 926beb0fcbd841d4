//! `Command::NegentropyDiff`: NIP-77 reconciliation of one filter against the host's real store.
//!
//! nostr-sdk runs the NEG-OPEN / NEG-MSG exchange (`sync_with_items` in dry-run mode: it only
//! finds the ids, it downloads nothing, avoiding the SDK's early-returning download mode). The
//! ids the relay has and the store lacks go back to the core, which removes the ids the host
//! rejected recently and fetches the rest with its own `ids` REQs.
//!
//! Lag: nostr-sdk 0.44 runs the exchange on a receiver of the relay's own notification channel
//! (`RelayOptions::notification_channel_size`, default 2 048; every message of that relay
//! passes through it, each new EVENT of our other subscriptions twice). Its loop is
//! `while let Ok(n) = recv().await`: if that receiver lags, the loop ends and
//! `sync_with_items` returns `Ok` with whatever was found so far, so a reconciliation that
//! lost a NEG-MSG would look complete. [`diff`] therefore watches the same channel on the same
//! task while the exchange runs; if the watcher lagged, the result is reported as `Lagged`
//! rather than trusted, and the core decides (it re-runs the reconciliation a bounded number
//! of times, then falls back to REQs for that batch). This module reports facts only: no
//! re-runs here, and a timeout is reported as `Timeout`, not as "unsupported". The watcher is a
//! heuristic: polled alongside the exchange, it falls behind under the same starvation, but
//! it cannot see the SDK's receiver itself. The channel keeps the SDK's size: tokio
//! preallocates every slot (272 bytes each for a `RelayNotification` on x86_64, measured), so
//! it costs 2 048 x 272 B = 544 KiB per relay already, and a larger one would be paid by every
//! relay the runtime tracks.

use std::sync::Arc;
use std::time::Duration;

use nostr::Filter;
use nostr_database::NostrDatabase;
use nostr_sdk::pool::relay::Error as RelayError;
use nostr_sdk::{Relay, SyncOptions};
use sync_core::NegentropyResult;
use tokio::sync::broadcast::{self, error::RecvError};

/// Maps an SDK error to what happened: did the relay refuse NIP-77, stay silent, or did this
/// one reconciliation fail? (The core decides what each means for the relay.)
fn classify(error: &RelayError) -> NegentropyResult {
    let message = error.to_string();
    let refused = match error {
        RelayError::NegentropyNotSupported | RelayError::UnknownNegentropyError => true,
        RelayError::Negentropy(_) => true,
        // No answer to NEG-OPEN within the initial timeout.
        RelayError::Timeout => return NegentropyResult::Timeout,
        RelayError::RelayMessage(text) => {
            sync_core::relay::health::is_negentropy_unsupported(text)
                || text.to_ascii_lowercase().contains("unsupported")
        }
        _ => false,
    };
    if refused {
        NegentropyResult::Refused { message }
    } else {
        NegentropyResult::Error { message }
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
            return NegentropyResult::Error {
                message: format!("reading the local set: {e}"),
            }
        }
    };
    let opts = SyncOptions::default()
        .dry_run()
        .initial_timeout(initial_timeout);
    // Subscribed before the exchange starts, so it sees everything the SDK's receiver sees.
    let watcher = relay.notifications();
    let work = relay.sync_with_items(filter, items, &opts);
    let (result, lagged) = watch_for_lag(work, watcher).await;
    if lagged {
        // Possibly partial: the core decides whether to run it again.
        return NegentropyResult::Lagged;
    }
    match result {
        Ok(reconciliation) => {
            let mut ids: Vec<_> = reconciliation.remote.into_iter().collect();
            ids.sort();
            NegentropyResult::Missing { ids }
        }
        Err(e) => classify(&e),
    }
}

/// Runs `work` while draining `watcher`; also returns whether `watcher` lagged meanwhile.
async fn watch_for_lag<T: Clone, R>(
    work: impl std::future::Future<Output = R>,
    mut watcher: broadcast::Receiver<T>,
) -> (R, bool) {
    tokio::pin!(work);
    let mut lagged = false;
    let mut watching = true;
    loop {
        tokio::select! {
            result = &mut work => return (result, lagged),
            received = watcher.recv(), if watching => match received {
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => lagged = true,
                Err(RecvError::Closed) => watching = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_silence_and_other_errors_are_reported_as_what_they_are() {
        let refused = [
            RelayError::NegentropyNotSupported,
            RelayError::RelayMessage("unsupported: negentropy disabled".into()),
        ];
        for e in refused {
            assert!(
                matches!(classify(&e), NegentropyResult::Refused { .. }),
                "{e}"
            );
        }
        assert_eq!(classify(&RelayError::Timeout), NegentropyResult::Timeout);
        let failed = classify(&RelayError::RelayMessage("error: closed, too slow".into()));
        assert!(matches!(failed, NegentropyResult::Error { .. }));
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_during_the_work_reports_lag() {
        let (tx, watcher) = broadcast::channel(2);
        // Current-thread runtime: all ten sends happen before the watcher is polled again.
        let work = async {
            tokio::task::yield_now().await;
            for i in 0..10u8 {
                tx.send(i).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            "done"
        };
        assert_eq!(watch_for_lag(work, watcher).await, ("done", true));
    }

    #[tokio::test]
    async fn a_watcher_that_keeps_up_or_closes_reports_no_lag() {
        let (tx, watcher) = broadcast::channel(2);
        let work = async {
            for i in 0..10u8 {
                tx.send(i).unwrap();
                tokio::task::yield_now().await;
            }
            drop(tx);
            tokio::time::sleep(Duration::from_millis(10)).await;
            7
        };
        assert_eq!(watch_for_lag(work, watcher).await, (7, false));
    }
}
