//! Per-relay sync cursors that outlive the process (docs/spec.md §16): what a quick reconnect
//! needs to catch up instead of starting afresh. The core hands them out as data
//! ([`crate::SyncCore::cursors`]); the shell writes them to disk and gives them back at the next start
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
