//! Scripted scenarios: the simulator's precise-control mode for the core's action-table
//! snapshots (`sync-sim/tests/scenarios.rs`) and the scripted regressions and facts
//! (`tests/regressions_scripted.rs`, `scenario_facts.rs`, `health.rs`, `open_network.rs`).
//!
//! Where [`crate::world`] draws latencies, faults and relay behaviour from a seed and checks
//! invariants, a scripted [`World`] is fully pinned down by the test: every answer takes
//! [`LATENCY_MS`] (events of one page one ms apart), each [`Remote`] says exactly how it behaves
//! (NIP-77 on, unsupported or silent; page and id caps; failing connects; a name resolving to a
//! private address; historic REQs answered `CLOSED`), and the test feeds host inputs (or a
//! shell [`World::lag`]) at chosen moments. Events are synthetic [`crate::events`] metadata.
//! Every step is rendered as one readable table line: times relative to the start, short
//! aliases (`r0`, `ann`, `alice`) or `#tail` abbreviations instead of hex, filters' `since` and
//! `until` relative to now.
//!
//! ```
//! use sync_sim::script::{announcement, keys, Remote, World};
//! let cfg = sync_core::Config { own_relay_urls: vec!["wss://our.relay".into()], ..Default::default() };
//! let mut w = World::new(cfg, 1);
//! let ann = announcement(1, &keys(1), "repo", &["wss://our.relay", "wss://r0.example"], 1_000);
//! w.remote("wss://r0.example", Remote::default());
//! w.feed(sync_core::Input::Accepted { event: ann });
//! w.run_until(60_000);
//! assert!(w.table().contains("Connect r0"));
//! ```

use std::collections::{BTreeMap, BTreeSet};

mod render;

use crate::relay::{neg_answer, select};
pub use crate::scenario::NegMode;
use nostr::{EventId, Filter, Keys, PublicKey};
use sync_core::{
    Command, Config, EventMeta, Input, Now, Outcome, RelayUrl, SubId, SubKind, SyncCore,
};

/// Wall-clock seconds at the start of every scenario (the seeded world's).
pub use crate::scenario::WALL0;
/// Latency of every scripted answer.
pub const LATENCY_MS: u64 = 10;

/// A scripted remote relay.
#[derive(Clone, Debug)]
pub struct Remote {
    /// What it stores.
    pub events: Vec<EventMeta>,
    /// Its NIP-77 behaviour (as a seeded relay's, [`crate::relay::neg_answer`]).
    pub neg: NegMode,
    /// Results per REQ filter (newest first, as a seeded relay's: [`crate::relay::select`]).
    pub page_cap: usize,
    /// Ids served per `ids` REQ.
    pub id_cap: usize,
    /// Connection attempts that fail before one succeeds.
    pub failing_connects: u32,
    /// Down: connects fail.
    pub down: bool,
    /// Connects are never answered (a black-holed address): only the core's connect timeout
    /// ends them.
    pub hangs: bool,
    /// The error text of failing connects (default: connection refused).
    pub connect_error: Option<String>,
    /// The shell finds that the relay's name resolves to this non-global address class and
    /// refuses to dial it.
    pub resolves_to: Option<sync_core::NonGlobal>,
    /// Whether a connection is open.
    pub connected: bool,
    /// The next this many historic REQs are answered `CLOSED "error: internal error"`.
    pub closes_historic: u32,
    /// The next this many REQs are answered `CLOSED "auth-required:"` (NIP-42; `u32::MAX`: a
    /// relay that refuses us even authenticated).
    pub auth_refusals: u32,
}

impl Default for Remote {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            neg: NegMode::On,
            page_cap: 500,
            id_cap: 1000,
            failing_connects: 0,
            down: false,
            hangs: false,
            connect_error: None,
            resolves_to: None,
            connected: false,
            closes_historic: 0,
            auth_refusals: 0,
        }
    }
}

/// The scenario world.
pub struct World {
    /// The engine under test.
    pub core: SyncCore,
    /// The clocks now.
    pub now: Now,
    /// The scripted relays by canonical URL.
    pub remotes: BTreeMap<RelayUrl, Remote>,
    /// Ids the host stored.
    pub store: BTreeSet<EventId>,
    /// Ids the host's policy rejects.
    pub host_rejects: BTreeSet<EventId>,
    queue: Vec<(u64, u64, Input)>,
    seq: u64,
    /// The rendered table, one entry per step.
    pub lines: Vec<String>,
    aliases: BTreeMap<String, String>,
    /// Record steps into `lines`.
    pub record: bool,
}

/// Keys number `n` (a small secret key).
#[must_use]
pub fn keys(n: u8) -> Keys {
    Keys::parse(&format!("{:064x}", u64::from(n) + 1)).expect("key")
}

/// A relay URL (panics if invalid).
#[must_use]
pub fn url(s: &str) -> RelayUrl {
    RelayUrl::parse(s).expect("url")
}

/// A synthetic event (the seeded world's [`crate::events::meta`]: ids derived from `n`, tags
/// sorted; signatures play no part in the core).
#[must_use]
pub fn ev(
    n: u64,
    author: PublicKey,
    kind: u16,
    created_at: u64,
    tags: &[(char, String)],
) -> EventMeta {
    crate::events::meta(n, author, kind, created_at, tags)
}

/// The coordinate `30617:<owner>:<d>`.
#[must_use]
pub fn coord(owner: &Keys, d: &str) -> String {
    format!("30617:{}:{d}", owner.public_key().to_hex())
}

/// An announcement by `owner` for `d` listing `relays`.
#[must_use]
pub fn announcement(n: u64, owner: &Keys, d: &str, relays: &[&str], created_at: u64) -> EventMeta {
    let mut e = ev(
        n,
        owner.public_key(),
        30617,
        created_at,
        &[('d', d.to_string())],
    );
    e.relays = relays.iter().map(|s| s.to_string()).collect();
    e
}

/// The scripted tests' configuration: `our` is our relay, no start-up jitter, defaults else.
#[must_use]
pub fn scenario_cfg(our: &str) -> Config {
    Config {
        own_relay_urls: vec![our.into()],
        startup_jitter_ms: 0,
        ..Config::default()
    }
}

/// The action tables' standard world: alice's repository `repo` lists `our` and `relays`; each
/// of `relays` is a copy of `remote` holding the announcement, a state event, a patch and a
/// comment on it (named `ann`, `state`, `patch`, `comment` in the table). The host stores the
/// announcement, which is accepted at +0s. Core seed 7.
#[must_use]
pub fn repo_world(cfg: Config, our: &str, relays: &[&str], mut remote: Remote) -> World {
    let mut w = World::new(cfg, 7);
    w.alias_key(&keys(1), "alice");
    let mut listed = vec![our];
    listed.extend_from_slice(relays);
    let events = repo_events(&listed);
    for (e, name) in events.iter().zip(["ann", "state", "patch", "comment"]) {
        w.alias_event(e, name);
    }
    let ann = events[0].clone();
    remote.events.extend(events);
    for r in relays {
        w.remote(r, remote.clone());
    }
    w.store.insert(ann.id);
    w.feed(Input::Accepted { event: ann });
    w
}

/// alice's (`keys(1)`) announcement of `repo` listing `relays`, its state event, a patch by
/// `keys(2)` and a comment on it by `keys(3)`, in that order.
#[must_use]
pub fn repo_events(relays: &[&str]) -> Vec<EventMeta> {
    let alice = keys(1);
    let ann = announcement(1, &alice, "repo", relays, 1_000);
    let state = ev(2, alice.public_key(), 30618, 1_001, &[('d', "repo".into())]);
    let patch = ev(
        3,
        keys(2).public_key(),
        1617,
        1_002,
        &[('a', coord(&alice, "repo"))],
    );
    let comment = ev(
        4,
        keys(3).public_key(),
        1111,
        1_003,
        &[('E', patch.id.to_hex())],
    );
    vec![ann, state, patch, comment]
}

impl World {
    /// A world at the start (mono 0, wall [`WALL0`]) around a core of `cfg` seeded `seed`.
    #[must_use]
    pub fn new(cfg: Config, seed: u64) -> Self {
        let now = Now::at(0, WALL0);
        let core = SyncCore::try_new(cfg, seed, now).expect("config");
        Self {
            core,
            now,
            remotes: BTreeMap::new(),
            store: BTreeSet::new(),
            host_rejects: BTreeSet::new(),
            queue: Vec::new(),
            seq: 0,
            lines: Vec::new(),
            aliases: BTreeMap::new(),
            record: true,
        }
    }

    /// Adds a scripted relay; the table calls the n-th one `rn`.
    pub fn remote(&mut self, u: &str, r: Remote) {
        let n = self.remotes.len();
        self.aliases.insert(url(u).to_string(), format!("r{n}"));
        self.remotes.insert(url(u), r);
    }

    /// Names a hex value in the table.
    pub fn alias(&mut self, hex: &str, name: &str) {
        self.aliases.insert(hex.to_string(), name.to_string());
    }

    /// Names a key in the table.
    pub fn alias_key(&mut self, k: &Keys, name: &str) {
        self.alias(&k.public_key().to_hex(), name);
    }

    /// Names an event in the table.
    pub fn alias_event(&mut self, e: &EventMeta, name: &str) {
        self.alias(&e.id.to_hex(), name);
    }

    /// Queues an input `delay_ms` from now.
    pub fn later(&mut self, delay_ms: u64, input: Input) {
        self.seq += 1;
        self.queue
            .push((self.now.mono.0 + delay_ms, self.seq, input));
    }

    /// Feeds one input now and answers its commands.
    pub fn feed(&mut self, input: Input) {
        let line_input = self.render_input(&input);
        let commands = self.core.step(self.now, input);
        self.log(&line_input, &commands);
        for c in commands {
            self.answer(c);
        }
    }

    /// Runs until `horizon_ms` after the scenario start (or nothing is left to do).
    pub fn run_until(&mut self, horizon_ms: u64) {
        for _ in 0..100_000 {
            self.queue.sort_by_key(|(t, s, _)| (*t, *s));
            let next_q = self.queue.first().map(|(t, _, _)| *t);
            let next_d = self.core.next_deadline().map(|d| d.at.0);
            let t = match (next_q, next_d) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return,
            };
            if t > horizon_ms {
                self.set_time(horizon_ms.max(self.now.mono.0));
                return;
            }
            self.set_time(t.max(self.now.mono.0));
            if next_q == Some(t) {
                let (_, _, input) = self.queue.remove(0);
                self.feed(input);
            } else {
                self.feed(Input::Tick);
            }
        }
        panic!("scenario did not settle");
    }

    fn set_time(&mut self, mono: u64) {
        let wall = WALL0 + mono / 1000;
        self.now = Now::at(mono, wall);
    }

    fn answer(&mut self, c: Command) {
        match c {
            Command::Connect { relay } => {
                let r = self.remotes.get_mut(&relay).expect("known remote");
                if r.hangs {
                    // Never answered.
                } else if let Some(address) = r.resolves_to {
                    self.later(LATENCY_MS, Input::ConnectRefused { relay, address });
                } else if r.down || r.failing_connects > 0 {
                    r.failing_connects = r.failing_connects.saturating_sub(1);
                    let error = r
                        .connect_error
                        .clone()
                        .unwrap_or_else(|| "Connection refused (os error 111)".into());
                    self.later(LATENCY_MS, Input::ConnectFailed { relay, error });
                } else {
                    r.connected = true;
                    self.later(LATENCY_MS, Input::Connected { relay });
                }
            }
            Command::Disconnect { relay } => {
                if let Some(r) = self.remotes.get_mut(&relay) {
                    r.connected = false;
                }
                self.later(LATENCY_MS, Input::Disconnected { relay });
            }
            Command::Subscribe {
                relay,
                sub,
                kind: SubKind::Historic,
                filters,
            } => {
                let filters: Vec<Filter> = filters.iter().map(|f| f.to_filter()).collect();
                self.serve_req(relay, sub, &filters)
            }
            Command::NegentropyDiff { relay, sub, filter } => self.serve_neg(relay, sub, &filter),
            Command::Subscribe { .. }
            | Command::Unsubscribe { .. }
            | Command::Reoffer { .. }
            | Command::Forget { .. } => {}
        }
    }

    fn outcome(&mut self, e: &EventMeta) -> Outcome {
        if self.host_rejects.contains(&e.id) {
            Outcome::Rejected
        } else if self.store.insert(e.id) {
            Outcome::Saved
        } else {
            Outcome::Duplicate
        }
    }

    /// The CLOSED a remote answers this REQ with, if its script says so: `auth-required:`
    /// while `auth_refusals` last, then `error:` while `closes_historic` last.
    fn scripted_refusal(&mut self, relay: &RelayUrl) -> Option<&'static str> {
        let r = self.remotes.get_mut(relay)?;
        if r.auth_refusals > 0 {
            r.auth_refusals -= u32::from(r.auth_refusals < u32::MAX);
            return Some("auth-required: you must auth");
        }
        if r.closes_historic > 0 {
            r.closes_historic -= 1;
            return Some("error: internal error");
        }
        None
    }

    fn serve_req(&mut self, relay: RelayUrl, sub: SubId, filters: &[Filter]) {
        if let Some(message) = self.scripted_refusal(&relay) {
            let message = message.to_string();
            self.later(
                LATENCY_MS,
                Input::Closed {
                    relay,
                    sub,
                    message,
                },
            );
            return;
        }
        let r = self.remotes[&relay].clone();
        let mut delay = LATENCY_MS;
        for f in filters {
            for e in select(&r.events, f, r.page_cap, r.id_cap) {
                let outcome = self.outcome(e);
                self.later(
                    delay,
                    Input::Delivered {
                        relay: relay.clone(),
                        sub: sub.clone(),
                        event: e.clone(),
                        outcome,
                    },
                );
                delay += 1;
            }
        }
        self.later(delay, Input::Eose { relay, sub });
    }

    fn serve_neg(&mut self, relay: RelayUrl, sub: SubId, filter: &Filter) {
        let r = &self.remotes[&relay];
        let store = &self.store;
        let Some(result) = neg_answer(r.neg, &r.events, filter, |id| store.contains(id)) else {
            return;
        };
        self.later(LATENCY_MS, Input::NegentropyDiff { relay, sub, result });
    }

    /// The shell's message stream overflowed: the `oldest` queued EVENT, EOSE, CLOSED and
    /// NOTICE messages of `relay` are lost (the host never saw those events; later messages
    /// still arrive, as with a lagging broadcast receiver), then `Lagged` is fed. Negentropy
    /// answers do not travel on that stream and are kept. Returns how many were lost.
    pub fn lag(&mut self, relay: &str, oldest: usize) -> usize {
        let u = url(relay);
        self.queue.sort_by_key(|(t, s, _)| (*t, *s));
        let mut unsaved = Vec::new();
        let mut lost = 0;
        self.queue.retain(|(_, _, input)| {
            let on_stream = match input {
                Input::Delivered { relay, .. }
                | Input::Eose { relay, .. }
                | Input::Closed { relay, .. }
                | Input::Notice { relay, .. } => *relay == u,
                _ => false,
            };
            if !on_stream || lost >= oldest {
                return true;
            }
            lost += 1;
            if let Input::Delivered {
                event,
                outcome: Outcome::Saved,
                ..
            } = input
            {
                unsaved.push(event.id);
            }
            false
        });
        for id in unsaved {
            self.store.remove(&id);
        }
        self.feed(Input::Lagged { relay: Some(u) });
        lost
    }

    /// Publishes an event on a remote (live subscriptions here do not deliver it).
    pub fn publish(&mut self, relay: &str, e: EventMeta) {
        let relay = url(relay);
        self.remotes.get_mut(&relay).expect("remote").events.push(e);
    }

    /// The table so far.
    #[must_use]
    pub fn table(&self) -> String {
        self.lines.join("\n")
    }

    /// Status of a remote as the core sees it.
    #[must_use]
    pub fn status(&self, relay: &str) -> Option<sync_core::Status> {
        self.core.relay(&url(relay)).map(|v| v.status())
    }
}
