//! The demo's output: the live status line and the final table. Pure string building, so the
//! layout is unit-tested.

use std::fmt::Write as _;
use std::time::Duration;

use super::verify::Report;

/// One relay's state for the live line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayProgress {
    /// A short name (`r0`, `r1`, …).
    pub name: String,
    /// The sync status as the runtime reports it (`Syncing`, `Connected`, …), or `-`.
    pub status: String,
    /// Expected events of this relay already in the local store.
    pub present: usize,
    /// Expected events this relay holds.
    pub expected: usize,
}

/// One compact line: elapsed time, then `name status present/expected` per relay.
#[must_use]
pub fn status_line(elapsed: Duration, relays: &[RelayProgress]) -> String {
    let mut line = format!("[{:>5.1}s]", elapsed.as_secs_f64());
    for relay in relays {
        let _ = write!(
            line,
            " {} {} {}/{} |",
            relay.name,
            short_status(&relay.status),
            relay.present,
            relay.expected
        );
    }
    line.trim_end_matches(" |").to_string()
}

/// Status names shortened for the live line.
fn short_status(status: &str) -> &str {
    match status {
        "Disconnected" => "down",
        "Connecting" => "conn",
        "Syncing" => "sync",
        "Connected" => "ok",
        "ConnectedHistoricSyncFailures" => "ok*",
        "Disconnecting" => "bye",
        other => other,
    }
}

/// The final per-relay table. `statuses[i]` is the runtime's status of relay `i`.
#[must_use]
pub fn final_table(report: &Report, statuses: &[String]) -> String {
    let url_width = report
        .relays
        .iter()
        .map(|r| r.url.len())
        .max()
        .unwrap_or(3)
        .max(5);
    let mut out = format!(
        "{:<4} {:<url_width$} {:<16} {:<13} {:>8} {:>8} {:>7} {:>11}\n",
        "", "relay", "behaviour", "status", "expected", "synced", "missing", "not-listing"
    );
    for (i, row) in report.relays.iter().enumerate() {
        let status = statuses.get(i).map_or("-", String::as_str);
        let _ = writeln!(
            out,
            "{:<4} {:<url_width$} {:<16} {:<13} {:>8} {:>8} {:>7} {:>11}",
            format!("r{i}"),
            row.url,
            row.behaviour,
            status,
            row.expected,
            row.present,
            row.missing(),
            format!("{}/{}", row.foreign_present, row.foreign)
        );
    }
    out.push_str("(not-listing: events of repositories whose announcement does not list us, found locally / held; must be 0/N)\n");
    out
}

/// The closing line, e.g. `demo: synced 3021/3021 events from 5 relays, 0 missing`.
#[must_use]
pub fn summary_line(report: &Report) -> String {
    let mut line = format!(
        "demo: synced {}/{} events from {} relays, {} missing",
        report.present_total,
        report.expected_total,
        report.relays.len(),
        report.missing_total()
    );
    if report.foreign_present_total > 0 {
        let _ = write!(
            line,
            ", {} events of repositories not listing us were stored",
            report.foreign_present_total
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::verify::RelayReport;

    fn report(present: usize) -> Report {
        Report {
            relays: vec![
                RelayReport {
                    url: "ws://127.0.0.1:1000".into(),
                    behaviour: "caps 100/filter".into(),
                    expected: 10,
                    present,
                    foreign: 2,
                    foreign_present: 0,
                },
                RelayReport {
                    url: "ws://127.0.0.1:1001".into(),
                    behaviour: "plain".into(),
                    expected: 5,
                    present: 5,
                    foreign: 0,
                    foreign_present: 0,
                },
            ],
            expected_total: 15,
            present_total: present + 5,
            foreign_present_total: 0,
            missing_sample: Vec::new(),
        }
    }

    #[test]
    fn summary_says_zero_missing_only_when_complete() {
        assert_eq!(
            summary_line(&report(10)),
            "demo: synced 15/15 events from 2 relays, 0 missing"
        );
        assert_eq!(
            summary_line(&report(7)),
            "demo: synced 12/15 events from 2 relays, 3 missing"
        );
    }

    #[test]
    fn table_and_line_layout() {
        let table = final_table(&report(7), &["Connected".into()]);
        insta::assert_snapshot!(table);
        let line = status_line(
            Duration::from_millis(2500),
            &[
                RelayProgress {
                    name: "r0".into(),
                    status: "Syncing".into(),
                    present: 3,
                    expected: 10,
                },
                RelayProgress {
                    name: "r1".into(),
                    status: "Connected".into(),
                    present: 5,
                    expected: 5,
                },
            ],
        );
        assert_eq!(line, "[  2.5s] r0 sync 3/10 | r1 ok 5/5");
    }
}
