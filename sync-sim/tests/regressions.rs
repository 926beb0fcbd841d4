//! Regression scenarios: one named test per failure mode of the public implementation
//! (notes/public-implementation-ngit-grasp.md §5.3) that applies to the sync engine. Each runs
//! the full simulator (step invariants after every step, convergence and settling at the end)
//! and then asserts what the scenario is specifically about.

use sync_core::{Command, Input, NegSupport, RelayUrl, Status, SubKind};
use sync_sim::builder::{relay, Builder};
use sync_sim::faults::Fault;
use sync_sim::run::{run_or_panic, run_world};
use sync_sim::scenario::{NegMode, Scenario, OUR_URL};
use sync_sim::world::World;

const R0: &str = "wss://r0.sim";
const R1: &str = "wss://r1.sim";
const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

fn url(s: &str) -> RelayUrl {
    RelayUrl::parse(s).expect("url")
}

/// Runs the scenario, fails the test on any violation, returns the final world.
fn check(s: &Scenario) -> World {
    run_or_panic(s)
}

/// Every command of the run, with the virtual ms of its step.
fn commands(w: &World) -> Vec<(u64, Command)> {
    w.trace
        .iter()
        .flatten()
        .flat_map(|s| s.commands.iter().map(move |c| (s.now.mono.0, c.clone())))
        .collect()
}

fn inputs(w: &World) -> Vec<(u64, Input)> {
    w.trace
        .iter()
        .flatten()
        .map(|s| (s.now.mono.0, s.input.clone()))
        .collect()
}

fn stored(w: &World, ids: &[nostr::EventId]) -> usize {
    ids.iter()
        .filter(|id| w.host.store.contains_key(id))
        .count()
}

/// §5.3 #1: events the host rejects inside a negentropy batch are received (counted at the
/// transport), so the batch completes and NIP-77 stays on.
#[test]
fn rejected_events_inside_a_negentropy_batch() {
    let mut b = Builder::new(1);
    b.relay(relay(R0));
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let good = b.repo_events("repo", 10, 30, &[R0]);
    b.repo_events("repo", 99, 50, &[R0]); // blacklisted author: rejected by the host
    let w = check(&b.build());
    assert_eq!(stored(&w, &good), 30);
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.negentropy(), NegSupport::Supported);
    assert_eq!(w.core.stats().negentropy_fallbacks, 0);
    assert!(w.core.stats().batches_failed == 0);
}

/// §5.3 #3: consolidation while historic batches are pending does not stall them.
#[test]
fn consolidation_while_batches_are_pending() {
    let mut b = Builder::new(2);
    b.scenario.config.max_subscriptions = 6;
    b.scenario.config.max_filters_per_req = 2;
    b.relay(sync_sim::scenario::RelaySpec {
        eose_delay_ms: 20_000,
        ..relay(R0)
    });
    let mut ids = b.repos_with_events("old", 4, 3, &[R0]);
    // Enough new repositories to push live coverage past the hard cap (consolidation waits
    // for it).
    for i in 0..8 {
        let d = format!("new{i}");
        let ann = b.announce(&d, &[OUR_URL, R0], &[], false);
        ids.extend(b.repo_events(&d, 10, 3, &[R0]));
        b.fault(5_000 + i * 1_000, Fault::LocalPublish { event: ann });
    }
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    assert!(w.core.stats().consolidations > 0, "consolidation happened");
    assert_eq!(stored(&w, &ids), ids.len());
}

/// §5.3 #4a: a relay whose first connects fail is retried with backoff, then syncs.
#[test]
fn first_connect_failing_backs_off_then_syncs() {
    let mut b = Builder::new(3);
    b.relay(relay(R0));
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let ids = b.repo_events("repo", 10, 5, &[R0]);
    b.fault(
        0,
        Fault::Down {
            relay: R0.into(),
            for_ms: 10 * MIN,
        },
    );
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    let v = w.core.relay(&url(R0)).unwrap();
    assert!(v.counters().connects_failed >= 4, "{:?}", v.counters());
    assert_eq!(stored(&w, &ids), 5);
}

/// §5.3 #4b: a relay is never reaped while its initial sync is running (reaping is decided
/// from the target, not from what is confirmed).
#[test]
fn relay_not_reaped_mid_initial_sync() {
    let mut b = Builder::new(4);
    b.relay(sync_sim::scenario::RelaySpec {
        eose_delay_ms: 90_000,
        ..relay(R0)
    });
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let ids = b.repo_events("repo", 10, 5, &[R0]);
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    let disconnects = commands(&w)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Disconnect { .. }))
        .count();
    assert_eq!(disconnects, 0);
    assert_eq!(stored(&w, &ids), 5);
}

/// §5.3 #4c: the daily resync of one relay runs while another relay is down, and catches an
/// event that only a full reconciliation can find (published during a short gap with a
/// `created_at` older than the catch-up `since`).
#[test]
fn daily_resync_while_another_relay_is_down() {
    let mut b = Builder::new(5);
    b.relay(relay(R0)).relay(relay(R1));
    b.announce("repo", &[OUR_URL, R0, R1], &[R0, R1], true);
    b.fault(
        2 * HOUR,
        Fault::Down {
            relay: R1.into(),
            for_ms: 2 * MIN,
        },
    );
    let old_secs = sync_sim::scenario::WALL0 + HOUR / 1000;
    let old = b.event(
        10,
        1617,
        old_secs,
        &[('a', Builder::coord("repo").to_string())],
    );
    b.publish(2 * HOUR + MIN, &[R1], old.clone());
    b.fault(
        22 * HOUR,
        Fault::Down {
            relay: R0.into(),
            for_ms: 4 * HOUR,
        },
    );
    b.phases(26 * HOUR, 3 * HOUR);
    let w = check(&b.build());
    assert!(w.host.store.contains_key(&old.id));
    assert!(
        w.core.stats().saved_by_source.daily >= 1,
        "found by the daily resync"
    );
}

/// §5.3 #5: a quick reconnect (2 min) catches up the events published during the gap with
/// L2/L3 historic filters `since` the disconnect (no daily resync within the run).
#[test]
fn quick_reconnect_fetches_gap_events() {
    let mut b = Builder::new(6);
    b.relay(relay(R0));
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let root = b.root("repo", 'a', &[R0]);
    b.fault(
        HOUR,
        Fault::Down {
            relay: R0.into(),
            for_ms: 2 * MIN,
        },
    );
    let now_secs = sync_sim::scenario::WALL0 + HOUR / 1000 + 30;
    let patch = b.event(
        10,
        1617,
        now_secs,
        &[('A', Builder::coord("repo").to_string())],
    );
    let reply = b.event(11, 1111, now_secs + 1, &[('E', root.id.to_hex())]);
    let state = b.event(1, 30618, now_secs + 2, &[('d', "repo".into())]);
    for e in [&patch, &reply, &state] {
        b.publish(HOUR + 30_000, &[R0], e.clone());
    }
    b.phases(2 * HOUR, HOUR);
    let w = check(&b.build());
    assert_eq!(stored(&w, &[patch.id, reply.id, state.id]), 3);
    assert!(w.core.stats().saved_by_source.reconnect >= 3);
}

/// §5.3 #6: discovering one new repository subscribes only that repository (historic work
/// never covers the repositories already synced).
#[test]
fn one_new_repo_does_not_resubscribe_the_rest() {
    let mut b = Builder::new(7);
    b.relay(relay(R0));
    b.announce("old-one", &[OUR_URL, R0], &[R0], true);
    b.announce("old-two", &[OUR_URL, R0], &[R0], true);
    let ann = b.announce("fresh", &[OUR_URL, R0], &[], false);
    let ids = b.repo_events("fresh", 10, 3, &[R0]);
    b.fault(HOUR / 2, Fault::LocalPublish { event: ann });
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    assert_eq!(stored(&w, &ids), 3);
    let mut historic_after = 0;
    for (t, c) in commands(&w) {
        if t < HOUR / 2 {
            continue;
        }
        let text = match &c {
            Command::Subscribe {
                kind: SubKind::Historic,
                filters,
                ..
            } => serde_json::to_string(filters).unwrap(),
            Command::NegentropyDiff { filter, .. } => serde_json::to_string(filter).unwrap(),
            _ => continue,
        };
        historic_after += 1;
        assert!(
            !text.contains(":old-") && !text.contains("\"old-"),
            "{text}"
        );
    }
    assert!(historic_after > 0, "the new repository was synced");
}

/// §5.3 #19/#20: a CLOSED historic subscription resolves its batch at once (the relay does
/// not wait for the deadline); the failed batch is retried after the relay's backoff (issue
/// 15), which fetches what the CLOSED lost long before any daily resync.
#[test]
fn closed_historic_subscription_resolves_its_batch() {
    let mut b = Builder::new(8);
    b.relay(sync_sim::scenario::RelaySpec {
        eose_delay_ms: 30_000,
        neg: NegMode::UnsupportedNotice,
        ..relay(R0)
    });
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let ids = b.repo_events("repo", 10, 5, &[R0]);
    b.fault(
        10_000,
        Fault::CloseSubs {
            relay: R0.into(),
            live: false,
            message: "error: internal error".into(),
        },
    );
    let s = b.build();
    let mut w = World::new(&s, false);
    w.start(&s.local).unwrap();
    w.run_until(11_000).unwrap();
    assert_eq!(
        w.core.stats().batch_retries,
        1,
        "the CLOSED resolved the batch"
    );
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.pending_batches(), 1, "its retry waits for the backoff");
    assert_eq!(v.status(), Status::Syncing);
    w.run_until(60_000).unwrap();
    assert_eq!(
        stored(&w, &ids),
        5,
        "the retry fetched what the CLOSED lost"
    );
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.status(), Status::Connected);
    assert_eq!(v.batch_failure(), None);
    let w = check(&s);
    assert_eq!(w.core.stats().batches_failed, 0);
}

/// §5.3 #10: REQ pagination through hundreds of events the host rejects.
#[test]
fn pagination_with_hundreds_of_rejected_events() {
    let mut b = Builder::new(9);
    b.scenario.config.page_limit = 100;
    b.relay(sync_sim::scenario::RelaySpec {
        neg: NegMode::UnsupportedNotice,
        page_cap: 100,
        advertise_limits: true,
        ..relay(R0)
    });
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let good = b.repo_events("repo", 10, 200, &[R0]);
    b.repo_events("repo", 99, 400, &[R0]);
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    assert_eq!(stored(&w, &good), 200);
    assert!(w.core.stats().pages_requested >= 6);
}

/// docs/spec.md §7.4: a relay that caps a whole REQ (all its filters together) at 50 events,
/// without saying so. Once a single-filter page has ended, the first pages of a batch's
/// filters (one per repository and tag, four subscriptions) share REQs; a group of the `#a`
/// filters comes back cut at 50, more than any REQ brought before, so it is not trusted and
/// each filter is asked again alone: every comment of the ten repositories is fetched. (That
/// trusting such a group loses events is shown in `historic/pagination/tests.rs`.)
#[test]
fn first_pages_sharing_a_req_on_a_relay_that_caps_the_whole_req() {
    let mut b = Builder::new(12);
    b.scenario.config.chunk_size = 1;
    b.scenario.config.max_subscriptions = 4;
    b.relay(sync_sim::scenario::RelaySpec {
        neg: NegMode::UnsupportedNotice,
        req_cap: Some(50),
        ..relay(R0)
    });
    let ids = b.repos_with_events("repo", 10, 12, &[R0]);
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    assert_eq!(stored(&w, &ids), 120);
    let stats = w.core.stats();
    assert!(stats.page_reqs_grouped > 0, "{stats:?}");
    assert!(stats.page_groups_untrusted > 0, "{stats:?}");
}

/// §5.3 #10: a same-second burst larger than a page (spread over `a`/`A`/`q`, each within a
/// page) is paged through with an inclusive `until`.
#[test]
fn pagination_through_a_same_second_burst() {
    let mut b = Builder::new(10);
    b.relay(sync_sim::scenario::RelaySpec {
        neg: NegMode::UnsupportedNegErr,
        page_cap: 50,
        advertise_limits: true,
        ..relay(R0)
    });
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let secs = b.secs();
    let mut ids = Vec::new();
    for k in 0..120 {
        let letter = ['a', 'A', 'q'][k % 3];
        let e = b.event(
            10,
            1111,
            secs,
            &[(letter, Builder::coord("repo").to_string())],
        );
        ids.push(e.id);
        b.place(&[R0], e);
    }
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    assert_eq!(stored(&w, &ids), 120);
}

/// §5.3 #12: a root event arriving before (or with) its announcement, tagging the repository
/// via `A` or `q`, is attached when the announcement arrives; its comments are synced.
#[test]
fn root_event_before_its_announcement_tagging_upper_a_and_q() {
    let mut b = Builder::new(11);
    b.relay(relay(R0));
    b.scenario.config.bootstrap_relays = vec![R0.into()];
    let first = b.root("repo", 'A', &[R0]);
    let second = b.root("repo", 'q', &[R0]);
    b.comments(&first, 2, &[R0]).comments(&second, 2, &[R0]);
    let ann = b.announce("repo", &[OUR_URL, R0], &[], false);
    let late_root = b.event(
        10,
        1621,
        sync_sim::scenario::WALL0 + 1_800,
        &[('q', Builder::coord("repo").to_string())],
    );
    // Live: the root first, its announcement in the same millisecond.
    b.publish(30 * MIN, &[R0], late_root.clone());
    b.publish(30 * MIN, &[R0], ann);
    b.phases(HOUR, 2 * HOUR);
    let w = check(&b.build());
    assert_eq!(stored(&w, &[first.id, second.id, late_root.id]), 3);
    assert!(w.core.stats().root_events >= 3);
}

/// §5.3 #13: an announcement replaced without a relay reaps that relay; one replaced without
/// our relay withdraws the repository and shrinks the live coverage.
#[test]
fn announcement_withdrawn_shrinks_subscriptions() {
    let mut b = Builder::new(12);
    b.relay(relay(R0)).relay(relay(R1));
    b.announce("repo", &[OUR_URL, R0, R1], &[R0, R1], true);
    b.announce("gone", &[OUR_URL, R0], &[R0], true);
    let secs = sync_sim::scenario::WALL0 + 3_600;
    let mut without_r1 = sync_sim::events::announcement(
        900,
        &Builder::coord("repo"),
        &[OUR_URL.into(), R0.into()],
        secs,
    );
    without_r1.id = sync_sim::events::event_id(900);
    b.publish(HOUR, &[R0, R1], without_r1);
    let without_us =
        sync_sim::events::announcement(901, &Builder::coord("gone"), &[R0.into()], secs + 1);
    b.publish(2 * HOUR, &[R0], without_us);
    b.phases(3 * HOUR, HOUR);
    let s = b.build();
    let mut w = World::new(&s, false);
    w.start(&s.local).unwrap();
    w.run_until(90 * MIN).unwrap();
    assert!(w.core.relay(&url(R1)).is_none(), "r1 was reaped");
    let before = w.core.relay(&url(R0)).unwrap().live_items();
    w.run_until(150 * MIN).unwrap();
    let after = w.core.relay(&url(R0)).unwrap().live_items();
    assert!(after < before, "live coverage shrank: {before} -> {after}");
    check(&s);
}

/// §5.3 #14 and #15: our own URL (in any spelling) is never a target; URL variants of one
/// relay give one connection.
#[test]
fn own_url_never_a_target_and_url_variants_one_connection() {
    let mut b = Builder::new(13);
    b.relay(relay(R0));
    b.announce(
        "one",
        &["wss://OUR.GRASP.SIM/", "wss://R0.SIM/"],
        &[R0],
        true,
    );
    b.announce(
        "two",
        &["wss://our.grasp.sim:443", "wss://r0.sim"],
        &[R0],
        true,
    );
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    assert!(w.core.relay(&url(OUR_URL)).is_none());
    assert_eq!(w.core.relay_status().count(), 1);
    let connects = commands(&w)
        .into_iter()
        .filter(|(_, c)| matches!(c, Command::Connect { .. }))
        .count();
    assert_eq!(connects, 1, "one connection for every spelling of r0");
}

/// §5.3 #3b/#19: REQs rate-limited (CLOSED `rate-limited:` and NOTICE) start a cooldown; work
/// discovered during it is deferred and replayed after it (no daily resync within the run).
#[test]
fn rate_limit_cooldown_with_deferred_work_replayed() {
    let mut b = Builder::new(14);
    b.scenario.config.chunk_size = 1;
    b.relay(sync_sim::scenario::RelaySpec {
        reqs_per_sec: Some(3),
        notice_on_rate_limit: true,
        neg: NegMode::UnsupportedNotice,
        ..relay(R0)
    });
    let mut ids = b.repos_with_events("r", 4, 2, &[R0]);
    let ann = b.announce("later", &[OUR_URL, R0], &[], false);
    ids.extend(b.repo_events("later", 10, 2, &[R0]));
    b.fault(20_000, Fault::LocalPublish { event: ann });
    b.phases(2 * HOUR, HOUR);
    let w = check(&b.build());
    assert!(w.core.stats().rate_limits > 0, "the relay rate-limited us");
    let replayed_after_cooldown = inputs(&w)
        .iter()
        .any(|(t, i)| *t > 20_000 && matches!(i, Input::Eose { .. }));
    assert!(replayed_after_cooldown);
    assert_eq!(stored(&w, &ids), ids.len());
}

/// A relay capping id queries at 150: the negentropy id fetch retries until every id arrived.
#[test]
fn capped_id_queries_are_retried() {
    let mut b = Builder::new(15);
    b.relay(sync_sim::scenario::RelaySpec {
        id_cap: 150,
        ..relay(R0)
    });
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let ids = b.repo_events("repo", 10, 400, &[R0]);
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    assert_eq!(stored(&w, &ids), 400);
    assert_eq!(
        w.core.relay(&url(R0)).unwrap().negentropy(),
        NegSupport::Supported
    );
}

/// Notes §5.3 #8: a lagging message stream (nostr-sdk's broadcast channel overflowing) is a
/// resync of what was on the wire, never a disconnect and never a failed batch: lost pages
/// are re-sent, and a live event lost in the lag is fetched by a since-bounded catch-up well
/// before any daily resync.
#[test]
fn lagging_stream_loses_nothing_and_fails_no_batch() {
    let mut b = Builder::new(13);
    b.relay(sync_sim::scenario::RelaySpec {
        neg: NegMode::UnsupportedNegErr,
        page_cap: 50,
        ..relay(R0)
    });
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let good = b.repo_events("repo", 10, 400, &[R0]);
    for at_ms in [5_200, 5_500, 6_000, 7_000, 9_000, 12_000, 16_000] {
        b.fault(
            at_ms,
            Fault::Lagged {
                relay: Some(R0.into()),
            },
        );
    }
    // A live event whose delivery is lost in a lag right after it is published.
    let secs = sync_sim::scenario::WALL0 + 30 * MIN / 1000;
    let live = b.event(11, 1111, secs, &[('a', Builder::coord("repo").to_string())]);
    b.publish(30 * MIN, &[R0], live.clone());
    b.fault(30 * MIN + 1, Fault::Lagged { relay: None });
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    assert!(w.counts.dropped_messages > 0, "the lags lost messages");
    assert_eq!(stored(&w, &good), 400);
    assert_eq!(stored(&w, &[live.id]), 1);
    assert_eq!(w.core.stats().batches_failed, 0);
    assert!(
        w.core.stats().saved_by_source.reconnect >= 1,
        "the lost live event came from the lag catch-up"
    );
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.counters().connects_ok, 1, "a lag is never a disconnect");
}

/// A lag storm (60 lags over 8 s) on a relay with a small budget (4 subscriptions) and pages
/// of 40: every page is recovered and no batch fails.
#[test]
fn lag_storm_with_a_full_budget_fails_no_batch() {
    let mut b = Builder::new(14);
    b.scenario.config.max_subscriptions = 4;
    b.relay(sync_sim::scenario::RelaySpec {
        neg: NegMode::UnsupportedNegErr,
        page_cap: 40,
        advertise_limits: true,
        ..relay(R0)
    });
    let mut all = Vec::new();
    for (n, d) in ["a", "b", "c"].iter().enumerate() {
        b.announce(d, &[OUR_URL, R0], &[R0], true);
        all.extend(b.repo_events(d, 10 + n as u32, 150, &[R0]));
    }
    for k in 0..60u64 {
        b.fault(
            5_050 + k * 137,
            Fault::Lagged {
                relay: Some(R0.into()),
            },
        );
    }
    b.phases(HOUR, HOUR);
    let w = check(&b.build());
    assert!(w.counts.dropped_messages > 0, "the lags lost messages");
    assert_eq!(stored(&w, &all), 450);
    assert_eq!(w.core.stats().batches_failed, 0);
}

/// Issue 15 deliverable 6: a relay that silently caps every REQ at 20 results (no NIP-11
/// `max_limit`) and has no NIP-77. Its pages of 20 look short next to the page-full threshold
/// (50), so before the page size was learned each filter got one page and 130 of the 150 events
/// were never fetched. A probe page after the first page of 20 shows more data behind it: the
/// relay's page size is learned as 20 and every filter is paged to the end.
#[test]
fn unannounced_small_page_cap_is_learned_and_paged_through() {
    let mut b = Builder::new(15);
    b.relay(sync_sim::scenario::RelaySpec {
        neg: NegMode::UnsupportedNotice,
        page_cap: 20,
        advertise_limits: false,
        ..relay(R0)
    });
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let good = b.repo_events("repo", 10, 150, &[R0]);
    b.phases(HOUR, HOUR);
    let (w, result) = run_world(&b.build(), true);
    assert_eq!(
        stored(&w, &good),
        150,
        "every event behind the silent cap is fetched"
    );
    result.expect("no invariant broken, the world converged");
    assert_eq!(w.core.stats().batches_failed, 0);
    assert_eq!(
        w.core.relay(&url(R0)).unwrap().snapshot().learned_page_size,
        Some(20)
    );
}

/// Issue 15 (deliverable 4): a relay that allows 2 REQs a second, steadily. The first burst of
/// an initial sync is rate-limited; from then on the core paces its REQs at the rate it
/// learned, so every batch completes (none fails, none is left to the daily resync) and the
/// relay ends `Connected` with every event stored.
#[test]
fn relay_allowing_two_reqs_a_second_completes_its_initial_sync() {
    let mut b = Builder::new(40);
    b.scenario.config.chunk_size = 1;
    b.relay(sync_sim::scenario::RelaySpec {
        steady_reqs_per_sec: Some(2),
        notice_on_rate_limit: true,
        neg: NegMode::UnsupportedNotice,
        ..relay(R0)
    });
    let ids = b.repos_with_events("repo", 12, 3, &[R0]);
    b.phases(2 * HOUR, HOUR);
    let w = check(&b.build());
    assert!(w.core.stats().rate_limits > 0, "the relay rate-limited us");
    assert_eq!(w.core.stats().batches_failed, 0);
    let v = w.core.relay(&url(R0)).unwrap();
    assert_eq!(v.counters().batches_failed, 0);
    assert_eq!(v.status(), Status::Connected);
    assert_eq!(stored(&w, &ids), ids.len());
}
