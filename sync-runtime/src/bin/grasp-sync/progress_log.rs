//! One summary line per minute at INFO while anything changed. Per-relay status changes and
//! the engine's other decisions are logged by the core itself (`sync_core::decision_log`,
//! docs/spec.md §14), so an embedder sees them too.

use std::time::Duration;

use sync_core::Status;
use sync_runtime::{RuntimeStatus, SyncHandle};

use crate::shutdown::Stop;

/// How often the summary line may be written.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Logs until `stop`.
pub(crate) async fn run(handle: SyncHandle, mut stop: Stop) {
    let mut last_saved = 0u64;
    loop {
        tokio::select! {
            () = tokio::time::sleep(SUMMARY_EVERY) => {}
            () = stop.wait() => return,
        }
        let status = handle.status();
        let saved = status.totals.events_saved;
        if saved != last_saved {
            tracing::info!("{}", summary(&status, saved - last_saved));
            last_saved = saved;
        }
    }
}

/// `sync: 5 relays (4 connected, 1 syncing, 0 down), 3021 events saved (+120)`.
fn summary(status: &RuntimeStatus, new_events: u64) -> String {
    let count = |pred: fn(Status) -> bool| status.relays.iter().filter(|r| pred(r.status)).count();
    format!(
        "sync: {} relays ({} connected, {} syncing, {} down), {} events saved (+{new_events})",
        status.relays.len(),
        count(|s| matches!(s, Status::Connected | Status::ConnectedHistoricSyncFailures)),
        count(|s| s == Status::Syncing),
        count(|s| matches!(s, Status::Disconnected | Status::Connecting)),
        status.totals.events_saved,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_relays_a_zero_summary() {
        let status = RuntimeStatus::default();
        assert_eq!(
            summary(&status, 0),
            "sync: 0 relays (0 connected, 0 syncing, 0 down), 0 events saved (+0)"
        );
    }
}
