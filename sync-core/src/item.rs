//! Items: the units of work the indexes track per relay. A repository at `StateOnly` wants one
//! item (its state); at `Full` it wants its state, its repo events and its root events.

use nostr::EventId;
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
}

impl Item {
    /// The items a repository at `level` wants (roots excluded).
    pub(crate) fn for_repo(coord: &RepoCoord, level: SyncLevel) -> impl Iterator<Item = Self> {
        let state = Self::State(coord.clone());
        let events = (level == SyncLevel::Full).then(|| Self::RepoEvents(coord.clone()));
        std::iter::once(state).chain(events)
    }
}
