//! The store questions the GRASP policy asks. The host's store *is* the accepted set, so every
//! answer comes from a bounded query (`limit`) and nothing is cached in memory.

use nostr::{Event, EventId, Filter, Kind, PublicKey, SingleLetterTag};
use nostr_database::{DatabaseError, NostrDatabase};
use sync_core::{EventMeta, KIND_ANNOUNCEMENT};

use crate::grasp::maintainers::MaintainerLists;
use crate::grasp::references::{Address, References};

/// Upper bound on the announcements read for one `d` identifier when computing a maintainer
/// closure. Far above any real repository (one announcement per owner or maintainer); a store
/// flooded with more announcements of one identifier only loses the oldest from the closure.
pub const MAX_ANNOUNCEMENTS_PER_IDENTIFIER: usize = 10_000;

/// The maintainer lists of every stored announcement with identifier `d`.
pub(crate) async fn maintainer_lists(
    db: &dyn NostrDatabase,
    d: &str,
) -> Result<MaintainerLists, DatabaseError> {
    let filter = Filter::new()
        .kind(Kind::from(KIND_ANNOUNCEMENT))
        .identifier(d)
        .limit(MAX_ANNOUNCEMENTS_PER_IDENTIFIER);
    let events = db.query(filter).await?;
    let mut lists = MaintainerLists::new();
    for event in events {
        // Addressable: the store keeps one per (author, d); tolerate a store that keeps more by
        // merging their lists.
        lists
            .entry(event.pubkey)
            .or_default()
            .extend(EventMeta::from_event(&event).maintainers);
    }
    Ok(lists)
}

/// How many other repositories `author` has announced (stored announcements by `author`
/// whose identifier is not `d`), counted up to `cap`.
pub(crate) async fn other_announcements_by(
    db: &dyn NostrDatabase,
    author: PublicKey,
    d: &str,
    cap: usize,
) -> Result<usize, DatabaseError> {
    let filter = Filter::new()
        .kind(Kind::from(KIND_ANNOUNCEMENT))
        .author(author)
        .limit(cap.saturating_add(1));
    let events = db.query(filter).await?;
    Ok(events
        .into_iter()
        .filter(|e| e.tags.identifier() != Some(d))
        .count())
}

/// Whether the store holds an event at `address`.
pub(crate) async fn address_held(
    db: &dyn NostrDatabase,
    address: &Address,
) -> Result<bool, DatabaseError> {
    let mut filter = Filter::new()
        .kind(address.kind)
        .author(address.author)
        .limit(1);
    if address.kind.is_addressable() {
        filter = filter.identifier(address.identifier.clone());
    }
    exists(db, filter).await
}

/// Whether the store holds any of `ids`.
pub(crate) async fn any_id_held(
    db: &dyn NostrDatabase,
    ids: impl IntoIterator<Item = EventId>,
) -> Result<bool, DatabaseError> {
    let filter = Filter::new().ids(ids).limit(1);
    exists(db, filter).await
}

/// Whether `references` point at anything the store holds (an accepted repository, another
/// addressable event, or an accepted event).
pub(crate) async fn references_held(
    db: &dyn NostrDatabase,
    references: &References,
) -> Result<bool, DatabaseError> {
    if !references.ids.is_empty() && any_id_held(db, references.ids.iter().copied()).await? {
        return Ok(true);
    }
    for address in &references.addresses {
        if address_held(db, address).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a stored event references `event` (by id via `e`/`E`/`q`, or by its address via
/// `a`/`A`/`q`): the public implementation's third related-event rule, which lets in e.g. a
/// parent that arrives after its accepted reply.
pub(crate) async fn referenced_by_stored(
    db: &dyn NostrDatabase,
    event: &Event,
) -> Result<bool, DatabaseError> {
    let mut values = vec![(['e', 'E', 'q'], event.id.to_hex())];
    if let Some(address) = Address::of_event(event) {
        values.push((['a', 'A', 'q'], address.to_tag_value()));
    }
    for (letters, value) in values {
        for letter in letters {
            let Ok(tag) = SingleLetterTag::from_char(letter) else {
                continue;
            };
            let filter = Filter::new().custom_tag(tag, value.clone()).limit(1);
            if exists(db, filter).await? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The stored events among `ids` (at most `ids.len()`).
pub(crate) async fn held_events(
    db: &dyn NostrDatabase,
    ids: &[EventId],
) -> Result<Vec<Event>, DatabaseError> {
    let filter = Filter::new().ids(ids.iter().copied()).limit(ids.len());
    Ok(db.query(filter).await?.into_iter().collect())
}

/// Whether the store holds an event at `address` by `author` (for deletions by coordinate).
pub(crate) async fn own_address_held(
    db: &dyn NostrDatabase,
    address: &Address,
    author: &PublicKey,
) -> Result<bool, DatabaseError> {
    Ok(address.author == *author && address_held(db, address).await?)
}

/// The stored announcement of repository `author`:`d`, if any (the newest, should a store keep
/// more than one).
pub(crate) async fn stored_announcement(
    db: &dyn NostrDatabase,
    author: PublicKey,
    d: &str,
) -> Result<Option<Event>, DatabaseError> {
    let filter = Filter::new()
        .kind(Kind::from(KIND_ANNOUNCEMENT))
        .author(author)
        .identifier(d)
        .limit(1);
    Ok(db.query(filter).await?.into_iter().next())
}

/// Events of one author read to decide whether it participates in a repository (Sync+).
pub const PARTICIPATION_PROBE: usize = 64;

/// Whether `author` participates in a repository held here (Sync+, docs/spec.md §15): among
/// its newest [`PARTICIPATION_PROBE`] stored events is one the policy let in for what it
/// references or is (an announcement, a state event, a root event, a reply, a status) —
/// anything but a relay list, a grasp list or a deletion, which are accepted without a
/// repository.
pub(crate) async fn participates(
    db: &dyn NostrDatabase,
    author: PublicKey,
) -> Result<bool, DatabaseError> {
    let filter = Filter::new().author(author).limit(PARTICIPATION_PROBE);
    let events = db.query(filter).await?;
    let participates = events.into_iter().any(|e| {
        !matches!(
            e.kind.as_u16(),
            sync_core::KIND_RELAY_LIST | sync_core::KIND_GRASP_LIST | 5
        )
    });
    Ok(participates)
}

/// Whether `filter` (which carries `limit: 1`) matches a stored event. `query` rather than
/// `count`: a backend may count every match while `query` stops at the limit.
async fn exists(db: &dyn NostrDatabase, filter: Filter) -> Result<bool, DatabaseError> {
    Ok(!db.query(filter).await?.is_empty())
}

/// Whether a stored replaceable version `stored` wins over `event` (NIP-01: the later
/// `created_at`, on a tie the lower id); the same event does not win over itself.
pub(crate) fn newer_than(stored: &Event, event: &Event) -> bool {
    (stored.created_at, std::cmp::Reverse(stored.id))
        > (event.created_at, std::cmp::Reverse(event.id))
}
