//! A scenario: everything a run needs, drawn from a seed and then explicit (serde), so that a
//! failing run can be written out, shrunk by removing parts, and replayed as a regression.
//!
//! [`Scenario::generate`] draws the world (relays and their behaviour, repositories, events,
//! the core's configuration) here, with the generator state of [`crate::gen`], and the fault
//! plan in [`crate::faults`].

use nostr::PublicKey;
use serde::{Deserialize, Serialize};
use sync_core::historic::pagination::MIN_PROBED_PAGE;
use sync_core::{Config, EventMeta, RepoCoord};

use crate::events::{key, meta};
use crate::faults::{self, Timed};
use crate::gen::{Gen, RepoDraw};
use crate::rng::SimRng;

pub use crate::gen::{OUR_URL, WALL0};
const HOUR_MS: u64 = 3_600_000;

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

/// Whether a fake relay requires NIP-42 authentication (docs/spec.md §14). The simulated shell
/// always answers the challenge; what differs is what the relay does afterwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMode {
    /// No authentication.
    #[default]
    None,
    /// Refuses REQs with `CLOSED "auth-required:"` until the client authenticated: the first
    /// REQ of a connection sends the challenge, the client's AUTH arrives one round trip
    /// later; from then on the relay serves it.
    Accepts,
    /// Refuses every REQ with `CLOSED "auth-required:"`, authenticated or not (our key is
    /// not on its list). It never serves: like a dead relay for the oracle.
    Refuses,
}

impl AuthMode {
    /// Whether this is the default (left out of scenario JSON, so older files stay equal).
    #[must_use]
    pub fn is_none(&self) -> bool {
        *self == Self::None
    }
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
    /// A steady REQ rate cap (REQs per second, answered `CLOSED "rate-limited:"` beyond it)
    /// that is part of the relay's nature, not a fault: the liveness phase keeps it, so the
    /// core must pace its REQs to complete its sync (docs/architecture.md, "REQ pacing").
    #[serde(default)]
    pub steady_reqs_per_sec: Option<u32>,
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
    /// NIP-42 behaviour.
    #[serde(default, skip_serializing_if = "AuthMode::is_none")]
    pub auth: AuthMode,
    /// Results per REQ of tag and kind filters, all its filters together (newest first),
    /// never announced: a relay that applies a cap to the whole REQ rather than to each
    /// filter (docs/spec.md §7.4). At least `page_cap` when drawn. `ids` REQs keep their own
    /// cap. `None`: only `page_cap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub req_cap: Option<usize>,
}

impl RelaySpec {
    /// Whether the relay never serves us (dead, or refusing us authenticated): outside the
    /// convergence check and the "settled" condition.
    #[must_use]
    pub fn never_serves(&self) -> bool {
        self.dead_forever || self.auth == AuthMode::Refuses
    }
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

pub(crate) fn draw_relay(i: usize, rng: &mut SimRng) -> RelaySpec {
    let page_cap = rng.pick(&[1usize, 2, 5, 20, 30, 50, 100, 150, 500, 500]);
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
        // Caps of 20 and 30 are announced half of the time: the core must learn the others
        // (docs/spec.md §7.4). Caps below the smallest page it probes are always announced.
        advertise_limits: page_cap < MIN_PROBED_PAGE || rng.chance(50),
        neg,
        reqs_per_sec: if rng.chance(20) {
            Some(rng.pick(&[5u32, 20]))
        } else {
            None
        },
        steady_reqs_per_sec: None,
        notice_on_rate_limit: rng.chance(50),
        latency_ms: (rng.range(1, 20), rng.range(20, 300)),
        connect_latency_ms: rng.range(20, 2_000),
        slow_connect_percent: if rng.chance(10) { 30 } else { 0 },
        eose_delay_ms: rng.range(0, 500),
        dead_forever: false,
        auth: AuthMode::None,
        req_cap: None,
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
        // NIP-42 relays come from their own stream: the rest of every seed's world is drawn as
        // before this behaviour existed.
        let mut auth_rng = SimRng::new(seed, 42);
        for r in &mut relays {
            r.auth = match auth_rng.range(0, 99) {
                0..=7 => AuthMode::Accepts,
                8..=11 => AuthMode::Refuses,
                _ => AuthMode::None,
            };
        }
        // So do relays capping whole REQs: one to three filters' worth of results, never below
        // the per-filter cap, so a REQ of one filter and the events drawn are as before.
        let mut req_cap_rng = SimRng::new(seed, 74);
        for r in &mut relays {
            if req_cap_rng.chance(25) {
                r.req_cap =
                    Some(req_cap_rng.pick(&[1usize, 1, 2, 3]) * r.page_cap.max(MIN_PROBED_PAGE));
            }
        }
        // And relays accepting fewer filters per REQ than the core's default, announced or
        // not ("too many filters" then teaches it, docs/spec.md §8), from a stream of their
        // own for the same reason.
        let mut filters_rng = SimRng::new(seed, 75);
        for r in &mut relays {
            if filters_rng.chance(15) {
                r.max_filters = filters_rng.pick(&[1usize, 2, 5]);
            }
        }
        let config = draw_config(&mut rng);
        let owners: Vec<PublicKey> = (0..rng.range(1, 3) as u32).map(key).collect();
        let contributors: Vec<PublicKey> = (10..10 + rng.range(2, 4) as u32).map(key).collect();
        let mut g = Gen::new(
            rng,
            relays.iter().map(|r| r.url.clone()).collect(),
            contributors,
            owners,
            relays
                .iter()
                .map(|r| (r.url.clone(), r.page_cap.min(config.page_limit)))
                .collect(),
        );
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
        scenario.faults = faults::draw_plan(&mut g, scenario.safety_ms);
        faults::add_restarts(seed, &mut scenario.faults, scenario.safety_ms);
        // Steady rate caps come from their own stream, so adding them changed no other draw.
        let mut caps = SimRng::new(seed, 3);
        for r in &mut scenario.relays {
            if caps.chance(10) {
                r.steady_reqs_per_sec = Some(caps.pick(&[1u32, 2, 5]));
            }
        }
        // Sync+ worlds come from their own stream too (docs/spec.md §15).
        crate::sync_plus::draw(&mut scenario);
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
    fn tiny_page_caps_are_advertised_small_ones_not_always() {
        let mut silent_small = 0;
        for seed in 0..200 {
            for r in Scenario::generate(seed).relays {
                assert!(r.page_cap >= MIN_PROBED_PAGE || r.advertise_limits, "{r:?}");
                silent_small += usize::from(r.page_cap < 50 && !r.advertise_limits);
            }
        }
        assert!(silent_small > 0, "some relays cap below 50 without NIP-11");
    }

    #[test]
    fn the_sweep_holds_both_nip42_relays() {
        let (mut accepts, mut refuses) = (0, 0);
        for seed in 0..1000 {
            for r in Scenario::generate(seed).relays {
                accepts += usize::from(r.auth == AuthMode::Accepts);
                refuses += usize::from(r.auth == AuthMode::Refuses);
            }
        }
        eprintln!("seeds 0..1000: {accepts} relays accept after AUTH, {refuses} refuse us");
        assert!(accepts >= 50 && refuses >= 25, "{accepts} / {refuses}");
    }
}
