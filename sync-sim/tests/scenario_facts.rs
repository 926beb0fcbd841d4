//! Scripted scenarios checked by assertions rather than action tables: the discovery window,
//! failed-batch retries and REQ pacing (timings that a table would bury). Same fixture as
//! `scenarios.rs` ([`repo_world`]).

use sync_core::{Config, Input, Status};
use sync_sim::script::*;

const OUR: &str = "wss://our.relay";
const R0: &str = "wss://r0.example";

fn cfg() -> Config {
    scenario_cfg(OUR)
}

fn world_with_repo(cfg: Config, relays: &[&str], remote: Remote) -> World {
    repo_world(cfg, OUR, relays, remote)
}

/// The discovery window closes early once the historic sync that feeds it is idle (here the
/// L3 hop of a fresh start), or once it holds 1 000 updates; live events in steady state keep
/// the full window.
#[test]
fn discovery_window_closes_early_only_when_nothing_more_is_coming() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    w.run_until(6_000);
    assert_eq!(
        w.status(R0),
        Some(Status::Connected),
        "the root's comments were fetched without waiting for a second 5 s window"
    );
    w.run_until(60_000);
    let root = |n: u64| {
        ev(
            5_000 + n,
            keys(5).public_key(),
            1617,
            WALL0 + 60,
            &[('a', coord(&keys(1), "repo"))],
        )
    };
    w.feed(Input::Accepted { event: root(0) });
    let window = w.core.next_deadline().expect("a deadline");
    assert_eq!(window.why, sync_core::TimerKind::DiscoveryWindow);
    assert_eq!(window.at.0, 65_000, "a live root waits for the full window");
    for n in 1..1_000 {
        w.feed(Input::Accepted { event: root(n) });
    }
    assert_ne!(
        w.core.next_deadline().map(|d| d.why),
        Some(sync_core::TimerKind::DiscoveryWindow),
        "1 000 buffered updates flush at once"
    );
}

/// Virtual ms of every `Subscribe` and `NegDiff` the world logged after `from_ms`.
fn send_times(w: &World, from_ms: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for line in &w.lines {
        let head = line.split_whitespace().next().unwrap_or("");
        let secs = head.trim_start_matches('+').trim_end_matches('s');
        let t = (secs.parse::<f64>().unwrap_or(0.0) * 1000.0).round() as u64;
        let sends = line
            .lines()
            .filter(|l| l.contains("→ Subscribe") || l.contains("→ NegDiff"))
            .count();
        if t > from_ms {
            out.extend(std::iter::repeat_n(t, sends));
        }
    }
    out
}

/// Issue 15: a batch whose REQ is CLOSED (not rate-limited) is retried after the relay's
/// backoff and completes: the relay ends `Connected`, no batch counts as failed.
#[test]
fn failed_batch_is_retried_and_completes() {
    let remote = Remote {
        neg: NegMode::UnsupportedNotice,
        closes_historic: 1,
        ..Remote::default()
    };
    let mut w = world_with_repo(cfg(), &[R0], remote);
    w.run_until(60_000);
    let s = w.core.stats();
    assert_eq!(s.batch_retries, 1);
    assert_eq!(s.batches_failed, 0);
    assert_eq!(w.status(R0), Some(Status::Connected));
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.batch_failure(), None);
    assert_eq!(w.store.len(), 4, "the retry fetched everything");
}

/// Issue 15: a batch that keeps failing is tried `batch_retry_max_attempts` times in all, then
/// the relay shows `ConnectedHistoricSyncFailures` with the reason; the next daily resync
/// (a fresh start) clears it.
#[test]
fn batch_failing_every_attempt_stops_after_the_bound_with_its_reason() {
    let remote = Remote {
        neg: NegMode::UnsupportedNotice,
        closes_historic: 1_000,
        ..Remote::default()
    };
    let mut w = world_with_repo(cfg(), &[R0], remote);
    w.run_until(10 * 60_000);
    let s = w.core.stats().clone();
    assert_eq!(w.status(R0), Some(Status::ConnectedHistoricSyncFailures));
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.batch_failure(), Some(sync_core::BatchFailure::Closed));
    assert_eq!(
        v.snapshot().batch_failure,
        Some(sync_core::BatchFailure::Closed)
    );
    assert_eq!(v.pending_batches(), 0, "nothing left waiting");
    // Every batch was tried 3 times: two retries per failed batch.
    assert!(s.batches_failed > 0);
    assert_eq!(s.batch_retries, 2 * s.batches_failed);
    // Nothing more happens until the daily resync.
    let before = w.lines.len();
    w.run_until(60 * 60_000);
    assert_eq!(w.core.stats().batch_retries, s.batch_retries);
    assert!(w.lines.len() - before <= 1, "quiet: no retry loop");
    w.remotes.get_mut(&url(R0)).unwrap().closes_historic = 0;
    w.run_until(26 * 3_600_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(w.core.relay(&url(R0)).unwrap().batch_failure(), None);
}

/// Issue 15: after a rate limit, new requests go out at most one per learned interval (live
/// REQs included); a further rate limit doubles it; quiet periods halve it until it ends.
#[test]
fn requests_are_paced_after_a_rate_limit_and_the_pace_relaxes() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    w.run_until(5_005);
    w.feed(Input::Notice {
        relay: url(R0),
        message: "rate-limited: slow down".into(),
    });
    assert_eq!(w.core.relay(&url(R0)).unwrap().req_pace_ms(), 500);
    w.run_until(120_000);
    let times = send_times(&w, 5_005);
    assert!(times.len() >= 5, "{times:?}");
    assert!(
        times.windows(2).all(|p| p[1] - p[0] >= 500),
        "sends at least 500 ms apart: {times:?}"
    );
    assert_eq!(w.status(R0), Some(Status::Connected));
    // A second rate limit (outside the cooldown) doubles the pace.
    w.feed(Input::Notice {
        relay: url(R0),
        message: "too many requests, slow down".into(),
    });
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.req_pace_ms(), 1_000);
    assert_eq!(v.budget(), 20, "a request rate is not a subscription limit");
    // More rate-limit answers during the cooldown teach nothing new.
    w.feed(Input::Notice {
        relay: url(R0),
        message: "rate-limited: slow down".into(),
    });
    assert_eq!(w.core.relay(&url(R0)).unwrap().req_pace_ms(), 1_000);
    // Quiet for 5 min: halved (read when the next work is sent); 5 min more: gone.
    let alice = keys(1);
    for (n, (at, pace)) in [
        (120_000 + 5 * 60_000 + 1, 500),
        (120_000 + 10 * 60_000 + 1, 0),
    ]
    .into_iter()
    .enumerate()
    {
        w.run_until(at);
        let d = format!("more{n}");
        w.feed(Input::Accepted {
            event: announcement(20 + n as u64, &alice, &d, &[OUR, R0], 2_000),
        });
        w.run_until(at + 30_000);
        assert_eq!(w.core.relay(&url(R0)).unwrap().req_pace_ms(), pace);
    }
}

/// The standard world with 60 more patches on r0 (fetched by id after the diff).
fn sixty_patches() -> World {
    let mut remote = Remote::default();
    for n in 0..60u64 {
        remote.events.push(ev(
            3_000 + n,
            keys(6).public_key(),
            1617,
            5_000 + n,
            &[('a', coord(&keys(1), "repo"))],
        ));
    }
    world_with_repo(cfg(), &[R0], remote)
}

/// A lag while an id fetch is on the wire re-sends only the ids the host has not stored. With
/// the whole fetch re-sent, a host slower than the relay's burst lagged the stream again on
/// every re-send and fetched the same 60 ids for ever (seen on loopback under CPU load).
#[test]
fn a_lagged_id_fetch_whose_events_all_arrived_is_not_sent_again() {
    let mut w = sixty_patches();
    // Id fetches of the 60 patches (and the announcement's other events), not of later hops.
    let id_fetches = |w: &World| {
        w.lines
            .iter()
            .filter(|l| l.contains("Subscribe r0") && l.contains("ids×6"))
            .count()
    };
    // Run until an id fetch is on the wire with its deliveries still queued.
    let mut t = 0;
    while id_fetches(&w) == 0 {
        t += 1;
        w.run_until(t);
        assert!(t < 60_000, "no id fetch was sent");
    }
    let before = id_fetches(&w);
    // The stream lags, but nothing of this relay is lost (another relay's burst overflowed it).
    assert_eq!(w.lag(R0, 0), 0);
    w.run_until(120_000);
    assert_eq!(w.store.len(), 64, "every event stored");
    assert_eq!(
        id_fetches(&w),
        before,
        "the lagged fetch delivered every id, so none is fetched again:\n{}",
        w.table()
    );
    assert_eq!(w.status(R0), Some(Status::Connected));
}

/// A lag that loses part of an id fetch re-sends only the lost ids.
#[test]
fn a_lagged_id_fetch_is_sent_again_for_the_lost_ids_only() {
    let mut w = sixty_patches();
    let mut t = 0;
    while !w.lines.iter().any(|l| l.contains("ids×6")) {
        t += 1;
        w.run_until(t);
        assert!(t < 60_000, "no id fetch of the 60 patches was sent");
    }
    assert_eq!(w.lag(R0, 10), 10, "the first 10 deliveries are lost");
    w.run_until(120_000);
    assert_eq!(w.store.len(), 64, "every event stored");
    assert!(
        w.lines
            .iter()
            .any(|l| l.contains("Subscribe r0") && l.contains("ids×10]")),
        "the lost ids alone are fetched again:\n{}",
        w.table()
    );
}

/// Issue 12 deliverable 3: items the subscription budget leaves without a live REQ are polled,
/// so a new event on them arrives within about one poll interval, not at the daily resync.
#[test]
fn an_event_on_an_item_over_the_live_budget_arrives_by_the_next_poll() {
    let run = |poll_ms: u64| {
        let tight = Config {
            max_subscriptions: 2,
            max_filters_per_req: 1,
            live_poll_interval_ms: poll_ms,
            ..cfg()
        };
        let mut w = world_with_repo(tight, &[R0], Remote::default());
        w.run_until(60_000);
        let r0 = w.core.relay(&url(R0)).expect("tracked");
        assert_eq!(w.status(R0), Some(Status::Connected));
        assert!(r0.polled_items() > 0, "the budget leaves items uncovered");
        let late = ev(
            70,
            keys(4).public_key(),
            1111,
            WALL0 + 61,
            &[('E', repo_events(&[OUR, R0])[2].id.to_hex())],
        );
        w.publish(R0, late.clone());
        let mut stored_at = None;
        for t in (61_000..=661_000).step_by(1_000) {
            w.run_until(t);
            if w.store.contains(&late.id) {
                stored_at = Some(t);
                break;
            }
        }
        (stored_at, w.core.stats().live_polls)
    };
    let (at, polls) = run(120_000);
    let at = at.expect("the poll fetched the comment within 10 minutes");
    assert!(at <= 60_000 + 120_000 + 5_000, "stored at {at} ms");
    assert!(polls >= 1);
    let (never, _) = run(24 * 3_600_000);
    assert_eq!(
        never, None,
        "without polls the comment waits for the daily resync"
    );
}
