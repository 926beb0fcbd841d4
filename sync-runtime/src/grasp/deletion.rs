//! NIP-09 deletion requests (kind 5): accepted only when they delete the author's own events
//! that we hold.
//!
//! Rule: the request names at least one target (`e` id or `a` coordinate); every `a` coordinate
//! names the request's author; no stored `e` target belongs to someone else; and at least one
//! target is stored. `e` ids we do not hold are tolerated (the stores of nostr-database 0.44
//! ignore them, so they cannot pre-block someone else's future event).

use std::collections::BTreeSet;

use nostr::{Event, EventId};
use nostr_database::{DatabaseError, NostrDatabase};

use crate::grasp::lookup;
use crate::grasp::references::{Address, MAX_REFERENCES};
use crate::policy::Verdict;

/// The targets of one deletion request, bounded by [`MAX_REFERENCES`] each.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct DeletionTargets {
    /// Ids from `e` tags.
    pub(crate) ids: BTreeSet<EventId>,
    /// Coordinates from `a` tags (only replaceable/addressable kinds parse).
    pub(crate) addresses: BTreeSet<Address>,
    /// Whether an `a` tag held something that is not a usable coordinate.
    pub(crate) malformed_address: bool,
}

impl DeletionTargets {
    /// Reads the `e` and `a` tags of `event`.
    pub(crate) fn of(event: &Event) -> Self {
        let mut targets = Self::default();
        for tag in event.tags.iter() {
            let slice = tag.as_slice();
            let (Some(name), Some(value)) = (slice.first(), slice.get(1)) else {
                continue;
            };
            match name.as_str() {
                "e" if targets.ids.len() < MAX_REFERENCES => {
                    if let Ok(id) = EventId::from_hex(value) {
                        targets.ids.insert(id);
                    }
                }
                "a" if targets.addresses.len() < MAX_REFERENCES => match Address::parse(value) {
                    Some(address) => {
                        targets.addresses.insert(address);
                    }
                    None => targets.malformed_address = true,
                },
                _ => {}
            }
        }
        targets
    }
}

/// Decides about a deletion request.
pub(crate) async fn check_deletion(
    db: &dyn NostrDatabase,
    event: &Event,
) -> Result<Verdict, DatabaseError> {
    let targets = DeletionTargets::of(event);
    if targets.ids.is_empty() && targets.addresses.is_empty() {
        return Ok(Verdict::reject("invalid: deletion request names no event"));
    }
    if targets.malformed_address {
        return Ok(Verdict::reject(
            "invalid: deletion request has a malformed `a` tag",
        ));
    }
    if targets.addresses.iter().any(|a| a.author != event.pubkey) {
        return Ok(Verdict::reject(
            "blocked: deletion request names someone else's event",
        ));
    }
    let ids: Vec<EventId> = targets.ids.iter().copied().collect();
    let held = if ids.is_empty() {
        Vec::new()
    } else {
        lookup::held_events(db, &ids).await?
    };
    if held.iter().any(|target| target.pubkey != event.pubkey) {
        return Ok(Verdict::reject(
            "blocked: deletion request names someone else's event",
        ));
    }
    if !held.is_empty() {
        return Ok(Verdict::Accept);
    }
    for address in &targets.addresses {
        if lookup::own_address_held(db, address, &event.pubkey).await? {
            return Ok(Verdict::Accept);
        }
    }
    Ok(Verdict::reject(
        "blocked: deletion request names no event we hold",
    ))
}
