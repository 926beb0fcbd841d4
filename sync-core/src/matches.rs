//! NIP-01 filter matching over [`EventMeta`]: the one `matches` shared by the core (to ignore
//! deliveries outside a subscription's filters) and the simulator's fake relays.

use std::collections::BTreeSet;

use nostr::Filter;

use crate::event_meta::EventMeta;

fn in_set<T: Ord>(set: &Option<BTreeSet<T>>, value: &T) -> bool {
    set.as_ref()
        .is_none_or(|s| s.is_empty() || s.contains(value))
}

/// Whether `meta` matches `filter` under NIP-01 (ids, authors, kinds, since, until, `#x` tags).
/// Tags are matched on the letters the core indexes; `search` (NIP-50) never matches.
#[must_use]
pub fn matches(filter: &Filter, meta: &EventMeta) -> bool {
    in_set(&filter.ids, &meta.id)
        && in_set(&filter.authors, &meta.author)
        && in_set(&filter.kinds, &meta.kind)
        && filter.since.is_none_or(|t| meta.created_at >= t)
        && filter.until.is_none_or(|t| meta.created_at <= t)
        && filter.search.is_none()
        && filter
            .generic_tags
            .iter()
            .all(|(letter, values)| meta.has_tag_in(*letter, values))
}

#[cfg(test)]
mod tests {
    use nostr::filter::MatchEventOptions;
    use nostr::{Kind, SingleLetterTag, Timestamp};
    use proptest::prelude::*;

    use super::*;
    use crate::event_meta::tests::{event, keys};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// `matches` agrees with nostr's own `Filter::match_event` on the filter shapes we build.
        #[test]
        fn agrees_with_nostr_match_event(
            kind in prop::sample::select(vec![1617u16, 1621, 30617, 30618, 1]),
            created in 0u64..20,
            tag_letter in prop::sample::select(vec!["a", "A", "q", "e", "E", "d"]),
            tag_value in prop::sample::select(vec!["x", "y", "z"]),
            f_letter in prop::sample::select(vec!['a', 'A', 'q', 'e', 'E', 'd']),
            f_values in prop::collection::btree_set(prop::sample::select(vec!["x", "y", "z"]), 0..3),
            f_kinds in prop::option::of(prop::collection::btree_set(prop::sample::select(vec![1617u16, 30618, 1]), 1..3)),
            since in prop::option::of(0u64..20),
            until in prop::option::of(0u64..20),
            author_in in any::<bool>(),
        ) {
            let k = keys(9);
            let ev = event(&k, kind, created, &[&[tag_letter, tag_value]]);
            let meta = EventMeta::from_event(&ev);
            let mut filter = Filter::new();
            let letter = SingleLetterTag::from_char(f_letter).unwrap();
            if !f_values.is_empty() {
                filter = filter.custom_tags(letter, f_values.iter().copied());
            }
            if let Some(kinds) = f_kinds { filter = filter.kinds(kinds.into_iter().map(Kind::from)); }
            if let Some(s) = since { filter = filter.since(Timestamp::from(s)); }
            if let Some(u) = until { filter = filter.until(Timestamp::from(u)); }
            if author_in { filter = filter.author(k.public_key()); } else { filter = filter.author(keys(8).public_key()); }
            prop_assert_eq!(matches(&filter, &meta), filter.match_event(&ev, MatchEventOptions::default()));
            let by_id = Filter::new().id(ev.id);
            prop_assert!(matches(&by_id, &meta));
        }
    }
}
