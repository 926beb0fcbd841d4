//! Sync+ (docs/spec.md §15) as insta snapshots: a participant's outbox relay is discovered from
//! its relay list, asked only for the repository's conversation, and reaped when no list
//! names it any more; the bounds hold.

use sync_core::{Config, Input, Status, KIND_RELAY_LIST};
use sync_sim::script::*;

const OUR: &str = "wss://our.relay";
const R0: &str = "wss://r0.example";
const OB: &str = "wss://outbox.example";

fn plus_cfg() -> Config {
    Config {
        sync_plus: true,
        ..scenario_cfg(OUR)
    }
}

/// A relay list of `author` (kind 10002) naming `relays` as write relays.
fn list(n: u64, author: &nostr::Keys, created_at: u64, relays: &[&str]) -> sync_core::EventMeta {
    let mut e = ev(n, author.public_key(), KIND_RELAY_LIST, created_at, &[]);
    e.relays = relays.iter().map(|s| s.to_string()).collect();
    e
}

/// alice's repository on R0; bob (`keys(2)`, author of its patch) lists `OB` in his relay
/// list on R0; his new issue and his comment on the patch are only on `OB`.
fn outbox_world(cfg: Config) -> (World, Vec<sync_core::EventMeta>) {
    let mut w = World::new(cfg, 7);
    w.alias_key(&keys(1), "alice");
    w.alias_key(&keys(2), "bob");
    w.alias_key(&keys(3), "carol");
    let events = repo_events(&[OUR, R0]);
    for (e, name) in events.iter().zip(["ann", "state", "patch", "comment"]) {
        w.alias_event(e, name);
    }
    let bob = keys(2);
    let bob_list = list(10, &bob, 1_010, &[OB, "ws://127.0.0.1:7777"]);
    w.alias_event(&bob_list, "bob-list");
    let issue = ev(
        11,
        bob.public_key(),
        1621,
        1_011,
        &[('a', coord(&keys(1), "repo"))],
    );
    let reply = ev(
        12,
        bob.public_key(),
        1111,
        1_012,
        &[('E', events[2].id.to_hex())],
    );
    w.alias_event(&issue, "bob-issue");
    w.alias_event(&reply, "bob-reply");
    let mut r0 = Remote::default();
    r0.events.extend(events.iter().cloned());
    r0.events.push(bob_list);
    w.remote(R0, r0);
    w.remote(
        OB,
        Remote {
            events: vec![issue.clone(), reply.clone()],
            ..Remote::default()
        },
    );
    w.store.insert(events[0].id);
    w.feed(Input::Accepted {
        event: events[0].clone(),
    });
    (w, vec![issue, reply])
}

#[test]
fn sync_plus_discovers_an_outbox_relay_syncs_the_conversation_and_reaps_it() {
    let (mut w, outbox_only) = outbox_world(plus_cfg());
    w.run_until(120_000);
    for e in &outbox_only {
        assert!(
            w.store.contains(&e.id),
            "{} came from the outbox relay",
            e.id
        );
    }
    assert_eq!(w.status(OB), Some(Status::Connected));
    let view = w.core.relay(&url(OB)).unwrap();
    assert_eq!(view.source(), sync_core::RelaySource::SyncPlus);
    let table = w.table();
    assert!(
        !table.contains("127.0.0.1"),
        "a private address is never a target"
    );
    // bob's newer list no longer names the outbox relay: it is reaped.
    let newer = list(20, &keys(2), 2_000, &[]);
    w.alias_event(&newer, "bob-list-2");
    w.store.insert(newer.id);
    w.feed(Input::Accepted { event: newer });
    w.run_until(240_000);
    assert_eq!(w.status(OB), None, "reaped");
    assert_eq!(w.status(R0), Some(Status::Connected));
    insta::assert_snapshot!(w.table());
}

#[test]
fn an_index_relay_serves_the_relay_lists_the_repository_relays_lack() {
    const IX: &str = "wss://index.example";
    let cfg = Config {
        index_relays: vec![IX.into()],
        ..plus_cfg()
    };
    let (mut w, outbox_only) = outbox_world(cfg);
    // bob's list is on the index relay only.
    let r0 = w.remotes.get_mut(&url(R0)).unwrap();
    let list = r0.events.pop().expect("bob's list");
    w.remote(
        IX,
        Remote {
            events: vec![list],
            ..Remote::default()
        },
    );
    w.record = false;
    w.run_until(120_000);
    for e in &outbox_only {
        assert!(
            w.store.contains(&e.id),
            "{} came from the outbox relay",
            e.id
        );
    }
    let source = |u: &str| w.core.relay(&url(u)).map(|v| v.source());
    assert_eq!(source(IX), Some(sync_core::RelaySource::Index));
    assert_eq!(source(OB), Some(sync_core::RelaySource::SyncPlus));
    assert_eq!(w.status(IX), Some(Status::Connected));
}

#[test]
fn sync_plus_off_never_contacts_the_outbox_relay() {
    let (mut w, outbox_only) = outbox_world(scenario_cfg(OUR));
    w.run_until(120_000);
    for e in &outbox_only {
        assert!(!w.store.contains(&e.id));
    }
    assert_eq!(w.status(OB), None);
    assert!(!w.table().contains("outbox"));
}

#[test]
fn sync_plus_bounds_authors_and_relays_per_repository() {
    let cfg = Config {
        sync_plus_max_authors_per_repo: 2,
        sync_plus_max_relays_per_repo: 1,
        ..plus_cfg()
    };
    let mut w = World::new(cfg, 7);
    w.alias_key(&keys(1), "alice");
    let events = repo_events(&[OUR, R0]);
    let mut r0 = Remote::default();
    r0.events.extend(events.iter().cloned());
    // Five participants, each with an issue on R0 and a list naming two relays of its own.
    for p in 0..5u8 {
        let k = keys(20 + p);
        w.alias_key(&k, &format!("p{p}"));
        let a = format!("wss://a{p}.example");
        let b = format!("wss://b{p}.example");
        r0.events.push(ev(
            30 + u64::from(p),
            k.public_key(),
            1621,
            1_100 + u64::from(p),
            &[('a', coord(&keys(1), "repo"))],
        ));
        r0.events
            .push(list(40 + u64::from(p), &k, 1_200, &[&a, &b]));
    }
    w.remote(R0, r0);
    for p in 0..5u8 {
        w.remote(&format!("wss://a{p}.example"), Remote::default());
        w.remote(&format!("wss://b{p}.example"), Remote::default());
    }
    w.store.insert(events[0].id);
    w.feed(Input::Accepted {
        event: events[0].clone(),
    });
    w.record = false;
    w.run_until(120_000);
    let tracked: Vec<String> = w.core.relay_status().map(|v| v.url().to_string()).collect();
    assert_eq!(tracked.len(), 2, "r0 and one Sync+ relay: {tracked:?}");
    let stats = w.core.stats();
    assert_eq!(stats.sync_plus_followed, 2, "owner and one participant");
    assert!(stats.sync_plus_relays_capped > 0);
    insta::assert_snapshot!(tracked.join("\n"));
}

/// The sweep's Sync+ worlds are not vacuous: some seeds turn Sync+ on, the oracle demands
/// Sync+ coverage in some of them (and the run passes), and events that exist only on
/// outbox relays reach the store.
#[test]
fn the_sweep_holds_sync_plus_worlds_whose_oracle_demands_outbox_events() {
    use sync_sim::scenario::Scenario;
    let (mut on, mut demanding, mut outbox_only_stored) = (0, 0, 0);
    for seed in 0..120 {
        let scenario = Scenario::generate(seed);
        if !scenario.config.sync_plus {
            continue;
        }
        on += 1;
        let (world, result) = sync_sim::run::run_world(&scenario, false);
        assert!(result.is_ok(), "seed {seed}: {result:?}");
        let want = sync_sim::sync_plus::want(&world);
        if want.repos.is_empty() {
            continue;
        }
        demanding += 1;
        for (relay, r) in &world.relays {
            if !relay.as_str().contains("://o") {
                continue;
            }
            outbox_only_stored += r
                .events
                .keys()
                .filter(|id| world.host.store.contains_key(id))
                .filter(|id| {
                    !world
                        .relays
                        .iter()
                        .any(|(u, x)| !u.as_str().contains("://o") && x.events.contains_key(id))
                })
                .count();
        }
    }
    eprintln!("seeds 0..120: Sync+ on in {on}, demanding in {demanding}, {outbox_only_stored} outbox-only events stored");
    assert!(on >= 20 && demanding >= 5 && outbox_only_stored >= 10);
}
