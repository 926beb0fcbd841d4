//! Every committed scenario in `tests/regressions/` (shrunk from failing seeds) runs through
//! the simulator: it must pass every invariant, run twice to the identical trace, replay
//! identically on a fresh core, and end in the reviewed state (insta snapshot per file).

use std::fmt::Write;

use sync_core::trace::{replay, ReplayOutcome};
use sync_sim::invariants::Violation;
use sync_sim::run::{header, run_world};
use sync_sim::scenario::Scenario;
use sync_sim::world::World;

/// A readable end state: no hex, times in hours, relays by URL.
fn summary(w: &World, result: &Result<(), Violation>) -> String {
    let s = w.core.stats();
    let mut out = String::new();
    let verdict = match result {
        Ok(()) => "ok".to_string(),
        Err(v) => format!("FAILED {}", v.invariant),
    };
    let _ = writeln!(out, "result         {verdict}");
    let _ = writeln!(
        out,
        "virtual time   {:.1} h",
        w.mono_ms as f64 / 3_600_000.0
    );
    let _ = writeln!(out, "steps          {}", w.counts.steps);
    let _ = writeln!(out, "faults         {}", w.counts.faults);
    let _ = writeln!(out, "events synced  {}", s.events_saved);
    let _ = writeln!(out, "stored locally {}", w.host.store.len());
    let _ = writeln!(out, "repos          {}", s.repos);
    let _ = writeln!(out, "relay                status        pending confirmed live  neg          connects ok/failed  batches done/failed");
    for v in w.core.relay_status() {
        let c = v.counters();
        let _ = writeln!(
            out,
            "{:<20} {:<13} {:>7} {:>9} {:>5}  {:<12} {:>8}/{:<9} {:>6}/{}",
            v.url().as_str(),
            format!("{:?}", v.status()),
            v.pending_batches(),
            v.confirmed_items(),
            v.live_items(),
            format!("{:?}", v.negentropy()),
            c.connects_ok,
            c.connects_failed,
            c.batches_done,
            c.batches_failed
        );
    }
    out
}

#[test]
fn committed_regression_scenarios_pass_replay_and_match_their_snapshots() {
    insta::glob!("regressions/*.json", |path| {
        let text = std::fs::read_to_string(path).expect("readable");
        let scenario: Scenario = serde_json::from_str(&text).expect("a scenario");
        let (world, result) = run_world(&scenario, true);
        if let Err(v) = &result {
            panic!("{}: {v}", path.display());
        }
        let (again, _) = run_world(&scenario, true);
        assert_eq!(world.trace, again.trace, "two runs of one scenario differ");
        let steps = world.trace.as_deref().expect("recorded");
        assert_eq!(
            replay(&header(&scenario), steps),
            ReplayOutcome::Identical { steps: steps.len() }
        );
        insta::assert_snapshot!(summary(&world, &result));
    });
}
