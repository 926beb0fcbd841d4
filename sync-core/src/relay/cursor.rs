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

use crate::historic::pagination::PageSize;
use crate::item::Item;
use crate::relay::pace::{PACE_MAX_MS, PACE_START_MS};
use crate::relay::{NegSupport, RelayState, Status};
use crate::time::{Mono, Now};
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
    /// What its answers had taught us (absent from files written before it existed).
    #[serde(default)]
    pub learned: LearnedLimits,
}

/// The limits a relay's answers taught us, beyond what its NIP-11 document says (which is
/// fetched again at each connect): restored with a fresh cursor, so a quick reconnect after a
/// restart neither relearns its page size nor hammers a relay that rate-limited us.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LearnedLimits {
    /// What its pages showed about its real page size (docs/spec.md §7.4).
    pub page_size: PageSize,
    /// The subscription cap its "too many" answers set (`None`: none answered so far).
    pub subs_at_most: Option<usize>,
    /// The filters per REQ its "too many filters" answers set (`None`: none so far).
    pub filters_at_most: Option<usize>,
    /// The least time between two new historic requests its rate limits taught (ms; 0:
    /// unpaced).
    pub req_pace_ms: u64,
}

impl LearnedLimits {
    /// These limits as read back from a cursor file: the page size sanitised, the
    /// subscription cap at least 2 (as the budget keeps it), the filters per REQ at least 1,
    /// and the pace 0 or within
    /// [`PACE_START_MS`]..=[`PACE_MAX_MS`] (the values a pace takes).
    #[must_use]
    pub fn sanitized(self) -> Self {
        Self {
            page_size: self.page_size.sanitized(),
            subs_at_most: self.subs_at_most.map(|s| s.max(2)),
            filters_at_most: self.filters_at_most.map(|f| f.max(1)),
            req_pace_ms: match self.req_pace_ms {
                ms if ms < PACE_START_MS => 0,
                ms => ms.min(PACE_MAX_MS),
            },
        }
    }
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
    /// See [`RelayCursor::learned`]; sanitised.
    pub(crate) learned: LearnedLimits,
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
            learned: c.learned.sanitized(),
            items,
        };
        out.insert(c.relay, restored);
    }
    out
}

impl RelayState {
    /// What this relay's answers have taught us so far (see [`LearnedLimits`]).
    pub(crate) fn learned_limits(&self) -> LearnedLimits {
        LearnedLimits {
            page_size: self.budget.page_size.clone(),
            subs_at_most: self.budget.subs_at_most(),
            filters_at_most: self.budget.filters_at_most(),
            req_pace_ms: self.health.pace.interval_ms,
        }
    }

    /// Takes back limits restored with a fresh cursor, at the relay's first connect in this
    /// run (nothing learned yet to lose): a restored pace starts a new quiet period at `now`.
    pub(crate) fn restore_learned(&mut self, learned: &LearnedLimits, now: Mono) {
        self.budget.page_size = learned.page_size.clone();
        if let Some(subs) = learned.subs_at_most {
            self.budget.shrink(subs.saturating_add(1));
        }
        if let Some(filters) = learned.filters_at_most {
            self.budget.cap_filters(filters);
        }
        if learned.req_pace_ms > 0 {
            self.health.pace.interval_ms = learned.req_pace_ms;
            self.health.pace.quiet_since = Some(now);
        }
    }

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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::historic::pagination::MAX_RESTORED_PAGE;

    proptest! {
        /// Whatever numbers a cursor file holds, the limits read back stay within what the
        /// core itself would have learned, and sanitising twice changes nothing.
        #[test]
        fn sanitized_limits_are_bounded_and_stable(
            learned in proptest::option::of(any::<u64>()),
            short in any::<u64>(),
            req in any::<u64>(),
            single in proptest::option::of(any::<u64>()),
            subs in proptest::option::of(any::<u64>()),
            filters in proptest::option::of(any::<u64>()),
            pace_ms in any::<u64>(),
        ) {
            let json = serde_json::json!({
                "page_size": {
                    "learned": learned, "largest_short": short,
                    "largest_req": req, "largest_single": single,
                },
                "subs_at_most": subs,
                "filters_at_most": filters,
                "req_pace_ms": pace_ms,
            });
            // A count beyond usize (on 32-bit targets) is a parse error: a fresh start.
            let Ok(l) = serde_json::from_value::<LearnedLimits>(json) else {
                return Ok(());
            };
            let s = l.sanitized();
            let p = &s.page_size;
            prop_assert!(p.learned().is_none_or(|l| (1..=MAX_RESTORED_PAGE).contains(&l)));
            prop_assert!(p.full_at(usize::MAX) <= MAX_RESTORED_PAGE || p.learned().is_none());
            prop_assert!(p.alone_at_most(usize::MAX) <= MAX_RESTORED_PAGE);
            prop_assert!(!p.trusts_group(MAX_RESTORED_PAGE));
            prop_assert!(s.subs_at_most.is_none_or(|s| s >= 2));
            prop_assert!(s.filters_at_most.is_none_or(|f| f >= 1));
            prop_assert!(s.req_pace_ms == 0 || (PACE_START_MS..=PACE_MAX_MS).contains(&s.req_pace_ms));
            prop_assert_eq!(s.clone().sanitized(), s);
        }
    }
}
