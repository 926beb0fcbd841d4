//! The discovery window's flush (docs/spec.md §4): the buffered updates are applied to the want
//! index in one go (each announcement's relay URLs vetted by the open-network rules, §13), and
//! every relay they touched is planned, or reaped when nothing wants it any more.

use std::collections::BTreeSet;

use crate::command::Command;
use crate::core::SyncCore;
use crate::discovery::Update;
use crate::historic::batch::Origin;
use crate::index::want::{Candidates, RepoWant};
use crate::item::SyncLevel;
use crate::targets::{vet, Refusal, Vetted};
use crate::url::RelayUrl;

impl SyncCore {
    /// Canonical relays of an announcement: `relays` tags plus clone-derived URLs, minus our own,
    /// each vetted by the open-network rules (`targets.rs`), at most `max_relays_per_repo`, and
    /// new relays only while fewer than `max_tracked_relays` are wanted. Invalid URLs and
    /// refusals are counted.
    fn repo_relays<'a>(
        &mut self,
        relays: impl Iterator<Item = &'a String>,
        clones: &[String],
    ) -> BTreeSet<RelayUrl> {
        let derive = self.cfg.derive_relays_from_clone_urls;
        let raws = relays
            .map(|r| (r, false))
            .chain(clones.iter().filter(|_| derive).map(|c| (c, true)));
        let mut out = BTreeSet::new();
        for (raw, from_clone) in raws {
            match vet(raw, from_clone, &self.cfg, &self.bootstrap) {
                Vetted::Target(u) => {
                    out.insert(u);
                }
                // A clone URL with another scheme (ssh, git) names no relay: not invalid.
                Vetted::Invalid if from_clone => {}
                Vetted::Invalid => self.stats.invalid_relay_urls += 1,
                Vetted::Refused(text, why) => {
                    self.refusals
                        .record(text, why, &mut self.stats.targets_refused);
                }
            }
        }
        out.retain(|u| !self.own.contains(u));
        if out.len() > self.cfg.max_relays_per_repo {
            self.stats.relay_urls_truncated += (out.len() - self.cfg.max_relays_per_repo) as u64;
            out = out.into_iter().take(self.cfg.max_relays_per_repo).collect();
        }
        self.within_tracked_cap(out)
    }

    /// Keeps the relays that are already wanted, and new ones while the number of wanted relays
    /// (plus bootstrap relays) stays below `max_tracked_relays`.
    fn within_tracked_cap(&mut self, relays: BTreeSet<RelayUrl>) -> BTreeSet<RelayUrl> {
        let mut wanted = self.want.relay_count() + self.bootstrap.len();
        let mut kept = BTreeSet::new();
        for url in relays {
            // A relay still disconnecting is not wanted (not counted): it needs room too.
            let known = self.want.has_target(&url) || self.bootstrap.contains(&url);
            if known {
                kept.insert(url);
            } else if wanted < self.cfg.max_tracked_relays {
                wanted += 1;
                kept.insert(url);
            } else {
                self.refusals.record(
                    url.to_string(),
                    Refusal::TrackedRelaysCap,
                    &mut self.stats.targets_refused,
                );
            }
        }
        kept
    }

    fn apply_update(&mut self, update: Update) -> Candidates {
        match update {
            Update::Announcement(meta) => {
                let Some(coord) = meta.own_coord() else {
                    return Candidates::new();
                };
                let out = self.set_announced(&coord, &meta);
                self.plus_learn(&meta);
                out
            }
            Update::Root(meta) => {
                let out = self.want.add_root(meta.id, &meta.tagged_repos());
                self.plus_learn(&meta);
                out
            }
            Update::Plus(meta) => {
                self.plus_learn(&meta);
                Candidates::new()
            }
            Update::Register {
                coord,
                relays,
                level,
            } => {
                let announced_at = self.want.repo(&coord).and_then(|w| w.announced_at);
                let relays = self.repo_relays(relays.iter(), &[]);
                let out = self.want.set_repo(
                    &coord,
                    RepoWant {
                        relays: relays.into_iter().collect(),
                        level,
                        announced_at,
                    },
                );
                self.plus_dirty(&coord);
                out
            }
            Update::Withdraw(coord) => {
                let out = self.want.remove_repo(&coord);
                self.plus_dirty(&coord);
                out
            }
        }
    }

    /// Marks a repository's Sync+ selection for recomputation (Sync+ on only).
    fn plus_dirty(&mut self, coord: &crate::event_meta::RepoCoord) {
        if let Some(n) = self.want.repo_key(coord).filter(|_| self.cfg.sync_plus) {
            self.plus.dirty.insert(n);
        }
    }

    /// Applies an accepted announcement to the want index (an older one than the want's is
    /// ignored).
    fn set_announced(
        &mut self,
        coord: &crate::event_meta::RepoCoord,
        meta: &crate::event_meta::EventMeta,
    ) -> Candidates {
        let existing = self.want.repo(coord).cloned();
        if existing
            .as_ref()
            .and_then(|w| w.announced_at)
            .is_some_and(|t| t > meta.created_at)
        {
            return Candidates::new();
        }
        let relays = self.repo_relays(meta.relays.iter(), &meta.clone_urls);
        self.want.set_repo(
            coord,
            RepoWant {
                relays: relays.into_iter().collect(),
                level: SyncLevel::Full,
                announced_at: Some(meta.created_at),
            },
        )
    }

    /// Applies the buffered updates and plans every relay they touched.
    pub(crate) fn flush_discovery(&mut self, out: &mut Vec<Command>) {
        let mut touched = Candidates::new();
        for update in self.discovery.take() {
            for (relay, items) in self.apply_update(update) {
                touched.entry(relay).or_default().extend(items);
            }
        }
        for (relay, items) in self.plus_refresh() {
            touched.entry(relay).or_default().extend(items);
        }
        let wanted: BTreeSet<RelayUrl> = self
            .want
            .relays()
            .filter(|r| !self.relays.contains_key(*r))
            .cloned()
            .collect();
        let wanted: Vec<RelayUrl> = wanted.into_iter().collect();
        self.ensure_relays(&wanted);
        for (url, items) in &touched {
            if !self.want.has_target(url) && !self.bootstrap.contains(url) {
                self.reap(url, out);
            } else if let Some((r, mut ctx)) = self.relay_ctx(url, out) {
                r.plan(&mut ctx, items, Origin::Discovery);
            }
        }
        // Nothing is waiting any more: relays with no pending batch may complete now.
        let urls: Vec<RelayUrl> = self.relays.keys().cloned().collect();
        for url in &urls {
            let source = self.source_of(url);
            if let Some(r) = self.relays.get_mut(url) {
                r.source = source;
            }
        }
        for url in urls {
            if let Some((r, mut ctx)) = self.relay_ctx(&url, out) {
                r.check_complete(&mut ctx);
            }
        }
    }
}
