//! The baseline: a faithful model of the public implementation's planning algorithm
//! (ngit-grasp `src/sync/algorithms.rs` and `filters.rs`, as described in
//! `notes/public-implementation-ngit-grasp.md` §1.1–1.5 and `notes/performance-anchors.md` §4).
//!
//! - Indexes are hash maps keyed by strings, exactly as in the anchor: `RepoSyncIndex`
//!   (coordinate → relays, roots, level) and, per relay, the confirmed `repos`/`root_events`.
//! - `derive_relay_targets` inverts the **whole** index, cloning every coordinate and relay URL
//!   per (repo, relay) pair and extending every relay's root set.
//! - `compute_actions` clones each relay's confirmed sets and diffs `target − pending −
//!   confirmed`; the new items' filters are built with 100-value chunks.
//! - A discovery batch (`SelfSubscriber::process_batch`) merges the new items, derives the whole
//!   index and builds the filters for **all** items of **every** relay (no diff).
//! - A reconnect or daily resync of one relay (`recompute_new_sync_filters_for_relay`) derives
//!   the whole index to use one relay, then diffs and builds that relay's filters.
//!
//! Left out (so these figures are a lower bound for the anchor): the live copy of every filter
//! (`limit: 0`), tracing, the network, locks, and the per-filter REQs.

#![allow(
    clippy::disallowed_types,
    clippy::iter_over_hash_type,
    reason = "the anchor's indexes are hash maps; modelling them with B-trees would be less faithful. \
              This is benchmark code: iteration order decides no output of the core"
)]

use std::collections::{HashMap, HashSet};

use nostr::{EventId, Filter, Kind};
use sync_core::filters::tag;

use crate::workload::Workload;

/// Values per filter in the anchor.
const CHUNK: usize = 100;

/// The anchor's sync level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyncLevel {
    /// State, repo events, roots.
    Full,
    /// State only (purgatory announcements; the workload has none, the model keeps the branch).
    #[allow(
        dead_code,
        reason = "kept so derive_relay_targets has the anchor's shape"
    )]
    StateOnly,
}

/// `RepoSyncNeeds`.
#[derive(Clone, Debug)]
pub(crate) struct RepoSyncNeeds {
    relays: HashSet<String>,
    root_events: HashSet<EventId>,
    sync_level: SyncLevel,
}

/// `RelaySyncNeeds`: one relay's target.
#[derive(Clone, Debug, Default)]
pub(crate) struct RelaySyncNeeds {
    repos: HashSet<String>,
    state_only_repos: HashSet<String>,
    root_events: HashSet<EventId>,
}

/// The confirmed part of `RelayState`.
#[derive(Clone, Debug, Default)]
pub(crate) struct RelayState {
    repos: HashSet<String>,
    root_events: HashSet<EventId>,
}

/// `AddFilters`: the only action type.
#[derive(Debug)]
pub(crate) struct AddFilters {
    /// The relay.
    pub(crate) relay: String,
    /// New repositories.
    pub(crate) repos: HashSet<String>,
    /// New root events.
    pub(crate) root_events: HashSet<EventId>,
    /// Their filters.
    pub(crate) filters: Vec<Filter>,
}

/// The anchor's state: the want index, per-relay confirmed sets and pending items.
#[derive(Debug, Default)]
pub(crate) struct Anchor {
    index: HashMap<String, RepoSyncNeeds>,
    confirmed: HashMap<String, RelayState>,
    pending: HashMap<String, RelayState>,
}

/// `build_sync_level_aware_filters(full, state_only, roots, None)`: `#d` state filters for
/// every repository (identifiers deduplicated), `#a/#A/#q` for full ones, `#e/#E/#q` for roots.
pub(crate) fn build_filters(
    full: &HashSet<String>,
    state_only: &HashSet<String>,
    roots: &HashSet<EventId>,
) -> Vec<Filter> {
    let mut out = Vec::new();
    let identifiers: HashSet<&str> = full
        .iter()
        .chain(state_only)
        .filter_map(|c| c.splitn(3, ':').nth(2))
        .collect();
    let identifiers: Vec<&str> = identifiers.into_iter().collect();
    for chunk in identifiers.chunks(CHUNK) {
        out.push(
            Filter::new()
                .kind(Kind::from(30618u16))
                .custom_tags(tag('d'), chunk.iter().copied()),
        );
    }
    let coords: Vec<&String> = full.iter().collect();
    for chunk in coords.chunks(CHUNK) {
        for letter in ['a', 'A', 'q'] {
            out.push(Filter::new().custom_tags(tag(letter), chunk.iter().copied()));
        }
    }
    let ids: Vec<String> = roots.iter().map(EventId::to_hex).collect();
    for chunk in ids.chunks(CHUNK) {
        for letter in ['e', 'E', 'q'] {
            out.push(Filter::new().custom_tags(tag(letter), chunk.iter()));
        }
    }
    out
}

/// `derive_relay_targets`: the whole index inverted (algorithms.rs L62–85).
pub(crate) fn derive_relay_targets(
    index: &HashMap<String, RepoSyncNeeds>,
) -> HashMap<String, RelaySyncNeeds> {
    let mut relay_targets: HashMap<String, RelaySyncNeeds> = HashMap::new();
    for (repo_id, needs) in index {
        for relay_url in &needs.relays {
            let entry = relay_targets.entry(relay_url.clone()).or_default();
            match needs.sync_level {
                SyncLevel::Full => {
                    entry.repos.insert(repo_id.clone());
                    entry.root_events.extend(needs.root_events.iter().copied());
                }
                SyncLevel::StateOnly => {
                    entry.state_only_repos.insert(repo_id.clone());
                }
            }
        }
    }
    relay_targets
}

impl Anchor {
    /// The index built from a workload, every repository `Full`.
    pub(crate) fn from_workload(w: &Workload) -> Self {
        let mut a = Self::default();
        for repo in &w.repos {
            a.index.insert(
                repo.coord.clone(),
                RepoSyncNeeds {
                    relays: repo
                        .relays
                        .iter()
                        .map(|k| w.relay_urls[*k].clone())
                        .collect(),
                    root_events: HashSet::new(),
                    sync_level: SyncLevel::Full,
                },
            );
        }
        for (meta, r) in &w.roots {
            if let Some(n) = a.index.get_mut(&w.repos[*r].coord) {
                n.root_events.insert(meta.id);
            }
        }
        a
    }

    /// Steady state: every relay has confirmed its whole target.
    pub(crate) fn confirm_everything(&mut self) {
        for (relay, t) in derive_relay_targets(&self.index) {
            let mut repos = t.repos;
            repos.extend(t.state_only_repos);
            self.confirmed.insert(
                relay,
                RelayState {
                    repos,
                    root_events: t.root_events,
                },
            );
        }
    }

    /// `compute_actions` for one relay's target (algorithms.rs L103–196): collect pending,
    /// clone confirmed, diff, build filters for what is new.
    fn compute_actions_for(&self, relay: &str, target: &RelaySyncNeeds) -> Option<AddFilters> {
        let pending = self.pending.get(relay).cloned().unwrap_or_default();
        let confirmed = self.confirmed.get(relay).cloned().unwrap_or_default();
        let new_full: HashSet<String> = target
            .repos
            .iter()
            .filter(|r| !pending.repos.contains(*r) && !confirmed.repos.contains(*r))
            .cloned()
            .collect();
        let new_state_only: HashSet<String> = target
            .state_only_repos
            .iter()
            .filter(|r| !pending.repos.contains(*r) && !confirmed.repos.contains(*r))
            .cloned()
            .collect();
        let new_roots: HashSet<EventId> = target
            .root_events
            .iter()
            .filter(|e| !pending.root_events.contains(*e) && !confirmed.root_events.contains(*e))
            .copied()
            .collect();
        if new_full.is_empty() && new_state_only.is_empty() && new_roots.is_empty() {
            return None;
        }
        let filters = build_filters(&new_full, &new_state_only, &new_roots);
        let mut repos = new_full;
        repos.extend(new_state_only);
        Some(AddFilters {
            relay: relay.to_string(),
            repos,
            root_events: new_roots,
            filters,
        })
    }

    /// `SelfSubscriber::process_batch`: merge the batch into the index (level `Full`), derive
    /// the whole index and send every relay **all** its repositories and roots, with filters.
    pub(crate) fn process_batch(
        &mut self,
        repos: &[(String, Vec<String>)],
        roots: &[(EventId, String)],
    ) -> Vec<AddFilters> {
        for (coord, relays) in repos {
            let n = self
                .index
                .entry(coord.clone())
                .or_insert_with(|| RepoSyncNeeds {
                    relays: HashSet::new(),
                    root_events: HashSet::new(),
                    sync_level: SyncLevel::Full,
                });
            n.relays.extend(relays.iter().cloned());
            n.sync_level = SyncLevel::Full;
        }
        for (id, coord) in roots {
            if let Some(n) = self.index.get_mut(coord) {
                n.root_events.insert(*id);
            }
        }
        derive_relay_targets(&self.index)
            .into_iter()
            .map(|(relay, t)| {
                let filters = build_filters(&t.repos, &t.state_only_repos, &t.root_events);
                let mut repos = t.repos;
                repos.extend(t.state_only_repos);
                AddFilters {
                    relay,
                    repos,
                    root_events: t.root_events,
                    filters,
                }
            })
            .collect()
    }

    /// `fresh_start` + `recompute_new_sync_filters_for_relay` for one relay (a reconnect or the
    /// daily resync): confirmed is cleared, the whole index is derived to use this relay, the
    /// diff and filters follow.
    pub(crate) fn recompute_relay(&mut self, relay: &str) -> Option<AddFilters> {
        self.confirmed.remove(relay);
        let targets = derive_relay_targets(&self.index);
        self.compute_actions_for(relay, targets.get(relay)?)
    }

    /// The relay's historic batch for `action` completed: its items are confirmed.
    pub(crate) fn confirm(&mut self, action: AddFilters) {
        let c = self.confirmed.entry(action.relay).or_default();
        c.repos.extend(action.repos);
        c.root_events.extend(action.root_events);
    }
}
