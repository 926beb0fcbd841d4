//! Synthetic events: ids derived from a counter, keys derived from a small index. Signatures play
//! no part in the core (it sees [`EventMeta`] only), so the simulator never signs anything.

use nostr::{EventId, Keys, Kind, PublicKey, Timestamp};
use sync_core::{
    EventMeta, RepoCoord, KIND_ANNOUNCEMENT, KIND_GRASP_LIST, KIND_RELAY_LIST, KIND_STATE,
};

/// The id of synthetic event number `n` (unique per scenario).
#[must_use]
pub fn event_id(n: u64) -> EventId {
    let mut bytes = [0u8; 32];
    bytes[0] = 0x5e;
    bytes[24..].copy_from_slice(&n.to_be_bytes());
    EventId::from_byte_array(bytes)
}

/// The public key of synthetic key number `n`.
#[must_use]
pub fn key(n: u32) -> PublicKey {
    Keys::parse(&format!("{:064x}", u64::from(n) + 1))
        .expect("small secret keys are valid")
        .public_key()
}

/// An event with sorted, deduplicated tags.
#[must_use]
pub fn meta(
    n: u64,
    author: PublicKey,
    kind: u16,
    created_at_secs: u64,
    tags: &[(char, String)],
) -> EventMeta {
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    EventMeta {
        id: event_id(n),
        author,
        kind: Kind::from(kind),
        created_at: Timestamp::from(created_at_secs),
        tags,
        relays: Vec::new(),
        clone_urls: Vec::new(),
        maintainers: Vec::new(),
    }
}

/// An announcement of `coord` listing `relays` (raw URLs, variants allowed).
#[must_use]
pub fn announcement(
    n: u64,
    coord: &RepoCoord,
    relays: &[String],
    created_at_secs: u64,
) -> EventMeta {
    let mut e = meta(
        n,
        coord.owner,
        KIND_ANNOUNCEMENT,
        created_at_secs,
        &[('d', coord.identifier.clone())],
    );
    e.relays = relays.to_vec();
    e
}

/// The replacement address of an event: `(kind, author, d)` for addressable kinds and
/// `(kind, author, "")` for the replaceable grasp list and relay list; `None` for regular
/// events.
#[must_use]
pub fn address(e: &EventMeta) -> Option<(u16, PublicKey, String)> {
    let kind = e.kind_u16();
    match kind {
        KIND_ANNOUNCEMENT | KIND_STATE => Some((
            kind,
            e.author,
            e.identifier().unwrap_or_default().to_string(),
        )),
        KIND_GRASP_LIST | KIND_RELAY_LIST => Some((kind, e.author, String::new())),
        _ => None,
    }
}

/// Whether `a` replaces `b` (same address; newer, or as new with a lower id, as NIP-01 says).
#[must_use]
pub fn newer(a: &EventMeta, b: &EventMeta) -> bool {
    (a.created_at, std::cmp::Reverse(a.id)) > (b.created_at, std::cmp::Reverse(b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_addresses_follow_kind() {
        assert_ne!(event_id(1), event_id(2));
        let c = RepoCoord {
            owner: key(1),
            identifier: "r".into(),
        };
        let a = announcement(1, &c, &[], 10);
        let b = announcement(2, &c, &[], 11);
        assert_eq!(address(&a), address(&b));
        assert!(newer(&b, &a) && !newer(&a, &b));
        assert_eq!(address(&meta(3, key(1), 1617, 1, &[])), None);
    }
}
