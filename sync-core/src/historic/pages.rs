//! Pages on the wire (docs/spec.md §7.4): one cursor's page, or the first pages of several
//! filters of a batch in one REQ, and what follows their EOSE.
//!
//! Most filters of a batch match a few events (the e2e benchmark's relay without NIP-77 asked
//! 1 128 first pages of one batch in its last seconds, a median of 21 events each, one filter
//! per REQ through five slots). Their first pages therefore share REQs, up to the relay's
//! filters and bytes per REQ, once the relay has answered a single-filter page
//! ([`PageSize::groups_ready`]). NIP-01 applies `limit` to each filter, but a relay may apply
//! it, or a cap of its own, to the whole REQ, so a group is trusted only if it brought fewer
//! events than some earlier page REQ on the relay did ([`PageSize::trusts_group`]). And an
//! event that matches two filters of the REQ is sent once, for either, so a filter's
//! deliveries can include events older than its own cut. [`Cursor::on_group_eose`] decides
//! per filter: judged like a page of its own when neither can have happened, continued from
//! its oldest second when only the cut can have (its deliveries are then a prefix of its own
//! answer), asked again alone from its start otherwise (continuing from an event sent for
//! another filter lost events: simulator seed 408).

use crate::budget::Budget;
use crate::ctx::Ctx;
use crate::decision_log;
use crate::event_meta::EventMeta;
use crate::filters::wire_bytes;
use crate::historic::batch::{Batch, BatchFailure, Request};
use crate::historic::pagination::{Cursor, Next, PageSize};
use crate::matches::matches;
use crate::relay::RelayState;
use crate::wire_filter::WireFilter;

impl Batch {
    /// The request to send for `first` (a page just taken from the front of the queue): with
    /// the groupable first pages queued right behind it as one [`Request::Pages`], as many as
    /// one REQ of `budget` holds (once the relay has answered a single-filter page:
    /// [`PageSize::groups_ready`]), or alone. Returns it with the largest requeue count of what
    /// it took.
    pub(crate) fn with_first_pages(
        &mut self,
        first: Cursor,
        requeues: u32,
        budget: &Budget,
        limit: usize,
    ) -> (Request, u32) {
        if !first.groupable() || !budget.page_size.groups_ready() {
            return (Request::Page(first), requeues);
        }
        let behind: Vec<usize> = self
            .queued
            .iter()
            .take(budget.max_filters.saturating_sub(1))
            .map_while(|(r, _)| match r {
                Request::Page(c) if c.groupable() => Some(wire_bytes(&c.request(limit))),
                _ => None,
            })
            .collect();
        let first_bytes = wire_bytes(&first.request(limit));
        let n = budget.first_req_len(std::iter::once(first_bytes).chain(behind));
        if n < 2 {
            return (Request::Page(first), requeues);
        }
        let mut cursors = Vec::with_capacity(n);
        cursors.push(first);
        let mut most = requeues;
        for (request, q) in self.queued.drain(..n - 1) {
            if let Request::Page(c) = request {
                cursors.push(c);
                most = most.max(q);
            }
        }
        (Request::Pages(cursors), most)
    }
}

/// `request` in REQs of at most `max_filters` filters: a group of first pages refused for
/// carrying too many filters goes again in smaller groups (in order; a group of one is a
/// single page). Anything else is left whole.
pub(crate) fn split_to(request: Request, max_filters: usize) -> Vec<Request> {
    let max_filters = max_filters.max(1);
    match request {
        Request::Pages(cursors) if cursors.len() > max_filters => {
            let mut parts = Vec::new();
            let mut cursors = cursors.into_iter().peekable();
            while cursors.peek().is_some() {
                let mut chunk: Vec<Cursor> = cursors.by_ref().take(max_filters).collect();
                parts.push(if chunk.len() == 1 {
                    Request::Page(chunk.remove(0))
                } else {
                    Request::Pages(chunk)
                });
            }
            parts
        }
        other => vec![other],
    }
}

/// The filters of a page request as sent, with `limit`.
pub(crate) fn page_filters(request: &Request, limit: usize) -> Vec<WireFilter> {
    match request {
        Request::Page(c) => vec![WireFilter::from(c.request(limit))],
        Request::Pages(cs) => cs
            .iter()
            .map(|c| WireFilter::from(c.request(limit)))
            .collect(),
        Request::Diff(..) | Request::Ids(_) => Vec::new(),
    }
}

/// Records a delivery on the page cursors of `request` whose filters it matches (a single
/// page's delivery was matched by the caller).
pub(crate) fn record_page_delivery(request: &mut Request, meta: &EventMeta) {
    match request {
        Request::Page(c) => c.record(meta.id, meta.created_at),
        Request::Pages(cs) => {
            let hits: Vec<usize> = (0..cs.len())
                .filter(|&i| matches(&cs[i].filter, meta))
                .collect();
            for &i in &hits {
                cs[i].record(meta.id, meta.created_at);
                if hits.len() > 1 {
                    cs[i].note_shared();
                }
            }
        }
        Request::Diff(..) | Request::Ids(_) => {}
    }
}

impl RelayState {
    /// The `limit` a page asks for: the configured page limit, lowered to the relay's NIP-11
    /// `max_limit`.
    pub(crate) fn page_limit(&self, ctx: &Ctx<'_>) -> usize {
        self.budget
            .max_limit
            .map_or(ctx.cfg.page_limit, |m| m.min(ctx.cfg.page_limit))
    }

    /// EOSE of a page request of `batch_id` that `delivered` matching events: queues what
    /// follows each of its cursors at the front of the batch's queue (in their order), or
    /// fails the batch on a page cap.
    pub(crate) fn after_pages(
        &mut self,
        ctx: &mut Ctx<'_>,
        batch_id: u64,
        request: Request,
        delivered: usize,
    ) {
        let base_full_at = self
            .budget
            .max_limit
            .unwrap_or(usize::MAX)
            .min(ctx.cfg.page_full_threshold)
            .min(ctx.cfg.page_limit);
        let max_pages = ctx.cfg.max_pages_per_filter;
        let limit = self.page_limit(ctx);
        let single = matches!(request, Request::Page(_));
        let sizes = &mut self.budget.page_size;
        let learned = sizes.learned().is_some();
        let mut follow: Vec<Request> = Vec::new();
        let mut failed = false;
        let mut judge = |cursor: Cursor, next: Next, overflow: bool, ctx: &mut Ctx<'_>| {
            ctx.stats.same_second_overflows += u64::from(overflow);
            failed |= queue_next(ctx, cursor, next, &mut follow);
        };
        match request {
            Request::Page(mut cursor) => {
                let (next, overflow) = cursor.on_eose(base_full_at, sizes, max_pages);
                judge(cursor, next, overflow, ctx);
            }
            Request::Pages(cursors) => {
                let trusted = sizes.trusts_group(delivered);
                if !trusted {
                    ctx.stats.page_groups_untrusted += 1;
                }
                let asked = (base_full_at, limit);
                for mut cursor in cursors {
                    let (next, overflow) = cursor.on_group_eose(trusted, asked, sizes, max_pages);
                    judge(cursor, next, overflow, ctx);
                }
            }
            Request::Diff(..) | Request::Ids(_) => return,
        }
        sizes.note_req(delivered, single);
        note_learned(ctx, &self.url, learned, sizes);
        let Some(batch) = self.pending.batches.get_mut(&batch_id) else {
            return;
        };
        if failed {
            batch.fail(BatchFailure::PageCap);
        }
        for request in follow.into_iter().rev() {
            batch.queued.push_front((request, 0));
        }
    }
}

/// Appends what follows `cursor` after `next` to `follow`; whether its page cap was reached.
fn queue_next(ctx: &mut Ctx<'_>, cursor: Cursor, next: Next, follow: &mut Vec<Request>) -> bool {
    match next {
        Next::Done => {}
        Next::Page => follow.push(Request::Page(cursor)),
        Next::Probe => {
            ctx.stats.page_probes += 1;
            follow.push(Request::Page(cursor));
        }
        Next::Split(parts) => follow.extend(parts.into_iter().map(Request::Page)),
        Next::CapExceeded => {
            ctx.stats.page_caps_hit += 1;
            return true;
        }
    }
    false
}

/// Counts and logs a page size learned by the EOSE just judged (`learned`: one was known
/// before).
fn note_learned(ctx: &mut Ctx<'_>, url: &crate::url::RelayUrl, learned: bool, sizes: &PageSize) {
    if learned {
        return;
    }
    if let Some(size) = sizes.learned() {
        ctx.stats.page_sizes_learned += 1;
        decision_log::page_size_learned(url, size);
    }
}

#[cfg(test)]
mod tests {
    use nostr::{Filter, Kind};

    use super::*;
    use crate::filters::Layer;

    fn cursor(kind: u16) -> Cursor {
        Cursor::new(Filter::new().kind(Kind::from(kind)), Layer::L2)
    }

    fn kinds(request: &Request) -> Vec<u16> {
        page_filters(request, 10)
            .iter()
            .map(|f| {
                f.to_filter()
                    .kinds
                    .expect("kinds")
                    .iter()
                    .next()
                    .expect("kind")
                    .as_u16()
            })
            .collect()
    }

    /// A refused group goes again in order, in groups of at most the new filters per REQ (a
    /// group of one as a single page); a group within the bound and a single page stay whole.
    #[test]
    fn split_to_keeps_order_and_bounds_groups() {
        let group = Request::Pages((1..=5).map(cursor).collect());
        let parts = split_to(group.clone(), 2);
        let got: Vec<Vec<u16>> = parts.iter().map(kinds).collect();
        assert_eq!(got, vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert!(matches!(parts[2], Request::Page(_)));
        assert_eq!(split_to(group.clone(), 5), vec![group.clone()]);
        let singles = split_to(group, 0);
        assert_eq!(singles.len(), 5, "a bound of 0 is taken as 1");
        assert!(singles.iter().all(|r| matches!(r, Request::Page(_))));
        let page = Request::Page(cursor(9));
        assert_eq!(split_to(page.clone(), 1), vec![page]);
    }
}
