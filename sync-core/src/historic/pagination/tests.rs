//! Pagination against model relays: per-filter and per-REQ caps, same-second bursts,
//! grouped first pages.

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

/// A relay answering a REQ of several filters: each filter's newest `cap` (like
/// [`serve`]), merged without duplicates, then, if `req_cap` is set, the newest `req_cap`
/// of them all (a relay capping the whole REQ).
fn serve_req(
    events: &[EventMeta],
    filters: &[Filter],
    cap: usize,
    req_cap: Option<usize>,
) -> Vec<EventMeta> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<EventMeta> = filters
        .iter()
        .flat_map(|f| serve(events, f, cap))
        .filter(|e| seen.insert(e.id))
        .collect();
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    out.truncate(req_cap.unwrap_or(usize::MAX));
    out
}

/// Runs one cursor per filter to the end the way the engine does: first pages share REQs
/// of up to `per_req` filters, judged with [`PageSize::trusts_group`]; every other page
/// goes alone. Returns (ids delivered, REQs).
fn drain_grouped(
    events: &[EventMeta],
    filters: Vec<Filter>,
    (cap, req_cap): (usize, Option<usize>),
    per_req: usize,
    sizes: &mut PageSize,
) -> (BTreeSet<EventId>, usize) {
    let mut queue: std::collections::VecDeque<Cursor> = filters
        .into_iter()
        .map(|f| Cursor::new(f, Layer::L2))
        .collect();
    let (mut got, mut reqs) = (BTreeSet::new(), 0);
    while let Some(first) = queue.pop_front() {
        reqs += 1;
        assert!(reqs < 10_000, "pagination did not terminate");
        let mut group = vec![first];
        while group[0].groupable()
            && sizes.groups_ready()
            && group.len() < per_req
            && queue.front().is_some_and(Cursor::groupable)
        {
            group.extend(queue.pop_front());
        }
        let wire: Vec<Filter> = group.iter().map(|c| c.request(500)).collect();
        let answer = serve_req(events, &wire, cap, req_cap);
        for e in &answer {
            got.insert(e.id);
            let hits = wire.iter().filter(|f| matches(f, e)).count();
            for (c, f) in group.iter_mut().zip(&wire) {
                if matches(f, e) {
                    c.record(e.id, e.created_at);
                    if hits > 1 {
                        c.note_shared();
                    }
                }
            }
        }
        let trusted = group.len() == 1 || sizes.trusts_group(answer.len());
        let grouped = group.len() > 1;
        let mut follow = Vec::new();
        for mut c in group {
            let next = if grouped {
                c.on_group_eose(trusted, (50, 500), sizes, 5_000).0
            } else {
                c.on_eose(50, sizes, 5_000).0
            };
            match next {
                Next::Done => {}
                Next::Page | Next::Probe => follow.push(c),
                Next::Split(parts) => follow.extend(parts),
                Next::CapExceeded => panic!("cap exceeded"),
            }
        }
        sizes.note_req(answer.len(), !grouped);
        for c in follow.into_iter().rev() {
            queue.push_front(c);
        }
    }
    (got, reqs)
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
        let (got, requests, _) = drain_with(&events, a_filter(&["x"]), 10_000, 500, 50, &mut sizes);
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
    let (got, requests, overflows) = drain_with(&events, a_filter(&["x"]), 20, 500, 50, &mut sizes);
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

#[test]
fn a_filter_of_an_untrusted_group_continues_like_a_probe_that_teaches_nothing() {
    // Simulator seed 4829001 in a group: 20 events of one second on a relay capping each
    // filter at 20 without saying so, an older one behind them. The group brings 23 events,
    // more than the relay ever brought (5): not trusted. x's deliveries are its own (none
    // matched y), so it continues from that second; the page brings the same 20 and steps
    // past the second like a probe, without teaching a page size.
    let mut events: Vec<EventMeta> = (0..20).map(|i| meta(i, 1_000, "x")).collect();
    events.push(meta(99, 300, "x"));
    events.extend((100..103).map(|i| meta(i, 2_000, "y")));
    let filters = vec![a_filter(&["x"]), a_filter(&["y"])];
    let mut sizes = PageSize::default();
    sizes.note_req(5, true);
    let (got, reqs) = drain_grouped(&events, filters, (20, None), 10, &mut sizes);
    assert!(got.contains(&events[20].id), "the older event is fetched");
    assert_eq!(got.len(), events.len());
    // The group, x from its second, x past it, y from its second.
    assert_eq!(reqs, 4);
    assert_eq!(
        sizes.learned(),
        None,
        "a group's continuation teaches no page size"
    );
}

#[test]
fn a_grouped_filter_does_not_continue_from_an_event_sent_for_another_filter() {
    // Simulator seed 408: filter y has 60 events, so its page of 50 ends at second 1 010;
    // an event tagged x and y, at second 100, came in the same REQ for filter x. It
    // matches y too, but y must not continue from second 100: ten events lie between.
    let mut events: Vec<EventMeta> = (0..60)
        .map(|i| meta(i, 1_000 + u64::from(i), "y"))
        .collect();
    let mut both = meta(99, 100, "x");
    both.tags.push(('a', "y".to_string()));
    events.push(both);
    let filters = vec![a_filter(&["x"]), a_filter(&["y"])];
    // Earlier REQs: a group of 500, so this group is trusted; a single page of 50, the
    // relay's cap per filter, so y's 51 deliveries must include another filter's.
    let mut sizes = PageSize::default();
    sizes.note_req(500, false);
    sizes.note_req(50, true);
    let (got, reqs) = drain_grouped(&events, filters, (50, None), 10, &mut sizes);
    assert_eq!(got.len(), events.len());
    // The group (x done), y from the second of its 50th newest delivery (1 010: 11 events,
    // short), and the probe behind it (nothing is learned yet).
    assert_eq!(reqs, 3);
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

    /// First pages sharing REQs lose nothing, whether the relay caps each filter
    /// silently, the whole REQ, both or neither, when no second holds as many events on
    /// one value as the smaller cap (simulator seed 4829001 covers that case alone). Some
    /// events carry two values, so a filter's deliveries include events sent for another
    /// filter of its REQ (simulator seed 408).
    #[test]
    fn grouped_first_pages_lose_nothing_under_per_filter_or_per_req_caps(
        raw in prop::collection::vec((0u64..200, 0usize..6, prop::option::of(0usize..6)), 0..300),
        cap in prop::sample::select(vec![10usize, 20, 37, 500]),
        req_cap in prop::option::of(prop::sample::select(vec![10usize, 20, 50, 150])),
        per_req in 2usize..6,
        earlier in prop::option::of(prop::sample::select(vec![(500usize, 50usize), (150, 10), (0, 0)])),
    ) {
        let values = ["u", "v", "w", "x", "y", "z"];
        let events: Vec<EventMeta> = raw.iter().enumerate().map(|(i, (t, v, w))| {
            let mut e = meta(i as u32, *t, values[*v]);
            e.tags.extend(w.map(|w| ('a', values[w].to_string())));
            e
        }).collect();
        let mut groups: BTreeMap<(u64, usize), usize> = BTreeMap::new();
        for (t, v, w) in &raw {
            *groups.entry((*t, *v)).or_default() += 1;
            if let Some(w) = w.filter(|w| w != v) { *groups.entry((*t, w)).or_default() += 1; }
        }
        let smaller = cap.min(req_cap.unwrap_or(usize::MAX));
        let filters: Vec<Filter> = values.iter().map(|v| a_filter(&[v])).collect();
        // What earlier REQs showed, within the relay's real caps (a group, a single page).
        let mut sizes = PageSize::default();
        if let Some((group, single)) = earlier {
            sizes.note_req(group.min(req_cap.unwrap_or(usize::MAX)), false);
            sizes.note_req(single.min(smaller), true);
        }
        let (got, _) = drain_grouped(&events, filters, (cap, req_cap), per_req, &mut sizes);
        for (e, (t, v, w)) in events.iter().zip(&raw) {
            let burst = groups[&(*t, *v)] >= smaller || w.is_some_and(|w| groups[&(*t, w)] >= smaller);
            prop_assert!(burst || got.contains(&e.id), "lost {:?}", (t, v, w));
        }
    }

    /// Against a relay without caps, grouping saves REQs: small filters share their
    /// first page.
    #[test]
    fn grouped_first_pages_of_small_filters_take_one_req_each_group(
        raw in prop::collection::vec((0u64..200, 0usize..6), 0..8),
    ) {
        let values = ["u", "v", "w", "x", "y", "z"];
        let events: Vec<EventMeta> = raw.iter().enumerate().map(|(i, (t, v))| meta(i as u32, *t, values[*v])).collect();
        let filters: Vec<Filter> = values.iter().map(|v| a_filter(&[v])).collect();
        let (got, reqs) = drain_grouped(&events, filters, (500, None), 3, &mut PageSize::default());
        prop_assert_eq!(got.len(), events.len());
        prop_assert_eq!(reqs, 3, "six filters of fewer than 10 events in all: the first alone (the relay has answered no single-filter page yet), then REQs of three and two");
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
