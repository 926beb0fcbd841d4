//! Taking and applying sync cursors (docs/spec.md §16; the types and the correctness rule are
//! in `relay/cursor.rs`): [`SyncCore::cursors`] for the shell to persist, and the restore that
//! turns a relay's first connect into a quick reconnect.

use std::collections::BTreeMap;

use crate::command::Command;
use crate::core::SyncCore;
use crate::index::want::WantIndex;
use crate::item::Item;
use crate::relay::cursor::{resolve, Cursors, RelayCursor, Restored};
use crate::relay::{NegSupport, RelayState, Status};
use crate::time::Now;
use crate::url::RelayUrl;

/// Builds the item table and cursors.
#[derive(Default)]
struct TableBuilder {
    index: BTreeMap<Item, u32>,
    out: Cursors,
}

impl TableBuilder {
    fn push(&mut self, relay: &RelayUrl, r: &Restored, items: impl Iterator<Item = Item>) {
        let mut idx: Vec<u32> = items
            .map(|item| {
                let next = self.out.items.len() as u32;
                *self.index.entry(item.clone()).or_insert_with(|| {
                    self.out.items.push(item);
                    next
                })
            })
            .collect();
        idx.sort_unstable();
        self.out.relays.push(RelayCursor {
            relay: relay.clone(),
            through: r.through,
            seen_at: r.seen_at,
            neg: r.neg,
            items: idx,
            learned: r.learned.clone(),
        });
    }
}

fn live_cursor(r: &RelayState, now: Now, want: &WantIndex) -> Option<(Restored, Vec<Item>)> {
    let (through, seen_at) = r.cursor_times(now)?;
    let items: Vec<Item> = r.confirmed.iter().filter_map(|k| want.item(*k)).collect();
    let head = Restored {
        through,
        seen_at,
        neg: r.neg,
        learned: r.learned_limits(),
        items: Vec::new(),
    };
    Some((head, items))
}

impl SyncCore {
    /// The cursors to persist now (docs/spec.md §16): one per relay with a trustworthy cursor,
    /// plus restored cursors whose relay has not connected yet in this run (unchanged, so they
    /// still age out). Restore them with [`crate::Input::RestoreCursors`].
    /// `now` is the shell's reading of the clocks at the write (the core's own `now` is its
    /// last step's, which may be long ago on a quiet relay set).
    #[must_use]
    pub fn cursors(&self, now: Now) -> Cursors {
        let now = Now {
            mono: now.mono.max(self.now.mono),
            wall: now.wall,
        };
        let mut b = TableBuilder::default();
        for (url, r) in &self.relays {
            if let Some((head, items)) = live_cursor(r, now, &self.want) {
                b.push(url, &head, items.into_iter());
            }
        }
        for (url, restored) in &self.restored_cursors {
            let owned = self
                .relays
                .get(url)
                .is_some_and(|r| r.cursor_times(now).is_some());
            if !owned {
                b.push(url, restored, restored.items.iter().cloned());
            }
        }
        b.out.relays.sort_by(|a, c| a.relay.cmp(&c.relay));
        b.out
    }

    /// Keeps restored cursors until their relays connect (replacing any restored before). The
    /// shell restores them after replaying its store: the replayed updates are flushed now, not
    /// at the end of the discovery window, so that a relay connecting right away finds its
    /// cursor's items in the want index (else they would be synced from scratch).
    pub(crate) fn restore_cursors(&mut self, cursors: Cursors, out: &mut Vec<Command>) {
        if !self.discovery.is_idle() {
            self.flush_discovery(out);
        }
        let max = self.cfg.max_tracked_relays;
        self.restored_cursors = resolve(cursors, max);
        tracing::info!(
            relays = self.restored_cursors.len(),
            "sync cursors restored"
        );
    }

    /// Applies the restored cursor of `url` as it first connects (before the quick-reconnect
    /// decision): a fresh one makes this connect a quick reconnect; a stale one is dropped
    /// (logged at warn) and the relay starts afresh. Only a relay with no history in this run
    /// takes one.
    pub(crate) fn apply_restored_cursor(&mut self, url: &RelayUrl) {
        let Some(c) = self.restored_cursors.remove(url) else {
            return;
        };
        let now = self.now;
        let window_ms = self.cfg.quick_reconnect_window_ms;
        let Some(r) = self.relays.get_mut(url) else {
            return;
        };
        if r.status != Status::Connecting || r.synced_through.is_some() || r.confirmed.len() > 0 {
            return;
        }
        if !c.is_fresh(now, window_ms) {
            tracing::warn!(
                relay = %url,
                seen_at = c.seen_at.as_secs(),
                now = now.wall.as_secs(),
                window_ms,
                "sync cursor older than the quick-reconnect window: fresh start"
            );
            return;
        }
        let keys: std::collections::BTreeSet<_> = (c.items.iter())
            .filter_map(|item| self.want.key(item))
            .filter(|key| self.want.wants(url, key))
            .collect();
        let restored = keys.len();
        r.confirmed.merge(keys);
        r.synced_through = Some(c.through);
        r.disconnected_at = Some(now.mono);
        if c.neg != NegSupport::Unknown {
            r.neg = c.neg;
        }
        r.restore_learned(&c.learned, now.mono);
        tracing::info!(relay = %url, items = restored, through = c.through.as_secs(), "sync cursor applied: catch-up");
    }
}
