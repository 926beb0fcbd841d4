//! Per-relay progress at INFO without flooding: one line when a relay changes status (e.g.
//! `Syncing → Connected`: its historic sync completed), and one summary line per minute while
//! anything changed.

use std::collections::BTreeMap;
use std::time::Duration;

use sync_core::Status;
use sync_runtime::{RuntimeStatus, SyncHandle};

use crate::shutdown::Stop;

/// How often the status is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How often the summary line may be written.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Logs until `stop`.
pub(crate) async fn run(handle: SyncHandle, mut stop: Stop) {
    let mut known: BTreeMap<String, Status> = BTreeMap::new();
    let mut last_summary = tokio::time::Instant::now();
    let mut last_saved = 0u64;
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = stop.wait() => return,
        }
        let status = handle.status();
        for change in transitions(&known, &status) {
            tracing::info!(
                relay = %change.url,
                from = change.from.map_or("-".to_string(), |s| format!("{s:?}")),
                to = ?change.to,
                events_saved = change.events_saved,
                "relay status"
            );
        }
        known = status
            .relays
            .iter()
            .map(|r| (r.url.as_str().to_string(), r.status))
            .collect();
        let saved = status.totals.events_saved;
        if last_summary.elapsed() >= SUMMARY_EVERY && saved != last_saved {
            tracing::info!("{}", summary(&status, saved - last_saved));
            last_summary = tokio::time::Instant::now();
            last_saved = saved;
        }
    }
}

/// One relay whose status changed.
#[derive(Debug, PartialEq, Eq)]
struct Change {
    /// Its URL.
    url: String,
    /// The status seen last time, `None` if it is new.
    from: Option<Status>,
    /// The status now.
    to: Status,
    /// Events saved from it so far.
    events_saved: u64,
}

/// The relays whose status differs from `known`.
fn transitions(known: &BTreeMap<String, Status>, now: &RuntimeStatus) -> Vec<Change> {
    now.relays
        .iter()
        .filter_map(|r| {
            let url = r.url.as_str().to_string();
            let from = known.get(&url).copied();
            (from != Some(r.status)).then_some(Change {
                url,
                from,
                to: r.status,
                events_saved: r.counters.events_saved,
            })
        })
        .collect()
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
    fn no_relays_no_transitions_and_a_zero_summary() {
        let status = RuntimeStatus::default();
        assert!(transitions(&BTreeMap::new(), &status).is_empty());
        assert_eq!(
            summary(&status, 0),
            "sync: 0 relays (0 connected, 0 syncing, 0 down), 0 events saved (+0)"
        );
    }
}
