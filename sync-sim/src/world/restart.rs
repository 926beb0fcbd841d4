//! The process-restart fault ([`crate::faults::Fault::Restart`]): the core's state is lost
//! except what the process persisted (sync cursors and rejected memory, as last written every
//! [`PERSIST_EVERY_MS`], like the runtime's driver) and the host's store, which is replayed
//! into the new core as the runtime's startup does.

use sync_core::{
    Cursors, EventMeta, Input, RejectedEntry, SyncCore, KIND_ANNOUNCEMENT, KIND_GRASP_LIST,
    KIND_RELAY_LIST, REPLY_KINDS, ROOT_KINDS, SYNC_PLUS_REPLAYED_REPLIES,
};

use super::World;
use crate::invariants::{Checker, Violation};

/// How often the world writes the core's cursors and rejected memory (virtual ms), as the
/// runtime's driver writes its cursors file (`CURSOR_PERSIST_EVERY`).
pub const PERSIST_EVERY_MS: u64 = 30_000;

/// What the process last wrote to its data directory.
#[derive(Clone, Debug, Default)]
pub struct Persisted {
    /// When (virtual ms); `None` before the first write.
    pub at_ms: Option<u64>,
    /// The sync cursors.
    pub cursors: Cursors,
    /// The rejected memory.
    pub rejected: Vec<RejectedEntry>,
}

impl World {
    /// Writes the cursors and rejected memory if `PERSIST_EVERY_MS` passed since the last
    /// write (only when the plan restarts the process).
    pub(super) fn persist_if_due(&mut self) {
        let now = self.mono_ms;
        let now_clocks = self.now();
        let Some(p) = self.persisted.as_mut() else {
            return;
        };
        if p.at_ms.is_some_and(|at| now < at + PERSIST_EVERY_MS) {
            return;
        }
        p.at_ms = Some(now);
        p.cursors = self.core.cursors(now_clocks);
        p.rejected = self.core.rejected_snapshot();
    }

    /// When the next periodic write is due (`None` unless the plan restarts the process).
    pub(super) fn next_persist_at(&self) -> Option<u64> {
        let p = self.persisted.as_ref()?;
        Some(p.at_ms.map_or(self.mono_ms, |at| at + PERSIST_EVERY_MS))
    }

    /// Kills the process and starts it again (see [`crate::faults::Fault::Restart`]).
    pub(super) fn restart(&mut self, down_secs: u64) -> Result<(), Violation> {
        for r in self.relays.values_mut() {
            r.close();
        }
        self.queue.clear();
        self.routes.clear();
        self.wall_offset_secs += down_secs as i64;
        self.restarts += 1;
        self.core = SyncCore::new(self.config.clone(), self.seed, self.now());
        self.checker = Checker::new(&self.config);
        let p = self.persisted.clone().unwrap_or_default();
        if !p.rejected.is_empty() {
            self.feed(Input::RestoreRejected {
                entries: p.rejected,
            })?;
        }
        for event in self.stored_for_replay() {
            self.feed(Input::Accepted { event })?;
        }
        if !p.cursors.relays.is_empty() {
            self.feed(Input::RestoreCursors { cursors: p.cursors })?;
        }
        Ok(())
    }

    /// What the runtime's startup replays from the store: each repository's current
    /// announcement, then every root event, and with Sync+ on the newest
    /// [`SYNC_PLUS_REPLAYED_REPLIES`] replies and every relay list; each group in
    /// `(created_at, id)` order.
    fn stored_for_replay(&self) -> Vec<EventMeta> {
        let mut anns: Vec<EventMeta> = self
            .host
            .repos
            .values()
            .filter_map(|id| self.host.store.get(id))
            .filter(|e| e.kind_u16() == KIND_ANNOUNCEMENT)
            .cloned()
            .collect();
        anns.sort_by_key(|e| (e.created_at, e.id));
        let mut out = anns;
        out.extend(self.stored_of(&ROOT_KINDS, usize::MAX));
        if self.config.sync_plus {
            out.extend(self.stored_of(&REPLY_KINDS, SYNC_PLUS_REPLAYED_REPLIES));
            out.extend(self.stored_of(&[KIND_RELAY_LIST, KIND_GRASP_LIST], usize::MAX));
        }
        out
    }

    /// The newest `limit` stored events of `kinds`, in `(created_at, id)` order.
    fn stored_of(&self, kinds: &[u16], limit: usize) -> Vec<EventMeta> {
        let mut events: Vec<EventMeta> = (self.host.store.values())
            .filter(|e| kinds.contains(&e.kind_u16()))
            .cloned()
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
        events.truncate(limit);
        events.reverse();
        events
    }
}
