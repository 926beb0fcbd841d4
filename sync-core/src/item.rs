//! Items: the units of work the indexes track per relay. A repository at `StateOnly` wants one
//! item (its state); at `Full` it wants its state, its repo events and its root events.

use nostr::{EventId, PublicKey};
use serde::{Deserialize, Serialize};

use crate::event_meta::RepoCoord;

/// How much of a repository is synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SyncLevel {
    /// Only 30618 state events (e.g. while the host holds the announcement provisionally).
    StateOnly,
    /// State, events tagging the repository, root events and events tagging them.
    Full,
}

/// One unit of wanted coverage on one relay.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Item {
    /// Layer 1: every announcement and grasp list on the relay (one per connection).
    Announcements,
    /// 30618 state events of this repository's identifier.
    State(RepoCoord),
    /// Layer 2: events tagging the repository (`#a`, `#A`, `#q`). `Full` only.
    RepoEvents(RepoCoord),
    /// Layer 3: events tagging this root event (`#e`, `#E`, `#q`). Roots of `Full` repos only.
    Root(EventId),
    /// Sync+ (docs/spec.md §15): this participant's relay lists (kinds 10002 and 10317).
    RelayLists(PublicKey),
}

/// An interned [`Item`]: a 4-byte handle valid for the life of the core. Per-relay indexes
/// (pending, confirmed, live coverage) hold keys, so a (relay, item) pair costs a few bytes
/// instead of a cloned coordinate with its heap string. The want index owns the tables a key
/// points into (`WantIndex::item`). Encoding: the low 3 bits are the kind, the rest an index
/// into the repository, root or participant table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key(u32);

/// What a [`Key`] stands for, with table indexes instead of values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// [`Item::Announcements`].
    Announcements,
    /// [`Item::State`] of repository `n`.
    State(u32),
    /// [`Item::RepoEvents`] of repository `n`.
    RepoEvents(u32),
    /// [`Item::Root`] of root `n`.
    Root(u32),
    /// [`Item::RelayLists`] of participant `n`.
    RelayLists(u32),
}

/// Table indexes are below this (29 bits); the want index refuses to grow past it.
pub(crate) const MAX_INTERNED: usize = 1 << 29;

impl Key {
    /// The key of [`Item::Announcements`].
    pub(crate) const ANNOUNCEMENTS: Self = Self(0);

    /// The key of the state of repository `n` (`n < MAX_INTERNED`).
    pub(crate) const fn state(n: u32) -> Self {
        Self((n << 3) | 1)
    }

    /// The key of the repo events of repository `n` (`n < MAX_INTERNED`).
    pub(crate) const fn repo_events(n: u32) -> Self {
        Self((n << 3) | 2)
    }

    /// The key of root `n` (`n < MAX_INTERNED`).
    pub(crate) const fn root(n: u32) -> Self {
        Self((n << 3) | 3)
    }

    /// The key of the relay lists of participant `n` (`n < MAX_INTERNED`).
    pub(crate) const fn relay_lists(n: u32) -> Self {
        Self((n << 3) | 4)
    }

    /// The encoded key, for dense per-key tables (e.g. a bit set over one relay's target).
    pub(crate) const fn bits(self) -> u32 {
        self.0
    }

    /// The key whose [`Key::bits`] are `bits`.
    pub(crate) const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// Decodes the key.
    pub(crate) const fn kind(self) -> KeyKind {
        let n = self.0 >> 3;
        match self.0 & 7 {
            0 => KeyKind::Announcements,
            1 => KeyKind::State(n),
            2 => KeyKind::RepoEvents(n),
            3 => KeyKind::Root(n),
            _ => KeyKind::RelayLists(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_keep_kinds_apart() {
        let n = (MAX_INTERNED - 1) as u32;
        assert_eq!(Key::state(n).kind(), KeyKind::State(n));
        assert_eq!(Key::repo_events(7).kind(), KeyKind::RepoEvents(7));
        assert_eq!(Key::root(0).kind(), KeyKind::Root(0));
        assert_eq!(Key::relay_lists(n).kind(), KeyKind::RelayLists(n));
        assert_eq!(Key::ANNOUNCEMENTS.kind(), KeyKind::Announcements);
        assert_ne!(Key::state(0), Key::ANNOUNCEMENTS);
    }
}
