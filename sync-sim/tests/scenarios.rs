//! Named scenarios as insta snapshots: each table is one step per line (relative time, input,
//! the commands it caused, relay statuses after it). Review changes with `cargo insta review`.

use sync_core::{Config, Input, NegSupport, Status, SyncLevel};
use sync_sim::script::*;

const OUR: &str = "wss://our.relay";
const R0: &str = "wss://r0.example";
const R1: &str = "wss://r1.example";

fn cfg() -> Config {
    scenario_cfg(OUR)
}

/// A world where alice's repo `repo` lists our relay and `relays` ([`repo_world`]).
fn world_with_repo(cfg: Config, relays: &[&str], remote: Remote) -> World {
    repo_world(cfg, OUR, relays, remote)
}

#[test]
fn fresh_start() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    w.run_until(60_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(
        w.store.len(),
        4,
        "announcement, state, patch and comment are stored"
    );
    insta::assert_snapshot!(w.table());
}

#[test]
fn quick_reconnect_fetches_the_gap() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    w.run_until(60_000);
    w.lines.clear();
    w.remotes.get_mut(&url(R0)).unwrap().down = true;
    w.feed(Input::Disconnected { relay: url(R0) });
    // Two minutes down; a patch is published meanwhile.
    let gap = ev(
        50,
        keys(4).public_key(),
        1617,
        WALL0 + 90,
        &[('a', coord(&keys(1), "repo"))],
    );
    w.alias_event(&gap, "gap-patch");
    w.publish(R0, gap.clone());
    w.run_until(180_000);
    w.remotes.get_mut(&url(R0)).unwrap().down = false;
    w.run_until(400_000);
    assert!(
        w.store.contains(&gap.id),
        "the event published while disconnected was fetched"
    );
    assert_eq!(w.status(R0), Some(Status::Connected));
    insta::assert_snapshot!(w.table());
}

#[test]
fn long_reconnect_is_a_fresh_start() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    w.run_until(60_000);
    w.lines.clear();
    w.remotes.get_mut(&url(R0)).unwrap().down = true;
    w.feed(Input::Disconnected { relay: url(R0) });
    w.record = false;
    w.run_until(60_000 + 20 * 60_000);
    w.record = true;
    w.remotes.get_mut(&url(R0)).unwrap().down = false;
    w.run_until(60_000 + 60 * 60_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    let table = w.table();
    assert!(
        !table.contains("since="),
        "a long reconnect fetches everything again"
    );
    insta::assert_snapshot!(table);
}

#[test]
fn daily_resync_enters_syncing_and_completes() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    w.run_until(60_000);
    w.lines.clear();
    w.record = false;
    w.run_until(23 * 3_600_000 - 1);
    w.record = true;
    assert_eq!(w.status(R0), Some(Status::Connected));
    w.run_until(26 * 3_600_000);
    assert!(
        w.table().contains("r0=Syncing"),
        "the daily resync enters Syncing"
    );
    assert_eq!(w.status(R0), Some(Status::Connected));
    insta::assert_snapshot!(w.table());
}

#[test]
fn first_connect_failing_backs_off() {
    let remote = Remote {
        failing_connects: 5,
        ..Remote::default()
    };
    let mut w = world_with_repo(cfg(), &[R0], remote);
    w.run_until(30 * 60_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(
        w.core.relay(&url(R0)).unwrap().counters().connects_failed,
        5
    );
    insta::assert_snapshot!(w.table());
}

#[test]
fn consolidation_under_a_budget_of_ten() {
    let c = Config {
        max_subscriptions: 10,
        max_filters_per_req: 4,
        ..cfg()
    };
    let mut w = world_with_repo(c, &[R0], Remote::default());
    w.run_until(60_000);
    w.lines.clear();
    // Eight more repositories discovered one window at a time.
    for i in 0..8u64 {
        let ann = announcement(100 + i, &keys(1), &format!("more{i}"), &[OUR, R0], 2_000);
        w.store.insert(ann.id);
        w.feed(Input::Accepted { event: ann });
        w.run_until(60_000 + (i + 1) * 10_000);
    }
    let v = w.core.relay(&url(R0)).unwrap();
    assert!(v.open_subscriptions() <= 10);
    assert!(
        w.core.stats().consolidations > 0,
        "live subscriptions were consolidated"
    );
    insta::assert_snapshot!(w.table());
}

/// Budget 10 (live soft cap 5, hard cap 9), 4 filters per REQ and one value per filter, so
/// every repository costs 4 live filters (one REQ). Between the soft and the hard cap a new
/// repository gets its own REQ instead of a close-and-reopen of every live REQ (re-packing at
/// the soft cap re-packed busy relays at every discovery batch); past the hard cap it is
/// consolidated (or counted over budget), never over the budget.
#[test]
fn live_groups_fill_up_to_the_hard_cap_before_a_repack() {
    let c = Config {
        max_subscriptions: 10,
        max_filters_per_req: 4,
        chunk_size: 1,
        ..cfg()
    };
    let mut w = world_with_repo(c, &[R0], Remote::default());
    w.run_until(60_000);
    let add = |w: &mut World, i: u64| {
        let ann = announcement(200 + i, &keys(1), &format!("x{i}"), &[OUR, R0], 2_000);
        w.store.insert(ann.id);
        w.feed(Input::Accepted { event: ann });
        w.run_until(60_000 + (i + 1) * 10_000);
    };
    let live = |w: &World| w.core.relay(&url(R0)).unwrap().live_subscriptions();
    let start = live(&w);
    assert_eq!(start, 3, "the first repository's live REQs");
    // 5 repositories: one REQ each, past the soft cap (5) up to 8, with no re-pack.
    for i in 0..5 {
        add(&mut w, i);
        assert_eq!(
            live(&w),
            start + i as usize + 1,
            "repository {i} got its own REQ"
        );
    }
    assert_eq!(
        w.core.stats().consolidations,
        0,
        "no re-pack below the hard cap"
    );
    for i in 5..12 {
        add(&mut w, i);
        let v = w.core.relay(&url(R0)).unwrap();
        assert!(v.live_subscriptions() <= 9 && v.open_subscriptions() <= 10);
    }
    assert!(
        w.core.stats().consolidations > 0,
        "re-packed at the hard cap"
    );
    let v = w.core.relay(&url(R0)).unwrap();
    assert!(
        v.counters().live_filters_over_budget > 0,
        "past the hard cap"
    );
    assert_eq!(w.status(R0), Some(Status::Connected));
}

#[test]
fn negentropy_unsupported_falls_back_to_req() {
    let mut w = world_with_repo(
        cfg(),
        &[R0],
        Remote {
            neg: NegMode::UnsupportedNotice,
            ..Remote::default()
        },
    );
    w.run_until(60_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(
        w.core.relay(&url(R0)).unwrap().negentropy(),
        NegSupport::Unsupported
    );
    assert_eq!(w.store.len(), 4);
    insta::assert_snapshot!(w.table());
}

#[test]
fn id_fetch_against_a_relay_capping_id_queries_at_150() {
    let mut remote = Remote {
        id_cap: 150,
        ..Remote::default()
    };
    for n in 0..400u64 {
        remote.events.push(ev(
            1_000 + n,
            keys(5).public_key(),
            1111,
            1_500 + n,
            &[('a', coord(&keys(1), "repo"))],
        ));
    }
    let mut w = world_with_repo(cfg(), &[R0], remote);
    w.run_until(60_000);
    assert_eq!(w.store.len(), 404, "every id arrives despite the cap");
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_ne!(
        w.core.relay(&url(R0)).unwrap().negentropy(),
        NegSupport::Unsupported
    );
    insta::assert_snapshot!(w.table());
}

#[test]
fn pagination_through_a_same_second_burst_larger_than_a_page() {
    let mut remote = Remote {
        neg: NegMode::UnsupportedNotice,
        page_cap: 50,
        ..Remote::default()
    };
    // 120 comments in one second tagging the repo via three different tag letters.
    for n in 0..120u64 {
        let letter = ['a', 'A', 'q'][n as usize % 3];
        remote.events.push(ev(
            2_000 + n,
            keys(6).public_key(),
            1111,
            5_000,
            &[(letter, coord(&keys(1), "repo"))],
        ));
    }
    let mut w = world_with_repo(cfg(), &[R0], remote);
    w.run_until(120_000);
    assert_eq!(w.store.len(), 124);
    assert_eq!(w.status(R0), Some(Status::Connected));
    insta::assert_snapshot!(w.table());
}

#[test]
fn rate_limit_cooldown_and_replay() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    w.run_until(5_005);
    w.feed(Input::Notice {
        relay: url(R0),
        message: "rate-limited: slow down".into(),
    });
    w.run_until(120_000);
    assert_eq!(w.core.stats().rate_limits, 1);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(
        w.store.len(),
        4,
        "deferred work was replayed after the cooldown"
    );
    insta::assert_snapshot!(w.table());
}

#[test]
fn repo_withdrawal_shrinks_subscriptions() {
    let mut w = world_with_repo(cfg(), &[R0, R1], Remote::default());
    w.run_until(60_000);
    w.lines.clear();
    // The announcement is replaced without r1: r1 is reaped.
    let ann2 = announcement(9, &keys(1), "repo", &[OUR, R0], 3_000);
    w.alias_event(&ann2, "ann-v2");
    w.feed(Input::Accepted { event: ann2 });
    w.run_until(80_000);
    assert_eq!(w.status(R1), None, "r1 is no longer tracked");
    // A second repository on r0, then the first is withdrawn: r0 stays, its live coverage shrinks.
    let other = announcement(10, &keys(1), "other", &[OUR, R0], 3_000);
    w.alias_event(&other, "ann-other");
    w.feed(Input::Accepted { event: other });
    w.run_until(90_000);
    let before = w.core.relay(&url(R0)).unwrap().live_items();
    w.feed(Input::WithdrawRepo {
        coord: sync_core::RepoCoord {
            owner: keys(1).public_key(),
            identifier: "repo".into(),
        },
    });
    w.run_until(100_000);
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.status(), Status::Connected);
    assert!(
        v.live_items() < before,
        "live coverage shrank: {} -> {}",
        before,
        v.live_items()
    );
    insta::assert_snapshot!(w.table());
}

#[test]
fn state_only_upgrades_to_full() {
    let mut w = World::new(cfg(), 7);
    let alice = keys(1);
    w.alias_key(&alice, "alice");
    let mut remote = Remote::default();
    remote.events.push(ev(
        2,
        alice.public_key(),
        30618,
        1_001,
        &[('d', "repo".into())],
    ));
    remote.events.push(ev(
        3,
        keys(2).public_key(),
        1617,
        1_002,
        &[('a', coord(&alice, "repo"))],
    ));
    w.remote(R0, remote);
    let c = sync_core::RepoCoord {
        owner: alice.public_key(),
        identifier: "repo".into(),
    };
    w.feed(Input::RegisterRepo {
        coord: c.clone(),
        relays: vec![R0.into()],
        level: SyncLevel::StateOnly,
    });
    w.run_until(30_000);
    assert_eq!(w.store.len(), 1, "only the state event at StateOnly");
    w.feed(Input::RegisterRepo {
        coord: c,
        relays: vec![R0.into()],
        level: SyncLevel::Full,
    });
    w.run_until(60_000);
    assert_eq!(w.store.len(), 2, "the patch arrives after the upgrade");
    insta::assert_snapshot!(w.table());
}

#[test]
fn syncing_to_connected_without_sleeping() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    w.run_until(60_000);
    let table = w.table();
    // Completion happens in the very step that resolved the last batch (its EOSE), not in a
    // later tick after a sleep.
    let entry = w
        .lines
        .iter()
        .find(|e| e.contains("r0=Connected"))
        .expect("r0 connects");
    let first = entry.lines().next().unwrap_or_default();
    assert!(first.contains("Eose r0 "), "completed on {first:?}");
    insta::assert_snapshot!(table);
}

#[test]
fn negentropy_batch_with_host_rejected_events_completes() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    let spam: Vec<_> = (0..5u64)
        .map(|n| {
            announcement(
                500 + n,
                &keys(9),
                &format!("spam{n}"),
                &["wss://elsewhere"],
                1_000,
            )
        })
        .collect();
    for s in &spam {
        w.host_rejects.insert(s.id);
    }
    w.remotes.get_mut(&url(R0)).unwrap().events.extend(spam);
    w.run_until(60_000);
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(
        w.core.relay(&url(R0)).unwrap().negentropy(),
        NegSupport::Supported
    );
    assert_eq!(w.core.stats().negentropy_fallbacks, 0);
    assert_eq!(
        w.core.stats().rejected_cold,
        5,
        "rejected announcements are remembered"
    );
    insta::assert_snapshot!(w.table());
}

/// 120 comments on r0 (no NIP-77, pages of 50).
fn paged_world() -> World {
    let mut remote = Remote {
        neg: NegMode::UnsupportedNotice,
        page_cap: 50,
        ..Remote::default()
    };
    for n in 0..120u64 {
        remote.events.push(ev(
            2_000 + n,
            keys(6).public_key(),
            1111,
            5_000 + n,
            &[('a', coord(&keys(1), "repo"))],
        ));
    }
    world_with_repo(cfg(), &[R0], remote)
}

#[test]
fn lag_that_loses_a_page_and_its_eose_resends_the_page_after_a_grace_period() {
    let mut w = paged_world();
    // Run until a page of comments is on its way, then lose every queued message.
    w.run_until(5_040);
    let lost = w.lag(R0, usize::MAX);
    assert!(lost > 0, "the lag hit a page in flight");
    w.run_until(120_000);
    assert_eq!(w.store.len(), 124, "every lost event was fetched again");
    assert_eq!(w.status(R0), Some(Status::Connected));
    insta::assert_snapshot!(w.table());
}

#[test]
fn repeated_lags_once_synced_make_one_catch_up_since_the_lag() {
    let mut w = world_with_repo(cfg(), &[R0], Remote::default());
    w.run_until(60_000);
    w.lines.clear();
    let batches = |w: &World| w.core.stats().negentropy_batches + w.core.stats().req_batches;
    let before = batches(&w);
    // A comment published while live deliveries were being lost.
    let lost = ev(
        60,
        keys(4).public_key(),
        1111,
        WALL0 + 61,
        &[('a', coord(&keys(1), "repo"))],
    );
    w.alias_event(&lost, "lost-comment");
    w.publish(R0, lost.clone());
    let confirmed = w.core.relay(&url(R0)).unwrap().confirmed_items();
    assert!(confirmed > 0);
    w.lag(R0, usize::MAX);
    w.lag(R0, usize::MAX);
    w.lag(R0, usize::MAX);
    assert_eq!(
        w.core.relay(&url(R0)).unwrap().confirmed_items(),
        confirmed,
        "a lag clears nothing confirmed"
    );
    w.run_until(120_000);
    assert!(w.store.contains(&lost.id), "the catch-up fetched it");
    assert_eq!(
        batches(&w) - before,
        2,
        "three lags in a row: one catch-up and one follow-up, not three"
    );
    assert_eq!(w.status(R0), Some(Status::Connected));
    let table = w.table();
    assert!(table.contains("since="), "the catch-up is bounded by since");
    insta::assert_snapshot!(table);
}

#[test]
fn lag_that_loses_part_of_a_page_resends_it_at_its_eose() {
    let mut w = paged_world();
    w.run_until(5_040);
    // The 5 oldest queued messages are lost; the rest of the page and its EOSE arrive.
    assert_eq!(w.lag(R0, 5), 5);
    w.run_until(120_000);
    assert_eq!(w.store.len(), 124, "every lost event was fetched again");
    assert_eq!(w.status(R0), Some(Status::Connected));
    assert_eq!(w.core.stats().batches_failed, 0);
    insta::assert_snapshot!(w.table());
}
