//! The open-network rules (docs/spec.md §13) seen from the core: relay URLs that strangers
//! write into announcements never become a `Connect` when they point at non-global addresses,
//! a name the shell finds resolving to one is backed off for `naughty_retry_ms`, and the number
//! of tracked relays is capped. A `Connect` to a URL with no remote in the world panics, so a
//! refused URL that slipped through would fail these tests.

use sync_core::{Config, Input, NonGlobal, Refusal, Status};
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

/// The private spellings an attacker would try, as relays and as a clone URL.
const PRIVATE: [&str; 6] = [
    "ws://127.0.0.2:7000",
    "ws://[::1]:7000",
    "ws://localhost:7000",
    "ws://2130706433:7000",
    "wss://169.254.169.254",
    "ws://10.0.0.8:7000",
];
const PRIVATE_CLONE: &str = "http://127.0.0.3:9000/x.git";

fn world(cfg: Config, register_private: bool) -> World {
    let mut w = World::new(cfg, 3);
    let alice = keys(1);
    w.alias_key(&alice, "alice");
    let mut listed = vec![OUR, R0];
    listed.extend(PRIVATE);
    let mut ann = announcement(1, &alice, "repo", &listed, 1_000);
    ann.clone_urls = vec![PRIVATE_CLONE.into()];
    w.alias_event(&ann, "ann");
    let remote = Remote {
        events: vec![ann.clone()],
        ..Remote::default()
    };
    w.remote(R0, remote.clone());
    if register_private {
        for u in PRIVATE.iter().copied().chain(["ws://127.0.0.3:9000"]) {
            w.remote(u, remote.clone());
        }
    }
    w.store.insert(ann.id);
    w.feed(Input::Accepted { event: ann });
    w
}

#[test]
fn private_targets_in_an_announcement_are_never_dialled() {
    let mut w = world(cfg(), false);
    w.run_until(60_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(w.core.relay_status().count(), 1, "only r0 is tracked");
    let refused: Vec<(String, Refusal)> = w
        .core
        .refused_targets()
        .map(|(u, r)| (u.to_string(), r))
        .collect();
    let loopback = Refusal::NonGlobalAddress(NonGlobal::Loopback);
    assert_eq!(
        refused,
        vec![
            (
                "ws://10.0.0.8:7000".into(),
                Refusal::NonGlobalAddress(NonGlobal::Private)
            ),
            ("ws://127.0.0.1:7000".into(), loopback),
            ("ws://127.0.0.2:7000".into(), loopback),
            ("ws://127.0.0.3:9000".into(), loopback),
            ("ws://[::1]:7000".into(), loopback),
            ("ws://localhost:7000".into(), loopback),
            (
                "wss://169.254.169.254".into(),
                Refusal::NonGlobalAddress(NonGlobal::LinkLocal)
            ),
        ]
    );
    assert_eq!(w.core.stats().targets_refused.non_global_address, 7);
    insta::assert_snapshot!(w.table());
}

#[test]
fn the_lab_switch_dials_private_targets() {
    let lab = Config {
        allow_private_targets: true,
        ..cfg()
    };
    let mut w = world(lab, true);
    w.run_until(60_000);
    // 2130706433 is 127.0.0.1: one relay, whatever the spelling.
    assert_eq!(w.core.relay_status().count(), 8);
    assert!(w
        .core
        .relay_status()
        .all(|r| r.status() == Status::Connected));
    assert_eq!(w.core.refused_targets().count(), 0);
}

#[test]
fn a_name_resolving_to_a_private_address_is_retried_only_after_the_naughty_interval() {
    let mut w = world(cfg(), false);
    w.remotes.get_mut(&url(R0)).unwrap().resolves_to = Some(NonGlobal::Private);
    let day_ms = 24 * 3_600_000;
    w.run_until(day_ms);
    let connects = w
        .lines
        .iter()
        .filter(|l| l.contains("Connect wss://r0") || l.contains("Connect r0"))
        .count();
    let retry_h = cfg().naughty_retry_ms / 3_600_000;
    assert!(
        (2..=3).contains(&connects),
        "first attempt, then one every {retry_h} h: {connects}\n{}",
        w.table()
    );
    assert_eq!(w.status(R0), Some(Status::Disconnected));
    assert_eq!(
        w.core.relay(&url(R0)).and_then(|r| r.naughty()),
        Some(sync_core::ErrorClass::Address)
    );
    assert!(w.core.stats().targets_refused.resolves_non_global >= 2);
}

#[test]
fn tracked_relays_are_capped_and_the_rest_counted() {
    let capped = Config {
        max_tracked_relays: 3,
        ..cfg()
    };
    let mut w = World::new(capped, 3);
    let publics: Vec<String> = (0..5).map(|i| format!("wss://p{i}.example")).collect();
    let mut listed = vec![OUR.to_string()];
    listed.extend(publics.iter().cloned());
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    let ann = announcement(1, &keys(1), "repo", &listed, 1_000);
    for p in &publics[..3] {
        w.remote(p, Remote::default());
    }
    w.store.insert(ann.id);
    w.feed(Input::Accepted { event: ann });
    w.run_until(60_000);
    assert_eq!(w.core.relay_status().count(), 3);
    assert_eq!(w.core.stats().targets_refused.tracked_relays_cap, 2);
}
