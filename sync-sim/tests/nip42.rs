//! NIP-42 relays in the full simulator (docs/spec.md §14): one that serves us once we
//! authenticated is synced completely; one that refuses us even authenticated is backed off
//! like a failing relay, with a bounded number of REQs an hour, and says why in its status.

use sync_core::{Command, ErrorClass, RelayUrl, Status};
use sync_sim::builder::{relay, Builder};
use sync_sim::run::run_or_panic;
use sync_sim::scenario::{AuthMode, RelaySpec, Scenario, OUR_URL};
use sync_sim::world::World;

const R0: &str = "wss://r0.sim";
const R1: &str = "wss://r1.sim";
const HOUR: u64 = 3_600_000;

fn url(s: &str) -> RelayUrl {
    RelayUrl::parse(s).expect("url")
}

/// Runs the scenario, fails the test on any violation, returns the final world.
fn check(s: &Scenario) -> World {
    run_or_panic(s)
}

/// Virtual ms of every REQ (`Subscribe`) the core sent to `relay`.
fn reqs_to(w: &World, relay: &str) -> Vec<u64> {
    let relay = url(relay);
    w.trace
        .iter()
        .flatten()
        .flat_map(|s| s.commands.iter().map(move |c| (s.now.mono.0, c)))
        .filter_map(|(at, c)| match c {
            Command::Subscribe { relay: r, .. } if *r == relay => Some(at),
            _ => None,
        })
        .collect()
}

#[test]
fn relay_serving_authenticated_clients_is_synced_completely() {
    let mut b = Builder::new(42);
    b.relay(RelaySpec {
        auth: AuthMode::Accepts,
        ..relay(R0)
    });
    let ids = b.repos_with_events("repo", 6, 4, &[R0]);
    b.phases(HOUR, 2 * HOUR);
    let w = check(&b.build());
    let v = w.core.relay(&url(R0)).unwrap();
    assert!(v.counters().auth_required > 0, "the relay asked for AUTH");
    assert_eq!(v.counters().auth_refused, 0);
    assert_eq!(v.counters().batches_failed, 0);
    assert_eq!(v.status(), Status::Connected);
    assert_eq!(v.last_failure(), None);
    let stored = ids.iter().filter(|id| w.host.store.contains_key(id));
    assert_eq!(stored.count(), ids.len());
}

/// The figure: before, every `auth-required:` CLOSED was repaired 65 s later, for
/// ever (about 950 REQs an hour). Now the relay gets its REQs again once, then is backed off
/// (exponential, capped at `backoff_max_ms` = 1 h): a few dozen REQs an hour at most.
#[test]
fn relay_refusing_authenticated_clients_is_backed_off() {
    let mut b = Builder::new(43);
    b.relay(relay(R0));
    b.relay(RelaySpec {
        auth: AuthMode::Refuses,
        ..relay(R1)
    });
    for i in 0..6 {
        let d = format!("repo{i}");
        b.announce(&d, &[OUR_URL, R0, R1], &[R0], true);
        b.repo_events(&d, 10, 4, &[R0, R1]);
    }
    b.phases(HOUR, 11 * HOUR);
    let w = check(&b.build());
    let reqs = reqs_to(&w, R1);
    let end = w.mono_ms;
    let per_hour: Vec<usize> = (0..end.div_ceil(HOUR))
        .map(|h| reqs.iter().filter(|t| **t / HOUR == h).count())
        .collect();
    eprintln!("REQs to the refusing relay per hour: {per_hour:?}");
    let backed_off = &per_hour[2..per_hour.len() - 1];
    let worst = backed_off.iter().copied().max().unwrap_or(0);
    assert!(worst <= 36, "REQs an hour once backed off: {per_hour:?}");
    let v = w.core.relay(&url(R1)).unwrap();
    assert!(
        v.counters().auth_refused > 0,
        "the relay was closed and backed off"
    );
    assert_eq!(v.last_failure(), Some(ErrorClass::Auth));
    assert!(v.failures() > 0);
    let r0 = w.core.relay(&url(R0)).unwrap();
    assert_eq!(
        r0.status(),
        Status::Connected,
        "the other relay is unaffected"
    );
}
