//! Scenario harness for sync-core's snapshot and property tests: a tiny deterministic world of
//! scripted relays that answer the core's commands, and a renderer that turns every step into
//! one readable table line (relative times, short aliases instead of hex).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]
#![allow(
    unreachable_pub,
    missing_docs,
    reason = "test-only helpers shared between test binaries"
)]

use std::collections::{BTreeMap, BTreeSet};

use nostr::{EventId, Filter, Keys, Kind, PublicKey, Timestamp};
use sync_core::{
    matches, Command, Config, EventMeta, Input, NegentropyResult, Now, Outcome, RelayUrl, SubId,
    SubKind, SyncCore,
};

/// Wall-clock seconds at the start of every scenario.
pub const WALL0: u64 = 1_700_000_000;
/// Latency of every scripted answer.
pub const LATENCY_MS: u64 = 10;

/// How a scripted relay answers NEG-OPEN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Neg {
    On,
    Unsupported,
    Silent,
}

/// A scripted remote relay.
#[derive(Clone, Debug)]
pub struct Remote {
    pub events: Vec<EventMeta>,
    pub neg: Neg,
    /// Results per REQ filter (newest first).
    pub page_cap: usize,
    /// Ids served per `ids` REQ.
    pub id_cap: usize,
    /// Connection attempts that fail before one succeeds.
    pub failing_connects: u32,
    /// Down: connects fail.
    pub down: bool,
    /// The error text of failing connects (default: connection refused).
    pub connect_error: Option<String>,
    /// The shell finds that the relay's name resolves to this non-global address class and
    /// refuses to dial it.
    pub resolves_to: Option<sync_core::NonGlobal>,
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
            neg: Neg::On,
            page_cap: 500,
            id_cap: 1000,
            failing_connects: 0,
            down: false,
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
    pub core: SyncCore,
    pub now: Now,
    pub remotes: BTreeMap<RelayUrl, Remote>,
    /// Ids the host stored.
    pub store: BTreeSet<EventId>,
    /// Ids the host's policy rejects.
    pub host_rejects: BTreeSet<EventId>,
    queue: Vec<(u64, u64, Input)>,
    seq: u64,
    pub lines: Vec<String>,
    aliases: BTreeMap<String, String>,
    /// Record steps into `lines`.
    pub record: bool,
}

pub fn keys(n: u8) -> Keys {
    Keys::parse(&format!("{:064x}", u64::from(n) + 1)).expect("key")
}

pub fn url(s: &str) -> RelayUrl {
    RelayUrl::parse(s).expect("url")
}

fn id_of(n: u64) -> EventId {
    let mut b = [0u8; 32];
    b[24..].copy_from_slice(&n.to_be_bytes());
    b[0] = 0xee;
    EventId::from_byte_array(b)
}

/// A synthetic event (ids are derived from `n`; signatures play no part in the core).
pub fn ev(
    n: u64,
    author: PublicKey,
    kind: u16,
    created_at: u64,
    tags: &[(char, String)],
) -> EventMeta {
    let mut tags: Vec<(char, String)> = tags.to_vec();
    tags.sort();
    tags.dedup();
    EventMeta {
        id: id_of(n),
        author,
        kind: Kind::from(kind),
        created_at: Timestamp::from(created_at),
        tags,
        relays: vec![],
        clone_urls: vec![],
        maintainers: vec![],
    }
}

pub fn coord(owner: &Keys, d: &str) -> String {
    format!("30617:{}:{d}", owner.public_key().to_hex())
}

/// An announcement by `owner` for `d` listing `relays`.
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

impl World {
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

    pub fn remote(&mut self, u: &str, r: Remote) {
        let n = self.remotes.len();
        self.aliases.insert(url(u).to_string(), format!("r{n}"));
        self.remotes.insert(url(u), r);
    }

    /// Names a hex value in the table.
    pub fn alias(&mut self, hex: &str, name: &str) {
        self.aliases.insert(hex.to_string(), name.to_string());
    }

    pub fn alias_key(&mut self, k: &Keys, name: &str) {
        self.alias(&k.public_key().to_hex(), name);
    }

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
                if let Some(address) = r.resolves_to {
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
            } => self.serve_req(relay, sub, &filters),
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

    fn serve_req(&mut self, relay: RelayUrl, sub: SubId, filters: &[Filter]) {
        if let Some(r) = self.remotes.get_mut(&relay).filter(|r| r.auth_refusals > 0) {
            r.auth_refusals = r
                .auth_refusals
                .saturating_sub(u32::from(r.auth_refusals < u32::MAX));
            let message = "auth-required: you must auth".into();
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
        if let Some(r) = self
            .remotes
            .get_mut(&relay)
            .filter(|r| r.closes_historic > 0)
        {
            r.closes_historic -= 1;
            let message = "error: internal error".into();
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
            let mut hits: Vec<&EventMeta> = r.events.iter().filter(|e| matches(f, e)).collect();
            hits.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
            let cap = if f.ids.is_some() {
                r.id_cap
            } else {
                r.page_cap.min(f.limit.unwrap_or(usize::MAX))
            };
            for e in hits.into_iter().take(cap) {
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
        let result = match r.neg {
            Neg::Silent => return,
            Neg::Unsupported => NegentropyResult::Refused {
                message: "ERROR: unknown envelope label: NEG-OPEN".into(),
            },
            Neg::On => {
                let mut ids: Vec<EventId> = r
                    .events
                    .iter()
                    .filter(|e| matches(filter, e) && !self.store.contains(&e.id))
                    .map(|e| e.id)
                    .collect();
                ids.sort();
                NegentropyResult::Missing { ids }
            }
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

    // ---- rendering ----

    fn short(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (hex, alias) in &self.aliases {
            out = out.replace(hex.as_str(), alias);
        }
        // Any remaining 64-hex run: abbreviate.
        let bytes: Vec<char> = out.chars().collect();
        let mut res = String::new();
        let mut i = 0;
        while i < bytes.len() {
            if i + 64 <= bytes.len() && bytes[i..i + 64].iter().all(|c| c.is_ascii_hexdigit()) {
                let s: String = bytes[i + 56..i + 64].iter().collect();
                res.push_str(&format!("#{}", s.trim_start_matches('0')));
                i += 64;
            } else {
                res.push(bytes[i]);
                i += 1;
            }
        }
        res
    }

    fn rel_time(&self, secs: u64) -> String {
        let d = secs as i64 - self.now.wall.as_secs() as i64;
        format!("now{d:+}s")
    }

    fn render_filter(&self, f: &Filter) -> String {
        let mut f = f.clone();
        let since = f
            .since
            .take()
            .map(|t| format!(" since={}", self.rel_time(t.as_secs())));
        let until = f
            .until
            .take()
            .map(|t| format!(" until={}", self.rel_time(t.as_secs())));
        let ids = f.ids.take().map(|ids| format!(" ids×{}", ids.len()));
        let json = serde_json::to_string(&f).expect("json");
        self.short(&format!(
            "{json}{}{}{}",
            ids.unwrap_or_default(),
            since.unwrap_or_default(),
            until.unwrap_or_default()
        ))
    }

    fn render_input(&self, input: &Input) -> String {
        let s = match input {
            Input::Accepted { event } => {
                format!("Accepted {} k{}", event.id.to_hex(), event.kind.as_u16())
            }
            Input::Rejected { event } => format!("Rejected {}", event.id.to_hex()),
            Input::RegisterRepo {
                coord,
                relays,
                level,
            } => format!("RegisterRepo {coord} {relays:?} {level:?}"),
            Input::WithdrawRepo { coord } => format!("WithdrawRepo {coord}"),
            Input::Connected { relay } => format!("Connected {relay}"),
            Input::ConnectFailed { relay, error } => format!("ConnectFailed {relay} {error:?}"),
            Input::ConnectRefused { relay, address } => {
                format!("ConnectRefused {relay} {}", address.label())
            }
            Input::Disconnected { relay } => format!("Disconnected {relay}"),
            Input::Delivered {
                relay,
                sub,
                event,
                outcome,
            } => format!("Delivered {relay} {sub} {} {outcome:?}", event.id.to_hex()),
            Input::Eose { relay, sub } => format!("Eose {relay} {sub}"),
            Input::Closed {
                relay,
                sub,
                message,
            } => format!("Closed {relay} {sub} {message:?}"),
            Input::SendFailed { relay, sub, error } => {
                format!("SendFailed {relay} {sub} {error:?}")
            }
            Input::Notice { relay, message } => format!("Notice {relay} {message:?}"),
            Input::RelayInfo { relay, limits } => format!("RelayInfo {relay} {limits:?}"),
            Input::NegentropyDiff { relay, sub, result } => match result {
                NegentropyResult::Missing { ids } => {
                    format!("NegDiff {relay} {sub} missing×{}", ids.len())
                }
                other => format!("NegDiff {relay} {sub} {other:?}"),
            },
            Input::Lagged { relay } => format!("Lagged {relay:?}"),
            Input::RestoreRejected { entries } => format!("RestoreRejected ×{}", entries.len()),
            Input::Tick => "Tick".to_string(),
        };
        self.short(&s)
    }

    fn render_command(&self, c: &Command) -> String {
        let s = match c {
            Command::Connect { relay } => format!("Connect {relay}"),
            Command::Disconnect { relay } => format!("Disconnect {relay}"),
            Command::Subscribe {
                relay,
                sub,
                kind,
                filters,
            } => {
                let fs: Vec<String> = filters.iter().map(|f| self.render_filter(f)).collect();
                format!("Subscribe {relay} {sub} {kind:?} [{}]", fs.join(", "))
            }
            Command::Unsubscribe { relay, sub, .. } => format!("Unsubscribe {relay} {sub}"),
            Command::NegentropyDiff { relay, sub, filter } => {
                format!("NegDiff {relay} {sub} {}", self.render_filter(filter))
            }
            Command::Forget { relay } => format!("Forget {relay}"),
            Command::Reoffer { ids } => format!(
                "Reoffer {:?}",
                ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>()
            ),
        };
        self.short(&s)
    }

    fn log(&mut self, input: &str, commands: &[Command]) {
        if !self.record {
            return;
        }
        let t = self.now.mono.0;
        let time = if t.is_multiple_of(1000) {
            format!("+{}s", t / 1000)
        } else {
            format!("+{}.{:03}s", t / 1000, t % 1000)
        };
        let status: Vec<String> = self
            .core
            .relay_status()
            .map(|v| format!("{}={:?}", self.short(v.url().as_str()), v.status()))
            .collect();
        let mut line = format!("{time:>10}  {input}");
        if commands.is_empty() {
            line.push_str("  → ·");
        }
        for c in commands {
            line.push_str(&format!("\n{:>12}→ {}", "", self.render_command(c)));
        }
        line.push_str(&format!("\n{:>12}  [{}]", "", status.join(" ")));
        self.lines.push(line);
    }

    /// The table so far.
    pub fn table(&self) -> String {
        self.lines.join("\n")
    }

    /// Status of a remote as the core sees it.
    pub fn status(&self, relay: &str) -> Option<sync_core::Status> {
        self.core.relay(&url(relay)).map(|v| v.status())
    }
}
