//! Deterministic NIP-34 data for the demo and benchmarks: repository announcements (30617)
//! listing the syncing relay and some of the source relays, state events (30618), patches
//! (1617), pull requests (1618), issues (1621), NIP-22 comments (1111) on roots and on repos,
//! replies (1622) and status events (1630–1633).
//!
//! Everything (keys, contents, timestamps, placement on relays) comes from the seed, so event
//! ids are the same on every run with the same seed and relay URLs (signatures differ: BIP-340
//! signing draws auxiliary randomness, which does not enter the id).

use std::collections::BTreeMap;

use nostr::{Event, EventBuilder, EventId, Keys, Kind, SecretKey, Tag, Timestamp};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Base of the historic timestamps: 2025-01-01T00:00:00Z (fixed, so ids are reproducible).
const BASE_CREATED_AT_SECS: u64 = 1_735_689_600;
/// Historic events are spread over this many seconds after the base (about 30 days); the grid
/// is coarse enough that many events share a second (pagination must not lose them).
const SPREAD_SECS: u64 = 30 * 24 * 3600;
/// Events per repository, on average.
const EVENTS_PER_REPO: usize = 60;
/// One repository in this many (and always the last one) does not list the syncing relay: the
/// default GRASP policy must reject it, and none of its events may end up in the syncing
/// relay's store.
const FOREIGN_REPO_EVERY: usize = 8;
/// At least this many repositories (more than the relays `must_list` can name, so the last,
/// foreign one never has to carry a `must_list` relay).
const MIN_REPOS: usize = 6;

/// What the generator needs to know about the relays.
#[derive(Clone, Debug)]
pub struct GeneratorSpec {
    /// Seed of everything.
    pub seed: u64,
    /// Total events to generate (announcements and state events included).
    pub events: usize,
    /// The syncing relay's URL (listed in most announcements).
    pub our_url: String,
    /// The URL each source relay is known by, as announcements list it.
    pub source_urls: Vec<String>,
    /// Sources that must be listed by at least one announcement (e.g. one that is only
    /// discoverable that way).
    pub must_list: Vec<usize>,
}

/// Whether the syncing relay should end up holding an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// It belongs to a repository whose announcement lists the syncing relay.
    Synced,
    /// It belongs to a repository that does not list the syncing relay: it must not be synced.
    Foreign,
}

/// One generated repository.
#[derive(Clone, Debug)]
pub struct Repo {
    /// `30617:<owner>:<d>`.
    pub coordinate: String,
    /// The `d` identifier.
    pub identifier: String,
    /// Owner keys (signs the announcement and state).
    pub owner: Keys,
    /// Indexes of the source relays listed in its announcement.
    pub relays: Vec<usize>,
    /// Whether the announcement lists the syncing relay.
    pub scope: Scope,
    /// Ids of its root events (patches, PRs, issues), for live follow-ups.
    pub roots: Vec<EventId>,
}

/// An event and the source relays it is placed on (at least one).
#[derive(Clone, Debug)]
pub struct Placed {
    /// The signed event.
    pub event: Event,
    /// Indexes into `GeneratorSpec::source_urls`.
    pub relays: Vec<usize>,
}

/// The generated data set.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// Every repository.
    pub repos: Vec<Repo>,
    /// Every event with its placement, in generation order.
    pub events: Vec<Placed>,
    /// Scope of every generated event (and of live events added later).
    pub scope: BTreeMap<EventId, Scope>,
    /// Authors used for issues, comments and patches.
    pub users: Vec<Keys>,
}

/// A deterministic random source with small helpers.
pub(crate) struct Dice(ChaCha8Rng);

impl Dice {
    /// A stream for `(seed, stream)`.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self(rng)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.0.next_u64() % 100 < percent
    }

    /// 64 hex characters (a fake commit id).
    pub(crate) fn hex40(&mut self) -> String {
        (0..5)
            .map(|_| format!("{:08x}", self.0.next_u32()))
            .collect()
    }

    /// Deterministic keys.
    pub(crate) fn keys(&mut self) -> Keys {
        loop {
            let mut bytes = [0u8; 32];
            self.0.fill_bytes(&mut bytes);
            if let Ok(secret) = SecretKey::from_slice(&bytes) {
                return Keys::new(secret);
            }
        }
    }
}

/// Generates the corpus for `spec`.
///
/// # Panics
/// Never in practice: every tag is built from valid parts and every event is signed with
/// valid keys (a failure would be a bug in this generator, not bad input).
#[must_use]
pub fn generate(spec: &GeneratorSpec) -> Corpus {
    let mut dice = Dice::new(spec.seed, 0);
    let users: Vec<Keys> = (0..12).map(|_| dice.keys()).collect();
    let repo_count = (spec.events / EVENTS_PER_REPO).max(MIN_REPOS);
    let mut corpus = Corpus {
        repos: Vec::new(),
        events: Vec::new(),
        scope: BTreeMap::new(),
        users,
    };
    for index in 0..repo_count {
        let foreign =
            index % FOREIGN_REPO_EVERY == FOREIGN_REPO_EVERY - 1 || index + 1 == repo_count;
        let repo = new_repo(spec, &mut dice, &corpus.users, index, foreign);
        let scope = repo.scope;
        corpus.repos.push(repo);
        let repo = &corpus.repos[index];
        let relays = repo.relays.clone();
        let events = [announcement(spec, repo), state_event(repo, &mut dice)];
        for event in events {
            corpus.push(event, relays.clone(), scope);
        }
    }
    let mut slot = 0u64;
    while corpus.events.len() < spec.events {
        let repo_index = dice.below(repo_count);
        slot += 1;
        let created_at = Timestamp::from(
            BASE_CREATED_AT_SECS + (slot * 97 + dice.below(40) as u64) % SPREAD_SECS,
        );
        let event = follow_up(&mut corpus, &mut dice, repo_index, created_at);
        let repo = &corpus.repos[repo_index];
        let (placement, scope) = (place(&mut dice, &repo.relays), repo.scope);
        corpus.push(event, placement, scope);
    }
    corpus
}

impl Corpus {
    /// Records `event` placed on `relays` with `scope`; root events are remembered per repo.
    pub(crate) fn push(&mut self, event: Event, relays: Vec<usize>, scope: Scope) {
        self.scope.insert(event.id, scope);
        self.events.push(Placed { event, relays });
    }

    /// The number of events in each scope: `(synced, foreign)`.
    #[must_use]
    pub fn scope_counts(&self) -> (usize, usize) {
        let foreign = self
            .scope
            .values()
            .filter(|s| **s == Scope::Foreign)
            .count();
        (self.scope.len() - foreign, foreign)
    }
}

/// A repository: owner, identifier, listed relays (two or three sources, `must_list` spread
/// over the first repositories), and whether it lists the syncing relay.
fn new_repo(
    spec: &GeneratorSpec,
    dice: &mut Dice,
    users: &[Keys],
    index: usize,
    foreign: bool,
) -> Repo {
    let owner = users[index % users.len()].clone();
    let identifier = format!("repo-{index:03}");
    let sources = spec.source_urls.len();
    let mut relays = Vec::new();
    if let Some(&must) = spec.must_list.get(index) {
        relays.push(must);
    }
    let wanted = 2 + dice.below(2);
    while relays.len() < wanted.min(sources) {
        let candidate = dice.below(sources);
        if !relays.contains(&candidate) {
            relays.push(candidate);
        }
    }
    Repo {
        coordinate: format!("30617:{}:{identifier}", owner.public_key().to_hex()),
        identifier,
        owner,
        relays,
        scope: if foreign {
            Scope::Foreign
        } else {
            Scope::Synced
        },
        roots: Vec::new(),
    }
}

/// Where a follow-up event goes: usually one of the repo's relays, sometimes two.
fn place(dice: &mut Dice, relays: &[usize]) -> Vec<usize> {
    let first = relays[dice.below(relays.len())];
    let mut placed = vec![first];
    if relays.len() > 1 && dice.chance(25) {
        let second = relays[dice.below(relays.len())];
        if second != first {
            placed.push(second);
        }
    }
    placed
}

/// Builds a tag from string parts.
pub(crate) fn tag<const N: usize>(parts: [&str; N]) -> Tag {
    Tag::parse(parts).expect("generator tags are valid")
}

/// Signs with `keys`.
pub(crate) fn sign(builder: EventBuilder, keys: &Keys) -> Event {
    builder
        .sign_with_keys(keys)
        .expect("signing with valid keys")
}

/// The repository announcement: `d`, `name`, `relays` (ours unless foreign, plus its sources),
/// `clone` URLs on the same hosts (GRASP servers serve git and relay on one host).
fn announcement(spec: &GeneratorSpec, repo: &Repo) -> Event {
    let mut relay_urls: Vec<&str> = Vec::new();
    if repo.scope == Scope::Synced {
        relay_urls.push(&spec.our_url);
    }
    relay_urls.extend(repo.relays.iter().map(|i| spec.source_urls[*i].as_str()));
    let npub = repo.owner.public_key().to_hex();
    let clones: Vec<String> = relay_urls
        .iter()
        .map(|url| {
            let host = url.trim_start_matches("ws://").trim_start_matches("wss://");
            format!("http://{host}/{npub}/{}.git", repo.identifier)
        })
        .collect();
    let mut relays_tag = vec!["relays"];
    relays_tag.extend(relay_urls.iter().copied());
    let mut clone_tag = vec!["clone"];
    clone_tag.extend(clones.iter().map(String::as_str));
    let tags = vec![
        tag(["d", &repo.identifier]),
        tag(["name", &repo.identifier]),
        tag([
            "description",
            "a repository generated by the grasp-sync demo",
        ]),
        Tag::parse(relays_tag).expect("relays tag"),
        Tag::parse(clone_tag).expect("clone tag"),
    ];
    let builder = EventBuilder::new(Kind::from(30617), "")
        .tags(tags)
        .custom_created_at(Timestamp::from(BASE_CREATED_AT_SECS));
    sign(builder, &repo.owner)
}

/// The repository state: `d` and two refs.
fn state_event(repo: &Repo, dice: &mut Dice) -> Event {
    let commit = dice.hex40();
    let tags = vec![
        tag(["d", &repo.identifier]),
        tag(["refs/heads/main", &commit]),
        tag(["HEAD", "ref: refs/heads/main"]),
    ];
    let builder = EventBuilder::new(Kind::from(30618), "")
        .tags(tags)
        .custom_created_at(Timestamp::from(BASE_CREATED_AT_SECS + 60));
    sign(builder, &repo.owner)
}

/// One follow-up event in repo `repo_index`: a root (patch, PR, issue), or a comment, reply
/// or status on an existing root, or a NIP-22 comment on the repository itself.
pub(crate) fn follow_up(
    corpus: &mut Corpus,
    dice: &mut Dice,
    repo_index: usize,
    created_at: Timestamp,
) -> Event {
    let author = corpus.users[dice.below(corpus.users.len())].clone();
    let repo = &corpus.repos[repo_index];
    let coord = repo.coordinate.clone();
    let root = (!repo.roots.is_empty()).then(|| repo.roots[dice.below(repo.roots.len())]);
    let roll = dice.below(100);
    let (builder, is_root) = match (roll, root) {
        (0..=44, _) | (_, None) => (root_event(dice, &coord, roll), true),
        (45..=69, Some(root)) => (comment(dice, &root.to_hex(), created_at), false),
        (70..=79, Some(root)) => (reply(&root.to_hex(), &coord), false),
        (80..=89, Some(root)) => (status(dice, &root.to_hex(), &coord), false),
        (_, Some(_)) => (repo_comment(&coord), false),
    };
    let event = sign(builder.custom_created_at(created_at), &author);
    if is_root {
        corpus.repos[repo_index].roots.push(event.id);
    }
    event
}

/// A patch (1617), pull request (1618) or issue (1621) tagging the repository with `a`.
fn root_event(dice: &mut Dice, coord: &str, roll: usize) -> EventBuilder {
    let n = dice.hex40();
    let (kind, content, subject) = match roll % 3 {
        0 => (
            1617,
            format!("From {n}\nSubject: [PATCH] change {n}\n\n--- a/x\n+++ b/x\n"),
            None,
        ),
        1 => (
            1618,
            String::new(),
            Some(format!("pull request {}", &n[..8])),
        ),
        _ => (
            1621,
            format!("issue body {n}"),
            Some(format!("issue {}", &n[..8])),
        ),
    };
    let mut tags = vec![tag(["a", coord])];
    if let Some(subject) = subject {
        tags.push(tag(["subject", &subject]));
    }
    if kind == 1618 {
        tags.push(tag(["c", &n]));
        tags.push(tag(["clone", "http://example.invalid/pr.git"]));
    }
    EventBuilder::new(Kind::from(kind), content).tags(tags)
}

/// A NIP-22 comment (1111) on a root event (`E`, `K`, `e`, `k`).
fn comment(dice: &mut Dice, root: &str, created_at: Timestamp) -> EventBuilder {
    let body = format!(
        "comment {} at {}",
        dice.below(1_000_000),
        created_at.as_secs()
    );
    EventBuilder::new(Kind::from(1111), body).tags([
        tag(["E", root]),
        tag(["K", "1621"]),
        tag(["e", root]),
        tag(["k", "1621"]),
    ])
}

/// A NIP-22 comment (1111) on the repository itself (`A`, `K`).
fn repo_comment(coord: &str) -> EventBuilder {
    EventBuilder::new(Kind::from(1111), "a comment on the repository").tags([
        tag(["A", coord]),
        tag(["K", "30617"]),
        tag(["a", coord]),
        tag(["k", "30617"]),
    ])
}

/// A reply (1622) to a root event, also tagging the repository.
fn reply(root: &str, coord: &str) -> EventBuilder {
    EventBuilder::new(Kind::from(1622), "a reply")
        .tags([tag(["e", root, "", "root"]), tag(["a", coord])])
}

/// A status event (1630 open … 1633 draft) on a root event.
fn status(dice: &mut Dice, root: &str, coord: &str) -> EventBuilder {
    let kind = 1630 + dice.below(4) as u16;
    EventBuilder::new(Kind::from(kind), "").tags([tag(["e", root, "", "root"]), tag(["a", coord])])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(events: usize) -> GeneratorSpec {
        GeneratorSpec {
            seed: 3,
            events,
            our_url: "ws://127.0.0.1:7777".into(),
            source_urls: (0..4)
                .map(|i| format!("ws://127.0.0.1:{}", 9000 + i))
                .collect(),
            must_list: vec![3],
        }
    }

    #[test]
    fn same_seed_same_ids_and_requested_size() {
        let a = generate(&spec(400));
        let b = generate(&spec(400));
        assert_eq!(a.events.len(), 400);
        let ids = |c: &Corpus| c.events.iter().map(|p| p.event.id).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        let c = generate(&GeneratorSpec {
            seed: 4,
            ..spec(400)
        });
        assert_ne!(ids(&a), ids(&c));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]
        /// For any seed and size: exactly the requested number of events, each placed on at
        /// least one relay its repository lists, and every event's scope is its repository's.
        #[test]
        fn placement_stays_within_each_repositorys_relays(seed in 0u64..1_000, events in 50usize..120) {
            let corpus = generate(&GeneratorSpec { seed, ..spec(events) });
            proptest::prop_assert_eq!(corpus.events.len(), events);
            let by_coord: std::collections::BTreeMap<&str, &Repo> =
                corpus.repos.iter().map(|r| (r.coordinate.as_str(), r)).collect();
            for placed in &corpus.events {
                proptest::prop_assert!(!placed.relays.is_empty());
                let coord = placed.event.tags.iter().find_map(|t| {
                    let parts = t.as_slice();
                    (parts.len() > 1 && ["a", "A"].contains(&parts[0].as_str()))
                        .then(|| parts[1].clone())
                });
                let repo = match coord {
                    Some(coord) => by_coord[coord.as_str()],
                    // Announcements, state and root-only replies: find by author and d, or skip.
                    None => continue,
                };
                for relay in &placed.relays {
                    proptest::prop_assert!(repo.relays.contains(relay));
                }
                proptest::prop_assert_eq!(corpus.scope[&placed.event.id], repo.scope);
            }
        }
    }

    #[test]
    fn announcements_list_us_and_their_sources_and_every_kind_appears() {
        let corpus = generate(&spec(600));
        let kinds: std::collections::BTreeSet<u16> = corpus
            .events
            .iter()
            .map(|p| p.event.kind.as_u16())
            .collect();
        for kind in [30617, 30618, 1617, 1618, 1621, 1111, 1622] {
            assert!(kinds.contains(&kind), "kind {kind} missing: {kinds:?}");
        }
        assert!(corpus.repos[0].relays.contains(&3), "must_list honoured");
        for placed in &corpus.events {
            assert!(!placed.relays.is_empty());
            assert!(placed.event.verify().is_ok());
        }
        let (synced, foreign) = corpus.scope_counts();
        assert!(synced > 0 && foreign > 0, "{synced} {foreign}");
        let ann = corpus
            .events
            .iter()
            .find(|p| p.event.kind.as_u16() == 30617)
            .expect("announcement");
        let relays = ann
            .event
            .tags
            .iter()
            .find(|t| t.kind().to_string() == "relays");
        let relays = relays.expect("relays tag").as_slice().to_vec();
        assert!(
            relays.contains(&"ws://127.0.0.1:7777".to_string()),
            "{relays:?}"
        );
    }
}
