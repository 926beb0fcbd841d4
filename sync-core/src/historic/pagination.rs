//! REQ+EOSE pagination (docs/spec.md §7.4): pages walk backwards with an inclusive `until` (same-second
//! events are never skipped; duplicates are fine). A full page that brings nothing new means more
//! events share one second than a page holds: the filter is split by its tag values, and a
//! single-value filter steps past that second and counts the overflow. Pages are capped.

use std::collections::BTreeSet;

use nostr::{EventId, Filter, Timestamp};
use serde::{Deserialize, Serialize};

use crate::filters::{historic, Layer};

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
}

/// What to do after a page's EOSE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The filter is exhausted.
    Done,
    /// Request the next page of the same cursor.
    Page,
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

    /// Decides what follows the current page. `full_at` is the delivery count at which a page
    /// counts as full; returns the decision and whether a same-second overflow was stepped past.
    pub fn on_eose(&mut self, full_at: usize, max_pages: u32) -> (Next, bool) {
        self.pages += 1;
        let full = self.deliveries >= full_at.max(1);
        let (new_ids, oldest) = (self.new_ids, self.oldest);
        let page_ids = std::mem::take(&mut self.page_oldest_ids);
        self.deliveries = 0;
        self.new_ids = 0;
        self.oldest = None;
        let Some(oldest) = oldest.filter(|_| full) else {
            return (Next::Done, false);
        };
        if self.pages >= max_pages {
            return (Next::CapExceeded, false);
        }
        if new_ids > 0 {
            if self.until != Some(oldest) {
                self.boundary.clear();
            }
            self.boundary.extend(page_ids);
            self.until = Some(oldest);
            return (Next::Page, false);
        }
        if let Some(halves) = self.split() {
            return (Next::Split(halves), false);
        }
        // One value, more same-second events than a page: step past the second and count it.
        if oldest.as_secs() == 0 || self.filter.since.is_some_and(|s| s >= oldest) {
            return (Next::Done, true);
        }
        self.until = Some(Timestamp::from(oldest.as_secs() - 1));
        self.boundary.clear();
        (Next::Page, true)
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
        let mut queue = vec![Cursor::new(filter, Layer::L2)];
        let (mut got, mut requests, mut overflows) = (BTreeSet::new(), 0, 0);
        while let Some(mut c) = queue.pop() {
            requests += 1;
            assert!(requests < 10_000, "pagination did not terminate");
            let req = c.request(limit);
            for e in serve(events, &req, cap) {
                got.insert(e.id);
                c.record(e.id, e.created_at);
            }
            let (next, overflow) = c.on_eose(full_at, 5_000);
            overflows += usize::from(overflow);
            match next {
                Next::Done => {}
                Next::Page => queue.push(c),
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

    proptest! {
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
