//! Running batches on one relay: sending their requests as subscription slots allow, and moving
//! each batch through diff → id fetch → (fallback) REQ pages → resolution.

use std::collections::{BTreeSet, VecDeque};

use nostr::{EventId, Timestamp};

use crate::command::{Command, SubId, SubKind};
use crate::ctx::Ctx;
use crate::decision_log;
use crate::event_meta::EventMeta;
use crate::filters::build_keys;
use crate::historic::batch::{Batch, BatchFailure, OpenRequest, Origin, Request, Stage};
use crate::historic::claims::Claim;
use crate::historic::pages::{page_filters, record_page_delivery, split_to};
use crate::historic::pagination::Cursor;
use crate::item::Key;
use crate::relay::health::CloseReason;
use crate::relay::{NegSupport, OpenSub, RelayState, Status, SubRole};
use crate::time::Mono;
use crate::wanted::Wanted;
use crate::wire_filter::WireFilter;

/// Times a request is re-sent after a rate-limit CLOSED before its batch fails.
const MAX_REQUEUES: u32 = 3;

/// After a lag, a batch whose REQs get no delivery and no EOSE for this long re-sends them
/// (their EOSE was probably lost in the lag). A relay that is merely slow costs one page
/// sent twice.
const LAG_EOSE_GRACE_MS: u64 = 10_000;

impl RelayState {
    /// Starts a batch for `items` (negentropy unless disabled or known unsupported); its id.
    pub(crate) fn start_batch(
        &mut self,
        ctx: &mut Ctx<'_>,
        items: BTreeSet<Key>,
        origin: Origin,
        since: Option<Timestamp>,
    ) -> u64 {
        let filters = build_keys(&items, ctx.want, ctx.cfg.chunk_size);
        let id = self.next_seq();
        // A poll is many small since-bounded filters that usually match nothing: REQs pack 10
        // filters each where NIP-77 opens one reconciliation per filter.
        let use_neg = !ctx.cfg.disable_negentropy
            && self.neg != NegSupport::Unsupported
            && origin != Origin::Poll;
        let (stage, queued): (Stage, VecDeque<(Request, u32)>) = if use_neg {
            ctx.stats.negentropy_batches += 1;
            (
                Stage::Diff {
                    missing: BTreeSet::new(),
                },
                (0..filters.len())
                    .map(|i| (Request::Diff(i, 0), 0))
                    .collect(),
            )
        } else {
            ctx.stats.req_batches += 1;
            (Stage::Req, cursors(&filters, since))
        };
        if origin.is_catchup() {
            self.catchup_pending = true;
        }
        let filter_items = items.len();
        let batch = Batch {
            id,
            items,
            origin,
            since,
            filter_items,
            filters,
            stage,
            failed: None,
            attempt: 1,
            not_before: None,
            open: Default::default(),
            queued,
            deadline: None,
        };
        self.pending.insert(batch);
        id
    }

    /// Sends queued requests, oldest batch first, while subscription slots are free, no
    /// cooldown runs and the relay's learned pace allows (a batch waiting for its retry
    /// backoff sends nothing).
    pub(crate) fn pump(&mut self, ctx: &mut Ctx<'_>) {
        if !self.status.is_live() {
            return;
        }
        let now = ctx.now.mono;
        self.health.pace.relax(now);
        while !self.health.is_rate_limited(now) && self.health.pace.allows(now) {
            if let Some((sub, filters)) = self.live_held.pop_front() {
                self.send_live(ctx, sub, filters);
                continue;
            }
            if self.subs.len() >= self.budget.total() {
                break;
            }
            let limit = self.page_limit(ctx);
            let budget = &self.budget;
            let Some((batch, (request, requeues))) = self
                .pending
                .batches
                .values_mut()
                .filter(|b| b.not_before.is_none())
                .find_map(|b| {
                    let (request, requeues) = b.queued.pop_front()?;
                    Some(match request {
                        Request::Page(c) => (b.id, b.with_first_pages(c, requeues, budget, limit)),
                        other => (b.id, (other, requeues)),
                    })
                })
            else {
                break;
            };
            self.send(ctx, batch, request, requeues);
        }
        let idle: Vec<u64> = self
            .pending
            .batches
            .values()
            .filter(|b| b.is_idle())
            .map(|b| b.id)
            .collect();
        for id in idle {
            self.resolve(ctx, id);
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_>, batch_id: u64, request: Request, requeues: u32) {
        let seq = self.next_seq();
        let limit = self.page_limit(ctx);
        let Some(batch) = self.pending.batches.get_mut(&batch_id) else {
            return;
        };
        let relay = self.url.clone();
        let (sub, filters) = match &request {
            Request::Diff(i, _) => {
                let Some(f) = batch.filters.get(*i) else {
                    return;
                };
                let sub = SubId(format!("neg{batch_id}.{}.{seq}", f.layer.short()));
                (sub, vec![f.filter.window(batch.since, None, None)])
            }
            Request::Ids(ids) => {
                ctx.stats.ids_fetched += ids.len() as u64;
                (
                    SubId(format!("b{batch_id}.ids.{seq}")),
                    vec![WireFilter::from(
                        nostr::Filter::new().ids(ids.iter().copied()),
                    )],
                )
            }
            Request::Page(c) => {
                ctx.stats.pages_requested += 1;
                let sub = SubId(format!("b{batch_id}.{}.{seq}", c.layer.short()));
                (sub, page_filters(&request, limit))
            }
            Request::Pages(cs) => {
                ctx.stats.pages_requested += cs.len() as u64;
                ctx.stats.page_reqs_grouped += 1;
                let layer = cs.first().map_or("", |c| c.layer.short());
                let sub = SubId(format!("b{batch_id}.{layer}x{}.{seq}", cs.len()));
                (sub, page_filters(&request, limit))
            }
        };
        // A negentropy subscription keeps no copy of its filter: `batch.filters` has it.
        let (role, filters) = if let Request::Diff(..) = request {
            let Some(filter) = filters.into_iter().next() else {
                return;
            };
            ctx.out.push(Command::NegentropyDiff {
                relay,
                sub: sub.clone(),
                filter,
            });
            (SubRole::Negentropy { batch: batch_id }, Vec::new())
        } else {
            ctx.out.push(Command::Subscribe {
                relay,
                sub: sub.clone(),
                kind: SubKind::Historic,
                filters: filters.clone(),
            });
            (SubRole::Historic { batch: batch_id }, filters)
        };
        batch.open.insert(
            sub.clone(),
            OpenRequest {
                request,
                requeues,
                delivered: 0,
                lagged: false,
                lag_grace: None,
            },
        );
        batch.extend_deadline(ctx.now.mono, ctx.cfg.batch_deadline_ms);
        self.health.pace.sent(ctx.now.mono);
        self.pending.sub_batch.insert(sub.clone(), batch_id);
        let filters_sent = filters.len().max(1);
        let open = OpenSub {
            role,
            filters,
            filters_sent,
        };
        self.subs.insert(sub, open);
    }

    /// Whether a delivery on negentropy subscription `sub` of `batch` matches the filter it
    /// reconciles (with the batch's `since`), read from the batch.
    pub(crate) fn negentropy_matches(&self, batch: u64, sub: &SubId, event: &EventMeta) -> bool {
        let Some(b) = self.pending.batches.get(&batch) else {
            return false;
        };
        let Some(Request::Diff(i, _)) = b.open.get(sub).map(|o| &o.request) else {
            return false;
        };
        b.filters.get(*i).is_some_and(|f| {
            crate::matches::matches(&f.filter, event)
                && b.since.is_none_or(|s| event.created_at >= s)
        })
    }

    /// Marks every historic REQ on the wire (pages and id fetches, not negentropy
    /// reconciliations) as lagged: the shell lost messages, so some of their events may be
    /// gone. Each is re-sent from the start of its page when its EOSE arrives (or its batch's
    /// deadline passes). Cancelling them now instead would double the traffic already in the
    /// pipe, which is what made the stream lag.
    /// Each gets a grace of [`LAG_EOSE_GRACE_MS`], so a lost EOSE costs seconds, not the whole
    /// batch deadline.
    pub(crate) fn mark_historic_reqs_lagged(&mut self, ctx: &Ctx<'_>) {
        let grace = ctx.now.mono.plus_ms(LAG_EOSE_GRACE_MS);
        for batch in self.pending.batches.values_mut() {
            for open in batch.open.values_mut() {
                if !matches!(open.request, Request::Diff(..)) {
                    open.lagged = true;
                    open.lag_grace = Some(grace);
                }
            }
        }
    }

    /// Closes request `sub` of `batch` and puts it back at the front of the batch's queue.
    fn requeue(&mut self, ctx: &mut Ctx<'_>, sub: SubId, batch: u64) {
        self.pending.sub_batch.remove(&sub);
        self.subs.remove(&sub);
        ctx.unsubscribe(&self.url, sub.clone());
        if let Some(b) = self.pending.batches.get_mut(&batch) {
            if let Some(open) = b.open.remove(&sub) {
                b.queued.push_front((restart(open.request), open.requeues));
            }
            if b.open.is_empty() {
                b.deadline = None;
            }
        }
    }

    /// Re-sends the lagged requests of `batch_id` whose grace has passed (see
    /// [`OpenRequest::lag_grace`]); whether there were any.
    fn requeue_lagged(&mut self, ctx: &mut Ctx<'_>, batch_id: u64) -> bool {
        let now = ctx.now.mono;
        let Some(batch) = self.pending.batches.get(&batch_id) else {
            return false;
        };
        let lost: Vec<SubId> = batch
            .open
            .iter()
            .filter(|(_, o)| o.lag_grace.is_some_and(|g| g <= now))
            .map(|(s, _)| s.clone())
            .collect();
        let any = !lost.is_empty();
        for sub in lost.into_iter().rev() {
            self.requeue(ctx, sub, batch_id);
        }
        if let Some(b) = self.pending.batches.get_mut(&batch_id) {
            if any && !b.open.is_empty() {
                b.extend_deadline(now, ctx.cfg.batch_deadline_ms);
            }
        }
        any
    }

    /// Frees `n` slots for live subscriptions by closing the newest historic requests and
    /// putting them back at the front of their batches' queues.
    pub(crate) fn evict_historic_for(&mut self, ctx: &mut Ctx<'_>, n: usize) {
        while self.subs.len() + n > self.budget.total() {
            let Some((sub, batch)) = self
                .pending
                .sub_batch
                .iter()
                .next_back()
                .map(|(s, b)| (s.clone(), *b))
            else {
                break;
            };
            self.requeue(ctx, sub, batch);
        }
    }

    /// A matching delivery on a historic subscription (receipt is counted at the transport).
    pub(crate) fn on_historic_delivery(
        &mut self,
        ctx: &mut Ctx<'_>,
        sub: &SubId,
        meta: &EventMeta,
    ) {
        let Some(&batch_id) = self.pending.sub_batch.get(sub) else {
            return;
        };
        let Some(batch) = self.pending.batches.get_mut(&batch_id) else {
            return;
        };
        let Some(open) = batch.open.get_mut(sub) else {
            return;
        };
        open.delivered += 1;
        open.lag_grace = None;
        match (&mut open.request, &mut batch.stage) {
            (Request::Ids(_), Stage::Fetch(fetch)) => {
                fetch.record(meta.id);
            }
            (request @ (Request::Page(_) | Request::Pages(_)), _) => {
                record_page_delivery(request, meta);
            }
            _ => {}
        }
        batch.extend_deadline(ctx.now.mono, ctx.cfg.batch_deadline_ms);
    }

    /// Takes a finished request off the wire; `None` if the subscription is not a batch's.
    pub(super) fn take_request(&mut self, sub: &SubId) -> Option<(u64, OpenRequest)> {
        let batch_id = self.pending.sub_batch.remove(sub)?;
        self.subs.remove(sub);
        let batch = self.pending.batches.get_mut(&batch_id)?;
        let open = batch.open.remove(sub)?;
        batch.deadline = if batch.open.is_empty() {
            None
        } else {
            batch.deadline
        };
        Some((batch_id, open))
    }

    /// EOSE on a historic subscription: close it and advance its batch.
    pub(crate) fn on_historic_eose(&mut self, ctx: &mut Ctx<'_>, sub: &SubId) {
        let Some((batch_id, open)) = self.take_request(sub) else {
            return;
        };
        ctx.unsubscribe(&self.url, sub.clone());
        let Some(batch) = self.pending.batches.get_mut(&batch_id) else {
            return;
        };
        if open.lagged {
            if let Some(again) = unstored(&open.request, ctx) {
                batch.queued.push_front((restart(again), open.requeues));
                self.pump(ctx);
                return;
            }
            // Every id of the lagged fetch is stored: nothing it carried was lost.
        }
        match open.request {
            Request::Ids(ids) => {
                if let Stage::Fetch(fetch) = &mut batch.stage {
                    fetch.note_sub(ids.len(), open.delivered);
                }
                self.after_fetch_request(ctx, batch_id);
            }
            request @ (Request::Page(_) | Request::Pages(_)) => {
                self.after_pages(ctx, batch_id, request, open.delivered);
            }
            Request::Diff(..) => self.after_diff_request(ctx, batch_id),
        }
        self.pump(ctx);
    }

    /// Closes every open request of a batch and drops its queue.
    pub(crate) fn close_batch_requests(&mut self, ctx: &mut Ctx<'_>, batch_id: u64) {
        let Some(batch) = self.pending.batches.get_mut(&batch_id) else {
            return;
        };
        for sub in std::mem::take(&mut batch.open).into_keys() {
            self.pending.sub_batch.remove(&sub);
            self.subs.remove(&sub);
            ctx.unsubscribe(&self.url, sub);
        }
        batch.queued.clear();
        batch.deadline = None;
    }

    /// CLOSED on a historic or negentropy subscription.
    pub(crate) fn on_historic_closed(
        &mut self,
        ctx: &mut Ctx<'_>,
        sub: &SubId,
        reason: CloseReason,
    ) {
        let open_before = self.subs.len();
        let filters_sent = self.subs.get(sub).map_or(1, |s| s.filters_sent);
        let Some((batch_id, open)) = self.take_request(sub) else {
            return;
        };
        if reason.rate_limited || reason.auth_required {
            if reason.too_many {
                self.on_too_many(ctx, reason.too_many_filters, filters_sent, open_before);
            }
            if reason.rate_limited {
                self.start_cooldown(ctx);
            }
            if let Some(batch) = self.pending.batches.get_mut(&batch_id) {
                if open.requeues < MAX_REQUEUES {
                    let parts = split_to(restart(open.request), self.budget.max_filters);
                    for request in parts.into_iter().rev() {
                        batch.queued.push_front((request, open.requeues + 1));
                    }
                } else {
                    batch.fail(BatchFailure::RateLimited);
                }
            }
        } else {
            match open.request {
                Request::Page(_) | Request::Pages(_) => {
                    if let Some(b) = self.pending.batches.get_mut(&batch_id) {
                        b.fail(BatchFailure::Closed);
                    }
                }
                Request::Ids(_) | Request::Diff(..) => self.fallback(ctx, batch_id),
            }
        }
        self.pump(ctx);
    }

    /// Resolves batches whose deadline passed: a silent negentropy diff is a timeout (the batch
    /// falls back to REQ), any other stage fails.
    pub(crate) fn on_batch_deadlines(&mut self, ctx: &mut Ctx<'_>) {
        let due: Vec<u64> = self
            .pending
            .batches
            .values()
            .filter(|b| b.due_at().is_some_and(|d| d <= ctx.now.mono))
            .map(|b| b.id)
            .collect();
        for id in due {
            let in_diff = matches!(
                self.pending.batches.get(&id).map(|b| &b.stage),
                Some(Stage::Diff { .. })
            );
            if in_diff {
                self.on_negentropy_timeout(ctx, id);
            } else if self.requeue_lagged(ctx, id)
                || self
                    .pending
                    .batches
                    .get(&id)
                    .is_none_or(|b| b.deadline.is_none_or(|d| d > ctx.now.mono))
            {
                // Lagged requests whose EOSE was lost were sent again; the batch itself is
                // not past its deadline.
            } else {
                self.close_batch_requests(ctx, id);
                if let Some(b) = self.pending.batches.get_mut(&id) {
                    b.fail(BatchFailure::Deadline);
                }
            }
        }
        self.pump(ctx);
    }

    /// When the learned pace lets `pump` send again, if it is what holds a request back (no
    /// cooldown, a free slot, a batch with a request ready). Read from state only: the timer
    /// index must agree with a scan.
    pub(crate) fn next_paced_send_at(&self) -> Option<Mono> {
        let historic_ready = self.subs.len() < self.budget.total()
            && self.pending.batches.values().any(Batch::may_send);
        if self.health.rate_limited_until.is_some()
            || (self.live_held.is_empty() && !historic_ready)
        {
            return None;
        }
        self.health.pace.next_at()
    }

    /// Moves a finished batch's items to confirmed (those still wanted) and re-checks status;
    /// a failed batch with attempts left is retried instead.
    fn resolve(&mut self, ctx: &mut Ctx<'_>, batch_id: u64) {
        let Some(batch) = self.pending.take(batch_id) else {
            return;
        };
        if self.retry(ctx, &batch) {
            return;
        }
        // Items already confirmed stay so (a catch-up holds only such items): found by one
        // walk of both sorted sets, not a lookup each.
        let fresh: Vec<Key> = self.confirmed.not_in(&batch.items).copied().collect();
        let wanted = Wanted::new(ctx.want, &self.url, fresh.len());
        let done: BTreeSet<Key> = fresh.into_iter().filter(|i| wanted.wants(i)).collect();
        self.confirmed.merge(done);
        self.counters.batches_done += 1;
        if let Some(why) = batch.failed {
            decision_log::batch_failed(&self.url, batch.id, why, batch.attempt, None);
            ctx.stats.batches_failed += 1;
            self.counters.batches_failed += 1;
            self.had_failures = true;
            self.batch_failure = Some(why);
        } else {
            ctx.stats.batches_confirmed += 1;
        }
        if batch.origin == Origin::Lag {
            if let Some(lag_wall) = self.lag_followup_since.take() {
                self.start_lag_catchup(ctx, lag_wall);
                self.pump(ctx);
            }
        }
        if batch.origin.is_catchup()
            && !self.pending.batches.values().any(|b| b.origin.is_catchup())
        {
            self.catchup_pending = false;
        }
        self.check_complete(ctx);
    }

    /// Leaves `Syncing` when nothing is pending and no discovery update is waiting (decided
    /// from state, never by sleeping); a connected relay with a failed batch shows it.
    pub(crate) fn check_complete(&mut self, ctx: &mut Ctx<'_>) {
        if !self.status.is_live() || !self.pending.is_empty() {
            return;
        }
        if self.status == Status::Syncing && !ctx.discovery_idle {
            return;
        }
        self.status = if self.had_failures {
            Status::ConnectedHistoricSyncFailures
        } else {
            Status::Connected
        };
    }
}

/// What of a lagged `request` must be asked again: an id fetch only for the ids the host has
/// not reported stored (a burst of duplicates that lags the stream again must not be re-sent
/// whole, or a slow host re-fetches the same ids for ever); `None` if every id is stored.
/// Pages are re-sent whole (their events are not known in advance).
fn unstored(request: &Request, ctx: &Ctx<'_>) -> Option<Request> {
    match request {
        Request::Ids(ids) => {
            let left: Vec<EventId> = ids
                .iter()
                .filter(|id| !matches!(ctx.claims.get(id), Some(Claim::Stored)))
                .copied()
                .collect();
            (!left.is_empty()).then_some(Request::Ids(left))
        }
        other => Some(other.clone()),
    }
}

/// The same request, ready to be sent again from the start of its current page.
fn restart(mut request: Request) -> Request {
    match &mut request {
        Request::Page(cursor) => cursor.reset_page(),
        Request::Pages(cursors) => cursors.iter_mut().for_each(Cursor::reset_page),
        Request::Diff(..) | Request::Ids(_) => {}
    }
    request
}

/// Paginated cursors for semantic filters, with the batch's `since`.
pub(super) fn cursors(
    filters: &[crate::filters::ChunkFilter],
    since: Option<Timestamp>,
) -> VecDeque<(Request, u32)> {
    filters
        .iter()
        .map(|f| {
            (
                Request::Page(Cursor::new(
                    f.filter.window(since, None, None).to_filter(),
                    f.layer,
                )),
                0,
            )
        })
        .collect()
}
