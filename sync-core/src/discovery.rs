//! Discovery (SPEC §4): accepted announcements and root events, and direct registrations and
//! withdrawals by the host, are coalesced for a fixed window and then applied to the want index
//! in one go; every relay they touch goes through the same diff as any other trigger.

use std::collections::BTreeSet;

use crate::command::Command;
use crate::config::Config;
use crate::core::SyncCore;
use crate::event_meta::{EventMeta, RepoCoord};
use crate::historic::batch::Origin;
use crate::index::want::{Candidates, RepoWant};
use crate::item::SyncLevel;
use crate::targets::{vet, Refusal, Vetted};
use crate::time::Mono;
use crate::url::RelayUrl;

/// The window closes early once it holds this many updates: an initial sync delivers
/// thousands of root events a second, and a flush this size already amortises its planning
/// (whose cost grows with what changed, not with the index).
pub(crate) const FLUSH_AT_UPDATES: usize = 1_000;

/// One buffered discovery update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Update {
    /// An accepted announcement (sets the repository's relays, level `Full`).
    Announcement(EventMeta),
    /// An accepted root event (registered against every repository it tags).
    Root(EventMeta),
    /// The host registered a repository at a level.
    Register {
        coord: RepoCoord,
        relays: Vec<String>,
        level: SyncLevel,
    },
    /// The host withdrew a repository.
    Withdraw(RepoCoord),
}

/// The discovery buffer. Invariant: `closes_at.is_some() == !buffer.is_empty()`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Discovery {
    buffer: Vec<Update>,
    closes_at: Option<Mono>,
}

impl Discovery {
    fn push(&mut self, update: Update, now: Mono, cfg: &Config) {
        self.buffer.push(update);
        self.closes_at
            .get_or_insert(now.plus_ms(cfg.discovery_window_ms));
    }

    /// Buffers an accepted event if it can change what we want.
    pub(crate) fn accepted(&mut self, event: EventMeta, now: Mono, cfg: &Config) {
        if event.own_coord().is_some() {
            self.push(Update::Announcement(event), now, cfg);
        } else if event.is_root() && !event.tagged_repos().is_empty() {
            self.push(Update::Root(event), now, cfg);
        }
    }

    pub(crate) fn register(
        &mut self,
        coord: RepoCoord,
        relays: Vec<String>,
        level: SyncLevel,
        now: Mono,
        cfg: &Config,
    ) {
        self.push(
            Update::Register {
                coord,
                relays,
                level,
            },
            now,
            cfg,
        );
    }

    pub(crate) fn withdraw(&mut self, coord: RepoCoord, now: Mono, cfg: &Config) {
        self.push(Update::Withdraw(coord), now, cfg);
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.buffer.is_empty()
    }

    pub(crate) fn is_due(&self, now: Mono) -> bool {
        self.closes_at.is_some_and(|t| t <= now)
    }

    /// Whether the window holds so many updates that waiting longer only makes the flush
    /// larger (see [`FLUSH_AT_UPDATES`]).
    pub(crate) fn is_full(&self) -> bool {
        self.buffer.len() >= FLUSH_AT_UPDATES
    }

    pub(crate) fn deadline(&self) -> Option<Mono> {
        self.closes_at
    }

    fn take(&mut self) -> Vec<Update> {
        self.closes_at = None;
        std::mem::take(&mut self.buffer)
    }
}

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

    /// Keeps the relays that are already wanted or tracked, and new ones while the number of
    /// wanted relays (plus bootstrap relays) stays below `max_tracked_relays`.
    fn within_tracked_cap(&mut self, relays: BTreeSet<RelayUrl>) -> BTreeSet<RelayUrl> {
        let mut wanted = self.want.relay_count() + self.bootstrap.len();
        let mut kept = BTreeSet::new();
        for url in relays {
            let known = self.want.has_target(&url)
                || self.relays.contains_key(&url)
                || self.bootstrap.contains(&url);
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
                let existing = self.want.repo(&coord).cloned();
                if existing
                    .as_ref()
                    .and_then(|w| w.announced_at)
                    .is_some_and(|t| t > meta.created_at)
                {
                    return Candidates::new();
                }
                let relays = self.repo_relays(meta.relays.iter(), &meta.clone_urls);
                self.want.set_repo(
                    &coord,
                    RepoWant {
                        relays: relays.into_iter().collect(),
                        level: SyncLevel::Full,
                        announced_at: Some(meta.created_at),
                    },
                )
            }
            Update::Root(meta) => self.want.add_root(meta.id, &meta.tagged_repos()),
            Update::Register {
                coord,
                relays,
                level,
            } => {
                let announced_at = self.want.repo(&coord).and_then(|w| w.announced_at);
                let relays = self.repo_relays(relays.iter(), &[]);
                self.want.set_repo(
                    &coord,
                    RepoWant {
                        relays: relays.into_iter().collect(),
                        level,
                        announced_at,
                    },
                )
            }
            Update::Withdraw(coord) => self.want.remove_repo(&coord),
        }
    }

    /// Applies the buffered updates and plans every relay they touched.
    pub(crate) fn flush_discovery(&mut self, out: &mut Vec<Command>) {
        let mut touched = Candidates::new();
        for update in self.discovery.take() {
            for (relay, items) in self.apply_update(update) {
                touched.entry(relay).or_default().extend(items);
            }
        }
        let wanted: Vec<RelayUrl> = self
            .want
            .relays()
            .filter(|r| !self.relays.contains_key(*r))
            .cloned()
            .collect();
        for url in wanted {
            self.ensure_relay(&url);
        }
        for (url, items) in &touched {
            if !self.want.has_target(url) && !self.bootstrap.contains(url) {
                self.reap(url, out);
            } else if let Some((r, mut ctx)) = self.relay_ctx(url, out) {
                r.plan(&mut ctx, items, Origin::Discovery);
            }
        }
        // Nothing is waiting any more: relays with no pending batch may complete now.
        let urls: Vec<RelayUrl> = self.relays.keys().cloned().collect();
        for url in urls {
            if let Some((r, mut ctx)) = self.relay_ctx(&url, out) {
                r.check_complete(&mut ctx);
            }
        }
    }
}
