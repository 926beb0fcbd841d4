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

/// What one relay's pages showed about its real page size (docs/spec.md §7.4). Kept for the
/// relay's life in the core (not reset by the daily resync).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageSize {
    /// The relay's learned page size: a page of that size had more events behind it.
    learned: Option<usize>,
    /// The largest short page (below the full threshold) seen while nothing was learned.
    largest_short: usize,
}

impl PageSize {
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
        }
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
        if let Some(size) = probe {
            sizes.probed(size, new_ids > 0);
        }
        let full = deliveries >= sizes.full_at(base_full_at);
        let page_ids = std::mem::take(&mut self.page_oldest_ids);
        self.deliveries = 0;
        self.new_ids = 0;
        self.oldest = None;
        let Some(oldest) = oldest else {
            return (Next::Done, false);
        };
        if !full {
            if let Some(size) = probe.filter(|&size| new_ids == 0 && deliveries >= size) {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use nostr::{Alphabet, SingleLetterTag};
    use proptest::prelude::*;

    use super::*;
    use crate::event_meta::EventMeta;
    use crate::matches::matches;

    /// A relay that returns the newest `cap` matching events (ties by id), like strfry.
    fn serve(events: &[EventMeta], filter: &Filter, cap: usize) -> Vec<EventMeta> {
        let mut hits: Vec<&EventMeta> = events.iter().filter(|e| matches(filter, e)).collect();
        hits.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        hits.into_iter()
            .take(cap.min(filter.limit.unwrap_or(usize::MAX)))
            .cloned()
            .collect()
    }

    fn meta(n: u32, created: u64, value: &str) -> EventMeta {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_be_bytes());
        EventMeta {
            id: EventId::from_byte_array(id),
            author: crate::event_meta::tests::keys(1).public_key(),
            kind: nostr::Kind::from(1617u16),
            created_at: Timestamp::from(created),
            tags: vec![('a', value.to_string())],
            relays: vec![],
            clone_urls: vec![],
            maintainers: vec![],
        }
    }

    /// Runs a cursor to the end; returns (ids delivered, requests, overflow steps).
    fn drain(
        events: &[EventMeta],
        filter: Filter,
        cap: usize,
        limit: usize,
        full_at: usize,
    ) -> (BTreeSet<EventId>, usize, usize) {
        drain_with(
            events,
            filter,
            cap,
            limit,
            full_at,
            &mut PageSize::default(),
        )
    }

    /// [`drain`] with the relay's page-size knowledge.
    fn drain_with(
        events: &[EventMeta],
        filter: Filter,
        cap: usize,
        limit: usize,
        full_at: usize,
        sizes: &mut PageSize,
    ) -> (BTreeSet<EventId>, usize, usize) {
        let mut queue = vec![Cursor::new(filter, Layer::L2)];
        let (mut got, mut requests, mut overflows) = (BTreeSet::new(), 0, 0);
        while let Some(mut c) = queue.pop() {
            requests += 1;
            assert!(requests < 10_000, "pagination did not terminate");
            let until = c.until;
            let req = c.request(limit);
            for e in serve(events, &req, cap) {
                got.insert(e.id);
                c.record(e.id, e.created_at);
            }
            let (next, overflow) = c.on_eose(full_at, sizes, 5_000);
            overflows += usize::from(overflow);
            match next {
                Next::Done => {}
                Next::Page | Next::Probe => {
                    assert!(
                        until.is_none_or(|u| c.until.is_some_and(|n| n <= u)),
                        "until never moves forwards"
                    );
                    queue.push(c);
                }
                Next::Split(parts) => queue.extend(parts),
                Next::CapExceeded => panic!("cap exceeded"),
            }
        }
        (got, requests, overflows)
    }

    fn a_filter(values: &[&str]) -> Filter {
        Filter::new().custom_tags(
            SingleLetterTag::lowercase(Alphabet::A),
            values.iter().copied(),
        )
    }

    #[test]
    fn same_second_burst_larger_than_a_page_is_split_by_value() {
        // 100 events in one second over 4 values, relay cap 30: nothing lost, no overflow.
        let events: Vec<EventMeta> = (0..100)
            .map(|i| meta(i, 1_000, ["w", "x", "y", "z"][i as usize % 4]))
            .collect();
        let (got, _, overflows) = drain(&events, a_filter(&["w", "x", "y", "z"]), 30, 500, 30);
        assert_eq!(got.len(), 100);
        assert_eq!(overflows, 0);
    }

    #[test]
    fn single_value_burst_steps_past_and_counts() {
        let mut events: Vec<EventMeta> = (0..40).map(|i| meta(i, 1_000, "x")).collect();
        events.push(meta(99, 999, "x"));
        let (got, _, overflows) = drain(&events, a_filter(&["x"]), 30, 500, 30);
        assert_eq!(overflows, 1);
        assert!(
            got.contains(&events[40].id),
            "the older event after the burst is still fetched"
        );
    }

    #[test]
    fn unannounced_cap_is_learned_and_every_page_fetched() {
        // 150 events, one per second; the relay returns at most 20 per REQ and says nothing.
        let events: Vec<EventMeta> = (0..150)
            .map(|i| meta(i, 1_000 + u64::from(i), "x"))
            .collect();
        let mut sizes = PageSize::default();
        let (got, requests, _) = drain_with(&events, a_filter(&["x"]), 20, 500, 50, &mut sizes);
        assert_eq!(got.len(), 150);
        assert_eq!(sizes.learned(), Some(20));
        // 8 pages of ≤ 20 (each page re-reads its boundary second) plus nothing wasted.
        assert!(requests <= 9, "{requests}");
        // A second filter on the same relay pages at once (no probe needed).
        let more: Vec<EventMeta> = (200..260)
            .map(|i| meta(i, 5_000 + u64::from(i), "y"))
            .collect();
        let (got, _, _) = drain_with(&more, a_filter(&["y"]), 20, 500, 50, &mut sizes);
        assert_eq!(got.len(), 60);
    }

    #[test]
    fn a_page_of_exactly_the_size_by_coincidence_costs_one_probe_each_time_and_learns_nothing() {
        let mut sizes = PageSize::default();
        for round in 0..5u32 {
            // 20 events on a relay without a cap: one page, then (while probes are allowed) one
            // probe that brings nothing new.
            let events: Vec<EventMeta> = (0..20)
                .map(|i| meta(round * 100 + i, 1_000 + u64::from(i), "x"))
                .collect();
            let (got, requests, _) =
                drain_with(&events, a_filter(&["x"]), 10_000, 500, 50, &mut sizes);
            assert_eq!(got.len(), 20);
            assert_eq!(requests, 2, "round {round}: every such page is probed");
            assert_eq!(sizes.learned(), None);
        }
        // Small pages are never probed; a larger short page is.
        let small: Vec<EventMeta> = (0..9)
            .map(|i| meta(900 + i, 1_000 + u64::from(i), "x"))
            .collect();
        assert_eq!(
            drain_with(&small, a_filter(&["x"]), 10_000, 500, 50, &mut sizes).1,
            1
        );
        let larger: Vec<EventMeta> = (0..30)
            .map(|i| meta(950 + i, 1_000 + u64::from(i), "x"))
            .collect();
        assert_eq!(
            drain_with(&larger, a_filter(&["x"]), 10_000, 500, 50, &mut sizes).1,
            2
        );
    }

    #[test]
    fn a_probe_full_of_one_second_steps_past_it() {
        // Simulator seed 4829001: 20 events in one second and an older one behind them on a
        // relay capping silently at 20 (below the threshold, nothing learned yet). The first
        // page is short and probed; the probe brings the same 20; the older one is still
        // fetched.
        let mut events: Vec<EventMeta> = (0..20).map(|i| meta(i, 1_000, "x")).collect();
        events.push(meta(99, 300, "x"));
        let mut sizes = PageSize::default();
        let (got, requests, overflows) =
            drain_with(&events, a_filter(&["x"]), 20, 500, 50, &mut sizes);
        assert!(got.contains(&events[20].id), "the older event is fetched");
        assert_eq!((requests, overflows), (3, 0));
        assert_eq!(
            sizes.learned(),
            Some(20),
            "the step past the second found more"
        );
        // Over several values the probe splits instead, and the halves stay probes.
        let mut events: Vec<EventMeta> = (0..20).map(|i| meta(i, 1_000, "x")).collect();
        events.extend((20..40).map(|i| meta(i, 1_000, "y")));
        events.push(meta(99, 300, "y"));
        let (got, _, _) = drain(&events, a_filter(&["x", "y"]), 20, 500, 50);
        assert!(got.contains(&events[40].id), "the older event is fetched");
    }

    proptest! {
        /// Against a relay capping silently at `cap` (≥ MIN_PROBED_PAGE, below the threshold)
        /// every event is fetched when no same-second group on one value reaches the cap, the
        /// cap is learned whenever a filter had more events than it, and `until` never moves
        /// forwards (checked in `drain_with`).
        #[test]
        fn unannounced_caps_are_learned_and_lose_nothing(
            raw in prop::collection::vec((0u64..200, 0usize..4), 0..300),
            cap in MIN_PROBED_PAGE..50,
        ) {
            let values = ["w", "x", "y", "z"];
            let events: Vec<EventMeta> = raw.iter().enumerate().map(|(i, (t, v))| meta(i as u32, *t, values[*v])).collect();
            let mut groups: BTreeMap<(u64, usize), usize> = BTreeMap::new();
            for (t, v) in &raw { *groups.entry((*t, *v)).or_default() += 1; }
            let mut sizes = PageSize::default();
            let (got, requests, _) = drain_with(&events, a_filter(&values), cap, 500, 50, &mut sizes);
            prop_assert!(requests <= 2 * (events.len() + 1) * 4 + 8);
            if groups.values().all(|n| *n < cap) {
                prop_assert_eq!(got.len(), events.len());
            }
            // Only a same-second group on one value larger than a page can lose events.
            for (e, key) in events.iter().zip(&raw) {
                prop_assert!(groups[key] >= cap || got.contains(&e.id));
            }
            if events.len() > cap {
                prop_assert_eq!(sizes.learned(), Some(cap));
            }
        }

        /// A relay without a cap below the threshold never teaches one.
        #[test]
        fn no_cap_is_learned_from_a_relay_without_one(
            raw in prop::collection::vec((0u64..200, 0usize..4), 0..300),
        ) {
            let values = ["w", "x", "y", "z"];
            let events: Vec<EventMeta> = raw.iter().enumerate().map(|(i, (t, v))| meta(i as u32, *t, values[*v])).collect();
            let mut sizes = PageSize::default();
            let (got, _, _) = drain_with(&events, a_filter(&values), 500, 500, 50, &mut sizes);
            prop_assert_eq!(got.len(), events.len());
            prop_assert_eq!(sizes.learned(), None);
        }

        #[test]
        fn pagination_terminates_and_loses_nothing(
            raw in prop::collection::vec((0u64..40, 0usize..4), 0..300),
            cap in 5usize..60,
        ) {
            let values = ["w", "x", "y", "z"];
            let events: Vec<EventMeta> = raw.iter().enumerate().map(|(i, (t, v))| meta(i as u32, *t, values[*v])).collect();
            let mut groups: BTreeMap<(u64, usize), usize> = BTreeMap::new();
            for (t, v) in &raw { *groups.entry((*t, *v)).or_default() += 1; }
            let (got, requests, overflows) = drain(&events, a_filter(&values), cap, 500, cap);
            prop_assert!(requests <= 2 * (events.len() + 1) * 4 + 8);
            if groups.values().all(|n| *n < cap) {
                prop_assert_eq!(got.len(), events.len());
                prop_assert_eq!(overflows, 0);
            }
        }
    }
}
