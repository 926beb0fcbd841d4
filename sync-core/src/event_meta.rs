//! What the core knows of an event: only the fields decisions need. Event bodies never enter
//! the core; the shell builds an [`EventMeta`] with the pure [`EventMeta::from_event`].

use std::collections::BTreeSet;
use std::fmt;

use nostr::{Event, EventId, Kind, PublicKey, SingleLetterTag, Timestamp};
use serde::{Deserialize, Serialize};

/// Kind of a repository announcement.
pub const KIND_ANNOUNCEMENT: u16 = 30617;
/// Kind of a repository state event.
pub const KIND_STATE: u16 = 30618;
/// Kind of a user grasp list.
pub const KIND_GRASP_LIST: u16 = 10317;
/// Kind of a NIP-65 relay list (its `r` tags without marker or marked `write` are outboxes).
pub const KIND_RELAY_LIST: u16 = 10002;
/// Relay URLs read from one relay list (10002 or 10317); the rest are ignored (docs/spec.md §15).
pub const MAX_LIST_URLS: usize = 64;
/// Kinds of root events: patch, pull request, issue.
pub const ROOT_KINDS: [u16; 3] = [1617, 1618, 1621];
/// Kinds of replies and statuses (NIP-22 comments, NIP-34 replies and statuses): with Sync+ on,
/// their authors are participants, so a restart replays the newest of them.
pub const REPLY_KINDS: [u16; 6] = [1111, 1622, 1630, 1631, 1632, 1633];
/// Replies replayed at start with Sync+ on (the newest; older repliers count again once they
/// write).
pub const SYNC_PLUS_REPLAYED_REPLIES: usize = 10_000;

/// Tag letters the core keeps (the ones its filters use).
pub const INDEXED_TAG_LETTERS: [char; 6] = ['a', 'A', 'q', 'e', 'E', 'd'];
/// Upper bound on indexed tag values kept per event; the rest are ignored.
pub const MAX_INDEXED_TAGS: usize = 512;

/// A repository coordinate `30617:<owner-hex>:<identifier>`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RepoCoord {
    /// The announcement's author.
    pub owner: PublicKey,
    /// The announcement's `d` tag.
    pub identifier: String,
}

impl RepoCoord {
    /// Parses `30617:<hex>:<identifier>`; anything else (other kinds, bad keys) is `None`.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.strip_prefix("30617:")?;
        let (owner, identifier) = rest.split_once(':')?;
        Some(Self {
            owner: PublicKey::from_hex(owner).ok()?,
            identifier: identifier.to_string(),
        })
    }
}

impl fmt::Display for RepoCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "30617:{}:{}", self.owner.to_hex(), self.identifier)
    }
}

impl fmt::Debug for RepoCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// The decision-relevant fields of one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    /// Event id.
    pub id: EventId,
    /// Author.
    pub author: PublicKey,
    /// Kind.
    pub kind: Kind,
    /// `created_at`.
    pub created_at: Timestamp,
    /// First values of single-letter tags in [`INDEXED_TAG_LETTERS`], as `(letter, value)`,
    /// sorted and deduplicated; at most [`MAX_INDEXED_TAGS`].
    pub tags: Vec<(char, String)>,
    /// Raw values of `relays` tags (announcements), or the write relays of a relay list (10002
    /// `r` tags without marker or marked `write`; 10317 `g` tags; at most [`MAX_LIST_URLS`]),
    /// not yet canonicalised.
    pub relays: Vec<String>,
    /// Raw values of `clone` tags (announcements only).
    pub clone_urls: Vec<String>,
    /// Valid keys of `maintainers` tags (announcements only).
    pub maintainers: Vec<PublicKey>,
}

impl EventMeta {
    /// Extracts the decision-relevant fields. Pure; never fails (bad tags are skipped).
    #[must_use]
    pub fn from_event(event: &Event) -> Self {
        let mut tags = BTreeSet::new();
        let mut relays = Vec::new();
        let mut clone_urls = Vec::new();
        let mut maintainers = Vec::new();
        let is_announcement = event.kind.as_u16() == KIND_ANNOUNCEMENT;
        let list_letter = match event.kind.as_u16() {
            KIND_RELAY_LIST => Some('r'),
            KIND_GRASP_LIST => Some('g'),
            _ => None,
        };
        for tag in event.tags.iter() {
            let slice = tag.as_slice();
            let (Some(name), Some(first)) = (slice.first(), slice.get(1)) else {
                continue;
            };
            let mut letters = name.chars();
            if let (Some(letter), None) = (letters.next(), letters.next()) {
                let write = slice.get(2).is_none_or(|m| m == "write");
                if list_letter == Some(letter) && write && relays.len() < MAX_LIST_URLS {
                    relays.push(first.clone());
                }
                if INDEXED_TAG_LETTERS.contains(&letter) && tags.len() < MAX_INDEXED_TAGS {
                    tags.insert((letter, first.clone()));
                }
                continue;
            }
            if !is_announcement {
                continue;
            }
            let values = slice[1..].iter().take(MAX_INDEXED_TAGS);
            match name.as_str() {
                "relays" => relays.extend(values.cloned()),
                "clone" => clone_urls.extend(values.cloned()),
                "maintainers" => {
                    maintainers.extend(values.filter_map(|v| PublicKey::from_hex(v).ok()))
                }
                _ => {}
            }
        }
        Self {
            id: event.id,
            author: event.pubkey,
            kind: event.kind,
            created_at: event.created_at,
            tags: tags.into_iter().collect(),
            relays,
            clone_urls,
            maintainers,
        }
    }

    /// The kind as a number.
    #[must_use]
    pub fn kind_u16(&self) -> u16 {
        self.kind.as_u16()
    }

    /// Values of one indexed tag letter.
    pub fn tag_values(&self, letter: char) -> impl Iterator<Item = &str> {
        self.tags
            .iter()
            .filter(move |(l, _)| *l == letter)
            .map(|(_, v)| v.as_str())
    }

    /// The `d` identifier.
    #[must_use]
    pub fn identifier(&self) -> Option<&str> {
        self.tag_values('d').next()
    }

    /// The announcement's own coordinate (kind 30617 only).
    #[must_use]
    pub fn own_coord(&self) -> Option<RepoCoord> {
        (self.kind_u16() == KIND_ANNOUNCEMENT).then(|| RepoCoord {
            owner: self.author,
            identifier: self.identifier().unwrap_or_default().to_string(),
        })
    }

    /// Every repository coordinate tagged via `a`, `A` or `q`, deduplicated and sorted.
    #[must_use]
    pub fn tagged_repos(&self) -> BTreeSet<RepoCoord> {
        ['a', 'A', 'q']
            .iter()
            .flat_map(|l| self.tag_values(*l))
            .filter_map(RepoCoord::parse)
            .collect()
    }

    /// Whether this is a relay list Sync+ reads (kind 10002 or 10317).
    #[must_use]
    pub fn is_relay_list(&self) -> bool {
        matches!(self.kind_u16(), KIND_RELAY_LIST | KIND_GRASP_LIST)
    }

    /// Whether this is a root event (patch, pull request, issue).
    #[must_use]
    pub fn is_root(&self) -> bool {
        ROOT_KINDS.contains(&self.kind_u16())
    }

    /// Whether the event has indexed tag `letter` with one of `values`.
    pub(crate) fn has_tag_in(&self, letter: SingleLetterTag, values: &BTreeSet<String>) -> bool {
        let letter = letter.as_char();
        self.tags
            .iter()
            .any(|(l, v)| *l == letter && values.contains(v))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use nostr::{EventBuilder, Keys, Tag};

    use super::*;

    /// A signed test event with `tags` (each a slice of strings).
    pub(crate) fn event(keys: &Keys, kind: u16, created_at: u64, tags: &[&[&str]]) -> Event {
        let tags = tags
            .iter()
            .map(|t| Tag::parse(t.iter().copied()).expect("tag"));
        EventBuilder::new(Kind::from(kind), "")
            .tags(tags)
            .custom_created_at(Timestamp::from(created_at))
            .sign_with_keys(keys)
            .expect("sign")
    }

    pub(crate) fn keys(n: u8) -> Keys {
        Keys::parse(&format!("{:064x}", u64::from(n) + 1)).expect("key")
    }

    #[test]
    fn announcement_fields_are_extracted() {
        let owner = keys(1);
        let maint = keys(2).public_key().to_hex();
        let ev = event(
            &owner,
            30617,
            10,
            &[
                &["d", "repo"],
                &["relays", "wss://a", "wss://b"],
                &["clone", "https://git.x/r.git"],
                &["maintainers", &maint, "not-a-key"],
            ],
        );
        let meta = EventMeta::from_event(&ev);
        assert_eq!(meta.identifier(), Some("repo"));
        assert_eq!(meta.relays, vec!["wss://a", "wss://b"]);
        assert_eq!(meta.clone_urls, vec!["https://git.x/r.git"]);
        assert_eq!(meta.maintainers, vec![keys(2).public_key()]);
        assert_eq!(
            meta.own_coord().unwrap().to_string(),
            format!("30617:{}:repo", owner.public_key().to_hex())
        );
    }

    #[test]
    fn root_tags_every_repo_via_a_upper_a_and_q() {
        let k = keys(3);
        let c1 = format!("30617:{}:one", keys(1).public_key().to_hex());
        let c2 = format!("30617:{}:two", keys(2).public_key().to_hex());
        let c3 = format!("30617:{}:three", keys(2).public_key().to_hex());
        let ev = event(
            &k,
            1617,
            10,
            &[&["a", &c1], &["A", &c2], &["q", &c3], &["a", "30023:bad:x"]],
        );
        let meta = EventMeta::from_event(&ev);
        assert!(meta.is_root());
        let repos: Vec<String> = meta
            .tagged_repos()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(repos.len(), 3);
        assert!(repos.contains(&c1) && repos.contains(&c2) && repos.contains(&c3));
    }

    #[test]
    fn relay_lists_keep_write_relays_bounded() {
        let k = keys(4);
        let ev = event(
            &k,
            10002,
            10,
            &[
                &["r", "wss://w"],
                &["r", "wss://rw", "write"],
                &["r", "wss://ro", "read"],
            ],
        );
        assert_eq!(
            EventMeta::from_event(&ev).relays,
            vec!["wss://w", "wss://rw"]
        );
        let many: Vec<String> = (0..100).map(|i| format!("wss://g{i}")).collect();
        let tags: Vec<Vec<&str>> = many.iter().map(|u| vec!["g", u.as_str()]).collect();
        let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
        let meta = EventMeta::from_event(&event(&k, 10317, 10, &tags));
        assert!(meta.is_relay_list());
        assert_eq!(meta.relays.len(), MAX_LIST_URLS);
    }

    #[test]
    fn coordinates_with_colons_in_identifier_parse() {
        let c = format!("30617:{}:a:b", keys(1).public_key().to_hex());
        assert_eq!(RepoCoord::parse(&c).unwrap().identifier, "a:b");
        assert_eq!(RepoCoord::parse("30617:zz:a"), None);
    }
}
