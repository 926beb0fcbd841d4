//! Everything that can happen to the core: host notifications, relay messages, executor
//! results and the clock. The shell translates each into one [`Input`] and calls `step`.

use nostr::EventId;
use serde::{Deserialize, Serialize};

use crate::command::SubId;
use crate::event_meta::{EventMeta, RepoCoord};
use crate::item::SyncLevel;
use crate::rejected::RejectedEntry;
use crate::url::RelayUrl;

/// What the host decided about a delivered event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Newly stored.
    Saved,
    /// Already stored.
    Duplicate,
    /// Held provisionally (e.g. waiting for git data); may be accepted later.
    Deferred,
    /// Refused by the host's policy.
    Rejected,
    /// Never offered to the host: the shell had no open (or recently closed, see
    /// `Config::late_event_window_ms`) subscription with that id whose filters it matches.
    /// Nothing is stored; the core counts it as late or out of filter.
    NotOffered,
}

/// NIP-11 `limitation` values a relay advertises. Absurd values are clamped by the core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayLimits {
    /// `max_subscriptions`.
    pub max_subscriptions: Option<u64>,
    /// `max_filters`.
    pub max_filters: Option<u64>,
    /// `max_limit`.
    pub max_limit: Option<u64>,
    /// `max_message_length`.
    pub max_message_length: Option<u64>,
}

/// The result of one negentropy reconciliation the core asked for: a fact the shell observed.
/// The core decides what follows (re-run, REQ fallback for the batch, NIP-77 off for the relay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NegentropyResult {
    /// Ids the relay has and the host's store (for that filter) does not; sorted by the shell.
    Missing {
        /// The ids.
        ids: Vec<EventId>,
    },
    /// The relay said it does not speak NIP-77 (NOTICE "unknown envelope", NEG-ERR
    /// "unsupported"/"blocked", …). The core stops using NIP-77 on it until the daily resync.
    Refused {
        /// The relay's words.
        message: String,
    },
    /// The relay did not answer NEG-OPEN within `Config::negentropy_timeout_ms`. The core falls
    /// back to REQ for the batch; only [`crate::NEG_TIMEOUTS_UNSUPPORTED`] timeouts in a row
    /// turn NIP-77 off for the relay.
    Timeout,
    /// The shell dropped messages of this relay while the reconciliation ran, so its result may
    /// be partial and was discarded. The core runs it again (at most
    /// [`crate::NEG_LAG_ATTEMPTS`] attempts in all), then falls back to REQ for the batch.
    Lagged,
    /// Reconciliation failed for another reason (NEG-ERR, protocol error, the local set could
    /// not be read). The core falls back to REQ for the batch.
    Error {
        /// What happened.
        message: String,
    },
}

/// One input to [`crate::SyncCore::step`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// The host accepted an event (from its own clients, or replayed from its store at start).
    Accepted {
        /// The event.
        event: EventMeta,
    },
    /// The host rejected an event (announcements and state events are remembered, §9).
    Rejected {
        /// The event.
        event: EventMeta,
    },
    /// The host registers a repository directly at a sync level.
    RegisterRepo {
        /// The repository.
        coord: RepoCoord,
        /// Its relays (raw; canonicalised by the core).
        relays: Vec<String>,
        /// How much to sync.
        level: SyncLevel,
    },
    /// The host withdraws a repository (replaced without our relay, deleted, blacklisted).
    WithdrawRepo {
        /// The repository.
        coord: RepoCoord,
    },
    /// A connection the core asked for is open.
    Connected {
        /// The relay.
        relay: RelayUrl,
    },
    /// A connection attempt failed; the core classifies `error`.
    ConnectFailed {
        /// The relay.
        relay: RelayUrl,
        /// The transport's error text.
        error: String,
    },
    /// The shell refused to dial the relay: its host name resolved to a non-global address and
    /// `allow_private_targets` is off (docs/spec.md §13). No connection was attempted.
    ConnectRefused {
        /// The relay.
        relay: RelayUrl,
        /// The class of the first non-global address the name resolved to.
        address: crate::address::NonGlobal,
    },
    /// An open connection closed (unexpectedly, or as asked by `Disconnect`).
    Disconnected {
        /// The relay.
        relay: RelayUrl,
    },
    /// An EVENT arrived on a subscription, verified, and the host decided about it.
    Delivered {
        /// The relay.
        relay: RelayUrl,
        /// The subscription it arrived on.
        sub: SubId,
        /// The event.
        event: EventMeta,
        /// The host's decision.
        outcome: Outcome,
    },
    /// EOSE for a subscription.
    Eose {
        /// The relay.
        relay: RelayUrl,
        /// The subscription.
        sub: SubId,
    },
    /// CLOSED for a subscription.
    Closed {
        /// The relay.
        relay: RelayUrl,
        /// The subscription.
        sub: SubId,
        /// The relay's message (NIP-01 machine prefix first, e.g. `rate-limited:`).
        message: String,
    },
    /// The shell could not send a `Subscribe` (the relay is not in its pool, the connection
    /// is gone, the message could not be written). Handled as a CLOSED without rate limiting:
    /// the REQ is not on the wire.
    SendFailed {
        /// The relay.
        relay: RelayUrl,
        /// The subscription whose REQ was not sent.
        sub: SubId,
        /// The shell's error text (for logs; the core does not read it).
        error: String,
    },
    /// A NOTICE.
    Notice {
        /// The relay.
        relay: RelayUrl,
        /// The text.
        message: String,
    },
    /// NIP-11 limits of a relay.
    RelayInfo {
        /// The relay.
        relay: RelayUrl,
        /// Its limits.
        limits: RelayLimits,
    },
    /// The result of a `NegentropyDiff` command.
    NegentropyDiff {
        /// The relay.
        relay: RelayUrl,
        /// The command's subscription id.
        sub: SubId,
        /// What it found.
        result: NegentropyResult,
    },
    /// The shell dropped messages of a relay (or of all relays): live coverage may have gaps.
    Lagged {
        /// The relay, or `None` for every relay.
        relay: Option<RelayUrl>,
    },
    /// Rejected ids persisted by a previous run (wall-clock times).
    RestoreRejected {
        /// The entries.
        entries: Vec<RejectedEntry>,
    },
    /// Sync cursors persisted by a previous run ([`crate::SyncCore::cursors`]); each is applied
    /// when its relay first connects (docs/spec.md §16). Replaces cursors restored before. Send
    /// it after replaying the store: it flushes the discovery window at once.
    RestoreCursors {
        /// The cursors.
        cursors: crate::relay::cursor::Cursors,
    },
    /// A deadline from `next_deadline()` may have passed. Spurious ticks are no-ops.
    Tick,
}
