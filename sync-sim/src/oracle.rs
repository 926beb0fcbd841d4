//! The end-of-run checks. Convergence uses a reference oracle built from the host's final
//! store only (which repositories are accepted, which relays they list, which root events are
//! stored), independent of the core's indexes, chunking and batches: every event on a healthy
//! relay that the final layers cover and the host's policy accepts must be stored locally.

use std::collections::BTreeSet;

use nostr::PublicKey;
use sync_core::{
    EventMeta, RelayUrl, RepoCoord, Status, KIND_ANNOUNCEMENT, KIND_GRASP_LIST, KIND_RELAY_LIST,
    KIND_STATE,
};

use crate::invariants::Violation;
use crate::world::World;

/// What the final layers cover on one relay.
#[derive(Debug, Default)]
pub struct Coverage {
    /// Repositories whose announcements list the relay.
    pub repos: BTreeSet<RepoCoord>,
    /// Their identifiers (state events).
    pub identifiers: BTreeSet<String>,
    /// Ids (hex) of stored root events tagging one of them.
    pub roots: BTreeSet<String>,
    /// Whether the relay is a target at all (listed, bootstrap, or used by Sync+).
    pub target: bool,
    /// Whether layer 1 is asked of it (listed or bootstrap: not a Sync+-only relay).
    pub l1: bool,
    /// Sync+ (docs/spec.md §15): participants whose relay lists it must serve.
    pub list_authors: BTreeSet<PublicKey>,
}

impl Coverage {
    /// Whether `e` is covered by L1, state, L2 or L3.
    #[must_use]
    pub fn covers(&self, e: &EventMeta) -> bool {
        if !self.target {
            return false;
        }
        let kind = e.kind_u16();
        if (kind == KIND_RELAY_LIST || kind == KIND_GRASP_LIST)
            && self.list_authors.contains(&e.author)
        {
            return true;
        }
        if kind == KIND_ANNOUNCEMENT || kind == KIND_GRASP_LIST || kind == KIND_RELAY_LIST {
            return self.l1 && kind != KIND_RELAY_LIST;
        }
        if kind == KIND_STATE {
            return e.identifier().is_some_and(|d| self.identifiers.contains(d));
        }
        e.tagged_repos().iter().any(|c| self.repos.contains(c))
            || ['e', 'E', 'q']
                .iter()
                .any(|l| e.tag_values(*l).any(|v| self.roots.contains(v)))
    }
}

/// The oracle's coverage of `relay` given the world's final state.
#[must_use]
pub fn coverage(world: &World, relay: &RelayUrl) -> Coverage {
    coverage_with(world, relay, &crate::sync_plus::want(world))
}

/// [`coverage`] with what Sync+ demands computed once for every relay.
#[must_use]
pub fn coverage_with(
    world: &World,
    relay: &RelayUrl,
    plus: &crate::sync_plus::PlusWant,
) -> Coverage {
    let own: BTreeSet<RelayUrl> = world
        .core
        .config()
        .own_relay_urls
        .iter()
        .filter_map(|u| RelayUrl::parse(u))
        .collect();
    let mut c = Coverage::default();
    if own.contains(relay) {
        return c;
    }
    for (coord, ann_id) in &world.host.repos {
        let ann = &world.host.store[ann_id];
        if world.host.listed_relays(ann).contains(relay) {
            c.repos.insert(coord.clone());
            c.identifiers.insert(coord.identifier.clone());
        }
    }
    let bootstrap = world
        .core
        .config()
        .bootstrap_relays
        .iter()
        .filter_map(|u| RelayUrl::parse(u))
        .any(|u| &u == relay);
    c.l1 = bootstrap || !c.repos.is_empty();
    // Sync+ adds conversation (layers 2 and 3) only: no state, no layer 1.
    if let Some(repos) = plus.repos.get(relay) {
        c.repos.extend(repos.iter().cloned());
    }
    if let Some(authors) = plus.list_authors.get(relay) {
        c.list_authors.extend(authors.iter().copied());
    }
    for e in world.host.store.values() {
        if e.is_root() && e.tagged_repos().iter().any(|r| c.repos.contains(r)) {
            c.roots.insert(e.id.to_hex());
        }
    }
    c.target = c.l1 || !c.repos.is_empty();
    c
}

/// Every end-of-run invariant.
pub fn check_final(world: &World) -> Result<(), Violation> {
    let at = world.mono_ms;
    let fail = |tag: &str, message: String| Violation {
        invariant: tag.to_string(),
        step: 0,
        at_ms: at,
        message,
    };
    let plus = crate::sync_plus::want(world);
    for (url, relay) in &world.relays {
        if relay.spec.never_serves() {
            continue;
        }
        let cov = coverage_with(world, url, &plus);
        let missing: Vec<&EventMeta> = relay
            .events
            .values()
            .filter(|e| cov.covers(e) && world.host.would_accept(e) && !world.host.has_or_newer(e))
            .collect();
        if let Some(first) = missing.first() {
            return Err(fail(
                "convergence",
                format!(
                    "{} covered event(s) on {url} never stored locally, e.g. {} kind {} created_at {} tags {:?}",
                    missing.len(),
                    first.id,
                    first.kind_u16(),
                    first.created_at.as_secs(),
                    first.tags
                ),
            ));
        }
        if !cov.target {
            continue;
        }
        let view = world.core.relay(url);
        let (status, pending) = view.map_or((None, 0), |v| (Some(v.status()), v.pending_batches()));
        if status != Some(Status::Connected) || pending != 0 {
            return Err(fail(
                "not-settled",
                format!("healthy target {url} ends {status:?} with {pending} sync batches pending"),
            ));
        }
    }
    let in_flight = world.in_flight_for_healthy();
    if in_flight > 0 {
        return Err(fail(
            "not-quiescent",
            format!("{in_flight} messages still in flight at the end"),
        ));
    }
    for (id, e) in &world.host.store {
        let known = world.published_local.contains(id)
            || world.relays.values().any(|r| r.events.contains_key(id))
            || world.relays.values().any(|r| {
                crate::events::address(e).is_some()
                    && r.events
                        .values()
                        .any(|x| crate::events::address(x) == crate::events::address(e))
            });
        if !known {
            return Err(fail(
                "invented",
                format!("the host stored {id}, which no relay or client ever had"),
            ));
        }
    }
    Ok(())
}
