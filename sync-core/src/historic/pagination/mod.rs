//! REQ+EOSE pagination (docs/spec.md §7.4): pages walk backwards with an inclusive `until` (same-second
//! events are never skipped; duplicates are fine). A full page that brings nothing new means more
//! events share one second than a page holds: the filter is split by its tag values, and a
//! single-value filter steps past that second and counts the overflow. Pages are capped.
//!
//! A relay may cap its results below the page-full threshold without announcing it (NIP-11
//! `max_limit`). [`PageSize`] learns such a cap: a short page as large as any short page seen
//! on the relay is followed by one **probe** page (`until` = its oldest second); if the probe
//! brings a new id, the relay cut the page short, and its size is the relay's page size from
//! then on (pages of that size count as full). A probe as large as the short page it probes
//! that brings only ids already seen is treated like a full page that brought nothing new
//! (split, or step past the second), and its successors stay probes.

use std::collections::BTreeSet;

use nostr::{EventId, Filter, Timestamp};
use serde::{Deserialize, Serialize};

use crate::filters::{historic, Layer};

/// Short pages with fewer deliveries are never probed: a relay capping that low is not
/// expected, and most filters of a batch match only a few events.
pub const MIN_PROBED_PAGE: usize = 10;

/// Page sizes read back from a sync cursor file above this are clamped to it (the largest
/// NIP-11 `max_limit` the budget accepts): the file is ours, but a corrupt one must not make
/// a relay's pages look short forever.
pub const MAX_RESTORED_PAGE: usize = 1_000_000;

/// What one relay's pages showed about its real page size (docs/spec.md §7.4). Kept for the
/// relay's life in the core (not reset by the daily resync), and persisted with its sync
/// cursor (docs/spec.md §16; [`Self::sanitized`] on the way back in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PageSize {
    /// The relay's learned page size: a page of that size had more events behind it.
    learned: Option<usize>,
    /// The largest short page (below the full threshold) seen while nothing was learned.
    largest_short: usize,
    /// The most deliveries one page REQ (one cursor's page, or a group of first pages) has
    /// brought on this relay: a lower bound on any cap the relay puts on a whole REQ, so a
    /// group that brought fewer was not cut by one. Only grows.
    largest_req: usize,
    /// The most deliveries one page of a single filter has brought on this relay: a lower
    /// bound on the relay's cap per filter. Only grows; `None` until a single-filter page
    /// has ended, and until then first pages do not share REQs ([`Self::groups_ready`]).
    largest_single: Option<usize>,
}

impl PageSize {
    /// This page size as read back from a cursor file: every count clamped to
    /// [`MAX_RESTORED_PAGE`], and a learned size of 0 (never written by the core) dropped.
    #[must_use]
    pub fn sanitized(self) -> Self {
        let clamp = |n: usize| n.min(MAX_RESTORED_PAGE);
        Self {
            learned: self.learned.filter(|l| *l > 0).map(clamp),
            largest_short: clamp(self.largest_short),
            largest_req: clamp(self.largest_req),
            largest_single: self.largest_single.map(clamp),
        }
    }

    /// The learned page size, if any.
    #[must_use]
    pub fn learned(&self) -> Option<usize> {
        self.learned
    }

    /// The delivery count at which a page is full, given `base` (configured threshold, page
    /// limit and NIP-11 `max_limit`): the learned size lowers it.
    #[must_use]
    pub fn full_at(&self, base: usize) -> usize {
        self.learned.map_or(base, |l| l.min(base)).max(1)
    }

    /// Records the deliveries of one page REQ (see `largest_req`); `single`: it carried one
    /// filter (see `largest_single`).
    pub fn note_req(&mut self, deliveries: usize, single: bool) {
        self.largest_req = self.largest_req.max(deliveries);
        if single {
            self.largest_single = Some(
                self.largest_single
                    .map_or(deliveries, |l| l.max(deliveries)),
            );
        }
    }

    /// Whether first pages may share REQs on this relay: a page of a single filter has ended,
    /// so what a group brings can be compared with what the relay returns ([`Self::trusts_group`],
    /// [`Self::alone_at_most`]). Before that a group of large filters would not be trusted
    /// and its first pages would all be asked again.
    #[must_use]
    pub fn groups_ready(&self) -> bool {
        self.largest_single.is_some()
    }

    /// Up to how many deliveries a filter's share of a trusted group (see
    /// [`Self::trusts_group`]) is exactly what a page of its own, asking `limit`, would have
    /// brought. The relay sent each filter its newest events up to its cap per filter, which
    /// is at least `largest_single` (and, as for single pages, not below
    /// [`MIN_PROBED_PAGE`]); the other filters' events that also match this one are older
    /// than its own cut. So if the filter got no more than that cap, and no more than
    /// `limit`, nothing of another filter's is among them.
    #[must_use]
    pub fn alone_at_most(&self, limit: usize) -> usize {
        self.largest_single
            .unwrap_or(0)
            .max(MIN_PROBED_PAGE)
            .min(limit)
    }

    /// Whether a REQ carrying the first pages of several filters, which brought `deliveries`
    /// in all, can be judged filter by filter (docs/spec.md §7.4): a relay may apply `limit`,
    /// or its own cap, to the whole REQ rather than to each filter, and an earlier REQ that
    /// brought more shows that such a cap, if any, is larger; a cap below
    /// [`MIN_PROBED_PAGE`] is not expected (as for single pages). Call before
    /// [`Self::note_req`].
    #[must_use]
    pub fn trusts_group(&self, deliveries: usize) -> bool {
        deliveries < self.largest_req.max(MIN_PROBED_PAGE)
    }

    /// Whether a short page of `deliveries` should be followed by a probe: nothing learned
    /// yet, at least [`MIN_PROBED_PAGE`], and as large as any short page seen. A probe that
    /// brings nothing new (the filter held exactly that many events) does not write the size
    /// off: filters that hold exactly a relay's unannounced cap are common among small ones,
    /// and a size written off after a few of them let a later filter cut at the cap end early
    /// (simulator seed 4828061: 10 events never fetched).
    fn wants_probe(&mut self, deliveries: usize) -> bool {
        if self.learned.is_some() || deliveries < MIN_PROBED_PAGE {
            return false;
        }
        self.largest_short = self.largest_short.max(deliveries);
        deliveries == self.largest_short
    }

    /// The outcome of a probe after a short page of `size`: `more` if it brought a new id.
    /// Returns whether a page size was learned now.
    fn probed(&mut self, size: usize, more: bool) -> bool {
        if more {
            let first = self.learned.is_none();
            self.learned = Some(self.learned.map_or(size, |l| l.min(size)));
            return first;
        }
        false
    }
}

/// One paginated historic filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The semantic filter (with the batch's `since`, without `until`/`limit`).
    pub filter: Filter,
    /// Its layer.
    pub layer: Layer,
    /// Upper bound (inclusive) of the next page; `None` for the first page.
    pub until: Option<Timestamp>,
    /// Pages requested so far.
    pub pages: u32,
    /// Deliveries on the current page.
    deliveries: usize,
    /// Deliveries on the current page not seen on an earlier page.
    new_ids: usize,
    /// Oldest `created_at` on the current page.
    oldest: Option<Timestamp>,
    /// Ids with `created_at == until` already seen (bounded by one page plus its split parents).
    boundary: BTreeSet<EventId>,
    /// Ids of the current page at its `oldest` second.
    page_oldest_ids: BTreeSet<EventId>,
    /// The current page is a probe after a short page of this many deliveries.
    #[serde(default)]
    probe: Option<usize>,
    /// With `probe`: the page it probes was a first page in a group the relay may have cut as
    /// a whole ([`Cursor::on_group_eose`]), so it is judged like a probe but teaches no page
    /// size (such a cut says nothing about one filter's pages). False without `probe`.
    #[serde(default)]
    probe_silent: bool,
    /// A delivery on the current page also matched another filter of its REQ (a group of first
    /// pages): the relay may have sent it for that filter.
    #[serde(default)]
    shared: bool,
    /// The seconds of the current page's newest deliveries, tracked on a first page only
    /// (empty otherwise): where a filter whose first page shared a REQ is complete down to.
    #[serde(default, skip_serializing_if = "NewestSeconds::is_empty")]
    newest: NewestSeconds,
}

/// What to do after a page's EOSE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The filter is exhausted.
    Done,
    /// Request the next page of the same cursor.
    Page,
    /// Request the next page of the same cursor to learn whether the short page just ended
    /// was cut by the relay ([`PageSize`]).
    Probe,
    /// Replace the cursor by these narrower ones.
    Split(Vec<Cursor>),
    /// The page cap was reached; the filter is incomplete.
    CapExceeded,
}

impl Cursor {
    /// A fresh cursor for `filter`.
    #[must_use]
    pub fn new(filter: Filter, layer: Layer) -> Self {
        Self {
            filter,
            layer,
            until: None,
            pages: 0,
            deliveries: 0,
            new_ids: 0,
            oldest: None,
            boundary: BTreeSet::new(),
            page_oldest_ids: BTreeSet::new(),
            probe: None,
            probe_silent: false,
            shared: false,
            newest: NewestSeconds::default(),
        }
    }

    /// Whether its next page may share a REQ with other first pages: it is a first page (no
    /// `until`, nothing requested yet, not a probe). A cursor asked again after its grouped
    /// page has `pages ≥ 1` and is asked alone from then on, so grouping always ends.
    #[must_use]
    pub fn groupable(&self) -> bool {
        self.pages == 0 && self.until.is_none() && self.probe.is_none()
    }

    /// The REQ filter for the next page.
    #[must_use]
    pub fn request(&self, limit: usize) -> Filter {
        historic(&self.filter, self.filter.since, self.until, Some(limit))
    }

    /// Records one delivery on the current page (the caller has checked it matches the page).
    pub fn record(&mut self, id: EventId, created_at: Timestamp) {
        self.deliveries += 1;
        let seen = self.until == Some(created_at) && self.boundary.contains(&id);
        if !seen {
            self.new_ids += 1;
        }
        if self.pages == 0 {
            self.newest.add(created_at);
        }
        match self.oldest {
            Some(o) if created_at > o => {}
            Some(o) if created_at == o => {
                self.page_oldest_ids.insert(id);
            }
            _ => {
                self.oldest = Some(created_at);
                self.page_oldest_ids = BTreeSet::from([id]);
            }
        }
    }

    /// Forgets the current page's deliveries (it is about to be requested again).
    pub fn reset_page(&mut self) {
        self.deliveries = 0;
        self.new_ids = 0;
        self.oldest = None;
        self.page_oldest_ids.clear();
        self.shared = false;
        self.newest.clear();
    }

    /// Notes that a delivery of the current page matched another filter of its REQ too.
    pub fn note_shared(&mut self) {
        self.shared = true;
    }

    /// Decides what follows the current page. `base_full_at` is the delivery count at which a
    /// page counts as full before anything is learned (see [`PageSize::full_at`]); `sizes` is
    /// the relay's page-size knowledge, updated by probes. Returns the decision and whether a
    /// same-second overflow was stepped past.
    pub fn on_eose(
        &mut self,
        base_full_at: usize,
        sizes: &mut PageSize,
        max_pages: u32,
    ) -> (Next, bool) {
        self.pages += 1;
        let (deliveries, new_ids, oldest) = (self.deliveries, self.new_ids, self.oldest);
        let probe = self.probe.take();
        let silent = std::mem::take(&mut self.probe_silent);
        if let Some(size) = probe.filter(|_| !silent) {
            sizes.probed(size, new_ids > 0);
        }
        let full = deliveries >= sizes.full_at(base_full_at);
        let page_ids = std::mem::take(&mut self.page_oldest_ids);
        self.reset_page();
        let Some(oldest) = oldest else {
            return (Next::Done, false);
        };
        if !full {
            if let Some(size) = probe.filter(|&size| new_ids == 0 && deliveries >= size) {
                self.probe_silent = silent;
                return self.past_a_full_second(oldest, Some(size), max_pages);
            }
            // A short page that brought something new may have been cut by an unannounced cap:
            // probe once behind it. The probe moves `until` like any page and ends the filter
            // if it brings nothing new.
            if new_ids == 0 || self.pages >= max_pages || !sizes.wants_probe(deliveries) {
                return (Next::Done, false);
            }
            self.advance(oldest, page_ids);
            self.probe = Some(deliveries);
            return (Next::Probe, false);
        }
        if self.pages >= max_pages {
            return (Next::CapExceeded, false);
        }
        if new_ids > 0 {
            self.advance(oldest, page_ids);
            return (Next::Page, false);
        }
        self.past_a_full_second(oldest, None, max_pages)
    }

    /// Decides what follows a first page that shared a REQ (asking `limit` for each filter)
    /// with others. Returns whether a same-second overflow was stepped past, like
    /// [`Self::on_eose`].
    ///
    /// What arrived for this filter is its newest events (the relay answers each filter
    /// newest first), unless the relay cut the REQ as a whole, or some deliveries were sent
    /// for another filter of the REQ that they also match (those can be older than this
    /// filter's own cut). The relay's cap per filter is at least `k` =
    /// [`PageSize::alone_at_most`], so the filter's own newest `k` events were all sent unless
    /// a cut of the whole REQ came first; either way every event of this filter newer than the
    /// second of its `k`-th newest delivery (or, with fewer than `k`, of its oldest) arrived:
    /// a newer one missing would mean `k` of its own events newer still, all sent.
    /// - The group is `trusted` ([`PageSize::trusts_group`]: not cut as a whole) and this
    ///   filter's deliveries cannot be another's (none also matched another filter, or it got
    ///   no more than `k`): they are exactly a page of its own, judged by [`Self::on_eose`].
    /// - Fewer than `k` deliveries (the group not trusted): it continues from its oldest
    ///   second like after a full page, and that page is judged like a probe of as many
    ///   deliveries (a relay capping each filter silently may hold more than that in the
    ///   second; simulator seed 4829001), one that teaches no page size.
    /// - At least `k`, some also matching another filter: it continues from the second of its
    ///   `k`-th newest delivery (continuing from its oldest, an event sent for another filter,
    ///   lost events: simulator seed 408; asking it again from its start sent most of a page
    ///   twice).
    /// - More than [`NEWEST_TRACKED`] needed: asked again alone from its start (a grouped
    ///   cursor is a first page, so its start is where it stands: no `until`, no boundary).
    pub fn on_group_eose(
        &mut self,
        trusted: bool,
        (base_full_at, limit): (usize, usize),
        sizes: &mut PageSize,
        max_pages: u32,
    ) -> (Next, bool) {
        let (deliveries, shared) = (self.deliveries, self.shared);
        let k = sizes.alone_at_most(limit);
        if trusted && (!shared || deliveries <= k) {
            return self.on_eose(base_full_at, sizes, max_pages);
        }
        self.pages += 1;
        let page_ids = std::mem::take(&mut self.page_oldest_ids);
        let (oldest, kth) = (self.oldest, self.newest.kth_newest(k));
        self.reset_page();
        if self.pages >= max_pages {
            return (Next::CapExceeded, false);
        }
        match (oldest, kth) {
            (Some(oldest), _) if !shared || deliveries < k => {
                self.advance(oldest, page_ids);
                if deliveries >= MIN_PROBED_PAGE {
                    self.probe = Some(deliveries);
                    self.probe_silent = true;
                }
            }
            (Some(oldest), Some(kth)) => {
                let ids = if kth == oldest {
                    page_ids
                } else {
                    BTreeSet::new()
                };
                self.advance(kth, ids);
            }
            _ => {}
        }
        (Next::Page, false)
    }

    /// A page as large as a page can be (full, or a probe as large as the short page it
    /// probes: `probe`) brought only ids already seen at `until`'s second: more events share
    /// that second than a page holds. The filter is split by its tag values; a single value
    /// steps past the second and counts the overflow (a probe's step is not counted). A probe stays a probe (its halves or
    /// its next page are judged against the same size): without this, a relay capping pages
    /// below the full threshold, with a second holding the cap's worth of events, ended the
    /// filter at that second and never sent what lay behind it (simulator seed 4829001).
    fn past_a_full_second(
        &mut self,
        oldest: Timestamp,
        probe: Option<usize>,
        max_pages: u32,
    ) -> (Next, bool) {
        if self.pages >= max_pages {
            return (Next::CapExceeded, false);
        }
        self.probe = probe;
        self.probe_silent &= probe.is_some();
        if let Some(halves) = self.split() {
            return (Next::Split(halves), false);
        }
        if oldest.as_secs() == 0 || self.filter.since.is_some_and(|s| s >= oldest) {
            return (Next::Done, true);
        }
        self.until = Some(Timestamp::from(oldest.as_secs() - 1));
        self.boundary.clear();
        // A probe's step is not counted as an overflow: the second may have held exactly a
        // page (the relay's cap is not known yet).
        match probe {
            Some(_) => (Next::Probe, false),
            None => (Next::Page, true),
        }
    }

    /// Moves `until` to the page's `oldest` second (inclusive), remembering the ids seen there.
    fn advance(&mut self, oldest: Timestamp, page_ids: BTreeSet<EventId>) {
        if self.until != Some(oldest) {
            self.boundary.clear();
        }
        self.boundary.extend(page_ids);
        self.until = Some(oldest);
    }

    /// Two cursors covering the same events with half the tag values each, if there are ≥ 2.
    fn split(&self) -> Option<Vec<Self>> {
        let (letter, values) = self.filter.generic_tags.iter().find(|(_, v)| v.len() > 1)?;
        let values: Vec<String> = values.iter().cloned().collect();
        let (a, b) = values.split_at(values.len() / 2);
        let half = |part: &[String]| {
            let mut filter = self.filter.clone();
            filter
                .generic_tags
                .insert(*letter, part.iter().cloned().collect());
            Self {
                filter,
                pages: self.pages,
                ..self.clone()
            }
        };
        Some(vec![half(a), half(b)])
    }
}

mod newest;

pub use newest::{NewestSeconds, NEWEST_TRACKED};

#[cfg(test)]
mod tests;
