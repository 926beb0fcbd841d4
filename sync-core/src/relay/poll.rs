//! Polling what live subscriptions cannot cover (docs/spec.md §8, issue 12 deliverable 3).
//!
//! A relay's subscription budget can be too small for live REQs over every wanted item (a
//! GRASP relay holding thousands of repositories, a budget of 20). Items that did not fit
//! would otherwise wait for the daily resync (up to 25 h) for their new events. Instead, every
//! `live_poll_interval_ms` the confirmed ones among them get a since-bounded catch-up batch
//! of REQs (not NIP-77: a REQ packs 10 filters that usually match nothing, a reconciliation
//! takes one), from the previous poll's start minus `live_poll_margin_secs`; only events in
//! that overlap can arrive twice. A new event on an uncovered item therefore
//! arrives within about one interval plus a batch's round trips.

use std::collections::BTreeSet;

use nostr::Timestamp;

use crate::ctx::Ctx;
use crate::historic::batch::Origin;
use crate::index::keyset::KeySet;
use crate::item::Key;
use crate::relay::RelayState;

impl RelayState {
    /// Records the outcome of one live packing of `items`: all of them fit (`covered`), or
    /// some did not and all are polled from now on. Schedules the first poll.
    pub(crate) fn note_coverage(&mut self, ctx: &Ctx<'_>, items: &KeySet, covered: bool) {
        if covered {
            if !self.uncovered.is_empty() {
                self.uncovered.retain(|i| !items.contains(i));
            }
            return;
        }
        self.uncovered.extend(items.iter().copied());
        if self.poll_at.is_none() {
            self.poll_at = Some(ctx.now.mono.plus_ms(ctx.cfg.live_poll_interval_ms));
        }
    }

    /// The poll is due: starts a catch-up batch of the confirmed uncovered items still wanted,
    /// unless the previous poll is still running (then it waits one more interval and the
    /// next poll reaches back to the unfinished one's start).
    pub(crate) fn poll_uncovered(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        let url = self.url.clone();
        self.uncovered.retain(|i| ctx.want.wants(&url, i));
        if self.uncovered.is_empty() {
            self.poll_at = None;
            return;
        }
        self.poll_at = Some(now.mono.plus_ms(ctx.cfg.live_poll_interval_ms));
        if self
            .pending
            .batches
            .values()
            .any(|b| b.origin == Origin::Poll)
        {
            return;
        }
        let items: BTreeSet<Key> = self
            .uncovered
            .iter()
            .filter(|i| self.confirmed.contains(i) && !self.pending.contains(i))
            .copied()
            .collect();
        if items.is_empty() {
            return;
        }
        let interval_secs = ctx.cfg.live_poll_interval_ms / 1_000;
        let from = self
            .polled_through
            .map_or(now.wall.as_secs().saturating_sub(interval_secs), |t| {
                t.as_secs()
            });
        let since = Timestamp::from(from.saturating_sub(ctx.cfg.live_poll_margin_secs));
        self.polled_through = Some(now.wall);
        ctx.stats.live_polls += 1;
        self.start_batch(ctx, items, Origin::Poll, Some(since));
        self.pump(ctx);
    }
}
