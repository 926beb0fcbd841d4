//! Discovery (docs/spec.md §4): accepted announcements and root events, and direct registrations and
//! withdrawals by the host, are coalesced for a fixed window and then applied to the want index
//! in one go; every relay they touch goes through the same diff as any other trigger.

use crate::config::Config;
use crate::event_meta::{EventMeta, RepoCoord};
use crate::item::SyncLevel;
use crate::time::Mono;

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
    /// Sync+ (docs/spec.md §15): an accepted relay list, or an event of a repository's
    /// conversation (its author is a participant).
    Plus(EventMeta),
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
        } else if cfg.sync_plus && (event.is_relay_list() || is_conversation(&event)) {
            self.push(Update::Plus(event), now, cfg);
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

    /// Empties the buffer (closing the window) and returns its updates, in arrival order.
    pub(crate) fn take(&mut self) -> Vec<Update> {
        self.closes_at = None;
        std::mem::take(&mut self.buffer)
    }
}

/// Whether `event` tags a repository (`a/A/q`) or some event (`e/E/q`): it may be part of a
/// repository's conversation (the flush checks which).
fn is_conversation(event: &EventMeta) -> bool {
    event
        .tags
        .iter()
        .any(|(l, _)| matches!(l, 'a' | 'A' | 'q' | 'e' | 'E'))
}
