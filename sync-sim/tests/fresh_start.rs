//! Fresh start latency (issue 12, deliverable 6), with the default startup jitter: the spread
//! of first connection attempts scales with the relays tracked together, relays discovered
//! from announcements do not wait a 10 s jitter again, and the discovery cascade
//! (announcements → repositories → roots → replies) does not wait a full window per hop.

use sync_core::{Config, Mono, Status, STARTUP_JITTER_SLOT_MS};
use sync_sim::script::*;

const OUR: &str = "wss://our.relay";
const R0: &str = "wss://r0.example";
const R1: &str = "wss://r1.example";
const R2: &str = "wss://r2.example";

/// The default configuration (startup jitter 10 s), our relay, `bootstrap` relays.
fn cfg(bootstrap: &[String]) -> Config {
    Config {
        own_relay_urls: vec![OUR.into()],
        bootstrap_relays: bootstrap.to_vec(),
        ..Config::default()
    }
}

/// When each relay's first attempt is due, in ms after the start.
fn first_attempts(w: &World) -> Vec<u64> {
    w.core
        .relay_status()
        .map(|v| v.next_attempt_at().unwrap_or(Mono(u64::MAX)).0)
        .collect()
}

#[test]
fn startup_spread_scales_with_the_relays_tracked_together() {
    let few: Vec<String> = [R0, R1, R2].map(String::from).to_vec();
    let w = World::new(cfg(&few), 1);
    let at = first_attempts(&w);
    assert_eq!(at.len(), 3);
    assert!(
        at.iter().all(|t| *t <= 3 * STARTUP_JITTER_SLOT_MS),
        "three relays wait milliseconds, not seconds: {at:?}"
    );
    let many: Vec<String> = (0..2_000).map(|n| format!("wss://r{n}.example")).collect();
    let w = World::new(cfg(&many), 1);
    let at = first_attempts(&w);
    assert_eq!(at.len(), 2_000);
    let max = at.iter().copied().max().unwrap_or(0);
    let early = at.iter().filter(|t| **t < 1_000).count();
    assert!(max <= 10_000, "never beyond startup_jitter_ms: {max}");
    assert!(
        max >= 9_000,
        "2 000 relays still spread over the 10 s: {max}"
    );
    assert!(early < 400, "about a tenth in the first second: {early}");
}

/// One bootstrap relay holds an announcement naming two more relays; every relay holds the
/// repository's state, a patch and a comment on it. The two discovered relays connect within
/// milliseconds of the announcement's flush, and the whole cascade completes in well under a
/// second of virtual time for every seed (before: each relay drew 0–10 s, twice over).
#[test]
fn a_fresh_start_with_discovered_relays_completes_within_a_second() {
    let remote = Remote {
        events: repo_events(&[OUR, R0, R1, R2]),
        ..Remote::default()
    };
    for seed in 0..20 {
        let mut w = World::new(cfg(&[R0.to_string()]), seed);
        w.record = false;
        for r in [R0, R1, R2] {
            w.remote(r, remote.clone());
        }
        w.run_until(1_000);
        for r in [R0, R1, R2] {
            assert_eq!(w.status(r), Some(Status::Connected), "seed {seed}: {r}");
        }
        assert_eq!(w.store.len(), 4, "seed {seed}: every event stored");
    }
}

/// A listed relay whose connect is never answered (black-holed: only the 10 s connect timeout
/// ends it) has no batch in flight, so it does not hold the discovery window open: the
/// bootstrap relay's cascade completes in well under one 5 s window.
#[test]
fn a_relay_stuck_connecting_does_not_hold_the_cascade() {
    let mut w = World::new(cfg(&[R0.to_string()]), 1);
    w.remote(
        R0,
        Remote {
            events: repo_events(&[OUR, R0, R1]),
            ..Remote::default()
        },
    );
    w.remote(
        R1,
        Remote {
            hangs: true,
            ..Remote::default()
        },
    );
    w.run_until(1_000);
    assert_eq!(w.status(R1), Some(Status::Connecting));
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(w.store.len(), 4, "state, patch and comment fetched");
}
