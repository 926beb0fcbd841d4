//! What an event points at: repository/addressable coordinates (`a`, `A`, `q`) and event ids
//! (`e`, `E`, `q`). The related-event rule accepts an event only when one of these is in the
//! store. Pure parsing, bounded so a hostile event with thousands of tags costs a bounded number
//! of store look-ups.

use std::collections::BTreeSet;

use nostr::{Event, EventId, Kind, PublicKey};

/// At most this many distinct coordinates and this many distinct ids are taken from one event;
/// the rest are ignored (a real NIP-34 event references a handful).
pub const MAX_REFERENCES: usize = 64;

/// An address `<kind>:<pubkey-hex>:<d>` of a replaceable or addressable event. Unlike
/// `nostr::Coordinate::parse` the identifier keeps any `:` it contains.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Address {
    /// The event kind (replaceable or addressable).
    pub kind: Kind,
    /// The author.
    pub author: PublicKey,
    /// The `d` identifier (empty for replaceable kinds).
    pub identifier: String,
}

impl Address {
    /// Parses `<kind>:<pubkey-hex>:<d>`; `None` for anything else, including kinds that have no
    /// address (regular and ephemeral kinds).
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.splitn(3, ':');
        let kind = Kind::from(parts.next()?.parse::<u16>().ok()?);
        let author = PublicKey::from_hex(parts.next()?).ok()?;
        let identifier = parts.next()?.to_string();
        let addressable = kind.is_addressable() && !identifier.is_empty();
        let replaceable = kind.is_replaceable() && identifier.is_empty();
        (addressable || replaceable).then_some(Self {
            kind,
            author,
            identifier,
        })
    }

    /// The address of `event` itself, if it has one.
    #[must_use]
    pub fn of_event(event: &Event) -> Option<Self> {
        let identifier = if event.kind.is_addressable() {
            event.tags.identifier()?.to_string()
        } else if event.kind.is_replaceable() {
            String::new()
        } else {
            return None;
        };
        Some(Self {
            kind: event.kind,
            author: event.pubkey,
            identifier,
        })
    }

    /// The canonical text form, as it appears in `a` tags.
    #[must_use]
    pub fn to_tag_value(&self) -> String {
        format!(
            "{}:{}:{}",
            self.kind.as_u16(),
            self.author.to_hex(),
            self.identifier
        )
    }
}

/// The references one event makes, deduplicated, sorted and bounded by [`MAX_REFERENCES`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// Coordinates from `a`, `A` and `q` tags.
    pub addresses: BTreeSet<Address>,
    /// Event ids from `e`, `E` and `q` tags.
    pub ids: BTreeSet<EventId>,
}

impl References {
    /// Collects the references of `event` (first value of each `a`/`A`/`q`/`e`/`E` tag; a `q`
    /// value is an id or an address). Malformed values are skipped.
    #[must_use]
    pub fn of(event: &Event) -> Self {
        let mut refs = Self::default();
        for tag in event.tags.iter() {
            let slice = tag.as_slice();
            let (Some(name), Some(value)) = (slice.first(), slice.get(1)) else {
                continue;
            };
            let (address_tag, id_tag) = match name.as_str() {
                "a" | "A" => (true, false),
                "e" | "E" => (false, true),
                "q" => (true, true),
                _ => continue,
            };
            if address_tag && refs.addresses.len() < MAX_REFERENCES {
                if let Some(address) = Address::parse(value) {
                    refs.addresses.insert(address);
                    continue;
                }
            }
            if id_tag && refs.ids.len() < MAX_REFERENCES {
                if let Ok(id) = EventId::from_hex(value) {
                    refs.ids.insert(id);
                }
            }
        }
        refs
    }

    /// Whether the event references nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use nostr::{EventBuilder, Keys, Tag};
    use proptest::prelude::*;

    use super::*;

    fn event_with(tags: &[&[&str]]) -> Event {
        let keys = Keys::generate();
        let tags = tags
            .iter()
            .map(|t| Tag::parse(t.iter().copied()).expect("tag"));
        EventBuilder::new(Kind::from(1111), "")
            .tags(tags)
            .sign_with_keys(&keys)
            .expect("sign")
    }

    #[test]
    fn collects_every_reference_tag() {
        let pk = Keys::generate().public_key().to_hex();
        let repo = format!("30617:{pk}:my:repo");
        let id = EventId::all_zeros().to_hex();
        let other_id = "11".repeat(32);
        let event = event_with(&[
            &["a", &repo],
            &["A", &format!("10317:{pk}:")],
            &["q", &other_id],
            &["E", &id],
            &["p", &pk],
            &["e", "not-hex"],
            &["a", &format!("1617:{pk}:x")], // regular kinds have no address
        ]);
        let refs = References::of(&event);
        let addresses: Vec<String> = refs.addresses.iter().map(Address::to_tag_value).collect();
        assert_eq!(addresses, vec![format!("10317:{pk}:"), repo]);
        assert_eq!(refs.ids.len(), 2);
        assert!(refs.ids.contains(&EventId::all_zeros()));
    }

    #[test]
    fn an_event_without_references_is_empty() {
        assert!(References::of(&event_with(&[&["t", "x"]])).is_empty());
    }

    #[test]
    fn many_reference_tags_yield_a_bounded_set() {
        let pk = Keys::generate().public_key().to_hex();
        let tags: Vec<Vec<String>> = (0..200)
            .map(|i| vec!["a".to_string(), format!("30617:{pk}:r{i}")])
            .chain((0..200).map(|i| vec!["e".to_string(), format!("{i:064x}")]))
            .collect();
        let tags: Vec<Vec<&str>> = tags
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let tags: Vec<&[&str]> = tags.iter().map(Vec::as_slice).collect();
        let refs = References::of(&event_with(&tags));
        assert_eq!(refs.addresses.len(), MAX_REFERENCES);
        assert_eq!(refs.ids.len(), MAX_REFERENCES);
    }

    proptest! {
        /// No tag value, however malformed, panics the parser; what parses re-parses to itself.
        #[test]
        fn address_parsing_is_total(value in ".{0,80}") {
            if let Some(address) = Address::parse(&value) {
                prop_assert_eq!(Address::parse(&address.to_tag_value()), Some(address));
            }
        }

        /// An address survives the text round trip.
        #[test]
        fn address_round_trips(identifier in "[a-z0-9:_-]{1,30}", kind in 30000u16..40000) {
            let pk = Keys::generate().public_key();
            let text = format!("{kind}:{}:{identifier}", pk.to_hex());
            let address = Address::parse(&text).expect("addressable");
            prop_assert_eq!(address.to_tag_value(), text);
        }
    }
}
