//! Exported health and the naughty list against scripted relays (docs/spec.md §5, §14):
//! health reflects the present (a live relay is never `Dead`, `Degraded` means failing or
//! flapping now), and only repeated failures of one class put a relay on the naughty list,
//! never making an operator-named relay wait longer than the backoff cap.

use sync_core::{Config, ErrorClass, HealthState, Input, Status};
use sync_sim::script::*;

const OUR: &str = "wss://our.relay";
const R0: &str = "wss://r0.example";
const HOUR_MS: u64 = 3_600_000;
const DNS_ERROR: &str =
    "failed to lookup address information: Name or service not known (wss://r0.example)";

fn cfg() -> Config {
    Config {
        own_relay_urls: vec![OUR.into()],
        startup_jitter_ms: 0,
        ..Config::default()
    }
}

/// A world where alice's repo lists our relay and r0, which serves its announcement.
fn world(cfg: Config, remote: Remote) -> World {
    let mut w = World::new(cfg, 11);
    let alice = keys(1);
    let ann = announcement(1, &alice, "repo", &[OUR, R0], 1_000);
    let mut remote = remote;
    remote.events.push(ann.clone());
    w.remote(R0, remote);
    w.store.insert(ann.id);
    w.feed(Input::Accepted { event: ann });
    w
}

fn health(w: &World) -> HealthState {
    w.core.relay(&url(R0)).expect("tracked").health()
}

fn connects(w: &World) -> usize {
    w.table().matches("→ Connect r0").count()
}

/// Runs in one-second steps until r0 is in a live status (at most `limit_ms`).
fn run_until_live(w: &mut World, limit_ms: u64) {
    while !w.status(R0).is_some_and(Status::is_live) {
        assert!(w.now.mono.0 < limit_ms, "r0 never came back");
        let t = w.now.mono.0 + 1_000;
        w.run_until(t);
    }
}

#[test]
fn a_day_of_failures_then_a_stable_connection_is_healthy_at_once() {
    let mut w = world(
        cfg(),
        Remote {
            down: true,
            ..Remote::default()
        },
    );
    w.record = false;
    w.run_until(25 * HOUR_MS);
    assert_eq!(w.status(R0), Some(Status::Disconnected));
    assert_eq!(health(&w), HealthState::Dead, "a day of failures");
    assert_eq!(w.core.stats().relays_dead, 1);

    w.remotes.get_mut(&url(R0)).unwrap().down = false;
    run_until_live(&mut w, 50 * HOUR_MS);
    assert_eq!(
        health(&w),
        HealthState::Healthy,
        "connected again: neither Dead nor Degraded"
    );
    assert_eq!(w.core.stats().relays_dead, 0);
    let t = w.now.mono.0 + HOUR_MS;
    w.run_until(t);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(health(&w), HealthState::Healthy);
    assert_eq!(w.core.stats().relays_dead, 0);
}

#[test]
fn one_dropped_connection_is_forgotten_on_reconnect_but_flapping_is_degraded() {
    let mut w = world(cfg(), Remote::default());
    w.record = false;
    w.run_until(60_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(health(&w), HealthState::Healthy);

    // One short-lived connection drops: Degraded while down, Healthy once back.
    w.feed(Input::Disconnected { relay: url(R0) });
    assert_eq!(health(&w), HealthState::Degraded);
    run_until_live(&mut w, 5 * 60_000);
    assert_eq!(health(&w), HealthState::Healthy, "one loss is not flapping");

    // A second loss soon after: flapping, Degraded while connected.
    let t = w.now.mono.0 + 30_000;
    w.run_until(t);
    w.feed(Input::Disconnected { relay: url(R0) });
    run_until_live(&mut w, 10 * 60_000);
    assert_eq!(
        health(&w),
        HealthState::Degraded,
        "two losses within the window"
    );

    // Once the window has passed without a loss, Healthy again (a Tick brings the core's
    // clock to now, as any input does in the shell before its gauges are read).
    let t = w.now.mono.0 + 31 * 60_000;
    w.run_until(t);
    w.feed(Input::Tick);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(health(&w), HealthState::Healthy);
}

#[test]
fn one_dns_failure_is_ordinary_backoff_repeated_ones_over_ten_minutes_are_naughty() {
    let mut w = world(
        cfg(),
        Remote {
            down: true,
            connect_error: Some(DNS_ERROR.into()),
            ..Remote::default()
        },
    );
    w.run_until(2 * 60_000);
    assert!(
        connects(&w) >= 4,
        "ordinary backoff (5 s, 10 s, 20 s, …) in the first minutes: {} connects",
        connects(&w)
    );
    assert_eq!(
        w.core.relay(&url(R0)).unwrap().naughty(),
        None,
        "not naughty before ten minutes of DNS failures"
    );
    w.run_until(20 * 60_000);
    assert_eq!(
        w.core.relay(&url(R0)).unwrap().naughty(),
        Some(ErrorClass::Dns)
    );
    let before = connects(&w);
    w.run_until(11 * HOUR_MS);
    assert_eq!(
        connects(&w),
        before,
        "naughty: no attempt for naughty_retry_ms"
    );
    w.run_until(13 * HOUR_MS);
    assert_eq!(
        connects(&w),
        before + 1,
        "one attempt after naughty_retry_ms"
    );
}

#[test]
fn a_bootstrap_relay_failing_dns_for_two_days_never_waits_longer_than_the_backoff_cap() {
    let boot = Config {
        bootstrap_relays: vec![R0.into()],
        ..cfg()
    };
    let max_wait = boot.backoff_max_ms * (100 + boot.backoff_jitter_percent) / 100;
    let mut w = World::new(boot, 5);
    w.remote(
        R0,
        Remote {
            down: true,
            connect_error: Some(DNS_ERROR.into()),
            ..Remote::default()
        },
    );
    w.feed(Input::Tick);
    let mut last_connects = 0;
    let mut last_change = 0;
    for minute in 1..=48 * 60 {
        w.run_until(minute * 60_000);
        let n = connects(&w);
        if n != last_connects {
            (last_connects, last_change) = (n, w.now.mono.0);
        }
        assert!(
            w.now.mono.0 - last_change <= max_wait + 60_000,
            "no attempt for {} ms (cap {max_wait} ms)",
            w.now.mono.0 - last_change
        );
    }
    assert!(last_connects >= 48, "{last_connects} attempts in two days");
    assert_eq!(
        w.core.relay(&url(R0)).unwrap().naughty(),
        Some(ErrorClass::Dns),
        "still reported as naughty"
    );
}

fn subscribes(w: &World) -> usize {
    w.table().matches("→ Subscribe r0").count()
}

/// NIP-42 (docs/spec.md §14): a relay that refuses REQs until we authenticated is retried once
/// after `AUTH_RETRY_MS` and then serves; no failure is recorded.
#[test]
fn auth_required_once_is_retried_after_the_auth_wait() {
    let mut w = world(
        cfg(),
        Remote {
            neg: NegMode::UnsupportedNotice,
            auth_refusals: 1,
            ..Remote::default()
        },
    );
    w.run_until(sync_core::AUTH_RETRY_MS + 30_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.counters().auth_required, 1);
    assert_eq!(v.counters().auth_refused, 0);
    assert_eq!(v.counters().batches_failed, 0);
    assert_eq!(v.last_failure(), None);
}

/// A relay that refuses us even authenticated: the connection is closed after the retry and
/// backed off (class `Auth`), so REQs an hour fall to a handful instead of a repair every 65 s.
#[test]
fn auth_refused_after_the_retry_is_a_failure_with_backoff() {
    let mut w = world(
        cfg(),
        Remote {
            neg: NegMode::UnsupportedNotice,
            auth_refusals: u32::MAX,
            ..Remote::default()
        },
    );
    w.record = true;
    w.run_until(60_000);
    let v = w.core.relay(&url(R0)).unwrap();
    assert!(v.counters().auth_refused >= 1);
    assert_eq!(v.last_failure(), Some(ErrorClass::Auth));
    assert_eq!(
        v.naughty(),
        None,
        "never naughty: the operator may allow our key"
    );
    assert_ne!(health(&w), HealthState::Healthy);
    w.run_until(6 * HOUR_MS);
    let before = subscribes(&w);
    w.run_until(8 * HOUR_MS);
    let per_hour = (subscribes(&w) - before) / 2;
    assert!(per_hour <= 12, "{per_hour} REQs an hour once backed off");
    assert!(w.core.relay(&url(R0)).unwrap().failures() >= 8);
}
