//! Regressions found by `sync-sim`, each reduced to the smallest scripted scenario that shows
//! it. The simulator's seed is named in each test's doc comment.

use sync_core::{Command, Config, Input, Outcome, Status, SubKind};
use sync_sim::script::*;

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

/// sync-sim seed 5: a relay reaped (its only repository withdrawn) and listed again later got
/// a fresh id counter, so its new live subscription reused `live2`, breaking the documented
/// "unique per relay for the life of the core" (late traffic of the old one would be taken
/// for the new one).
#[test]
fn a_relay_reaped_and_added_again_never_reuses_subscription_ids() {
    let mut w = world();
    w.run_until(60_000);
    let first: Vec<String> = w
        .core
        .relay(&url(R0))
        .unwrap()
        .subscription_ids()
        .map(str::to_string)
        .collect();
    assert!(!first.is_empty());
    let coord = sync_core::RepoCoord {
        owner: keys(1).public_key(),
        identifier: "repo".into(),
    };
    w.feed(Input::WithdrawRepo {
        coord: coord.clone(),
    });
    w.run_until(120_000);
    assert_eq!(w.status(R0), None, "r0 was reaped");
    w.feed(Input::RegisterRepo {
        coord,
        relays: vec![R0.into()],
        level: sync_core::SyncLevel::Full,
    });
    w.run_until(240_000);
    let v = w.core.relay(&url(R0)).expect("tracked again");
    assert_eq!(v.status(), Status::Connected);
    for id in v.subscription_ids() {
        assert!(
            !first.iter().any(|f| f == id),
            "{id} was used before reaping"
        );
    }
}

/// sync-sim seed 3772 (shrunk: `sync-sim/tests/regressions/003-no-subscribe-to-a-relay-being-reaped.json`):
/// an EOSE of a full page arrived in the very millisecond the discovery window closed with the
/// relay's only repository withdrawn. The EOSE queued and sent the next page's REQ, then the
/// flush reaped the relay: the step sent `Subscribe` and then `Disconnect` to it, a
/// subscription on a connection the same step closes.
#[test]
fn a_relay_reaped_in_a_step_gets_no_new_subscription_from_that_step() {
    let cfg = Config {
        disable_negentropy: true,
        page_limit: 2,
        ..cfg()
    };
    let mut core = sync_core::SyncCore::new(cfg, 7, now(0));
    let alice = keys(1);
    let ann = announcement(1, &alice, "repo", &[OUR, R0], 1_000);
    let step = |core: &mut sync_core::SyncCore, ms: u64, input: Input| core.step(now(ms), input);
    let _ = step(&mut core, 0, Input::Accepted { event: ann });
    let out = step(&mut core, 5_000, Input::Tick);
    assert!(matches!(out[..], [Command::Connect { .. }]), "{out:?}");
    let out = step(&mut core, 5_010, Input::Connected { relay: url(R0) });
    let page = out
        .iter()
        .find_map(|c| match c {
            Command::Subscribe {
                sub,
                kind: SubKind::Historic,
                filters,
                ..
            } if filters
                .iter()
                .any(|f| f.generic_tags.keys().any(|t| t.as_char() == 'a')) =>
            {
                Some(sub.clone())
            }
            _ => None,
        })
        .expect("a historic page for the repository's events");
    // A full page (duplicates: nothing enters the discovery window).
    for n in 0..2u64 {
        let e = ev(
            10 + n,
            alice.public_key(),
            1617,
            1_000 + n,
            &[('a', coord(&alice, "repo"))],
        );
        let _ = step(
            &mut core,
            5_020,
            Input::Delivered {
                relay: url(R0),
                sub: page.clone(),
                event: e,
                outcome: Outcome::Duplicate,
            },
        );
    }
    let repo = sync_core::RepoCoord {
        owner: alice.public_key(),
        identifier: "repo".into(),
    };
    let _ = step(&mut core, 6_000, Input::WithdrawRepo { coord: repo });
    // The page's EOSE arrives as the window closes (6 000 + 5 000 ms).
    let out = step(
        &mut core,
        11_000,
        Input::Eose {
            relay: url(R0),
            sub: page,
        },
    );
    assert!(
        out.iter().any(|c| matches!(c, Command::Disconnect { .. })),
        "r0 was reaped: {out:?}"
    );
    assert!(
        !out.iter().any(|c| matches!(
            c,
            Command::Subscribe { .. } | Command::NegentropyDiff { .. }
        )),
        "nothing is opened on a connection the step closes: {out:?}"
    );
    let v = core
        .relay(&url(R0))
        .expect("still tracked while disconnecting");
    assert_eq!(v.status(), Status::Disconnecting);
    assert_eq!((v.open_subscriptions(), v.pending_batches()), (0, 0));
    let _ = step(&mut core, 11_010, Input::Disconnected { relay: url(R0) });
    assert!(
        core.relay(&url(R0)).is_none(),
        "forgotten once disconnected"
    );
}

fn now(ms: u64) -> sync_core::Now {
    sync_core::Now::at(ms, WALL0 + ms / 1000)
}
