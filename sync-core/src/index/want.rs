//! The want index: per repository its relays, sync level and root events, plus the reverse
//! index relay → repositories that makes a relay's target cheap to compute.

use std::collections::{BTreeMap, BTreeSet};

use nostr::{EventId, Timestamp};

use crate::event_meta::RepoCoord;
use crate::item::{Item, SyncLevel};
use crate::url::RelayUrl;

/// What we want for one repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RepoWant {
    /// Canonical relays listing it (own URLs already removed).
    pub(crate) relays: BTreeSet<RelayUrl>,
    /// How much to sync.
    pub(crate) level: SyncLevel,
    /// `created_at` of the announcement that set `relays`; older announcements are ignored.
    pub(crate) announced_at: Option<Timestamp>,
}

/// `(relay, item)` pairs whose wanted-ness may have changed.
pub(crate) type Candidates = BTreeMap<RelayUrl, BTreeSet<Item>>;

/// The want index. Invariants: `relay_repos[r]` contains `c` iff `repos[c].relays` contains `r`
/// (and holds no empty sets); `root_repos` and `repo_roots` are exact inverses.
#[derive(Clone, Debug, Default)]
pub(crate) struct WantIndex {
    repos: BTreeMap<RepoCoord, RepoWant>,
    /// Root ids per repository, kept even while the repository is unknown (never dropped).
    repo_roots: BTreeMap<RepoCoord, BTreeSet<EventId>>,
    root_repos: BTreeMap<EventId, BTreeSet<RepoCoord>>,
    relay_repos: BTreeMap<RelayUrl, BTreeSet<RepoCoord>>,
}

impl WantIndex {
    /// Sets a repository's relays and level; returns the candidates that may have changed.
    pub(crate) fn set_repo(&mut self, coord: &RepoCoord, want: RepoWant) -> Candidates {
        let mut out = Candidates::new();
        self.touch_repo(coord, &mut out);
        if let Some(old) = self.repos.remove(coord) {
            for r in &old.relays {
                self.unlink(r, coord);
            }
        }
        for r in &want.relays {
            self.relay_repos
                .entry(r.clone())
                .or_default()
                .insert(coord.clone());
        }
        self.repos.insert(coord.clone(), want);
        self.touch_repo(coord, &mut out);
        out
    }

    /// Removes a repository (its roots are kept for a later re-announcement).
    pub(crate) fn remove_repo(&mut self, coord: &RepoCoord) -> Candidates {
        let mut out = Candidates::new();
        self.touch_repo(coord, &mut out);
        if let Some(old) = self.repos.remove(coord) {
            for r in &old.relays {
                self.unlink(r, coord);
            }
        }
        out
    }

    /// Registers a root event against every repository it tags.
    pub(crate) fn add_root(&mut self, id: EventId, coords: &BTreeSet<RepoCoord>) -> Candidates {
        let mut out = Candidates::new();
        for c in coords {
            self.repo_roots.entry(c.clone()).or_default().insert(id);
            self.root_repos.entry(id).or_default().insert(c.clone());
            if let Some(w) = self.repos.get(c).filter(|w| w.level == SyncLevel::Full) {
                for r in &w.relays {
                    out.entry(r.clone()).or_default().insert(Item::Root(id));
                }
            }
        }
        out
    }

    fn unlink(&mut self, relay: &RelayUrl, coord: &RepoCoord) {
        if let Some(set) = self.relay_repos.get_mut(relay) {
            set.remove(coord);
            if set.is_empty() {
                self.relay_repos.remove(relay);
            }
        }
    }

    /// Adds every item of `coord` on every relay it currently lists to `out`.
    fn touch_repo(&self, coord: &RepoCoord, out: &mut Candidates) {
        let Some(w) = self.repos.get(coord) else {
            return;
        };
        for r in &w.relays {
            let set = out.entry(r.clone()).or_default();
            set.extend(Item::for_repo(coord, SyncLevel::Full));
            set.extend(self.roots_of(coord).map(Item::Root));
        }
    }

    fn roots_of<'a>(&'a self, coord: &RepoCoord) -> impl Iterator<Item = EventId> + 'a {
        self.repo_roots.get(coord).into_iter().flatten().copied()
    }

    /// A repository's current want.
    pub(crate) fn repo(&self, coord: &RepoCoord) -> Option<&RepoWant> {
        self.repos.get(coord)
    }

    /// Whether `item` is in `relay`'s target. `Announcements` is wanted from every relay.
    pub(crate) fn wants(&self, relay: &RelayUrl, item: &Item) -> bool {
        let listed = |c: &RepoCoord, full: bool| {
            self.repos
                .get(c)
                .is_some_and(|w| w.relays.contains(relay) && (!full || w.level == SyncLevel::Full))
        };
        match item {
            Item::Announcements => true,
            Item::State(c) => listed(c, false),
            Item::RepoEvents(c) => listed(c, true),
            Item::Root(id) => self
                .root_repos
                .get(id)
                .is_some_and(|cs| cs.iter().any(|c| listed(c, true))),
        }
    }

    /// Whether any repository lists `relay`.
    pub(crate) fn has_target(&self, relay: &RelayUrl) -> bool {
        self.relay_repos.contains_key(relay)
    }

    /// Every relay some repository lists.
    pub(crate) fn relays(&self) -> impl Iterator<Item = &RelayUrl> {
        self.relay_repos.keys()
    }

    /// The full target of `relay` (including `Announcements`).
    pub(crate) fn target(&self, relay: &RelayUrl) -> BTreeSet<Item> {
        let mut out = BTreeSet::from([Item::Announcements]);
        for c in self.relay_repos.get(relay).into_iter().flatten() {
            let Some(w) = self.repos.get(c) else { continue };
            out.extend(Item::for_repo(c, w.level));
            if w.level == SyncLevel::Full {
                out.extend(self.roots_of(c).map(Item::Root));
            }
        }
        out
    }

    /// Number of repositories and of root events known.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.repos.len(), self.root_repos.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_meta::tests::keys;

    fn coord(d: &str) -> RepoCoord {
        RepoCoord {
            owner: keys(1).public_key(),
            identifier: d.into(),
        }
    }
    fn url(s: &str) -> RelayUrl {
        RelayUrl::parse(s).unwrap()
    }
    fn want(relays: &[&str], level: SyncLevel) -> RepoWant {
        RepoWant {
            relays: relays.iter().map(|r| url(r)).collect(),
            level,
            announced_at: None,
        }
    }

    #[test]
    fn root_before_its_repo_is_kept_and_attached() {
        let mut w = WantIndex::default();
        let id = EventId::all_zeros();
        assert!(w.add_root(id, &BTreeSet::from([coord("r")])).is_empty());
        let cands = w.set_repo(&coord("r"), want(&["wss://a"], SyncLevel::Full));
        assert!(cands[&url("wss://a")].contains(&Item::Root(id)));
        assert!(w.wants(&url("wss://a"), &Item::Root(id)));
        assert_eq!(w.target(&url("wss://a")).len(), 4);
    }

    #[test]
    fn state_only_wants_state_and_no_roots() {
        let mut w = WantIndex::default();
        let id = EventId::all_zeros();
        w.add_root(id, &BTreeSet::from([coord("r")]));
        w.set_repo(&coord("r"), want(&["wss://a"], SyncLevel::StateOnly));
        let a = url("wss://a");
        assert!(w.wants(&a, &Item::State(coord("r"))));
        assert!(!w.wants(&a, &Item::RepoEvents(coord("r"))));
        assert!(!w.wants(&a, &Item::Root(id)));
    }

    #[test]
    fn shrinking_relays_reports_the_dropped_relay() {
        let mut w = WantIndex::default();
        w.set_repo(&coord("r"), want(&["wss://a", "wss://b"], SyncLevel::Full));
        let cands = w.set_repo(&coord("r"), want(&["wss://a"], SyncLevel::Full));
        assert!(cands.contains_key(&url("wss://b")));
        assert!(!w.has_target(&url("wss://b")));
        w.remove_repo(&coord("r"));
        assert_eq!(w.relays().count(), 0);
    }
}
