//! Tests of the filter builders (`filters/mod.rs`).
use proptest::prelude::*;

use super::*;
use crate::event_meta::tests::keys;
use crate::event_meta::RepoCoord;

fn coord(owner: u8, d: &str) -> RepoCoord {
    RepoCoord {
        owner: keys(owner).public_key(),
        identifier: d.to_string(),
    }
}

fn full_repo(owner: u8, d: &str) -> Vec<Item> {
    vec![
        Item::State(coord(owner, d)),
        Item::RepoEvents(coord(owner, d)),
    ]
}

fn count(filters: &[LayerFilter], layer: Layer) -> usize {
    filters.iter().filter(|f| f.layer == layer).count()
}

/// A want index holding `repos` (owner number, identifier: identifiers repeat across
/// owners) and `roots`, and the set of keys `picks` selects (kind, index modulo the table).
fn interned(
    repos: &[(u8, String)],
    roots: &[[u8; 32]],
    picks: &[(u8, u16)],
) -> (WantIndex, BTreeSet<Key>) {
    use crate::index::want::RepoWant;
    use crate::item::SyncLevel;
    let mut want = WantIndex::default();
    let coords: Vec<RepoCoord> = repos
        .iter()
        .map(|(o, d)| RepoCoord {
            owner: nostr::PublicKey::from_byte_array([*o; 32]),
            identifier: d.clone(),
        })
        .collect();
    for c in &coords {
        let w = RepoWant {
            relays: Vec::new(),
            level: SyncLevel::Full,
            announced_at: None,
        };
        want.set_repo(c, w);
    }
    let ids: Vec<EventId> = roots.iter().map(|b| EventId::from_byte_array(*b)).collect();
    let tagged = BTreeSet::from([coord(9, "tagged")]);
    for id in &ids {
        want.add_root(*id, &tagged);
    }
    let keys = picks
        .iter()
        .filter_map(|(kind, i)| {
            let i = usize::from(*i);
            let item = match kind {
                0 => Item::Announcements,
                1 => Item::State(coords.get(i % coords.len().max(1))?.clone()),
                2 => Item::RepoEvents(coords.get(i % coords.len().max(1))?.clone()),
                _ => Item::Root(*ids.get(i % ids.len().max(1))?),
            };
            want.key(&item)
        })
        .collect();
    (want, keys)
}

#[test]
fn one_repo_gives_three_l2_filters() {
    let f = build(&full_repo(1, "r"), 100);
    assert_eq!(count(&f, Layer::L2), 3);
    assert_eq!(count(&f, Layer::State), 1);
}

#[test]
fn two_hundred_fifty_repos_give_nine_l2_filters() {
    let items: Vec<Item> = (0..250)
        .flat_map(|i| full_repo(1, &format!("r{i}")))
        .collect();
    let f = build(&items, 100);
    assert_eq!(count(&f, Layer::L2), 9);
    assert_eq!(count(&f, Layer::State), 3);
}

#[test]
fn one_repo_and_one_root_give_seven_filters() {
    let mut items = full_repo(1, "r");
    items.push(Item::Root(EventId::all_zeros()));
    assert_eq!(build(&items, 100).len(), 7);
}

#[test]
fn one_identifier_under_three_owners_gives_one_state_filter() {
    let items: Vec<Item> = (1..=3).map(|o| Item::State(coord(o, "same"))).collect();
    let f = build(&items, 100);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].layer, Layer::State);
}

#[test]
fn l1_is_announcements_and_grasp_lists() {
    let f = build(&[Item::Announcements], 100);
    assert_eq!(f.len(), 1);
    assert_eq!(
        serde_json::to_string(&f[0].filter).unwrap(),
        r#"{"kinds":[10317,30617]}"#
    );
    assert_eq!(
        serde_json::to_string(&live(&f[0].filter)).unwrap(),
        r#"{"kinds":[10317,30617],"limit":0}"#
    );
}

#[test]
fn id_fetches_are_chunked_at_300() {
    let ids_: Vec<EventId> = (0..650u32)
        .map(|i| {
            EventId::from_byte_array({
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&i.to_be_bytes());
                b
            })
        })
        .collect();
    let f = ids(ids_, 300);
    assert_eq!(
        f.iter()
            .map(|f| f.filter.ids.as_ref().unwrap().len())
            .collect::<Vec<_>>(),
        vec![300, 300, 50]
    );
}

proptest! {
    /// The fast encoders write exactly what `to_hex` and `Display` write, and coordinate
    /// order is string order (the filters' value order depends on it).
    #[test]
    fn fast_hex_and_coord_strings_match_display(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), da in "[a-z:0-9-]{0,8}", db in "[a-z:0-9-]{0,8}") {
        let id = EventId::from_byte_array(a);
        let hex = |bytes: &[u8; 32]| {
            let mut s = String::new();
            push_hex32(&mut s, bytes);
            s
        };
        prop_assert_eq!(hex(id.as_bytes()), id.to_hex());
        let other = EventId::from_byte_array(b);
        let mut near = b;
        near[..12].copy_from_slice(&a[..12]);
        let near = EventId::from_byte_array(near);
        let mut ids = vec![&other, &near, &id, &near];
        let sorted: Vec<[u8; 32]> = sorted_ids(ids.clone());
        ids.sort();
        prop_assert_eq!(sorted, ids.iter().map(|i| *i.as_bytes()).collect::<Vec<_>>());
        let ca = RepoCoord { owner: nostr::PublicKey::from_byte_array(a), identifier: da };
        let cb = RepoCoord { owner: nostr::PublicKey::from_byte_array(b), identifier: db };
        let mut written = String::new();
        push_coord(&mut written, &ca);
        prop_assert_eq!(written, ca.to_string());
        prop_assert_eq!(ca.cmp(&cb), ca.to_string().cmp(&cb.to_string()));
    }

    /// The size-only path agrees with building: for random interned items, each filter's
    /// computed size is the `wire_bytes` of the built live filter (`limit: 0`), and the
    /// REQs counted from sizes are the REQs packing the built filters makes. Keys may
    /// repeat (chained sets) without changing either.
    #[test]
    fn filter_sizes_and_req_counts_match_the_built_filters(
        repos in prop::collection::vec((0u8..3, "[a-c]{0,12}"), 0..40),
        roots in prop::collection::vec(any::<[u8; 32]>(), 0..60),
        picks in prop::collection::vec((0u8..4, any::<u16>()), 0..120),
        chunk_size in 1usize..9,
        max_filters in 1usize..12,
        max_bytes in 1024usize..6000,
    ) {
        let (want, keys) = interned(&repos, &roots, &picks);
        let sent = build_keys(&keys, &want, chunk_size);
        let built: Vec<Filter> = sent.iter().map(|f| f.filter.to_filter().limit(0)).collect();
        prop_assert_eq!(
            sent.iter().map(|f| wire_size(&f.filter)).collect::<Vec<_>>(),
            built.iter().map(wire_bytes).collect::<Vec<_>>()
        );
        let nostr_built: Vec<LayerFilter> = build_keys(&keys, &want, chunk_size)
            .into_iter()
            .map(|c| LayerFilter { layer: c.layer, filter: c.filter.to_filter() })
            .collect();
        let items: Vec<Item> = keys.iter().filter_map(|k| want.item(*k)).collect();
        prop_assert_eq!(build(&items, chunk_size), nostr_built);
        let values = key_values(&keys, &want);
        let sizes: Vec<usize> = values.filter_sizes(chunk_size).collect();
        prop_assert_eq!(&sizes, &built.iter().map(wire_bytes).collect::<Vec<_>>());
        prop_assert_eq!(values.filter_count(chunk_size), built.len());
        // Two disjoint halves merged give the values of the whole.
        let distinct: BTreeSet<Key> = keys.iter().copied().collect();
        let (mut odd, mut even) = (Vec::new(), Vec::new());
        for (i, key) in distinct.iter().enumerate() {
            if i % 2 == 1 { odd.push(*key) } else { even.push(*key) }
        }
        let union = key_values(&odd, &want).union(&key_values(&even, &want));
        prop_assert_eq!(&union.filter_sizes(chunk_size).collect::<Vec<_>>(), &sizes);
        prop_assert_eq!(union.filters(chunk_size).collect::<Vec<_>>(), build_keys(&keys, &want, chunk_size));
        let twice: Vec<usize> = key_values(keys.iter().chain(&keys), &want)
            .filter_sizes(chunk_size)
            .collect();
        prop_assert_eq!(&twice, &sizes);
        let cfg = crate::config::Config {
            max_filters_per_req: max_filters,
            max_message_bytes: max_bytes,
            ..crate::config::Config::default()
        };
        let budget = crate::budget::Budget::new(&cfg);
        let wire: Vec<WireFilter> = built.into_iter().map(WireFilter::from).collect();
        prop_assert_eq!(budget.count_reqs(sizes), budget.pack(wire).len());
    }

    /// Many ids take the radix path: still the order of a full sort, also for ids sharing
    /// their first bytes; their hex, written at once, is `to_hex`'s.
    #[test]
    fn many_ids_sort_and_hex_like_one_at_a_time(mut raw in prop::collection::vec(any::<[u8; 32]>(), 256..700), shared in 0usize..60) {
        for i in 0..shared.min(raw.len() - 1) {
            let prefix = raw[i];
            raw[i + 1][..5].copy_from_slice(&prefix[..5]);
        }
        let ids: Vec<EventId> = raw.iter().map(|b| EventId::from_byte_array(*b)).collect();
        let mut expected = raw.clone();
        expected.sort_unstable();
        let sorted: Vec<[u8; 32]> = sorted_ids(ids.iter().collect());
        prop_assert_eq!(sorted, expected.clone());
        expected.dedup();
        let hex: Vec<String> = TagValues::hex32(expected.iter()).iter().map(str::to_owned).collect();
        let each: Vec<String> = expected.iter().map(|b| EventId::from_byte_array(*b).to_hex()).collect();
        prop_assert_eq!(hex, each);
    }

    /// Sorting on a prefix first gives what sorting the values gives (identifiers of any
    /// length sharing prefixes, NUL bytes included; coordinates of shared owners).
    #[test]
    fn prefix_sort_is_a_plain_sort(ids in prop::collection::vec("[ab\\x00]{0,10}", 0..80), owners in prop::collection::vec((0u8..3, "[ab]{0,3}"), 0..40)) {
        let refs: Vec<&String> = ids.iter().collect();
        let mut expected = refs.clone();
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(sorted_by_prefix(refs, |v| prefix8(v.as_bytes())), expected);
        let coords: Vec<RepoCoord> = owners.iter().map(|(o, d)| coord(*o, d)).collect();
        let refs: Vec<&RepoCoord> = coords.iter().collect();
        let mut expected = refs.clone();
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(sorted_by_prefix(refs, |c| prefix8(c.owner.as_bytes())), expected);
    }

    #[test]
    fn chunking_covers_every_value_once_in_any_order(mut values in prop::collection::vec(0u32..500, 0..400), size in 1usize..120) {
        let a = chunk(values.clone(), size);
        values.reverse();
        let b = chunk(values.clone(), size);
        prop_assert_eq!(&a, &b);
        let flat: Vec<u32> = a.iter().flatten().copied().collect();
        let unique: BTreeSet<u32> = values.iter().copied().collect();
        prop_assert_eq!(flat.len(), unique.len());
        prop_assert_eq!(flat.into_iter().collect::<BTreeSet<_>>(), unique);
        prop_assert!(a.iter().all(|c| !c.is_empty() && c.len() <= size));
    }
}
