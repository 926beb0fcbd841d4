//! The generator state shared by the world's drawing (`scenario.rs`) and the fault plan's
//! (`faults.rs`): the seeded random stream, event numbering and timestamps, and what was drawn
//! so far (relays, repositories, root events, authors).

use nostr::PublicKey;
use sync_core::{EventMeta, RepoCoord};

use crate::events::{announcement, key, meta};
use crate::rng::SimRng;

/// Our relay's URL (the host); never a sync target.
pub const OUR_URL: &str = "wss://our.grasp.sim";
/// Wall-clock seconds at the start of every run.
pub const WALL0: u64 = 1_700_000_000;
const DAY_SECS: u64 = 86_400;

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
    /// Repository owners, drawn in order.
    pub(crate) owners: Vec<PublicKey>,
    /// The effective page size per relay: `min(relay cap, config page_limit)`. Same-second
    /// groups on one filter value never exceed it (a REQ cannot page past such a group).
    pub(crate) page_sizes: std::collections::BTreeMap<String, usize>,
}

impl Gen {
    /// A generator over `rng` for a world of `relay_urls` (with their effective page sizes),
    /// whose events are written by `owners` and `contributors`.
    pub(crate) fn new(
        rng: SimRng,
        relay_urls: Vec<String>,
        contributors: Vec<PublicKey>,
        owners: Vec<PublicKey>,
        page_sizes: std::collections::BTreeMap<String, usize>,
    ) -> Self {
        Self {
            rng,
            next_n: 0,
            next_secs: 0,
            used_live_secs: std::collections::BTreeSet::new(),
            relay_urls,
            repos: Vec::new(),
            roots: Vec::new(),
            contributors,
            spammer: key(99),
            owners,
            page_sizes,
        }
    }

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
