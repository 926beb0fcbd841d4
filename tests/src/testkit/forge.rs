//! Events a misbehaving relay sends: events made to match a REQ filter, events made to miss
//! it, and events whose id or signature is wrong.

use nostr::filter::MatchEventOptions;
use nostr::{Event, EventBuilder, EventId, Filter, Keys, Kind, Tag, Timestamp};

/// Kind used when a filter names none.
const DEFAULT_KIND: u16 = 1;

/// A freshly signed event that matches `filter` (kind, generic tags), dated `created_at`.
/// `None` for filters no fresh event can match (`ids`, `authors`).
pub(crate) fn matching(
    filter: &Filter,
    keys: &Keys,
    created_at: Timestamp,
    n: u64,
) -> Option<Event> {
    if filter.ids.as_ref().is_some_and(|ids| !ids.is_empty())
        || filter.authors.as_ref().is_some_and(|a| !a.is_empty())
    {
        return None;
    }
    let kind = filter
        .kinds
        .as_ref()
        .and_then(|kinds| kinds.iter().next().copied())
        .unwrap_or(Kind::from(DEFAULT_KIND));
    let mut tags: Vec<Tag> = Vec::new();
    let mut has_d = false;
    for (letter, values) in filter.generic_tags.iter() {
        if let Some(value) = values.iter().next() {
            has_d |= letter.as_char() == 'd';
            tags.extend(Tag::parse([letter.as_char().to_string(), value.clone()]).ok());
        }
    }
    if kind.is_addressable() && !has_d {
        tags.push(Tag::identifier(format!("forged-{n}")));
    }
    let event = EventBuilder::new(kind, format!("forged {n}"))
        .tags(tags)
        .custom_created_at(created_at)
        .sign_with_keys(keys)
        .ok()?;
    filter
        .match_event(&event, MatchEventOptions::new())
        .then_some(event)
}

/// A freshly signed event that matches none of `filters`, referencing as much of `bait` (tags a
/// policy would accept once the bait is stored) as it can while missing them; `None` if every
/// candidate matches some filter (e.g. an empty filter).
pub(crate) fn outside(filters: &[Filter], bait: &[Tag], keys: &Keys, n: u64) -> Option<Event> {
    let candidates = [Kind::from(1621), Kind::from(1111), Kind::from(1)];
    let opts = MatchEventOptions::new();
    for (i, kind) in candidates.into_iter().enumerate() {
        // Try the full bait first, then each bait tag alone: one of them usually misses the
        // filter (an `a`-filter REQ is missed by an `e`-only reply).
        let mut tag_sets = vec![bait.to_vec()];
        tag_sets.extend(bait.iter().map(|t| vec![t.clone()]));
        tag_sets.push(Vec::new());
        for (j, tags) in tag_sets.into_iter().enumerate() {
            let Ok(event) = EventBuilder::new(kind, format!("outside {n}.{i}.{j}"))
                .tags(tags)
                .sign_with_keys(keys)
            else {
                continue;
            };
            if !filters.iter().any(|f| f.match_event(&event, opts)) {
                return Some(event);
            }
        }
    }
    None
}

/// `event` with a signature that does not verify (another event's signature).
pub fn bad_signature(event: &Event, donor: &Event) -> Event {
    Event::new(
        event.id,
        event.pubkey,
        event.created_at,
        event.kind,
        event.tags.clone(),
        event.content.clone(),
        donor.sig,
    )
}

/// `event` with content changed after signing, so its id does not match its fields.
pub(crate) fn bad_id(event: &Event) -> Event {
    Event::new(
        event.id,
        event.pubkey,
        event.created_at,
        event.kind,
        event.tags.clone(),
        format!("{} (tampered)", event.content),
        event.sig,
    )
}

/// Tags that make an event "related" to `events` for a GRASP policy: an `a` tag per
/// announcement coordinate and an `e` tag per other event, at most `max` in all.
pub(crate) fn bait_tags(events: &[Event], max: usize) -> Vec<Tag> {
    events
        .iter()
        .filter_map(|event| {
            if event.kind == Kind::from(30617) {
                let d = event.tags.identifier()?;
                Tag::parse([
                    "a".to_string(),
                    format!("30617:{}:{d}", event.pubkey.to_hex()),
                ])
                .ok()
            } else {
                Some(Tag::event(event.id))
            }
        })
        .take(max)
        .collect()
}

/// A syntactically valid id nothing hashes to (for garbage frames).
pub(crate) fn dummy_id() -> EventId {
    EventId::all_zeros()
}

#[cfg(test)]
mod tests {
    use nostr::{Alphabet, SingleLetterTag};

    use super::*;

    #[test]
    fn forged_events_match_or_miss_as_asked() {
        let keys = Keys::generate();
        let repo = "30617:".to_string() + &keys.public_key().to_hex() + ":r";
        let l2 = Filter::new().custom_tag(SingleLetterTag::lowercase(Alphabet::A), repo.clone());
        let l1 = Filter::new().kinds([Kind::from(30617), Kind::from(10317)]);
        let now = Timestamp::from(1_700_000_000);
        let opts = MatchEventOptions::new();
        for filter in [&l1, &l2] {
            let event = matching(filter, &keys, now, 1).expect("forgeable");
            assert!(filter.match_event(&event, opts));
            assert!(event.verify().is_ok());
        }
        assert!(matching(&Filter::new().id(dummy_id()), &keys, now, 1).is_none());

        let announcement = EventBuilder::new(Kind::from(30617), "")
            .tag(Tag::identifier("r"))
            .sign_with_keys(&keys)
            .expect("sign");
        let bait = bait_tags(std::slice::from_ref(&announcement), 4);
        let out = outside(&[l1.clone(), l2.clone()], &bait, &keys, 1).expect("an outsider");
        assert!(!l1.match_event(&out, opts) && !l2.match_event(&out, opts));
        // Against the announcement layer alone the outsider carries the bait.
        let baited = outside(std::slice::from_ref(&l1), &bait, &keys, 2).expect("an outsider");
        assert!(!l1.match_event(&baited, opts));
        assert_eq!(baited.tags.to_vec(), bait);
        assert!(out.verify().is_ok());

        assert!(bad_signature(&out, &announcement).verify().is_err());
        assert!(bad_id(&out).verify().is_err());
    }
}
