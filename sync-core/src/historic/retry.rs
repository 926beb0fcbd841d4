//! Failed-batch retries (docs/spec.md §14): a historic batch that failed is started again for
//! its items still wanted, after the relay's backoff, up to `batch_retry_max_attempts` in all;
//! only then do its items count as confirmed and the relay show
//! `ConnectedHistoricSyncFailures` with the reason.

use std::collections::BTreeSet;

use crate::ctx::Ctx;
use crate::decision_log;
use crate::historic::batch::Batch;
use crate::item::Key;
use crate::relay::health::backoff_ms;
use crate::relay::RelayState;
use crate::time::Mono;

impl RelayState {
    /// Releases the retries whose backoff has passed (they are sent as the budget and pace
    /// allow).
    pub(crate) fn release_retries(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now.mono;
        let mut any = false;
        for b in self.pending.batches.values_mut() {
            if b.not_before.is_some_and(|t| t <= now) {
                b.not_before = None;
                any = true;
            }
        }
        if any {
            self.pump(ctx);
        }
    }

    /// When a retry backoff ends (the earliest), for the relay's timers.
    pub(crate) fn next_retry_at(&self) -> Option<Mono> {
        self.pending
            .batches
            .values()
            .filter_map(|b| b.not_before)
            .min()
    }

    /// A failed batch whose attempts are not used up is started again for its items still
    /// wanted (same origin and `since`) after `backoff_base_ms · 2^(attempt−1)`, capped at
    /// `backoff_max_ms`, with the relay's seeded jitter; whether it was.
    pub(super) fn retry(&mut self, ctx: &mut Ctx<'_>, batch: &Batch) -> bool {
        if batch.failed.is_none() || batch.attempt >= ctx.cfg.batch_retry_max_attempts {
            return false;
        }
        let items: BTreeSet<Key> = batch
            .items
            .iter()
            .filter(|i| ctx.want.wants(&self.url, i) && !self.pending.contains(i))
            .copied()
            .collect();
        if items.is_empty() {
            return false;
        }
        let wait = self.rng.jitter(
            backoff_ms(
                batch.attempt,
                ctx.cfg.backoff_base_ms,
                ctx.cfg.backoff_max_ms,
            ),
            ctx.cfg.backoff_jitter_percent,
        );
        let id = self.start_batch(ctx, items, batch.origin, batch.since);
        if let Some(b) = self.pending.batches.get_mut(&id) {
            b.attempt = batch.attempt + 1;
            b.not_before = Some(ctx.now.mono.plus_ms(wait.max(1)));
        }
        ctx.stats.batch_retries += 1;
        if let Some(why) = batch.failed {
            decision_log::batch_failed(&self.url, batch.id, why, batch.attempt, Some(wait.max(1)));
        }
        true
    }
}
