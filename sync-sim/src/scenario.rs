//! A scenario: everything a run needs, drawn from a seed and then explicit (serde), so that a
//! failing run can be written out, shrunk by removing parts, and replayed as a regression.
//!
//! [`Scenario::generate`] draws the world (relays and their behaviour, repositories, events,
//! the core's configuration) here and the fault plan in [`crate::faults`].

use nostr::PublicKey;
use serde::{Deserialize, Serialize};
use sync_core::{Config, EventMeta, RepoCoord};

use crate::events::{announcement, key, meta};
use crate::faults::{self, Timed};
use crate::rng::SimRng;

/// Our relay's URL (the host); never a sync target.
pub const OUR_URL: &str = "wss://our.grasp.sim";
/// Wall-clock seconds at the start of every run.
pub const WALL0: u64 = 1_700_000_000;
const HOUR_MS: u64 = 3_600_000;
const DAY_SECS: u64 = 86_400;

/// How a fake relay answers NEG-OPEN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NegMode {
    /// Speaks NIP-77.
    On,
    /// Answers with a NOTICE "unknown envelope label".
    UnsupportedNotice,
    /// Answers with NEG-ERR "blocked".
    UnsupportedNegErr,
    /// Never answers (the core's batch deadline must resolve it).
    Silent,
    /// Never answers, and the shell reports `Timeout` after `negentropy_timeout_ms`.
    Timeout,
}

/// One fake relay's behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelaySpec {
    /// Canonical URL.
    pub url: String,
    /// Results per REQ filter (newest first), 1 … 500.
    pub page_cap: usize,
    /// Ids served per `ids` filter.
    pub id_cap: usize,
    /// Open subscriptions per connection; more get `CLOSED "rate-limited: too many REQs"`.
    pub max_subs: usize,
    /// Filters per REQ; more get `CLOSED "error: too many filters"`.
    pub max_filters: usize,
    /// Whether NIP-11 limits are sent on connect.
    pub advertise_limits: bool,
    /// NIP-77 behaviour.
    pub neg: NegMode,
    /// REQs per second before `CLOSED "rate-limited:"` answers; `None`: unlimited.
    pub reqs_per_sec: Option<u32>,
    /// Whether a rate-limited REQ also gets a NOTICE "slow down".
    pub notice_on_rate_limit: bool,
    /// Message latency, lower and upper bound (ms).
    pub latency_ms: (u64, u64),
    /// Time to open a connection (ms).
    pub connect_latency_ms: u64,
    /// Percent of connection attempts that hang for 15 s (beyond the core's connect timeout).
    pub slow_connect_percent: u64,
    /// Extra delay before every EOSE (ms).
    pub eose_delay_ms: u64,
    /// Down for the whole run (outside the convergence check).
    pub dead_forever: bool,
}

/// An event stored on some relays when the run starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// Canonical relay URLs holding it.
    pub relays: Vec<String>,
    /// The event.
    pub event: EventMeta,
}

/// Everything one run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// The seed (core seed and the sim's latency streams).
    pub seed: u64,
    /// The core's configuration.
    pub config: Config,
    /// The fake relays.
    pub relays: Vec<RelaySpec>,
    /// Authors whose events the host rejects.
    pub blacklist: Vec<PublicKey>,
    /// Events on the fake relays at the start.
    pub initial: Vec<Placed>,
    /// Events in the host's store at the start (replayed as `Accepted`).
    pub local: Vec<EventMeta>,
    /// The fault plan, sorted by time; all within the safety phase.
    pub faults: Vec<Timed>,
    /// Length of the safety phase (faults on), ms.
    pub safety_ms: u64,
    /// Length of the liveness phase (faults healed; must converge), ms.
    pub liveness_ms: u64,
}

/// A repository drawn for the world.
#[derive(Clone, Debug)]
pub(crate) struct RepoDraw {
    pub(crate) coord: RepoCoord,
    /// Sim relays (canonical) its announcement lists.
    pub(crate) relays: Vec<String>,
    /// Whether its announcement lists our relay (else the host rejects it).
    pub(crate) lists_us: bool,
}

/// Generation state shared by the world and fault drawing.
pub(crate) struct Gen {
    pub(crate) rng: SimRng,
    next_n: u64,
    next_secs: u64,
    /// Live `created_at` values handed out (kept unique).
    used_live_secs: std::collections::BTreeSet<u64>,
    pub(crate) relay_urls: Vec<String>,
    pub(crate) repos: Vec<RepoDraw>,
    /// Root events as `(id hex, repo index)`.
    pub(crate) roots: Vec<(String, usize)>,
    pub(crate) contributors: Vec<PublicKey>,
    pub(crate) spammer: PublicKey,
    owners: Vec<PublicKey>,
    /// The effective page size per relay: `min(relay cap, config page_limit)`. Same-second
    /// groups on one filter value never exceed it (a REQ cannot page past such a group).
    pub(crate) page_sizes: std::collections::BTreeMap<String, usize>,
}

impl Gen {
    /// A fresh event number.
    pub(crate) fn n(&mut self) -> u64 {
        self.next_n += 1;
        self.next_n
    }

    /// A historic `created_at`, unique per event (no accidental same-second groups).
    pub(crate) fn historic_secs(&mut self) -> u64 {
        self.next_secs += 1;
        WALL0 - 30 * DAY_SECS + (self.next_secs * 1013) % (29 * DAY_SECS)
    }

    /// A `created_at` near `wall_secs` minus `skew_secs`, unique per event.
    pub(crate) fn live_secs(&mut self, wall_secs: u64, skew_secs: u64) -> u64 {
        let mut secs = wall_secs.saturating_sub(skew_secs);
        while !self.used_live_secs.insert(secs) {
            secs += 1;
        }
        secs
    }

    /// The smallest effective page size among `relays`.
    pub(crate) fn page_size(&self, relays: &[String]) -> usize {
        relays
            .iter()
            .filter_map(|u| self.page_sizes.get(u))
            .copied()
            .min()
            .unwrap_or(1)
    }

    /// A URL variant that canonicalises to `url` (trailing slash, upper case).
    pub(crate) fn variant(&mut self, url: &str) -> String {
        match self.rng.below(4) {
            0 => format!("{url}/"),
            1 => url.to_ascii_uppercase().replacen("WSS://", "wss://", 1),
            _ => url.to_string(),
        }
    }

    /// The announcement of repo `i` listing `relays`, as of `created_at_secs`.
    pub(crate) fn announcement_of(
        &mut self,
        i: usize,
        relays: &[String],
        lists_us: bool,
        created_at_secs: u64,
    ) -> EventMeta {
        let mut listed: Vec<String> = relays.iter().map(|u| self.variant(u)).collect();
        if lists_us {
            let ours = self.variant(OUR_URL);
            listed.insert(self.rng.below(listed.len() as u64 + 1) as usize, ours);
        }
        if self.rng.chance(15) {
            listed.push(format!("wss://unreachable{}.sim", self.rng.below(3)));
        }
        let coord = self.repos[i].coord.clone();
        let n = self.n();
        let mut e = announcement(n, &coord, &listed, created_at_secs);
        if self.rng.chance(20) && !listed.is_empty() {
            // One relay only reachable through its clone URL (GRASP: git and relay on one host).
            let moved = e
                .relays
                .remove(self.rng.below(e.relays.len() as u64) as usize);
            if let Some(host) = moved.strip_prefix("wss://") {
                let host = host.trim_end_matches('/');
                e.clone_urls.push(format!(
                    "https://{host}/{}/{}.git",
                    coord.owner, coord.identifier
                ));
            } else {
                e.relays.push(moved);
            }
        }
        if self.rng.chance(30) {
            e.maintainers.push(self.pick_contributor());
        }
        e
    }

    pub(crate) fn pick_contributor(&mut self) -> PublicKey {
        let i = self.rng.below(self.contributors.len() as u64) as usize;
        self.contributors[i]
    }

    /// A root event (patch, PR, issue) of repo `i`, tagging it via `a`, `A` or `q`.
    pub(crate) fn root_of(&mut self, i: usize, created_at_secs: u64) -> EventMeta {
        let kind = self.rng.pick(&[1617u16, 1618, 1621]);
        let letter = self.rng.pick(&['a', 'A', 'q']);
        let mut tags = vec![(letter, self.repos[i].coord.to_string())];
        if self.repos.len() > 1 && self.rng.chance(10) {
            let j = self.rng.below(self.repos.len() as u64) as usize;
            tags.push(('a', self.repos[j].coord.to_string()));
        }
        let author = self.pick_contributor();
        let n = self.n();
        let e = meta(n, author, kind, created_at_secs, &tags);
        self.roots.push((e.id.to_hex(), i));
        e
    }

    /// A comment on root `r` (via `e`, `E` or `q`).
    pub(crate) fn comment_on_root(&mut self, r: usize, created_at_secs: u64) -> EventMeta {
        let letter = self.rng.pick(&['e', 'E', 'q']);
        let tags = [(letter, self.roots[r].0.clone())];
        let author = self.pick_contributor();
        let n = self.n();
        meta(n, author, 1111, created_at_secs, &tags)
    }

    /// A repo-level event of repo `i` by `author` (kind 1111 or a status).
    pub(crate) fn repo_event(&mut self, i: usize, author: PublicKey, secs: u64) -> EventMeta {
        let letter = self.rng.pick(&['a', 'A', 'q']);
        let kind = self.rng.pick(&[1111u16, 1630, 7]);
        let tags = [(letter, self.repos[i].coord.to_string())];
        let n = self.n();
        meta(n, author, kind, secs, &tags)
    }

    /// A state event of repo `i` by `author`.
    pub(crate) fn state_of(&mut self, i: usize, author: PublicKey, secs: u64) -> EventMeta {
        let d = self.repos[i].coord.identifier.clone();
        let n = self.n();
        meta(n, author, sync_core::KIND_STATE, secs, &[('d', d)])
    }

    /// A non-empty subset of repo `i`'s relays (all of them half the time).
    pub(crate) fn placement(&mut self, i: usize) -> Vec<String> {
        let relays = self.repos[i].relays.clone();
        if relays.is_empty() || self.rng.chance(50) {
            return relays;
        }
        let keep: Vec<String> = relays
            .iter()
            .filter(|_| self.rng.chance(60))
            .cloned()
            .collect();
        if keep.is_empty() {
            vec![self.rng.pick(&relays)]
        } else {
            keep
        }
    }
}

fn draw_relay(i: usize, rng: &mut SimRng) -> RelaySpec {
    let page_cap = rng.pick(&[1usize, 2, 5, 30, 50, 100, 150, 500, 500]);
    let neg = match rng.below(10) {
        0..=5 => NegMode::On,
        6 => NegMode::UnsupportedNotice,
        7 => NegMode::UnsupportedNegErr,
        8 => NegMode::Timeout,
        _ => NegMode::Silent,
    };
    RelaySpec {
        url: format!("wss://r{i}.sim"),
        page_cap,
        id_cap: rng.pick(&[150usize, 150, 1000]),
        max_subs: rng.pick(&[8usize, 10, 20, 32, 200]),
        max_filters: rng.pick(&[10usize, 20, 100]),
        advertise_limits: page_cap < 50 || rng.chance(50),
        neg,
        reqs_per_sec: if rng.chance(20) {
            Some(rng.pick(&[5u32, 20]))
        } else {
            None
        },
        notice_on_rate_limit: rng.chance(50),
        latency_ms: (rng.range(1, 20), rng.range(20, 300)),
        connect_latency_ms: rng.range(20, 2_000),
        slow_connect_percent: if rng.chance(10) { 30 } else { 0 },
        eose_delay_ms: rng.range(0, 500),
        dead_forever: false,
    }
}

fn draw_config(rng: &mut SimRng) -> Config {
    Config {
        own_relay_urls: vec![OUR_URL.into()],
        chunk_size: rng.pick(&[2usize, 3, 100]),
        id_chunk_size: rng.pick(&[3usize, 40, 300]),
        max_subscriptions: rng.pick(&[10usize, 20]),
        max_filters_per_req: rng.pick(&[3usize, 10]),
        page_limit: rng.pick(&[60usize, 500]),
        disable_negentropy: rng.chance(10),
        ..Config::default()
    }
}

impl Scenario {
    /// Draws the world and the fault plan of `seed`.
    #[must_use]
    pub fn generate(seed: u64) -> Self {
        let mut rng = SimRng::new(seed, 1);
        let n_relays = rng.range(1, 4) as usize;
        let mut relays: Vec<RelaySpec> = (0..n_relays).map(|i| draw_relay(i, &mut rng)).collect();
        if n_relays > 1 && rng.chance(15) {
            relays[n_relays - 1].dead_forever = true;
        }
        let config = draw_config(&mut rng);
        let owners: Vec<PublicKey> = (0..rng.range(1, 3) as u32).map(key).collect();
        let contributors: Vec<PublicKey> = (10..10 + rng.range(2, 4) as u32).map(key).collect();
        let mut g = Gen {
            rng,
            next_n: 0,
            next_secs: 0,
            used_live_secs: std::collections::BTreeSet::new(),
            relay_urls: relays.iter().map(|r| r.url.clone()).collect(),
            repos: Vec::new(),
            roots: Vec::new(),
            contributors,
            spammer: key(99),
            owners,
            page_sizes: relays
                .iter()
                .map(|r| (r.url.clone(), r.page_cap.min(config.page_limit)))
                .collect(),
        };
        let (initial, local) = draw_events(&mut g);
        let mut scenario = Self {
            seed,
            config,
            relays,
            blacklist: vec![g.spammer],
            initial,
            local,
            faults: Vec::new(),
            safety_ms: g.rng.range(2, 30) * HOUR_MS,
            liveness_ms: 28 * HOUR_MS,
        };
        let bootstrap = scenario.local.is_empty() || g.rng.chance(40);
        if bootstrap {
            let url = g.rng.pick(&g.relay_urls.clone());
            scenario.config.bootstrap_relays = vec![url];
        }
        scenario.faults = faults::draw_plan(&mut g, &scenario);
        scenario
    }
}

/// Repositories and their events; returns (events on relays, events in the host's store).
fn draw_events(g: &mut Gen) -> (Vec<Placed>, Vec<EventMeta>) {
    let mut placed = Vec::new();
    let mut local = Vec::new();
    let n_repos = g.rng.range(1, 5) as usize;
    for i in 0..n_repos {
        let owner = g.owners[i % g.owners.len()];
        let listed: Vec<String> = g
            .relay_urls
            .clone()
            .into_iter()
            .filter(|_| g.rng.chance(60))
            .collect();
        let listed = if listed.is_empty() {
            vec![g.rng.pick(&g.relay_urls.clone())]
        } else {
            listed
        };
        g.repos.push(RepoDraw {
            coord: RepoCoord {
                owner,
                identifier: format!("repo{i}"),
            },
            relays: listed,
            lists_us: g.rng.chance(85),
        });
        let secs = g.historic_secs();
        let lists_us = g.repos[i].relays.is_empty() || g.repos[i].lists_us;
        let relays_i = g.repos[i].relays.clone();
        let ann = g.announcement_of(i, &relays_i, lists_us, secs);
        if lists_us && g.rng.chance(40) {
            local.push(ann.clone());
        }
        // Announcements go to every relay they list, and sometimes to the others too.
        let mut at = g.repos[i].relays.clone();
        for u in g.relay_urls.clone() {
            if !at.contains(&u) && g.rng.chance(50) {
                at.push(u);
            }
        }
        placed.push(Placed {
            relays: at,
            event: ann,
        });
        draw_repo_history(g, i, &mut placed);
    }
    (placed, local)
}

fn draw_repo_history(g: &mut Gen, i: usize, placed: &mut Vec<Placed>) {
    let owner = g.repos[i].coord.owner;
    let mut push = |g: &mut Gen, e: EventMeta| {
        let at = g.placement(i);
        placed.push(Placed {
            relays: at,
            event: e,
        });
    };
    let secs = g.historic_secs();
    let state = g.state_of(i, owner, secs);
    push(g, state);
    if g.rng.chance(30) {
        let spammer = g.spammer;
        let secs = g.historic_secs();
        let forged = g.state_of(i, spammer, secs);
        push(g, forged);
    }
    for _ in 0..g.rng.range(0, 6) {
        let secs = g.historic_secs();
        let root = g.root_of(i, secs);
        push(g, root);
        let r = g.roots.len() - 1;
        for _ in 0..g.rng.range(0, 4) {
            let secs = g.historic_secs();
            let c = g.comment_on_root(r, secs);
            push(g, c);
        }
    }
    for _ in 0..g.rng.range(0, 10) {
        let author = g.pick_contributor();
        let secs = g.historic_secs();
        let e = g.repo_event(i, author, secs);
        push(g, e);
    }
    if g.rng.chance(15) {
        // Hundreds of events the host rejects (a blacklisted author), inside L2 results.
        let spammer = g.spammer;
        for _ in 0..g.rng.range(100, 400) {
            let secs = g.historic_secs();
            let e = g.repo_event(i, spammer, secs);
            push(g, e);
        }
    }
    if g.rng.chance(15) {
        draw_burst(g, i, placed);
    }
}

/// A same-second burst larger than a page, spread over `a`/`A`/`q` so that no single-value
/// filter holds more than one page of same-second events (a REQ cannot page past that).
fn draw_burst(g: &mut Gen, i: usize, placed: &mut Vec<Placed>) {
    let at = g.placement(i);
    let cap = g.page_size(&at);
    if cap < 2 {
        return;
    }
    let secs = g.historic_secs();
    let n = g.rng.range(cap as u64 + 1, 3 * cap as u64);
    for k in 0..n {
        let letter = ['a', 'A', 'q'][(k % 3) as usize];
        let author = g.pick_contributor();
        let num = g.n();
        let e = meta(
            num,
            author,
            1111,
            secs,
            &[(letter, g.repos[i].coord.to_string())],
        );
        placed.push(Placed {
            relays: at.clone(),
            event: e,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_scenario_and_seeds_differ() {
        let a = Scenario::generate(3);
        assert_eq!(a, Scenario::generate(3));
        assert_ne!(a, Scenario::generate(4));
        let text = serde_json::to_string(&a).unwrap();
        let back: Scenario = serde_json::from_str(&text).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn small_page_caps_are_advertised() {
        for seed in 0..50 {
            for r in Scenario::generate(seed).relays {
                assert!(r.page_cap >= 50 || r.advertise_limits, "{r:?}");
            }
        }
    }
}
