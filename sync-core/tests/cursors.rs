//! Persisted sync cursors (docs/spec.md §16): a core restored from another core's cursors
//! catches up instead of starting afresh, never asks from later than what was really complete,
//! and drops stale, corrupt or untrustworthy cursors (a fresh start).

use nostr::{EventId, Keys, Kind, Timestamp};
use proptest::prelude::*;
use sync_core::{
    Command, Config, Cursors, EventMeta, Input, LearnedLimits, NegSupport, NegentropyResult, Now,
    RelayCursor, RelayUrl, Status, SubKind, SyncCore,
};

const RELAY: &str = "wss://r0.example";
const WALL0: u64 = 1_700_000_000;

fn url() -> RelayUrl {
    RelayUrl::parse(RELAY).expect("url")
}

fn owner() -> Keys {
    Keys::parse(&format!("{:064x}", 7)).expect("key")
}

fn ev(n: u64, kind: u16, created_at: u64, tags: &[(char, String)]) -> EventMeta {
    let mut b = [0u8; 32];
    b[24..].copy_from_slice(&n.to_be_bytes());
    EventMeta {
        id: EventId::from_byte_array(b),
        author: owner().public_key(),
        kind: Kind::from(kind),
        created_at: Timestamp::from(created_at),
        tags: tags.to_vec(),
        relays: vec![],
        clone_urls: vec![],
        maintainers: vec![],
    }
}

/// The host's store: one announcement listing the relay and one root event.
fn store() -> Vec<EventMeta> {
    let mut ann = ev(1, 30617, WALL0 - 100, &[('d', "repo".into())]);
    ann.relays = vec![RELAY.into()];
    let coord = format!("30617:{}:repo", owner().public_key().to_hex());
    let root = ev(2, 1617, WALL0 - 50, &[('a', coord)]);
    vec![ann, root]
}

/// The relay is also a bootstrap relay: it connects at once, before the replayed store's
/// discovery window would close (restoring flushes it).
fn config() -> Config {
    Config {
        allow_private_targets: true,
        bootstrap_relays: vec![RELAY.into()],
        startup_jitter_ms: 0,
        ..Config::default()
    }
}

/// A core driven by hand: every historic REQ is answered by an empty EOSE, every negentropy
/// reconciliation by "nothing missing" (or a refusal, `nip77 = false`).
struct Harness {
    core: SyncCore,
    now: Now,
    nip77: bool,
    /// Historic REQ filters sent since the last `take_reqs`.
    reqs: Vec<Vec<nostr::Filter>>,
    /// Negentropy filters sent since the last `take_reqs`.
    negs: Vec<nostr::Filter>,
    /// While starting, connects are held back (a shell feeds its startup inputs before any
    /// connection can open); `None` once started.
    held: Option<Vec<RelayUrl>>,
}

impl Harness {
    /// A started core: store replayed, cursors restored, then connections may open.
    fn new(now: Now, nip77: bool, restore: Option<Cursors>) -> Self {
        let mut h = Self::starting(now, nip77, restore);
        for relay in h.held.take().unwrap_or_default() {
            h.feed(Input::Connected { relay });
        }
        h
    }

    /// A core whose startup inputs were fed; connects asked for so far are held back.
    fn starting(now: Now, nip77: bool, restore: Option<Cursors>) -> Self {
        let mut h = Self {
            core: SyncCore::new(config(), 1, now),
            now,
            nip77,
            reqs: Vec::new(),
            negs: Vec::new(),
            held: Some(Vec::new()),
        };
        for event in store() {
            h.feed(Input::Accepted { event });
        }
        if let Some(cursors) = restore {
            h.feed(Input::RestoreCursors { cursors });
        }
        h
    }

    fn feed(&mut self, input: Input) {
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            let commands = self.core.step(self.now, input);
            for c in commands {
                match c {
                    Command::Subscribe {
                        relay,
                        sub,
                        kind: SubKind::Historic,
                        filters,
                    } => {
                        self.reqs
                            .push(filters.iter().map(|f| f.to_filter()).collect());
                        queue.insert(0, Input::Eose { relay, sub });
                    }
                    Command::NegentropyDiff { relay, sub, filter } => {
                        self.negs.push(filter.to_filter());
                        let result = if self.nip77 {
                            NegentropyResult::Missing { ids: vec![] }
                        } else {
                            NegentropyResult::Refused {
                                message: "unsupported".into(),
                            }
                        };
                        queue.insert(0, Input::NegentropyDiff { relay, sub, result });
                    }
                    Command::Connect { relay } => match self.held.as_mut() {
                        Some(held) => held.push(relay),
                        None => queue.insert(0, Input::Connected { relay }),
                    },
                    _ => {}
                }
            }
        }
    }

    /// Advances both clocks by `ms` and ticks until nothing more is due by then.
    fn advance(&mut self, ms: u64) {
        let until = self.now.mono.0 + ms;
        while let Some(d) = self.core.next_deadline().filter(|d| d.at.0 <= until) {
            let at = d.at.0.max(self.now.mono.0);
            self.now = self.now.plus_ms(at - self.now.mono.0);
            self.feed(Input::Tick);
        }
        self.now = self.now.plus_ms(until - self.now.mono.0);
        self.feed(Input::Tick);
    }

    fn status(&self) -> Status {
        self.core.relay(&url()).expect("tracked").status()
    }

    /// The smallest `since` of the historic requests (REQ and negentropy) sent so far, and
    /// whether any went without one.
    fn sinces(&self) -> (Option<u64>, bool) {
        let all = self
            .reqs
            .iter()
            .flatten()
            .chain(self.negs.iter())
            .map(|f| f.since.map(|t| t.as_secs()));
        let mut min = None;
        let mut unbounded = false;
        for s in all {
            match s {
                Some(s) => min = Some(min.map_or(s, |m: u64| m.min(s))),
                None => unbounded = true,
            }
        }
        (min, unbounded)
    }
}

fn synced(nip77: bool) -> Harness {
    let mut h = Harness::new(Now::at(0, WALL0), nip77, None);
    h.advance(60_000);
    assert_eq!(h.status(), Status::Connected, "the first sync completes");
    h
}

#[test]
fn a_restart_within_the_window_catches_up_with_and_without_nip77() {
    for nip77 in [true, false] {
        let h = synced(nip77);
        let cursors = h.core.cursors(h.now);
        assert_eq!(cursors.relays.len(), 1, "one relay with a cursor");
        let c = &cursors.relays[0];
        assert_eq!(c.through, h.now.wall, "connected and complete: through now");
        let expect_neg = if nip77 {
            NegSupport::Supported
        } else {
            NegSupport::Unsupported
        };
        assert_eq!(c.neg, expect_neg);
        let through = c.through.as_secs();
        // Killed right after; restarted two minutes later.
        let later = Now::at(0, h.now.wall.as_secs() + 120);
        let mut r = Harness::new(later, nip77, Some(cursors));
        r.advance(60_000);
        assert_eq!(r.status(), Status::Connected);
        let (since, unbounded) = r.sinces();
        assert!(
            !unbounded,
            "nip77={nip77}: no historic request without since"
        );
        let margin = config().since_margin_secs;
        assert_eq!(since, Some(through - margin), "since = through − margin");
        if !nip77 {
            assert!(
                r.negs.is_empty(),
                "NIP-77 support is remembered: not tried again"
            );
        }
    }
}

#[test]
fn a_stale_or_missing_cursor_is_a_fresh_start() {
    let mut h = synced(false);
    let cursors = h.core.cursors(h.now);
    let window_secs = config().quick_reconnect_window_ms / 1000;
    let stale = Now::at(0, h.now.wall.as_secs() + window_secs + 1);
    let mut r = Harness::new(stale, false, Some(cursors.clone()));
    r.advance(60_000);
    assert!(r.sinces().1, "stale: a fresh start without since");
    assert!(r.core.cursors(r.now).relays[0].seen_at > cursors.relays[0].seen_at);
    let mut r = Harness::new(stale, false, None);
    r.advance(60_000);
    assert!(r.sinces().1, "no cursor: a fresh start");
    // A wall clock that went back is not trusted either.
    let back = Now::at(0, h.now.wall.as_secs() - 10);
    let mut r = Harness::new(back, false, Some(cursors));
    r.advance(60_000);
    assert!(r.sinces().1, "seen_at in the future: a fresh start");
    h.advance(1);
}

/// What a relay taught us (page size, "too many" cap, rate-limit pace) comes back with a fresh
/// cursor, sanitised, and is written again with the relay's next cursor; a stale cursor's is
/// not taken (the relay starts afresh and learns again).
#[test]
fn learned_limits_come_back_with_a_fresh_cursor_only() {
    let h = synced(false);
    let mut cursors = h.core.cursors(h.now);
    let before = &cursors.relays[0].learned;
    assert_eq!(before.page_size.learned(), None, "every page was empty");
    assert_eq!((before.subs_at_most, before.req_pace_ms), (None, 0));
    cursors.relays[0].learned = serde_json::from_value::<LearnedLimits>(serde_json::json!({
        "page_size": {"learned": 50, "largest_short": 50, "largest_req": 60, "largest_single": 50},
        "subs_at_most": 1,
        "filters_at_most": 0,
        "req_pace_ms": 999_999,
    }))
    .expect("learned limits");
    let later = Now::at(0, h.now.wall.as_secs() + 120);
    let mut r = Harness::new(later, false, Some(cursors.clone()));
    r.advance(120_000);
    let view = r.core.relay(&url()).expect("tracked");
    assert_eq!(view.learned_page_size(), Some(50));
    assert_eq!(
        view.req_pace_ms(),
        8_000,
        "a pace above the most is clamped"
    );
    assert_eq!(
        view.budget(),
        2,
        "a cap below 2 subscriptions is raised to 2"
    );
    assert_eq!(r.status(), Status::Connected, "and the catch-up completes");
    let again = r.core.cursors(r.now).relays[0].learned.clone();
    assert_eq!(again.page_size.learned(), Some(50));
    assert_eq!(again.subs_at_most, Some(2));
    assert_eq!(
        again.filters_at_most,
        Some(1),
        "0 filters per REQ is raised to 1"
    );
    assert_eq!(again.req_pace_ms, 8_000);

    let window_secs = config().quick_reconnect_window_ms / 1000;
    let stale = Now::at(0, h.now.wall.as_secs() + window_secs + 1);
    let mut r = Harness::new(stale, false, Some(cursors));
    r.advance(60_000);
    let view = r.core.relay(&url()).expect("tracked");
    assert_eq!(view.learned_page_size(), None, "stale: nothing restored");
    assert_eq!(view.req_pace_ms(), 0);
    assert!(view.budget() > 2);
}

#[test]
fn corrupt_cursors_are_dropped_without_panicking() {
    let h = synced(true);
    let mut cursors = h.core.cursors(h.now);
    let good = cursors.relays[0].clone();
    cursors.relays[0].items.push(u32::MAX);
    let later = Now::at(0, h.now.wall.as_secs() + 5);
    let mut r = Harness::new(later, true, Some(cursors.clone()));
    r.advance(60_000);
    assert!(
        r.sinces().1,
        "an index out of range: that cursor is dropped"
    );
    cursors.relays[0] = RelayCursor {
        through: Timestamp::from(good.seen_at.as_secs() + 1),
        ..good
    };
    let mut r = Harness::new(later, true, Some(cursors));
    r.advance(60_000);
    assert!(r.sinces().1, "through after seen_at: dropped");
}

#[test]
fn a_disconnected_relay_keeps_its_disconnect_time_and_an_unconnected_one_its_restored_cursor() {
    let mut h = synced(true);
    h.feed(Input::Disconnected { relay: url() });
    let at_drop = h.now.wall;
    h.now = h.now.plus_ms(30_000);
    let c = h.core.cursors(h.now);
    assert_eq!(c.relays[0].seen_at, at_drop, "seen at the disconnect");
    assert_eq!(c.relays[0].through, at_drop);
    // A core that has not connected yet hands the restored cursor back unchanged.
    let r = Harness::starting(h.now, true, Some(c.clone()));
    assert_eq!(r.core.cursors(r.now), c);
}

#[test]
fn a_catchup_in_progress_does_not_advance_through() {
    let h = synced(true);
    let c1 = h.core.cursors(h.now);
    let later = Now::at(0, h.now.wall.as_secs() + 60);
    // Restored, connected, but every catch-up request is left unanswered.
    let r = Harness::starting(later, true, Some(c1.clone()));
    let mut core = r.core;
    let mut now = later;
    let mut connected = false;
    for relay in r.held.unwrap_or_default() {
        let _ = core.step(now, Input::Connected { relay });
        connected = true;
    }
    for _ in 0..200 {
        now = now.plus_ms(100);
        for cmd in core.step(now, Input::Tick) {
            if let Command::Connect { relay } = cmd {
                let _ = core.step(now, Input::Connected { relay });
                connected = true;
            }
        }
    }
    assert!(connected);
    let c2 = core.cursors(now);
    assert_eq!(
        c2.relays[0].through, c1.relays[0].through,
        "the catch-up is outstanding: still complete only through the old time"
    );
    assert!(c2.relays[0].seen_at > c1.relays[0].seen_at);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the moment of the snapshot and the restart, the restored core's catch-up asks
    /// from no later than the moment the first core really had everything through, minus the
    /// margin; and it is a catch-up exactly when the restart is within the window.
    #[test]
    fn restored_since_never_exceeds_true_completion(
        nip77 in any::<bool>(),
        before_snapshot_ms in 0u64..600_000,
        down_secs in 0u64..1_800,
        drop_first in any::<bool>(),
    ) {
        let mut h = synced(nip77);
        let complete_at = h.now.wall.as_secs();
        if drop_first {
            h.feed(Input::Disconnected { relay: url() });
        }
        h.now = h.now.plus_ms(before_snapshot_ms);
        let cursors = h.core.cursors(h.now);
        let true_through = if drop_first {
            complete_at
        } else {
            h.now.wall.as_secs()
        };
        let seen = cursors.relays[0].seen_at.as_secs();
        let restart = Now::at(0, h.now.wall.as_secs() + down_secs);
        let mut r = Harness::new(restart, nip77, Some(cursors));
        r.advance(60_000);
        let (since, unbounded) = r.sinces();
        let quick = (restart.wall.as_secs() - seen) * 1000 < config().quick_reconnect_window_ms;
        prop_assert_eq!(unbounded, !quick);
        if quick {
            let since = since.expect("a catch-up since");
            prop_assert!(since <= true_through - config().since_margin_secs);
        }
    }
}
