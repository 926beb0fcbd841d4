//! Hand-written scenarios (regression tests, docs): a small builder over [`Scenario`] with
//! readable defaults, so each named scenario states only what it is about.

use nostr::EventId;
use sync_core::{Config, EventMeta, RepoCoord};

use crate::events::{announcement, key, meta};
use crate::faults::{Fault, Timed};
use crate::scenario::{NegMode, Placed, RelaySpec, Scenario, OUR_URL, WALL0};

const HOUR_MS: u64 = 3_600_000;

/// A well-behaved relay: NIP-77, caps of 500, no rate limit, 10–50 ms latency.
#[must_use]
pub fn relay(url: &str) -> RelaySpec {
    RelaySpec {
        url: url.to_string(),
        page_cap: 500,
        id_cap: 1_000,
        max_subs: 200,
        max_filters: 100,
        advertise_limits: false,
        neg: NegMode::On,
        reqs_per_sec: None,
        steady_reqs_per_sec: None,
        notice_on_rate_limit: false,
        latency_ms: (10, 50),
        connect_latency_ms: 100,
        slow_connect_percent: 0,
        eose_delay_ms: 0,
        dead_forever: false,
        auth: crate::scenario::AuthMode::None,
        req_cap: None,
    }
}

/// Builds a [`Scenario`] step by step.
#[derive(Clone, Debug)]
pub struct Builder {
    /// The scenario so far.
    pub scenario: Scenario,
    next_n: u64,
    next_secs: u64,
}

impl Builder {
    /// An empty world: our relay only, default config (no start-up jitter), a 1 h safety and
    /// a 28 h liveness phase.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            scenario: Scenario {
                seed,
                config: Config {
                    own_relay_urls: vec![OUR_URL.into()],
                    startup_jitter_ms: 0,
                    ..Config::default()
                },
                relays: Vec::new(),
                blacklist: vec![key(99)],
                initial: Vec::new(),
                local: Vec::new(),
                faults: Vec::new(),
                safety_ms: HOUR_MS,
                liveness_ms: 28 * HOUR_MS,
            },
            next_n: 0,
            next_secs: 0,
        }
    }

    /// Adds a relay.
    pub fn relay(&mut self, spec: RelaySpec) -> &mut Self {
        self.scenario.relays.push(spec);
        self
    }

    /// Sets the phase lengths.
    pub fn phases(&mut self, safety_ms: u64, liveness_ms: u64) -> &mut Self {
        self.scenario.safety_ms = safety_ms;
        self.scenario.liveness_ms = liveness_ms;
        self
    }

    fn n(&mut self) -> u64 {
        self.next_n += 1;
        self.next_n
    }

    /// A distinct historic `created_at`.
    pub fn secs(&mut self) -> u64 {
        self.next_secs += 1;
        WALL0 - 10 * 86_400 + self.next_secs * 7
    }

    /// The coordinate of repository `d` owned by key 1.
    #[must_use]
    pub fn coord(d: &str) -> RepoCoord {
        RepoCoord {
            owner: key(1),
            identifier: d.to_string(),
        }
    }

    /// An announcement of `d` listing `relays` (raw strings, our relay included by the
    /// caller), stored on `on` and, if `local`, in the host's store at start.
    pub fn announce(&mut self, d: &str, relays: &[&str], on: &[&str], local: bool) -> EventMeta {
        let n = self.n();
        let secs = self.secs();
        let listed: Vec<String> = relays.iter().map(|s| (*s).to_string()).collect();
        let e = announcement(n, &Self::coord(d), &listed, secs);
        self.place(on, e.clone());
        if local {
            self.scenario.local.push(e.clone());
        }
        e
    }

    /// Stores `e` on relays `on` at the start.
    pub fn place(&mut self, on: &[&str], e: EventMeta) -> &mut Self {
        self.scenario.initial.push(Placed {
            relays: on.iter().map(|s| (*s).to_string()).collect(),
            event: e,
        });
        self
    }

    /// A new event by `author` (key index) of `kind` with `tags`, at `secs`.
    pub fn event(
        &mut self,
        author: u32,
        kind: u16,
        secs: u64,
        tags: &[(char, String)],
    ) -> EventMeta {
        let n = self.n();
        meta(n, key(author), kind, secs, tags)
    }

    /// A patch on repo `d` tagging it via `letter`, stored on `on`.
    pub fn root(&mut self, d: &str, letter: char, on: &[&str]) -> EventMeta {
        let secs = self.secs();
        let e = self.event(10, 1617, secs, &[(letter, Self::coord(d).to_string())]);
        self.place(on, e.clone());
        e
    }

    /// `count` events on repo `d` (kind 1111 via `a`), by `author`, stored on `on`.
    pub fn repo_events(&mut self, d: &str, author: u32, count: usize, on: &[&str]) -> Vec<EventId> {
        (0..count)
            .map(|_| {
                let secs = self.secs();
                let e = self.event(author, 1111, secs, &[('a', Self::coord(d).to_string())]);
                self.place(on, e.clone());
                e.id
            })
            .collect()
    }

    /// Repositories `{prefix}0` … `{prefix}{repos − 1}`, each announced (listing our relay and
    /// `on`, stored on `on` and locally) and given `events` events by author 10
    /// ([`Builder::repo_events`]) on `on`; the events' ids, repository by repository.
    pub fn repos_with_events(
        &mut self,
        prefix: &str,
        repos: usize,
        events: usize,
        on: &[&str],
    ) -> Vec<EventId> {
        let mut listed = vec![OUR_URL];
        listed.extend(on);
        let mut ids = Vec::new();
        for i in 0..repos {
            let d = format!("{prefix}{i}");
            self.announce(&d, &listed, on, true);
            ids.extend(self.repo_events(&d, 10, events, on));
        }
        ids
    }

    /// `count` comments on root `root` (via `E`), stored on `on`.
    pub fn comments(&mut self, root: &EventMeta, count: usize, on: &[&str]) -> &mut Self {
        for _ in 0..count {
            let secs = self.secs();
            let e = self.event(11, 1111, secs, &[('E', root.id.to_hex())]);
            self.place(on, e);
        }
        self
    }

    /// A fault at `at_ms`.
    pub fn fault(&mut self, at_ms: u64, fault: Fault) -> &mut Self {
        self.scenario.faults.push(Timed { at_ms, fault });
        self.scenario.faults.sort_by_key(|f| f.at_ms);
        self
    }

    /// Someone publishes `e` to `on` at `at_ms`.
    pub fn publish(&mut self, at_ms: u64, on: &[&str], e: EventMeta) -> &mut Self {
        let relays = on.iter().map(|s| (*s).to_string()).collect();
        self.fault(at_ms, Fault::Publish { relays, event: e })
    }

    /// The scenario.
    #[must_use]
    pub fn build(&self) -> Scenario {
        self.scenario.clone()
    }
}
