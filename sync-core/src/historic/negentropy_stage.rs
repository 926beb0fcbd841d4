//! The negentropy stages of a batch on one relay (docs/spec.md §7.1–7.3): what follows each
//! fact the shell reports about a reconciliation (missing ids, a refusal, a timeout, a lag, an
//! error), the id-fetch rounds after the last diff, and the fall back to REQ pagination.

use std::collections::BTreeSet;

use nostr::EventId;

use crate::command::SubId;
use crate::ctx::Ctx;
use crate::decision_log;
use crate::filters::ids as id_filters;
use crate::historic::batch::{Batch, Request, Stage};
use crate::historic::claims::Claim;
use crate::historic::engine::cursors;
use crate::historic::negentropy::{FetchNext, IdFetch};
use crate::input::NegentropyResult;
use crate::relay::{NegSupport, RelayState};

/// Attempts in all of one reconciliation whose result the shell reported as
/// [`NegentropyResult::Lagged`] before its batch falls back to REQ: a lag is a burst of
/// traffic on that relay, and a REQ fallback for the whole batch costs far more than a re-run.
pub const NEG_LAG_ATTEMPTS: u32 = 3;

/// Negentropy timeouts in a row (no `Missing` in between; a diff that misses its batch
/// deadline counts too) after which the relay is treated as not speaking NIP-77 until the
/// daily resync. A single timeout only sends its batch to REQ: a relay busy for a moment is
/// not a relay without NIP-77.
pub const NEG_TIMEOUTS_UNSUPPORTED: u32 = 3;

impl RelayState {
    /// The answer to a `NegentropyDiff` command: the shell reports what happened, this decides
    /// what follows.
    pub(crate) fn on_negentropy_result(
        &mut self,
        ctx: &mut Ctx<'_>,
        sub: &SubId,
        result: NegentropyResult,
    ) {
        let Some((batch_id, open)) = self.take_request(sub) else {
            ctx.stats.late_messages += 1;
            return;
        };
        match result {
            NegentropyResult::Missing { ids } => {
                self.neg = NegSupport::Supported;
                self.neg_timeouts = 0;
                if let Some(Batch {
                    stage: Stage::Diff { missing },
                    ..
                }) = self.pending.batches.get_mut(&batch_id)
                {
                    missing.extend(ids);
                }
                self.after_diff_request(ctx, batch_id);
            }
            NegentropyResult::Refused { .. } => {
                self.mark_negentropy_unsupported("refused");
                self.fallback(ctx, batch_id);
            }
            NegentropyResult::Timeout => self.on_negentropy_timeout(ctx, batch_id),
            NegentropyResult::Lagged => {
                match (open.request, self.pending.batches.get_mut(&batch_id)) {
                    (Request::Diff(i, lagged), Some(b)) if lagged + 1 < NEG_LAG_ATTEMPTS => {
                        // Run it again (a new id, sent when a slot is free); the other diffs
                        // of the batch keep going.
                        ctx.stats.negentropy_reruns += 1;
                        b.queued
                            .push_front((Request::Diff(i, lagged + 1), open.requeues));
                        if b.open.is_empty() {
                            b.deadline = None;
                        }
                    }
                    _ => self.fallback(ctx, batch_id),
                }
            }
            NegentropyResult::Error { .. } => self.fallback(ctx, batch_id),
        }
        self.pump(ctx);
    }

    /// A reconciliation of `batch_id` got no answer in time (the shell's timeout or the
    /// batch deadline): the batch falls back to REQ, and after
    /// [`NEG_TIMEOUTS_UNSUPPORTED`] timeouts in a row the relay counts as not speaking NIP-77.
    pub(super) fn on_negentropy_timeout(&mut self, ctx: &mut Ctx<'_>, batch_id: u64) {
        ctx.stats.negentropy_timeouts += 1;
        self.neg_timeouts = self.neg_timeouts.saturating_add(1);
        decision_log::negentropy_timeout(&self.url, batch_id, self.neg_timeouts);
        if self.neg_timeouts >= NEG_TIMEOUTS_UNSUPPORTED {
            self.mark_negentropy_unsupported("timeouts");
        }
        self.fallback(ctx, batch_id);
    }

    /// After a diff finished: when the last one is in, fetch what is missing (minus rejected).
    pub(super) fn after_diff_request(&mut self, ctx: &mut Ctx<'_>, batch_id: u64) {
        let chunk = self.budget.id_chunk(ctx.cfg.id_chunk_size);
        let Some(batch) = self.pending.batches.get(&batch_id) else {
            return;
        };
        if batch.has_outstanding(|r| matches!(r, Request::Diff(..))) {
            return;
        }
        let Stage::Diff { missing } = &batch.stage else {
            return;
        };
        let mut ids: Vec<EventId> = missing.iter().copied().collect();
        ctx.rejected.exclude(&mut ids);
        // Each id crosses the wire once: one stored meanwhile is dropped, one another relay
        // (or another batch of this relay: a comment matches its repository's filter and its
        // root's) is fetching waits for that fetch (`SyncCore::resume_deferred`).
        let mut deferred = BTreeSet::new();
        let batches = &self.pending.batches;
        let own_fetch = |id: &EventId| batches.values().any(|b| b.fetches_live(id));
        ids.retain(|id| match ctx.claims.get(id) {
            Some(Claim::Stored) => false,
            Some(Claim::Fetching(other)) if *other != self.url || own_fetch(id) => {
                !deferred.insert(*id)
            }
            _ => true,
        });
        let Some(batch) = self.pending.batches.get_mut(&batch_id) else {
            return;
        };
        for id in &ids {
            ctx.claims.set(*id, Claim::Fetching(self.url.clone()));
        }
        if !deferred.is_empty() {
            ctx.claims.waiting.insert(self.url.clone());
            ctx.claims.fresh = true;
        }
        for f in id_filters(ids.iter().copied(), chunk) {
            batch.queued.push_back((
                Request::Ids(f.filter.ids.into_iter().flatten().collect()),
                0,
            ));
        }
        batch.stage = Stage::Fetch(IdFetch {
            deferred,
            ..IdFetch::new(ids)
        });
    }

    /// Deferred ids of `batch_id` were re-checked: `settled` ones (stored) are done, `take`
    /// ones (the other relay's fetch ended without them) are fetched here.
    pub(crate) fn resume_deferred_ids(
        &mut self,
        ctx: &mut Ctx<'_>,
        batch_id: u64,
        settled: &[EventId],
        take: Vec<EventId>,
    ) {
        let chunk = self.budget.id_chunk(ctx.cfg.id_chunk_size);
        let Some(batch) = self.pending.batches.get_mut(&batch_id) else {
            return;
        };
        let Stage::Fetch(fetch) = &mut batch.stage else {
            return;
        };
        for id in settled {
            fetch.deferred.remove(id);
        }
        let mut take: Vec<EventId> = take
            .into_iter()
            .filter(|id| fetch.deferred.remove(id))
            .collect();
        ctx.rejected.exclude(&mut take);
        for id in &take {
            fetch.requested.insert(*id);
            ctx.claims.set(*id, Claim::Fetching(self.url.clone()));
        }
        for f in id_filters(take, chunk) {
            batch.queued.push_back((
                Request::Ids(f.filter.ids.into_iter().flatten().collect()),
                0,
            ));
        }
        self.after_fetch_request(ctx, batch_id);
    }

    /// After an id fetch finished: when the round is complete, retry, finish or fall back.
    pub(super) fn after_fetch_request(&mut self, ctx: &mut Ctx<'_>, batch_id: u64) {
        let rounds = ctx.cfg.id_fetch_max_rounds;
        let chunk = self.budget.id_chunk(ctx.cfg.id_chunk_size);
        let Some(batch) = self.pending.batches.get_mut(&batch_id) else {
            return;
        };
        if batch.fetching_ids() {
            return;
        }
        let Stage::Fetch(fetch) = &mut batch.stage else {
            return;
        };
        if !fetch.deferred.is_empty() {
            return;
        }
        match fetch.on_round_complete(rounds, chunk) {
            FetchNext::Done => {}
            FetchNext::Retry(missing, size) => {
                for f in id_filters(missing, size) {
                    batch.queued.push_back((
                        Request::Ids(f.filter.ids.into_iter().flatten().collect()),
                        0,
                    ));
                }
            }
            FetchNext::Fallback => {
                self.mark_negentropy_unsupported("id fetch incomplete");
                self.fallback(ctx, batch_id);
            }
        }
    }

    /// From now until the daily resync the relay is taken not to speak NIP-77 (logged once
    /// per change, with `reason`).
    pub(crate) fn mark_negentropy_unsupported(&mut self, reason: &'static str) {
        if self.neg != NegSupport::Unsupported {
            decision_log::negentropy_unsupported(&self.url, reason);
        }
        self.neg = NegSupport::Unsupported;
    }

    /// Abandons negentropy for this batch: closes its requests and runs REQ+EOSE over its
    /// semantic filters (including L1).
    pub(crate) fn fallback(&mut self, ctx: &mut Ctx<'_>, batch_id: u64) {
        self.close_batch_requests(ctx, batch_id);
        let Some(batch) = self.pending.batches.get_mut(&batch_id) else {
            return;
        };
        ctx.stats.negentropy_fallbacks += 1;
        decision_log::negentropy_fallback(&self.url, batch_id);
        batch.stage = Stage::Req;
        batch.queued = cursors(&batch.filters, batch.since);
    }
}
