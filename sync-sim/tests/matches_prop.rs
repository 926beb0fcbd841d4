//! `sync_core::matches` (the one filter-matching function, used by the core and by the fake
//! relays) agrees with `nostr::Filter::match_event` on real, signed events: several tags per
//! event, several tag letters per filter, ids, authors, kinds, since/until and limits.

use nostr::filter::MatchEventOptions;
use nostr::{EventBuilder, Filter, Keys, Kind, SingleLetterTag, Tag, Timestamp};
use proptest::prelude::*;
use sync_core::{matches, EventMeta};

const LETTERS: [char; 6] = ['a', 'A', 'q', 'e', 'E', 'd'];
const VALUES: [&str; 4] = ["x", "y", "z", "30617:k:repo"];

fn keys(n: u8) -> Keys {
    Keys::parse(&format!("{:064x}", u64::from(n) + 1)).expect("key")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn matches_agrees_with_nostr_match_event(
        author in 0u8..3,
        kind in prop::sample::select(vec![1u16, 7, 1111, 1617, 1621, 30617, 30618]),
        created in 0u64..30,
        tags in prop::collection::vec((0usize..6, 0usize..4), 0..5),
        f_tags in prop::collection::vec((0usize..6, prop::collection::btree_set(0usize..4, 1..3)), 0..3),
        f_kinds in prop::option::of(prop::collection::btree_set(prop::sample::select(vec![1u16, 1111, 1617, 30617, 30618]), 1..3)),
        f_authors in prop::option::of(prop::collection::btree_set(0u8..3, 1..3)),
        since in prop::option::of(0u64..30),
        until in prop::option::of(0u64..30),
        limit in prop::option::of(0usize..5),
        by_id in 0u8..3,
    ) {
        let k = keys(author);
        let tag_list = tags.iter().map(|(l, v)| {
            Tag::parse([LETTERS[*l].to_string(), VALUES[*v].to_string()]).expect("tag")
        });
        let event = EventBuilder::new(Kind::from(kind), "")
            .tags(tag_list)
            .custom_created_at(Timestamp::from(created))
            .sign_with_keys(&k)
            .expect("sign");
        let meta = EventMeta::from_event(&event);
        let mut filter = Filter::new();
        for (l, vs) in &f_tags {
            let letter = SingleLetterTag::from_char(LETTERS[*l]).expect("letter");
            filter = filter.custom_tags(letter, vs.iter().map(|v| VALUES[*v]));
        }
        if let Some(ks) = &f_kinds { filter = filter.kinds(ks.iter().map(|k| Kind::from(*k))); }
        if let Some(a) = &f_authors { filter = filter.authors(a.iter().map(|n| keys(*n).public_key())); }
        if let Some(s) = since { filter = filter.since(Timestamp::from(s)); }
        if let Some(u) = until { filter = filter.until(Timestamp::from(u)); }
        if let Some(l) = limit { filter = filter.limit(l); }
        match by_id {
            0 => filter = filter.id(event.id),
            1 => filter = filter.id(nostr::EventId::all_zeros()),
            _ => {}
        }
        prop_assert_eq!(
            matches(&filter, &meta),
            filter.match_event(&event, MatchEventOptions::default()),
            "filter {} event tags {:?}", serde_json::to_string(&filter).unwrap_or_default(), meta.tags
        );
    }
}
