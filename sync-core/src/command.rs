//! What the core asks the shell to do. Commands are executed in order; none of them blocks.

use std::fmt;

use nostr::EventId;
use serde::{Deserialize, Serialize};

use crate::time::Mono;
use crate::url::RelayUrl;
use crate::wire_filter::WireFilter;

/// A deterministic subscription id (e.g. `b3.l2.1`, `live7`), unique per relay for the life
/// of the core; at most 64 characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubId(pub String);

impl fmt::Display for SubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SubId {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// Whether a subscription is kept open or closes when complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SubKind {
    /// `limit: 0`, kept open for new events.
    Live,
    /// Past events; the core closes it after EOSE.
    Historic,
}

/// One side effect for the shell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Open a connection (no library-side reconnect: the core decides every retry).
    Connect {
        /// The relay.
        relay: RelayUrl,
    },
    /// Close a connection on purpose; answer with `Input::Disconnected`.
    Disconnect {
        /// The relay.
        relay: RelayUrl,
    },
    /// Send `REQ sub filters…`.
    Subscribe {
        /// The relay.
        relay: RelayUrl,
        /// The subscription id.
        sub: SubId,
        /// Live or historic.
        kind: SubKind,
        /// The filters (ORed by the relay).
        filters: Vec<WireFilter>,
    },
    /// Send `CLOSE sub` (or `NEG-CLOSE` for a negentropy id, stopping the reconciliation).
    /// EVENTs that still arrive on it (queued behind other traffic) and match its filters are
    /// offered to the host until `late_until` on the core's monotonic clock
    /// (`Config::late_event_window_ms` after the close); after that, or if `None`, they are
    /// reported as `Outcome::NotOffered`.
    Unsubscribe {
        /// The relay.
        relay: RelayUrl,
        /// The subscription id.
        sub: SubId,
        /// The end of the late-event window.
        late_until: Option<Mono>,
    },
    /// Reconcile `filter` with NIP-77 against the host's store for that filter; answer with
    /// `Input::NegentropyDiff` carrying the ids the relay has and the host lacks.
    NegentropyDiff {
        /// The relay.
        relay: RelayUrl,
        /// The reconciliation id.
        sub: SubId,
        /// The filter.
        filter: WireFilter,
    },
    /// The core no longer tracks this relay (its connection, if any, is closed): drop
    /// whatever is held for it (connection pool entry, routing tables, counters). Sent once,
    /// when the relay leaves the core, for every relay a `Connect` was ever sent to; the core
    /// sends a new `Connect` if it is ever wanted again.
    Forget {
        /// The relay.
        relay: RelayUrl,
    },
    /// Offer these previously rejected events to the host's policy again (their dependency
    /// arrived). The shell keeps the bodies of recently rejected events for this.
    Reoffer {
        /// The ids.
        ids: Vec<EventId>,
    },
}

impl Command {
    /// The relay a command is for, if any.
    #[must_use]
    pub fn relay(&self) -> Option<&RelayUrl> {
        match self {
            Self::Connect { relay }
            | Self::Disconnect { relay }
            | Self::Subscribe { relay, .. }
            | Self::Unsubscribe { relay, .. }
            | Self::NegentropyDiff { relay, .. }
            | Self::Forget { relay } => Some(relay),
            Self::Reoffer { .. } => None,
        }
    }
}
