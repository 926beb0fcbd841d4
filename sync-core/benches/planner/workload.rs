//! The seeded workload: repositories, their relays and their root events, shaped like the
//! cost model of `notes/performance-anchors.md` §4.3 (every repository lists one of 4 "GRASP"
//! relays plus Zipf-ish extras drawn as `u² · K`; root events are skewed towards popular
//! repositories the same way).

use std::collections::BTreeSet;

use nostr::{EventId, Kind, PublicKey, Timestamp};
use sync_core::EventMeta;

/// Wall-clock seconds of the first announcement.
pub(crate) const WALL0: u64 = 1_700_000_000;

/// A small deterministic generator (splitmix64): the workload depends on the seed only.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Zipf-ish index in `0..n`: `⌊u² · n⌋` (index 0 is the most popular).
    pub(crate) fn skewed(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((u * u * n as f64) as usize).min(n - 1)
    }

    /// 32 random bytes.
    pub(crate) fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}

/// The shape of one workload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    /// Repositories.
    pub(crate) repos: usize,
    /// Root events (patches, PRs, issues), spread over the repositories.
    pub(crate) roots: usize,
    /// Distinct relays.
    pub(crate) relays: usize,
    /// Relays per repository (one GRASP relay plus extras).
    pub(crate) relays_per_repo: usize,
}

/// One repository of the workload.
#[derive(Clone, Debug)]
pub(crate) struct Repo {
    /// The announcement as the host would report it.
    pub(crate) announcement: EventMeta,
    /// `30617:<owner>:<d>`.
    pub(crate) coord: String,
    /// Indexes into [`Workload::relay_urls`].
    pub(crate) relays: Vec<usize>,
}

/// A generated workload: repositories with their relays, and root events.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    /// The shape it was generated with.
    pub(crate) shape: Shape,
    /// Relay URLs (index 0..4 are the GRASP relays).
    pub(crate) relay_urls: Vec<String>,
    /// Repositories.
    pub(crate) repos: Vec<Repo>,
    /// Root events with the index of the repository they tag.
    pub(crate) roots: Vec<(EventMeta, usize)>,
}

/// The relay URL of index `k`.
pub(crate) fn relay_url(k: usize) -> String {
    if k < 4 {
        format!("wss://grasp{k}.example")
    } else {
        format!("wss://relay{k}.example")
    }
}

/// An announcement by a random owner, listing `relays`.
pub(crate) fn announcement(
    rng: &mut Rng,
    n: usize,
    relays: &[String],
    created_at: u64,
) -> EventMeta {
    let owner = PublicKey::from_byte_array(rng.bytes32());
    EventMeta {
        id: EventId::from_byte_array(rng.bytes32()),
        author: owner,
        kind: Kind::from(30617u16),
        created_at: Timestamp::from(created_at),
        tags: vec![('d', format!("repo-{n}"))],
        relays: relays.to_vec(),
        clone_urls: Vec::new(),
        maintainers: Vec::new(),
    }
}

/// A root event (patch, PR or issue) tagging `coord`.
pub(crate) fn root(rng: &mut Rng, coord: &str, created_at: u64) -> EventMeta {
    let kind = [1617u16, 1618, 1621][(rng.next_u64() % 3) as usize];
    EventMeta {
        id: EventId::from_byte_array(rng.bytes32()),
        author: PublicKey::from_byte_array(rng.bytes32()),
        kind: Kind::from(kind),
        created_at: Timestamp::from(created_at),
        tags: vec![('a', coord.to_string())],
        relays: Vec::new(),
        clone_urls: Vec::new(),
        maintainers: Vec::new(),
    }
}

/// A comment (kind 1111) replying to root `id`: the steady-state traffic on live subscriptions.
pub(crate) fn comment(rng: &mut Rng, id: &EventId, created_at: u64) -> EventMeta {
    EventMeta {
        id: EventId::from_byte_array(rng.bytes32()),
        author: PublicKey::from_byte_array(rng.bytes32()),
        kind: Kind::from(1111u16),
        created_at: Timestamp::from(created_at),
        tags: vec![('E', id.to_hex()), ('e', id.to_hex())],
        relays: Vec::new(),
        clone_urls: Vec::new(),
        maintainers: Vec::new(),
    }
}

/// Relay indexes for one repository: one of the 4 GRASP relays plus skewed extras.
pub(crate) fn pick_relays(rng: &mut Rng, shape: &Shape) -> Vec<usize> {
    let mut set = BTreeSet::from([(rng.next_u64() % 4) as usize]);
    let want = shape.relays_per_repo.min(shape.relays);
    let mut tries = 0;
    while set.len() < want && tries < 64 {
        set.insert(rng.skewed(shape.relays));
        tries += 1;
    }
    set.into_iter().collect()
}

impl Workload {
    /// Generates a workload of `shape` from `seed`.
    pub(crate) fn generate(shape: Shape, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let relay_urls: Vec<String> = (0..shape.relays).map(relay_url).collect();
        let repos: Vec<Repo> = (0..shape.repos)
            .map(|n| {
                let relays = pick_relays(&mut rng, &shape);
                let urls: Vec<String> = relays.iter().map(|k| relay_urls[*k].clone()).collect();
                let announcement = announcement(&mut rng, n, &urls, WALL0 - 86_400);
                let coord = format!("30617:{}:repo-{n}", announcement.author.to_hex());
                Repo {
                    announcement,
                    coord,
                    relays,
                }
            })
            .collect();
        let roots = (0..shape.roots)
            .map(|i| {
                let r = rng.skewed(shape.repos);
                (
                    root(&mut rng, &repos[r].coord, WALL0 - 3_600 + i as u64 % 3_600),
                    r,
                )
            })
            .collect();
        Self {
            shape,
            relay_urls,
            repos,
            roots,
        }
    }

    /// `(relay, item)` pairs of the target: per relay, `Announcements` plus state and repo
    /// events of every repository listing it plus the roots of those repositories.
    pub(crate) fn pairs(&self) -> usize {
        let mut roots_per_repo = vec![0usize; self.repos.len()];
        for (_, r) in &self.roots {
            roots_per_repo[*r] += 1;
        }
        let used: BTreeSet<usize> = self.repos.iter().flat_map(|r| r.relays.clone()).collect();
        let per_repo: usize = self
            .repos
            .iter()
            .zip(&roots_per_repo)
            .map(|(r, n)| r.relays.len() * (2 + n))
            .sum();
        per_repo + used.len()
    }

    /// Items (state + repo events + roots + L1) the busiest relay wants.
    pub(crate) fn busiest_relay_items(&self) -> usize {
        let mut per_relay = vec![0usize; self.shape.relays];
        let mut roots_per_repo = vec![0usize; self.repos.len()];
        for (_, r) in &self.roots {
            roots_per_repo[*r] += 1;
        }
        for (repo, n) in self.repos.iter().zip(&roots_per_repo) {
            for k in &repo.relays {
                per_relay[*k] += 2 + n;
            }
        }
        per_relay.into_iter().max().unwrap_or(0) + 1
    }
}
