//! Sync+ worlds (docs/spec.md §15) and what the oracle may demand of them.
//!
//! [`draw`] turns on Sync+ for some seeds (from a stream of its own, so every other draw of
//! the seed is unchanged) and adds participants who publish their comments, issues and
//! patches only to their outbox relays, relay lists that change, participants beyond the
//! bounds and outbox relays that are down.
//!
//! [`want`] is the oracle's side: from the host's final store only, per repository its
//! participants (owner, maintainers, authors of stored events tagging it or its roots) and
//! their newest stored relay lists. Rotation (docs/spec.md §15) makes the followed set of a
//! repository with more participants than `sync_plus_max_authors_per_repo` change hourly, so
//! the oracle demands Sync+ coverage only of repositories within the bounds: at most that many
//! participants (all followed, whatever the epoch) whose lists name at most
//! `sync_plus_max_relays_per_repo` relays besides the repository's own (all used).

use std::collections::{BTreeMap, BTreeSet};

use nostr::{EventId, PublicKey};
use sync_core::{
    classify_host, EventMeta, HostClass, RelayUrl, RepoCoord, KIND_GRASP_LIST, KIND_RELAY_LIST,
};

use crate::events::{key, meta};
use crate::faults::{Fault, Timed};
use crate::rng::SimRng;
use crate::scenario::{draw_relay, Placed, Scenario, OUR_URL, WALL0};
use crate::world::World;

/// Event numbers of Sync+ events start here (the world's own counter stays far below).
const N_BASE: u64 = 1 << 40;

/// What Sync+ must cover at the end of a run, per relay.
#[derive(Debug, Default)]
pub struct PlusWant {
    /// Relay → repositories whose conversation it must serve us through Sync+.
    pub repos: BTreeMap<RelayUrl, BTreeSet<RepoCoord>>,
    /// Relay → participants whose relay lists it must serve us.
    pub list_authors: BTreeMap<RelayUrl, BTreeSet<PublicKey>>,
}

/// The participants of `coord` (announced by `ann`) as the host's store shows them.
fn participants(world: &World, coord: &RepoCoord, ann: &EventMeta) -> BTreeSet<PublicKey> {
    let store = &world.host.store;
    let roots: BTreeSet<String> = store
        .values()
        .filter(|e| e.is_root() && e.tagged_repos().contains(coord))
        .map(|e| e.id.to_hex())
        .collect();
    let mut out: BTreeSet<PublicKey> = BTreeSet::from([coord.owner]);
    out.extend(ann.maintainers.iter().copied());
    for e in store.values() {
        if e.own_coord().is_some() || e.is_relay_list() {
            continue;
        }
        let tags_root = ['e', 'E', 'q']
            .iter()
            .any(|l| e.tag_values(*l).any(|v| roots.contains(v)));
        if tags_root || e.tagged_repos().contains(coord) {
            out.insert(e.author);
        }
    }
    out
}

/// The relays `author`'s newest stored relay lists name, canonical and vetted.
fn lists_of(world: &World, author: &PublicKey) -> BTreeSet<RelayUrl> {
    let allow_private = world.core.config().allow_private_targets;
    let mut newest: BTreeMap<u16, &EventMeta> = BTreeMap::new();
    for e in world.host.store.values() {
        if e.author == *author && e.is_relay_list() {
            let slot = newest.entry(e.kind_u16()).or_insert(e);
            if crate::events::newer(e, slot) {
                *slot = e;
            }
        }
    }
    newest
        .values()
        .flat_map(|e| e.relays.iter())
        .filter_map(|u| RelayUrl::parse(u))
        .filter(|u| allow_private || !matches!(classify_host(u.host()), HostClass::NonGlobal(_)))
        .collect()
}

/// What the oracle demands of Sync+ (empty when it is off); see the module docs.
#[must_use]
pub fn want(world: &World) -> PlusWant {
    let mut out = PlusWant::default();
    let cfg = world.core.config();
    if !cfg.sync_plus {
        return out;
    }
    let own: BTreeSet<RelayUrl> = cfg
        .own_relay_urls
        .iter()
        .filter_map(|u| RelayUrl::parse(u))
        .collect();
    for (coord, ann_id) in &world.host.repos {
        let ann = &world.host.store[ann_id];
        let listed: BTreeSet<RelayUrl> = world
            .host
            .listed_relays(ann)
            .difference(&own)
            .cloned()
            .collect();
        let people = participants(world, coord, ann);
        if people.len() > cfg.sync_plus_max_authors_per_repo {
            continue;
        }
        for r in &listed {
            out.list_authors
                .entry(r.clone())
                .or_default()
                .extend(&people);
        }
        let relays: BTreeSet<RelayUrl> = people
            .iter()
            .flat_map(|p| lists_of(world, p))
            .filter(|u| !own.contains(u) && !listed.contains(u))
            .collect();
        if relays.len() > cfg.sync_plus_max_relays_per_repo {
            continue;
        }
        for r in relays {
            out.repos.entry(r).or_default().insert(coord.clone());
        }
    }
    out
}

/// A relay list of `author` (kind 10002 `r` tags, or kind 10317 `g` tags) naming `relays`.
fn relay_list(n: u64, author: PublicKey, grasp: bool, secs: u64, relays: &[String]) -> EventMeta {
    let kind = if grasp {
        KIND_GRASP_LIST
    } else {
        KIND_RELAY_LIST
    };
    let mut e = meta(n, author, kind, secs, &[]);
    e.relays = relays.to_vec();
    e
}

/// The canonical relays (not ours) an announcement in `initial` lists.
fn announced_relays(ann: &EventMeta) -> Vec<String> {
    let ours = RelayUrl::parse(OUR_URL);
    ann.relays
        .iter()
        .filter_map(|u| RelayUrl::parse(u))
        .filter(|u| Some(u) != ours.as_ref() && !u.as_str().contains("unreachable"))
        .map(|u| u.as_str().to_string())
        .collect()
}

/// Turns Sync+ on for about a third of the seeds and adds its world (see the module docs).
pub(crate) fn draw(s: &mut Scenario) {
    let mut rng = SimRng::new(s.seed, 15);
    if !rng.chance(35) {
        return;
    }
    s.config.sync_plus = true;
    // Mostly within the bounds (the oracle demands those), sometimes beyond them.
    s.config.sync_plus_max_authors_per_repo = rng.pick(&[1usize, 4, 32, 32, 32, 32]);
    s.config.sync_plus_max_relays_per_repo = rng.pick(&[1usize, 2, 24, 24, 24]);
    let anns: Vec<EventMeta> = s
        .initial
        .iter()
        .map(|p| &p.event)
        .filter(|e| e.own_coord().is_some())
        .cloned()
        .collect();
    let outboxes: Vec<String> = (0..rng.range(1, 3))
        .map(|i| format!("wss://o{i}.sim"))
        .collect();
    for (i, url) in outboxes.iter().enumerate() {
        let mut spec = draw_relay(10 + i, &mut rng);
        spec.url = url.clone();
        spec.dead_forever = rng.chance(15);
        s.relays.push(spec);
    }
    let mut n = N_BASE;
    let mut next = || {
        n += 1;
        n
    };
    for p in 0..rng.range(1, 5) as u32 {
        let Some(ann) = anns.get(rng.below(anns.len() as u64) as usize) else {
            return;
        };
        let coord = ann.own_coord().expect("announcement");
        let home = announced_relays(ann);
        if home.is_empty() {
            continue;
        }
        let author = key(50 + p);
        let secs = WALL0 - 5 * 86_400 + u64::from(p) * 100;
        let entry = meta(next(), author, 1621, secs, &[('a', coord.to_string())]);
        s.initial.push(Placed {
            relays: home.clone(),
            event: entry.clone(),
        });
        let mine: Vec<String> = outboxes
            .iter()
            .filter(|_| rng.chance(60))
            .cloned()
            .collect();
        let mine = if mine.is_empty() {
            vec![rng.pick(&outboxes)]
        } else {
            mine
        };
        let mut listed = mine.clone();
        if rng.chance(20) {
            listed.push("ws://127.0.0.1:7777".into());
        }
        let grasp = rng.chance(30);
        if rng.chance(30) {
            // An older list naming another relay: replaced by the newer one.
            let old = relay_list(next(), author, grasp, secs + 1, &[rng.pick(&outboxes)]);
            s.initial.push(Placed {
                relays: home.clone(),
                event: old,
            });
        }
        let list = relay_list(next(), author, grasp, secs + 2, &listed);
        s.initial.push(Placed {
            relays: home.clone(),
            event: list,
        });
        let issue = meta(next(), author, 1621, secs + 3, &[('a', coord.to_string())]);
        let reply = meta(next(), author, 1111, secs + 4, &[('E', entry.id.to_hex())]);
        for e in [issue, reply] {
            s.initial.push(Placed {
                relays: mine.clone(),
                event: e,
            });
        }
        draw_live(
            s, &mut rng, &mut next, author, &entry.id, &mine, &home, grasp, &outboxes,
        );
    }
}

/// Live Sync+ events during the safety phase: a comment on the outbox relays, sometimes a
/// newer relay list naming other relays, and an outbox relay going down for a while.
#[allow(clippy::too_many_arguments, reason = "one draw with its context")]
fn draw_live(
    s: &mut Scenario,
    rng: &mut SimRng,
    next: &mut impl FnMut() -> u64,
    author: PublicKey,
    root: &EventId,
    mine: &[String],
    home: &[String],
    grasp: bool,
    outboxes: &[String],
) {
    let at_ms = rng.below(s.safety_ms);
    let secs = WALL0 + at_ms / 1000;
    let comment = meta(next(), author, 1111, secs, &[('e', root.to_hex())]);
    s.faults.push(Timed {
        at_ms,
        fault: Fault::Publish {
            relays: mine.to_vec(),
            event: comment,
        },
    });
    if rng.chance(30) {
        let at_ms = rng.below(s.safety_ms);
        let list = relay_list(
            next(),
            author,
            grasp,
            WALL0 + at_ms / 1000,
            &[rng.pick(outboxes)],
        );
        s.faults.push(Timed {
            at_ms,
            fault: Fault::Publish {
                relays: home.to_vec(),
                event: list,
            },
        });
    }
    if rng.chance(30) {
        let at_ms = rng.below(s.safety_ms);
        s.faults.push(Timed {
            at_ms,
            fault: Fault::Down {
                relay: rng.pick(outboxes),
                for_ms: rng.range(60_000, 3_600_000),
            },
        });
    }
    s.faults.sort_by_key(|t| t.at_ms);
}
