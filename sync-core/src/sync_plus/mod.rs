//! Sync+ (docs/spec.md §15): a repository's participants publish from their own clients to their
//! own outbox relays. The core learns the participants of each wanted repository from what the
//! host accepts, their relay lists (kind 10002 write relays, kind 10317 GRASP lists) from the
//! relay lists it accepts, and syncs the repository's conversation (layers 2 and 3) from the
//! relays they name, bounded per repository and globally. Everything here runs in the
//! discovery flush; with Sync+ off none of it is reached.

pub(crate) mod participants;

use std::collections::{BTreeMap, BTreeSet};

use nostr::{PublicKey, Timestamp};

use crate::core::SyncCore;
use crate::event_meta::{EventMeta, KIND_RELAY_LIST};
use crate::index::plus::PlusRepo;
use crate::index::want::Candidates;
use crate::targets::{vet, Vetted};
use crate::url::RelayUrl;

use participants::Participants;

/// The followed participants of a repository with more candidates than the bound change once
/// per this period (at the first discovery flush of each period).
pub const ROTATION_MS: u64 = 3_600_000;

/// Relay lists remembered for authors who are not (yet) participants of any repository; a
/// participant's list is always kept.
const MAX_STRANGER_LISTS: usize = 65_536;

/// One author's newest relay lists, vetted: per kind (10002, 10317) its `created_at` and
/// canonical URLs (at most `MAX_LIST_URLS`, in list order, distinct).
pub(crate) type Outbox = BTreeMap<u16, (Timestamp, Vec<RelayUrl>)>;

/// The Sync+ state of the core. Invariant: `dirty` only names interned repositories.
#[derive(Clone, Debug, Default)]
pub(crate) struct SyncPlus {
    /// Participants per repository.
    pub(crate) participants: Participants,
    /// Author → newest vetted relay lists.
    pub(crate) outboxes: BTreeMap<PublicKey, Outbox>,
    /// Repositories whose selection must be recomputed at the end of this flush.
    pub(crate) dirty: BTreeSet<u32>,
    /// The rotation period of the last recomputation (`None` before the first).
    pub(crate) epoch: Option<u64>,
}

impl SyncCore {
    /// Records what an accepted event says about participants or relay lists (Sync+ on only).
    pub(crate) fn plus_learn(&mut self, meta: &EventMeta) {
        if !self.cfg.sync_plus {
            return;
        }
        if let Some(coord) = meta.own_coord() {
            let newest = self.want.repo(&coord).and_then(|w| w.announced_at);
            if newest != Some(meta.created_at) {
                return;
            }
            if let Some(n) = self.want.repo_key(&coord) {
                (self.plus.participants).set_core(n, meta.author, &meta.maintainers);
                // Its participants or its own relays may have changed: recompute either way.
                self.plus.dirty.insert(n);
            }
            return;
        }
        if meta.is_relay_list() {
            self.learn_relay_list(meta);
            return;
        }
        let mut repos: BTreeSet<u32> = (meta.tagged_repos().iter())
            .filter_map(|c| self.want.repo_key(c))
            .collect();
        for letter in ['e', 'E', 'q'] {
            for value in meta.tag_values(letter) {
                if let Some(x) = self.want.root_index(value) {
                    repos.extend(self.want.root_repos(x));
                }
            }
        }
        for n in repos {
            if self.plus.participants.add(n, meta.author) {
                self.plus.dirty.insert(n);
            }
        }
    }

    /// Keeps an author's relay list if it is newer than the one held, its URLs vetted by the
    /// open-network rules (docs/spec.md §13.1); marks the author's repositories dirty.
    fn learn_relay_list(&mut self, meta: &EventMeta) {
        let author = meta.author;
        let kind = meta.kind_u16();
        let known = self.plus.outboxes.get(&author);
        if known
            .and_then(|o| o.get(&kind))
            .is_some_and(|(t, _)| *t >= meta.created_at)
        {
            return;
        }
        let participant = self.plus.participants.contains(&author);
        if known.is_none() && !participant && self.plus.outboxes.len() >= MAX_STRANGER_LISTS {
            return;
        }
        let mut trusted = self.bootstrap.clone();
        trusted.extend(self.want.plus.index.iter().cloned());
        let mut urls: Vec<RelayUrl> = Vec::new();
        for raw in &meta.relays {
            match vet(raw, false, &self.cfg, &trusted) {
                Vetted::Target(u) if !urls.contains(&u) => urls.push(u),
                Vetted::Target(_) => {}
                Vetted::Invalid => self.stats.invalid_relay_urls += 1,
                Vetted::Refused(text, why) => {
                    self.refusals
                        .record(text, why, &mut self.stats.targets_refused);
                }
            }
        }
        let outbox = self.plus.outboxes.entry(author).or_default();
        outbox.insert(kind, (meta.created_at, urls));
        if let Some(repos) = self.plus.participants.by_author.get(&author) {
            self.plus.dirty.extend(repos.iter().copied());
        }
    }

    /// Recomputes the Sync+ selection of every dirty repository (of every repository once per
    /// rotation period); returns the candidates that may have changed.
    pub(crate) fn plus_refresh(&mut self) -> Candidates {
        let mut out = Candidates::new();
        if !self.cfg.sync_plus {
            return out;
        }
        let epoch = self.now.mono.0 / ROTATION_MS;
        if self.plus.epoch != Some(epoch) {
            self.plus.epoch = Some(epoch);
            let all: Vec<u32> = self.plus.participants.repos.keys().copied().collect();
            self.plus.dirty.extend(all);
        }
        for n in std::mem::take(&mut self.plus.dirty) {
            let selection = self.plus_selection(n, epoch);
            for (relay, keys) in self.want.set_plus(n, selection) {
                out.entry(relay).or_default().extend(keys);
            }
        }
        self.plus_gauges();
        out
    }

    /// Repository `n`'s selection in `epoch`: its followed participants, and the relays their
    /// lists name, taken round-robin (each participant's first relay, then each one's second,
    /// …) minus its own relays and ours, at most `sync_plus_max_relays_per_repo`; a relay no
    /// repository uses yet only while fewer than `sync_plus_max_relays` are used and the
    /// tracked relays stay under `max_tracked_relays`.
    fn plus_selection(&mut self, n: u32, epoch: u64) -> PlusRepo {
        let Some(own) = self.want.coord(n).and_then(|c| self.want.repo(c)).cloned() else {
            return PlusRepo::default();
        };
        if !self.want.is_full(n) {
            return PlusRepo::default();
        }
        let max_authors = self.cfg.sync_plus_max_authors_per_repo;
        let followed = (self.plus.participants).select(n, self.seed, epoch, max_authors);
        let lists: Vec<Vec<RelayUrl>> = followed.iter().map(|pk| self.outbox_urls(pk)).collect();
        let mut relays: BTreeSet<RelayUrl> = BTreeSet::new();
        let (mut capped, mut added) = (0u64, (0usize, 0usize));
        let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..longest {
            for url in lists.iter().filter_map(|l| l.get(i)) {
                if own.relays.binary_search(url).is_ok()
                    || self.own.contains(url)
                    || relays.contains(url)
                {
                    continue;
                }
                if relays.len() < self.cfg.sync_plus_max_relays_per_repo
                    && self.room_for(url, &mut added)
                {
                    relays.insert(url.clone());
                } else {
                    capped += 1;
                }
            }
        }
        self.stats.sync_plus_relays_capped += capped;
        let authors: BTreeSet<u32> = followed
            .iter()
            .filter_map(|pk| self.want.plus.intern(pk))
            .collect();
        PlusRepo {
            authors: authors.into_iter().collect(),
            relays: relays.into_iter().collect(),
        }
    }

    /// Whether `url` may join a selection that already added `added` = (relays new to Sync+,
    /// relays new to the tracked set): a relay Sync+ uses already always may; another only
    /// while fewer than `sync_plus_max_relays` are used, and, if nothing wants it yet, while
    /// the wanted relays stay under `max_tracked_relays` (a refusal counted as such).
    fn room_for(&mut self, url: &RelayUrl, added: &mut (usize, usize)) -> bool {
        if self.want.plus.relay_repos.contains_key(url) {
            return true;
        }
        if self.want.plus.relay_repos.len() + added.0 >= self.cfg.sync_plus_max_relays {
            return false;
        }
        let wanted = self.want.has_target(url) || self.bootstrap.contains(url);
        if !wanted {
            let count = self.want.relay_count() + self.bootstrap.len() + added.1;
            if count >= self.cfg.max_tracked_relays {
                self.stats.targets_refused.tracked_relays_cap += 1;
                return false;
            }
            added.1 += 1;
        }
        added.0 += 1;
        true
    }

    /// An author's relays: its 10002 write relays, then its 10317 relays, distinct.
    fn outbox_urls(&self, pk: &PublicKey) -> Vec<RelayUrl> {
        let mut out: Vec<RelayUrl> = Vec::new();
        let Some(outbox) = self.plus.outboxes.get(pk) else {
            return out;
        };
        let ordered = outbox.get(&KIND_RELAY_LIST).into_iter().chain(
            outbox
                .iter()
                .filter(|(k, _)| **k != KIND_RELAY_LIST)
                .map(|(_, v)| v),
        );
        for (_, urls) in ordered {
            for u in urls {
                if !out.contains(u) {
                    out.push(u.clone());
                }
            }
        }
        out
    }

    fn plus_gauges(&mut self) {
        let s = &mut self.stats;
        s.sync_plus_participants = self.plus.participants.by_author.len() as u64;
        s.sync_plus_followed = self.want.plus.author_repos.len() as u64;
        s.sync_plus_relays = self.want.plus.relay_repos.len() as u64;
    }

    /// Whether `pk` participates in some repository we sync (Sync+ on): the host accepts its
    /// relay lists (docs/spec.md §15).
    #[must_use]
    pub fn is_participant(&self, pk: &PublicKey) -> bool {
        self.cfg.sync_plus && self.plus.participants.contains(pk)
    }
}

#[cfg(test)]
mod tests;
