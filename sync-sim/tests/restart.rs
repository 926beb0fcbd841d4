//! The process-restart fault (`Fault::Restart`): the core's state is lost except the sync
//! cursors and rejected memory as last written and the host's store; the oracle still finds
//! nothing missing, within the quick-reconnect window and beyond it.

use sync_core::EventMeta;
use sync_sim::builder::{relay, Builder};
use sync_sim::faults::{Fault, Timed};
use sync_sim::run::run_world;
use sync_sim::scenario::{NegMode, Scenario};
use sync_sim::world::World;

/// `scenario` with restarts at a third and two thirds of its safety phase.
fn with_restarts(mut s: Scenario, down_secs: [u64; 2]) -> Scenario {
    for (k, down_secs) in down_secs.into_iter().enumerate() {
        let at_ms = s.safety_ms * (k as u64 + 1) / 3;
        let i = s.faults.partition_point(|t| t.at_ms <= at_ms);
        let fault = Fault::Restart { down_secs };
        s.faults.insert(i, Timed { at_ms, fault });
    }
    s
}

#[test]
fn restarts_within_and_beyond_the_window_lose_nothing() {
    for seed in 0..40u64 {
        for downs in [[0, 120], [30, 3_600]] {
            let s = with_restarts(Scenario::generate(seed), downs);
            let (world, result) = run_world(&s, false);
            assert!(
                result.is_ok(),
                "seed {seed} downs {downs:?}: {:?}",
                result.err()
            );
            assert!(world.restarts >= 2, "seed {seed}: both restarts happened");
        }
    }
}

#[test]
fn a_restart_within_the_window_restores_cursors() {
    let mut restored = 0;
    for seed in 0..20u64 {
        let s = with_restarts(Scenario::generate(seed), [10, 10]);
        let (world, result) = run_world(&s, false);
        assert!(result.is_ok(), "seed {seed}: {:?}", result.err());
        let p = world.persisted.expect("a plan with restarts persists");
        if !p.cursors.relays.is_empty() {
            restored += 1;
        }
    }
    assert!(
        restored >= 10,
        "cursors were written in {restored} of 20 runs"
    );
}

const R0: &str = "wss://r0.sim";
const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

/// One relay (`spec`) holding repository "repo", a root and `comments` comments on it: the
/// relay goes down at one hour for three minutes, the process restarts 10 s later, `down_secs`
/// later as its clocks see it, and the events `during` makes (given the root and a time in the
/// outage) are published while the relay is still down, so the new core must fetch them with
/// no daily resync in the horizon to heal a cursor that claimed too much. Returns the final
/// world and how many of those events it stored.
fn outage_then_restart(
    seed: u64,
    spec: sync_sim::scenario::RelaySpec,
    comments: usize,
    down_secs: u64,
    during: impl FnOnce(&mut sync_sim::builder::Builder, &EventMeta, u64) -> Vec<EventMeta>,
) -> (World, usize) {
    use sync_sim::builder::Builder;
    use sync_sim::scenario::OUR_URL;
    let mut b = Builder::new(seed);
    b.relay(spec);
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let root = b.root("repo", 'a', &[R0]);
    b.comments(&root, comments, &[R0]);
    let down = Fault::Down {
        relay: R0.into(),
        for_ms: 3 * MIN,
    };
    b.fault(HOUR, down);
    b.fault(HOUR + 10_000, Fault::Restart { down_secs });
    let t = sync_sim::scenario::WALL0 + HOUR / 1000 + 30;
    let events = during(&mut b, &root, t);
    for e in &events {
        b.publish(HOUR + 30_000, &[R0], e.clone());
    }
    b.phases(2 * HOUR, HOUR);
    let (w, result) = run_world(&b.build(), false);
    assert!(result.is_ok(), "{:?}", result.err());
    assert_eq!(w.restarts, 1);
    let stored = (events.iter())
        .filter(|e| w.host.store.contains_key(&e.id))
        .count();
    (w, stored)
}

/// [`outage_then_restart`] with a patch, a reply and a state published during the outage.
/// Returns the stored count and how the new core found them (reconnect, startup).
fn restart_during_an_outage(nip77: bool, down_secs: u64) -> (usize, u64, u64) {
    let mut spec = relay(R0);
    if !nip77 {
        spec.neg = NegMode::UnsupportedNegErr;
    }
    let (w, stored) = outage_then_restart(61, spec, 0, down_secs, |b, root, t| {
        let coord = Builder::coord("repo").to_string();
        vec![
            b.event(10, 1617, t, &[('A', coord)]),
            b.event(11, 1111, t + 1, &[('E', root.id.to_hex())]),
            b.event(1, 30618, t + 2, &[('d', "repo".into())]),
        ]
    });
    let src = &w.core.stats().saved_by_source;
    (stored, src.reconnect, src.startup)
}

#[test]
fn a_restart_within_the_window_is_a_catch_up_with_and_without_nip77() {
    for nip77 in [true, false] {
        let (stored, reconnect, startup) = restart_during_an_outage(nip77, 60);
        assert_eq!(stored, 3, "nip77={nip77}");
        assert!(
            reconnect >= 3,
            "nip77={nip77}: found by the catch-up ({reconnect}, startup {startup})"
        );
        assert_eq!(startup, 0, "nip77={nip77}: not a fresh start");
        let (stored, reconnect, startup) = restart_during_an_outage(nip77, 3_600);
        assert_eq!(stored, 3, "nip77={nip77}, stale cursor");
        assert_eq!(
            reconnect, 0,
            "nip77={nip77}: a stale cursor is a fresh start"
        );
        assert!(startup >= 3, "nip77={nip77}");
    }
}

/// A relay that silently caps each filter at 20 results (no NIP-11, no NIP-77) holds 60
/// comments, learned during the first sync; [`outage_then_restart`] with 40 comments published
/// during the outage. Returns how many of them were stored, the restarted core's learned page
/// size, and how many sizes it learned itself.
fn restart_over_a_capped_relay(down_secs: u64) -> (usize, Option<usize>, u64) {
    let mut spec = relay(R0);
    spec.neg = NegMode::UnsupportedNegErr;
    spec.page_cap = 20;
    let (w, stored) = outage_then_restart(63, spec, 60, down_secs, |b, root, t| {
        (0..40)
            .map(|i| b.event(11, 1111, t + i, &[('E', root.id.to_hex())]))
            .collect()
    });
    let url = sync_core::RelayUrl::parse(R0).expect("url");
    let learned = w.core.relay(&url).and_then(|r| r.learned_page_size());
    (stored, learned, w.core.stats().page_sizes_learned)
}

/// The page size a relay taught us travels with its sync cursor (docs/spec.md §16): after a
/// restart within the window the catch-up pages the outage with it, without probing again;
/// after a stale cursor the fresh start learns it anew.
#[test]
fn a_restart_within_the_window_keeps_the_learned_page_size() {
    let (stored, learned, learned_here) = restart_over_a_capped_relay(60);
    assert_eq!(stored, 40);
    assert_eq!(learned, Some(20), "restored with the cursor");
    assert_eq!(learned_here, 0, "not learned again after the restart");
    let (stored, learned, learned_here) = restart_over_a_capped_relay(3_600);
    assert_eq!(stored, 40);
    assert_eq!(learned, Some(20));
    assert_eq!(learned_here, 1, "a stale cursor: learned again");
}
