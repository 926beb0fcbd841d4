//! Regressions found by `sync-sim`, each reduced to the smallest scripted scenario that shows
//! it. The simulator's seed is named in each test's doc comment.

mod support;

use support::*;
use sync_core::{Config, Input, Status};

const OUR: &str = "wss://our.relay";
const R0: &str = "wss://r0.example";

fn cfg() -> Config {
    Config {
        own_relay_urls: vec![OUR.into()],
        startup_jitter_ms: 0,
        ..Config::default()
    }
}

fn world() -> World {
    let mut w = World::new(cfg(), 7);
    let alice = keys(1);
    let ann = announcement(1, &alice, "repo", &[OUR, R0], 1_000);
    let mut remote = Remote::default();
    remote.events.push(ann.clone());
    w.remote(R0, remote);
    w.store.insert(ann.id);
    w.feed(Input::Accepted { event: ann });
    w.record = false;
    w
}

/// sync-sim seed 25: a live subscription CLOSED schedules a repair for 65 s later; a rate-limit
/// NOTICE in between extends the cooldown past that moment. The repair was then due but
/// skipped, and `next_deadline` stayed in the past (a busy loop until the cooldown ended).
#[test]
fn live_repair_due_during_a_later_cooldown_waits_for_it() {
    let mut w = world();
    w.run_until(60_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    let live = w
        .core
        .relay(&url(R0))
        .unwrap()
        .subscription_ids()
        .find(|s| s.starts_with("live"))
        .expect("a live subscription")
        .to_string();
    w.feed(Input::Closed {
        relay: url(R0),
        sub: live.as_str().into(),
        message: "error: shutting down idle subscription".into(),
    });
    w.run_until(100_000);
    w.feed(Input::Notice {
        relay: url(R0),
        message: "rate-limited: slow down".into(),
    });
    // The repair is due at +125 s, the cooldown ends at +165 s.
    w.run_until(130_000);
    let next = w.core.next_deadline().expect("a deadline");
    assert!(
        next.at.0 > w.now.mono.0,
        "deadline {next:?} is not after now ({} ms)",
        w.now.mono.0
    );
    w.run_until(400_000);
    let v = w.core.relay(&url(R0)).unwrap();
    assert!(v.live_subscriptions() > 0, "live coverage was repaired");
}
