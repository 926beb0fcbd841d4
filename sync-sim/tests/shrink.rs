//! Shrinking keeps the failing invariant and makes the scenario smaller; determinism of whole
//! runs across seeds.

use sync_sim::builder::{relay, Builder};
use sync_sim::faults::Fault;
use sync_sim::run::run;
use sync_sim::scenario::{NegMode, RelaySpec, Scenario, OUR_URL};
use sync_sim::shrink::shrink;

/// A scenario that must fail: a REQ-only relay serving one event per page holds three events
/// of one second on one filter value (no REQ can page past them, docs/spec.md §7.4), plus noise the
/// shrinker should remove.
fn failing() -> Scenario {
    let mut b = Builder::new(21);
    b.relay(RelaySpec {
        neg: NegMode::UnsupportedNotice,
        page_cap: 1,
        advertise_limits: true,
        ..relay("wss://r0.sim")
    });
    b.relay(relay("wss://r1.sim"));
    b.announce("repo", &[OUR_URL, "wss://r0.sim"], &["wss://r0.sim"], true);
    b.announce("other", &[OUR_URL, "wss://r1.sim"], &["wss://r1.sim"], true);
    b.repo_events("repo", 10, 5, &["wss://r0.sim"]);
    b.repo_events("other", 10, 5, &["wss://r1.sim"]);
    let secs = b.secs();
    for _ in 0..3 {
        let e = b.event(10, 1111, secs, &[('a', Builder::coord("repo").to_string())]);
        b.place(&["wss://r0.sim"], e);
    }
    for i in 0..6 {
        b.fault(
            600_000 * (i + 1),
            Fault::Disconnect {
                relay: "wss://r1.sim".into(),
            },
        );
    }
    b.phases(4 * 3_600_000, 28 * 3_600_000);
    b.build()
}

#[test]
fn shrinking_keeps_the_invariant_and_removes_what_is_not_needed() {
    let s = failing();
    let report = run(&s, false);
    let tag = report.violation.expect("the scenario fails").invariant;
    assert_eq!(tag, "convergence");
    let mut log = Vec::new();
    let shrunk = shrink(&s, |l| log.push(l)).expect("it fails, so it shrinks");
    assert_eq!(shrunk.invariant, tag);
    assert_eq!(
        run(&shrunk.scenario, false).violation.map(|v| v.invariant),
        Some(tag)
    );
    assert!(
        shrunk.scenario.faults.is_empty(),
        "the disconnects are noise"
    );
    assert_eq!(shrunk.scenario.relays.len(), 1, "r1 is noise");
    assert!(shrunk.scenario.initial.len() < s.initial.len());
    assert!(shrunk.scenario.safety_ms < s.safety_ms);
    assert!(!log.is_empty());
}

#[test]
fn a_passing_scenario_does_not_shrink() {
    assert!(shrink(&Scenario::generate(3), |_| {}).is_none());
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [0u64, 7, 42] {
        let a = run(&Scenario::generate(seed), true);
        let b = run(&Scenario::generate(seed), true);
        assert!(a.trace.as_ref().is_some_and(|t| !t.is_empty()));
        assert_eq!(a.trace, b.trace, "seed {seed}");
    }
}
