//! Per-relay sync cursors that outlive the process (docs/spec.md §16): what a quick reconnect
//! needs to catch up instead of starting afresh. The core hands them out as data
//! ([`SyncCore::cursors`]); the shell writes them to disk and gives them back at the next start
//! ([`crate::Input::RestoreCursors`]). A cursor is applied when its relay first connects: if it
//! was last seen within `Config::quick_reconnect_window_ms` (wall clock), that connect is a quick
//! reconnect (catch-up with `since = through − since_margin_secs` for the listed items); else it
//! is dropped and the relay starts afresh.
//!
//! Correctness rule: a cursor never claims more than was really completed. It lists only
//! confirmed items of a relay without failed batches, and `through` is what a disconnect at
//! that moment would set as `synced_through`: now, unless a catch-up or a live gap is open
//! (then the older `synced_through`, or no cursor at all).

use std::collections::BTreeMap;

use nostr::Timestamp;
use serde::{Deserialize, Serialize};

use crate::core::SyncCore;
use crate::index::want::WantIndex;
use crate::item::Item;
use crate::relay::{NegSupport, RelayState, Status};
use crate::time::Now;
use crate::url::RelayUrl;

/// Upper bound on the items one restore accepts (the rest of the input is ignored).
pub const MAX_CURSOR_ITEMS: usize = 4_000_000;

/// The cursors of every relay, with the items they name stored once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursors {
    /// Every item some cursor names; cursors refer to them by index.
    pub items: Vec<Item>,
    /// One cursor per relay (relays without a trustworthy cursor are left out).
    pub relays: Vec<RelayCursor>,
}

/// What one relay had completed, as of `seen_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayCursor {
    /// The relay.
    pub relay: RelayUrl,
    /// Wall time through which every listed item was complete from this relay.
    pub through: Timestamp,
    /// Wall time the relay was last seen in this state: the snapshot time while it was
    /// connected, its disconnect time otherwise. The quick-reconnect window counts from here.
    pub seen_at: Timestamp,
    /// What we knew of its NIP-77 support.
    pub neg: NegSupport,
    /// Indexes into [`Cursors::items`] of the items complete through `through`.
    pub items: Vec<u32>,
}

/// A restored cursor waiting for its relay's first connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Restored {
    /// See [`RelayCursor::through`]. Invariant: `through ≤ seen_at`.
    pub(crate) through: Timestamp,
    /// See [`RelayCursor::seen_at`].
    pub(crate) seen_at: Timestamp,
    /// See [`RelayCursor::neg`].
    pub(crate) neg: NegSupport,
    /// The items, resolved from the table.
    pub(crate) items: Vec<Item>,
}

impl Restored {
    /// Whether a connection at `now` is within the quick-reconnect window of `seen_at` (a
    /// `seen_at` in the future — the wall clock went back — is not trusted).
    pub(crate) fn is_fresh(&self, now: Now, window_ms: u64) -> bool {
        let (now, seen) = (now.wall.as_secs(), self.seen_at.as_secs());
        seen <= now && (now - seen).saturating_mul(1000) < window_ms
    }
}

/// Resolves restored cursors; entries with indexes out of range, `through > seen_at`, or beyond
/// `max_relays` are dropped (a later entry for the same relay replaces an earlier one).
pub(crate) fn resolve(cursors: Cursors, max_relays: usize) -> BTreeMap<RelayUrl, Restored> {
    let table = &cursors.items[..cursors.items.len().min(MAX_CURSOR_ITEMS)];
    let mut out = BTreeMap::new();
    for c in cursors.relays.into_iter().take(max_relays) {
        if c.through > c.seen_at {
            continue;
        }
        let items: Option<Vec<Item>> = c
            .items
            .iter()
            .map(|i| table.get(*i as usize).cloned())
            .collect();
        let Some(items) = items else {
            continue;
        };
        let restored = Restored {
            through: c.through,
            seen_at: c.seen_at,
            neg: c.neg,
            items,
        };
        out.insert(c.relay, restored);
    }
    out
}

impl RelayState {
    /// This relay's cursor as of `now`, if it has a trustworthy one: `(through, seen_at)`.
    pub(crate) fn cursor_times(&self, now: Now) -> Option<(Timestamp, Timestamp)> {
        if self.had_failures || self.confirmed.len() == 0 {
            return None;
        }
        match self.status {
            s if s.is_live() => {
                let complete_now = !self.catchup_pending && self.live_gap_since.is_none();
                let through = if complete_now {
                    Some(now.wall)
                } else {
                    self.synced_through
                };
                Some((through?, now.wall))
            }
            Status::Disconnected | Status::Connecting => {
                let through = self.synced_through?;
                let ago_secs = now.mono.since_ms(self.disconnected_at?).div_ceil(1000);
                let seen_at = Timestamp::from(now.wall.as_secs().saturating_sub(ago_secs));
                Some((through.min(seen_at), seen_at))
            }
            _ => None,
        }
    }
}

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
        items: Vec::new(),
    };
    Some((head, items))
}

impl SyncCore {
    /// The cursors to persist now (docs/spec.md §16): one per relay with a trustworthy cursor,
    /// plus restored cursors whose relay has not connected yet in this run (unchanged, so they
    /// still age out). Restore them with [`crate::Input::RestoreCursors`].
    #[must_use]
    pub fn cursors(&self) -> Cursors {
        let mut b = TableBuilder::default();
        for (url, r) in &self.relays {
            if let Some((head, items)) = live_cursor(r, self.now, &self.want) {
                b.push(url, &head, items.into_iter());
            }
        }
        for (url, restored) in &self.restored_cursors {
            let owned = self
                .relays
                .get(url)
                .is_some_and(|r| live_cursor(r, self.now, &self.want).is_some());
            if !owned {
                b.push(url, restored, restored.items.iter().cloned());
            }
        }
        b.out.relays.sort_by(|a, c| a.relay.cmp(&c.relay));
        b.out
    }

    /// Keeps restored cursors until their relays connect (replacing any restored before).
    pub(crate) fn restore_cursors(&mut self, cursors: Cursors) {
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
        let mut restored = 0usize;
        for item in &c.items {
            if let Some(key) = self.want.key(item) {
                if self.want.wants(url, &key) {
                    r.confirmed.insert(key);
                    restored += 1;
                }
            }
        }
        r.synced_through = Some(c.through);
        r.disconnected_at = Some(now.mono);
        if c.neg != NegSupport::Unknown {
            r.neg = c.neg;
        }
        tracing::info!(relay = %url, items = restored, through = c.through.as_secs(), "sync cursor applied: catch-up");
    }
}
