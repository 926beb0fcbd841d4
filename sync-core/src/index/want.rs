//! The want index: per repository its relays, sync level and root events, plus the reverse
//! index relay → repositories that makes a relay's target cheap to compute. It also interns
//! every repository and root it has seen: a [`Key`] is an index into its tables.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use nostr::{EventId, Timestamp};

use crate::event_meta::RepoCoord;
use crate::index::plus::{PlusIndex, PlusRepo};
use crate::item::Item;
use crate::item::{Key, KeyKind, SyncLevel, MAX_INTERNED};
use crate::url::RelayUrl;

/// What we want for one repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RepoWant {
    /// Canonical relays listing it (own URLs already removed), sorted and distinct.
    pub(crate) relays: Vec<RelayUrl>,
    /// How much to sync.
    pub(crate) level: SyncLevel,
    /// `created_at` of the announcement that set `relays`; older announcements are ignored.
    pub(crate) announced_at: Option<Timestamp>,
}

impl RepoWant {
    fn lists(&self, relay: &RelayUrl) -> bool {
        self.relays.binary_search(relay).is_ok()
    }
}

/// `(relay, item)` pairs whose wanted-ness may have changed.
pub(crate) type Candidates = BTreeMap<RelayUrl, BTreeSet<Key>>;

/// One interned repository.
#[derive(Clone, Debug, Default)]
struct RepoEntry {
    /// `None` while the repository is unknown (only roots tag it) or after its withdrawal.
    want: Option<RepoWant>,
    /// Root indexes tagging it, in arrival order, distinct (kept while the repo is unknown).
    roots: Vec<u32>,
}

/// One interned root event: the repositories it tags (usually one, kept inline).
#[derive(Clone, Debug)]
struct RootEntry {
    first: u32,
    rest: Vec<u32>,
}

impl RootEntry {
    fn repos(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.first).chain(self.rest.iter().copied())
    }
}

/// The want index. Invariants: `relay_repos[r]` contains `n` iff `repos[n].want` lists `r`
/// (and holds no empty sets); `roots[x]` lists `n` iff `repos[n].roots` contains `x`. Entries
/// of `repos` and `roots` are never removed (their index is their key), so the tables grow
/// with every distinct repository and root ever seen, as the root lists did before interning;
/// past [`MAX_INTERNED`] new ones are ignored.
#[derive(Clone, Debug, Default)]
pub(crate) struct WantIndex {
    /// Interned repositories (hash lookups only; iteration order is insertion order).
    repos: IndexMap<RepoCoord, RepoEntry>,
    /// Interned roots (hash lookups only; iteration order is insertion order).
    roots: IndexMap<EventId, RootEntry>,
    /// Relay → repository indexes listing it.
    relay_repos: BTreeMap<RelayUrl, BTreeSet<u32>>,
    /// Repositories with a want (the `repos` gauge).
    wanted: usize,
    /// Sync+ (docs/spec.md §15): participants' relays per repository; empty when Sync+ is off.
    pub(crate) plus: PlusIndex,
}

impl WantIndex {
    /// The index of `coord`, interning it if new (`None` only when the table is full).
    fn intern_repo(&mut self, coord: &RepoCoord) -> Option<u32> {
        if let Some(n) = self.repos.get_index_of(coord) {
            return Some(n as u32);
        }
        if self.repos.len() >= MAX_INTERNED {
            return None;
        }
        let (n, _) = self.repos.insert_full(coord.clone(), RepoEntry::default());
        Some(n as u32)
    }

    /// Sets a repository's relays and level; returns the candidates that may have changed.
    pub(crate) fn set_repo(&mut self, coord: &RepoCoord, want: RepoWant) -> Candidates {
        let mut out = Candidates::new();
        let Some(n) = self.intern_repo(coord) else {
            return out;
        };
        self.touch_repo(n, &mut out);
        self.unlink_all(n);
        for r in &want.relays {
            self.relay_repos.entry(r.clone()).or_default().insert(n);
        }
        self.wanted += 1;
        self.repos[n as usize].want = Some(want);
        self.touch_repo(n, &mut out);
        out
    }

    /// Removes a repository (its roots are kept for a later re-announcement).
    pub(crate) fn remove_repo(&mut self, coord: &RepoCoord) -> Candidates {
        let mut out = Candidates::new();
        let Some(n) = self.repos.get_index_of(coord) else {
            return out;
        };
        self.touch_repo(n as u32, &mut out);
        self.unlink_all(n as u32);
        out
    }

    /// Forgets repository `n`'s want and its reverse links.
    fn unlink_all(&mut self, n: u32) {
        let Some(old) = self.repos[n as usize].want.take() else {
            return;
        };
        self.wanted -= 1;
        for relay in &old.relays {
            if let Some(set) = self.relay_repos.get_mut(relay) {
                set.remove(&n);
                if set.is_empty() {
                    self.relay_repos.remove(relay);
                }
            }
        }
    }

    /// Registers a root event against every repository it tags.
    pub(crate) fn add_root(&mut self, id: EventId, coords: &BTreeSet<RepoCoord>) -> Candidates {
        let mut out = Candidates::new();
        for c in coords {
            let Some(n) = self.intern_repo(c) else {
                continue;
            };
            let x = match self.roots.get_index_of(&id) {
                Some(x) => {
                    let entry = &mut self.roots[x];
                    if entry.repos().any(|m| m == n) {
                        continue;
                    }
                    entry.rest.push(n);
                    x as u32
                }
                None if self.roots.len() < MAX_INTERNED => {
                    let entry = RootEntry {
                        first: n,
                        rest: Vec::new(),
                    };
                    self.roots.insert_full(id, entry).0 as u32
                }
                None => continue,
            };
            let repo = &mut self.repos[n as usize];
            repo.roots.push(x);
            if let Some(w) = repo.want.as_ref().filter(|w| w.level == SyncLevel::Full) {
                let plus = self.plus.repos.get(&n).map(|p| p.relays.as_slice());
                for r in w.relays.iter().chain(plus.unwrap_or_default()) {
                    out.entry(r.clone()).or_default().insert(Key::root(x));
                }
            }
        }
        out
    }

    /// Adds every item of repository `n` on every relay it currently lists to `out`.
    fn touch_repo(&self, n: u32, out: &mut Candidates) {
        let entry = &self.repos[n as usize];
        let Some(w) = &entry.want else {
            return;
        };
        let authors = self.plus.repos.get(&n).map(|p| p.authors.as_slice());
        for r in &w.relays {
            let set = out.entry(r.clone()).or_default();
            set.extend([Key::state(n), Key::repo_events(n)]);
            set.extend(entry.roots.iter().map(|x| Key::root(*x)));
            set.extend(
                authors
                    .unwrap_or_default()
                    .iter()
                    .map(|a| Key::relay_lists(*a)),
            );
            if self.plus.relay_repos.contains_key(r) || self.plus.index.contains(r) {
                set.insert(Key::ANNOUNCEMENTS);
            }
        }
    }

    /// Replaces repository `n`'s Sync+ selection; returns the candidates that may have changed.
    pub(crate) fn set_plus(&mut self, n: u32, new: PlusRepo) -> Candidates {
        let mut out = Candidates::new();
        if self.plus.repos.get(&n) == Some(&new) {
            return out;
        }
        self.touch_plus(n, &mut out);
        self.plus.set(n, new);
        self.touch_plus(n, &mut out);
        out
    }

    /// Adds repository `n`'s Sync+ items to `out`: its conversation on its Sync+ relays (with
    /// layer 1, which those may stop or start wanting), and its participants' relay lists on
    /// its own relays and the index relays.
    fn touch_plus(&self, n: u32, out: &mut Candidates) {
        let Some(p) = self.plus.repos.get(&n) else {
            return;
        };
        let entry = &self.repos[n as usize];
        for r in &p.relays {
            let set = out.entry(r.clone()).or_default();
            set.extend([Key::ANNOUNCEMENTS, Key::repo_events(n)]);
            set.extend(entry.roots.iter().map(|x| Key::root(*x)));
        }
        let own = entry.want.iter().flat_map(|w| w.relays.iter());
        for r in own.chain(&self.plus.index) {
            let set = out.entry(r.clone()).or_default();
            set.extend(p.authors.iter().map(|a| Key::relay_lists(*a)));
        }
    }

    /// The table index of `coord`, if interned.
    pub(crate) fn repo_key(&self, coord: &RepoCoord) -> Option<u32> {
        self.repos.get_index_of(coord).map(|n| n as u32)
    }

    /// The repositories root `x` tags.
    pub(crate) fn root_repos(&self, x: u32) -> impl Iterator<Item = u32> + '_ {
        self.roots
            .get_index(x as usize)
            .into_iter()
            .flat_map(|(_, e)| e.repos())
    }

    /// Whether repository `n` is wanted at `Full`.
    pub(crate) fn is_full(&self, n: u32) -> bool {
        self.repos
            .get_index(n as usize)
            .and_then(|(_, e)| e.want.as_ref())
            .is_some_and(|w| w.level == SyncLevel::Full)
    }

    /// A repository's current want.
    pub(crate) fn repo(&self, coord: &RepoCoord) -> Option<&RepoWant> {
        self.repos.get(coord).and_then(|e| e.want.as_ref())
    }

    /// Whether repository `n` lists `relay` (at `Full` if `full`).
    fn listed(&self, n: u32, relay: &RelayUrl, full: bool) -> bool {
        self.repos
            .get_index(n as usize)
            .and_then(|(_, e)| e.want.as_ref())
            .is_some_and(|w| w.lists(relay) && (!full || w.level == SyncLevel::Full))
    }

    /// Whether repository `n` wants its conversation from `relay`: it lists it, or Sync+
    /// uses it for it (docs/spec.md §15), at `Full`.
    fn conversation(&self, n: u32, relay: &RelayUrl) -> bool {
        self.listed(n, relay, true) || (self.plus.uses(n, relay) && self.is_full(n))
    }

    /// Whether `key` is in `relay`'s target. `Announcements` is wanted from every relay but
    /// those tracked for Sync+ only.
    pub(crate) fn wants(&self, relay: &RelayUrl, key: &Key) -> bool {
        match key.kind() {
            KeyKind::Announcements => !self
                .plus
                .only_plus(relay, self.relay_repos.contains_key(relay)),
            KeyKind::State(n) => self.listed(n, relay, false),
            KeyKind::RepoEvents(n) => self.conversation(n, relay),
            KeyKind::Root(x) => self
                .roots
                .get_index(x as usize)
                .is_some_and(|(_, e)| e.repos().any(|n| self.conversation(n, relay))),
            KeyKind::RelayLists(a) => self.plus.author_repos.get(&a).is_some_and(|ns| {
                self.plus.index.contains(relay) || ns.iter().any(|n| self.listed(*n, relay, true))
            }),
        }
    }

    /// Whether any repository lists `relay`, or Sync+ wants something from it.
    pub(crate) fn has_target(&self, relay: &RelayUrl) -> bool {
        self.relay_repos.contains_key(relay) || self.plus.has_target(relay)
    }

    /// How many relays have a target.
    pub(crate) fn relay_count(&self) -> usize {
        let plus = self
            .plus
            .relays()
            .filter(|r| !self.relay_repos.contains_key(*r));
        self.relay_repos.len() + plus.count()
    }

    /// Every relay with a target (a relay both listed and used by Sync+ may come twice).
    pub(crate) fn relays(&self) -> impl Iterator<Item = &RelayUrl> {
        self.relay_repos.keys().chain(self.plus.relays())
    }

    /// Whether some repository lists `relay` (not counting Sync+).
    pub(crate) fn is_announced(&self, relay: &RelayUrl) -> bool {
        self.relay_repos.contains_key(relay)
    }

    /// The full target of `relay` (including `Announcements`).
    #[cfg(test)]
    pub(crate) fn target(&self, relay: &RelayUrl) -> BTreeSet<Key> {
        self.target_keys(relay).collect()
    }

    /// The keys of `relay`'s target, unsorted and possibly repeated (a root tagging two of
    /// its repositories): collect into a set (bulk-built) or extend one.
    pub(crate) fn target_keys<'s>(&'s self, relay: &RelayUrl) -> impl Iterator<Item = Key> + 's {
        let announced = self.relay_repos.get(relay);
        let l1 = (!self.plus.only_plus(relay, announced.is_some())).then_some(Key::ANNOUNCEMENTS);
        let repos = announced.into_iter().flatten();
        let plus = self.plus_keys(relay);
        l1.into_iter()
            .chain(repos.flat_map(move |n| {
                let entry = &self.repos[*n as usize];
                let level = entry.want.as_ref().map(|w| w.level);
                let state = level.map(|_| Key::state(*n));
                let full = level == Some(SyncLevel::Full);
                let events = full.then(|| Key::repo_events(*n));
                let roots = entry
                    .roots
                    .iter()
                    .filter(move |_| full)
                    .map(|x| Key::root(*x));
                state.into_iter().chain(events).chain(roots)
            }))
            .chain(plus)
    }

    /// The Sync+ keys of `relay`'s target: the conversation of the repositories Sync+ uses it
    /// for, the relay lists of every followed participant (index relay) and those of the
    /// participants of the repositories listing it.
    fn plus_keys<'s>(&'s self, relay: &RelayUrl) -> impl Iterator<Item = Key> + 's {
        let conversation = self.plus.relay_repos.get(relay).into_iter().flatten();
        let conversation = conversation
            .filter(|n| self.is_full(**n))
            .flat_map(move |n| {
                let roots = self.repos[*n as usize].roots.iter();
                std::iter::once(Key::repo_events(*n)).chain(roots.map(|x| Key::root(*x)))
            });
        let index = self.plus.index.contains(relay);
        let everyone = self.plus.author_repos.keys().filter(move |_| index);
        let listed = self.relay_repos.get(relay).into_iter().flatten();
        let participants = listed
            .filter(|n| self.is_full(**n))
            .filter_map(|n| self.plus.repos.get(n))
            .flat_map(|p| p.authors.iter());
        let lists = everyone.chain(participants).map(|a| Key::relay_lists(*a));
        conversation.chain(lists)
    }

    /// The repository coordinate of table index `n`.
    pub(crate) fn coord(&self, n: u32) -> Option<&RepoCoord> {
        self.repos.get_index(n as usize).map(|(c, _)| c)
    }

    /// The table index of the repository whose coordinate string is exactly `value`.
    pub(crate) fn repo_index(&self, value: &str) -> Option<u32> {
        let coord = RepoCoord::parse(value)?;
        let n = self.repos.get_index_of(&coord)?;
        (coord.to_string() == value).then_some(n as u32)
    }

    /// The table index of the root whose lower-case hex id is exactly `value`.
    pub(crate) fn root_index(&self, value: &str) -> Option<u32> {
        let id = EventId::from_hex(value).ok()?;
        let x = self.roots.get_index_of(&id)?;
        (id.to_hex() == value).then_some(x as u32)
    }

    /// The root id of table index `x`.
    pub(crate) fn root_id(&self, x: u32) -> Option<&EventId> {
        self.roots.get_index(x as usize).map(|(id, _)| id)
    }

    /// The key of an item, if it was interned.
    pub(crate) fn key(&self, item: &Item) -> Option<Key> {
        Some(match item {
            Item::Announcements => Key::ANNOUNCEMENTS,
            Item::State(c) => Key::state(self.repos.get_index_of(c)? as u32),
            Item::RepoEvents(c) => Key::repo_events(self.repos.get_index_of(c)? as u32),
            Item::Root(id) => Key::root(self.roots.get_index_of(id)? as u32),
            Item::RelayLists(pk) => Key::relay_lists(self.plus.author_index(pk)?),
        })
    }

    /// The item a key stands for.
    pub(crate) fn item(&self, key: Key) -> Option<Item> {
        Some(match key.kind() {
            KeyKind::Announcements => Item::Announcements,
            KeyKind::State(n) => Item::State(self.coord(n)?.clone()),
            KeyKind::RepoEvents(n) => Item::RepoEvents(self.coord(n)?.clone()),
            KeyKind::Root(x) => Item::Root(*self.root_id(x)?),
            KeyKind::RelayLists(a) => Item::RelayLists(*self.plus.author(a)?),
        })
    }

    /// Number of repositories wanted and of root events known.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.wanted, self.roots.len())
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
            relays: relays
                .iter()
                .map(|r| url(r))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
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
        let key = w.key(&Item::Root(id)).unwrap();
        assert!(cands[&url("wss://a")].contains(&key));
        assert!(w.wants(&url("wss://a"), &key));
        assert_eq!(w.item(key), Some(Item::Root(id)));
        assert_eq!(w.target(&url("wss://a")).len(), 4);
    }

    #[test]
    fn state_only_wants_state_and_no_roots() {
        let mut w = WantIndex::default();
        let id = EventId::all_zeros();
        w.add_root(id, &BTreeSet::from([coord("r")]));
        w.set_repo(&coord("r"), want(&["wss://a"], SyncLevel::StateOnly));
        let a = url("wss://a");
        let key = |i: Item| w.key(&i).unwrap();
        assert!(w.wants(&a, &key(Item::State(coord("r")))));
        assert!(!w.wants(&a, &key(Item::RepoEvents(coord("r")))));
        assert!(!w.wants(&a, &key(Item::Root(id))));
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
