//! Per-relay state: lifecycle status, health, budget, open subscriptions, live coverage, and the
//! relay's slices of the pending and confirmed indexes.

pub(crate) mod auth;
pub mod cursor;
mod cursor_restore;
pub mod health;
pub(crate) mod lifecycle;
pub mod pace;
pub(crate) mod poll;

use std::collections::{BTreeMap, BTreeSet};

use nostr::Timestamp;
use serde::{Deserialize, Serialize};

use crate::budget::Budget;
use crate::command::SubId;
use crate::config::Config;
use crate::index::confirmed::Confirmed;
use crate::index::keyset::KeySet;
use crate::index::pending::Pending;
use crate::item::{Key, KeyKind};
use crate::rng::RelayRng;
use crate::time::Mono;
use crate::url::RelayUrl;
use crate::wire_filter::WireFilter;
use health::Health;

/// Connection status (`ngit_sync_relay_connected`). Every status has an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Not connected; a connect is scheduled while the relay is wanted.
    Disconnected,
    /// A connect was sent; answered by `Connected`/`ConnectFailed` or the connect timeout.
    Connecting,
    /// Connected, historic sync running.
    Syncing,
    /// Historic sync complete, live sync active.
    Connected,
    /// Connected, some historic batch could not be completed, live sync active.
    ConnectedHistoricSyncFailures,
    /// Intentional disconnect in progress; ends on `Disconnected` or the disconnect timeout.
    Disconnecting,
}

impl Status {
    /// The metric value (0 Disconnected … 5 Disconnecting).
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Disconnected => 0,
            Self::Connecting => 1,
            Self::Syncing => 2,
            Self::Connected => 3,
            Self::ConnectedHistoricSyncFailures => 4,
            Self::Disconnecting => 5,
        }
    }

    /// Whether live subscriptions may be open (the connection is up and ours).
    #[must_use]
    pub const fn is_live(self) -> bool {
        matches!(
            self,
            Self::Syncing | Self::Connected | Self::ConnectedHistoricSyncFailures
        )
    }
}

/// What we know of a relay's NIP-77 support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NegSupport {
    /// Not tried since the last daily resync.
    Unknown,
    /// A reconciliation succeeded.
    Supported,
    /// Refused, silent, or its id fetches came back empty: REQ+EOSE until the next daily resync.
    Unsupported,
}

/// What an open subscription is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SubRole {
    /// Part of live group `group`.
    Live { group: u64 },
    /// A historic REQ of batch `batch`.
    Historic { batch: u64 },
    /// A negentropy reconciliation of batch `batch`.
    Negentropy { batch: u64 },
}

/// An open subscription with its filters (deliveries outside them are ignored and counted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenSub {
    pub(crate) role: SubRole,
    /// The filters of a historic REQ. Empty for live and negentropy subscriptions: live
    /// deliveries are matched against their group's items (`RelayState::live_matches`), so
    /// live coverage of a (relay, item) pair costs a key, not three strings.
    pub(crate) filters: Vec<WireFilter>,
    /// How many filters the REQ carried (a "too many filters" answer halves that, see
    /// `Budget::shrink_filters`); 1 for a negentropy reconciliation.
    pub(crate) filters_sent: usize,
}

/// Live subscriptions opened together for a set of items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LiveGroup {
    /// The group's live subscriptions (each also in `RelayState::subs`).
    pub(crate) subs: Vec<SubId>,
    /// The items the group covers (disjoint from every other group's).
    pub(crate) items: KeySet,
    /// Invariant: `counts == KindCounts::of(&items)` (kept up to date wherever `items`
    /// changes, so consolidation decisions need not scan every live item of the relay).
    pub(crate) counts: KindCounts,
}

/// How many keys of each kind a set holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KindCounts {
    /// `Announcements` keys (0 or 1 in a set).
    pub(crate) l1: usize,
    /// State keys.
    pub(crate) states: usize,
    /// Repo-events keys.
    pub(crate) repos: usize,
    /// Root keys.
    pub(crate) roots: usize,
    /// Sync+ relay-list keys.
    pub(crate) lists: usize,
}

impl KindCounts {
    /// Counts `keys` by kind (each key once per occurrence).
    pub(crate) fn of<'a>(keys: impl IntoIterator<Item = &'a Key>) -> Self {
        let mut c = Self::default();
        for key in keys {
            match key.kind() {
                KeyKind::Announcements => c.l1 += 1,
                KeyKind::State(_) => c.states += 1,
                KeyKind::RepoEvents(_) => c.repos += 1,
                KeyKind::Root(_) => c.roots += 1,
                KeyKind::RelayLists(_) => c.lists += 1,
            }
        }
        c
    }

    /// The counts of two disjoint sets together.
    #[must_use]
    pub(crate) fn plus(self, other: Self) -> Self {
        Self {
            l1: self.l1 + other.l1,
            states: self.states + other.states,
            repos: self.repos + other.repos,
            roots: self.roots + other.roots,
            lists: self.lists + other.lists,
        }
    }
}

/// Per-relay counters (exported per relay).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayCounters {
    /// Connection attempts that succeeded.
    pub connects_ok: u64,
    /// Connection attempts that failed (errors and timeouts).
    pub connects_failed: u64,
    /// Live connections lost (unexpected disconnects; leaving a relay on purpose is not one).
    #[serde(default)]
    pub disconnects: u64,
    /// Events delivered by this relay (any outcome).
    pub events_delivered: u64,
    /// Events the host newly saved from this relay.
    pub events_saved: u64,
    /// Events first found by catch-up or daily resync although live sync was on.
    pub gap_events: u64,
    /// Deliveries that did not match their subscription's filters.
    pub out_of_filter: u64,
    /// Historic batches resolved.
    pub batches_done: u64,
    /// Historic batches that failed.
    pub batches_failed: u64,
    /// Live filters that did not fit the subscription budget.
    pub live_filters_over_budget: u64,
    /// CLOSED messages with the NIP-42 `auth-required:` prefix (docs/spec.md §14).
    #[serde(default)]
    pub auth_required: u64,
    /// Connections the core closed because the relay refused us even after authentication and
    /// one retry (each one a failure of class `Auth`, backed off).
    #[serde(default)]
    pub auth_refused: u64,
}

/// Everything the core tracks for one relay.
#[derive(Clone, Debug)]
pub(crate) struct RelayState {
    pub(crate) url: RelayUrl,
    /// Lifecycle status; only `lifecycle.rs` changes it.
    pub(crate) status: Status,
    /// The status last written to the decision log (equal to `status` at the end of every
    /// step: the core logs each change once, whichever handler made it).
    pub(crate) logged_status: Status,
    /// A bootstrap relay is a target without any repository and is never reaped.
    pub(crate) bootstrap: bool,
    /// Why the relay is tracked, as of the last discovery flush (or its creation).
    pub(crate) source: crate::view::RelaySource,
    /// This relay's random stream.
    pub(crate) rng: RelayRng,
    /// Failures, backoff, cooldown.
    pub(crate) health: Health,
    /// Subscription limits.
    pub(crate) budget: Budget,
    /// NIP-77 support; reset to `Unknown` by the daily resync.
    pub(crate) neg: NegSupport,
    /// A `Connect` was sent for it (so the shell holds state for it until `Command::Forget`).
    pub(crate) dialled: bool,
    /// Negentropy timeouts in a row (reset by a `Missing` and the daily resync); at
    /// [`crate::NEG_TIMEOUTS_UNSUPPORTED`] `neg` becomes `Unsupported`.
    pub(crate) neg_timeouts: u32,
    /// When the current connection opened (live statuses only).
    pub(crate) connected_at: Option<Mono>,
    /// When the last connection closed.
    pub(crate) disconnected_at: Option<Mono>,
    /// Wall time through which every confirmed item is complete (set at disconnect when no
    /// catch-up was outstanding); `since` of the next catch-up is this minus the margin.
    pub(crate) synced_through: Option<Timestamp>,
    /// A quick-reconnect or live-repair catch-up batch has not completed yet.
    pub(crate) catchup_pending: bool,
    /// Connect timeout (Connecting) or disconnect timeout (Disconnecting).
    pub(crate) status_deadline: Option<Mono>,
    /// Next daily resync (live statuses only).
    pub(crate) daily_at: Option<Mono>,
    /// Live coverage lost to a CLOSED is restored then.
    pub(crate) live_repair_at: Option<Mono>,
    /// Set by the first `auth-required:` CLOSED of this connection (`None` before it and on a
    /// new connection): until then refusals answer REQs sent before we could authenticate and
    /// are retried; from then on a refusal means the relay refuses us authenticated
    /// (docs/spec.md §14, `relay/auth.rs`).
    pub(crate) auth_retry_at: Option<Mono>,
    /// Wall time since which some live coverage was missing (catch-up `since` after repair).
    pub(crate) live_gap_since: Option<Timestamp>,
    /// Live work deferred by a cooldown; replayed when it ends.
    pub(crate) live_dirty: bool,
    /// The shell lagged while a lag catch-up was running: another catch-up from this wall
    /// time (minus the margin) starts when that one resolves. `None` outside live statuses.
    pub(crate) lag_followup_since: Option<Timestamp>,
    /// Live REQs the pace holds back, oldest first (each already in `subs` and its group,
    /// not yet sent; `pump` sends them before any historic request). Empty while unpaced.
    pub(crate) live_held: std::collections::VecDeque<(SubId, Vec<WireFilter>)>,
    /// Open subscriptions (live, historic, negentropy). Invariant: `len() ≤ budget.total()`.
    pub(crate) subs: BTreeMap<SubId, OpenSub>,
    /// The last live packing left filters over budget and no live group was closed since:
    /// re-packing cannot cover more, so consolidation is skipped until coverage shrinks.
    pub(crate) live_full: bool,
    /// Live coverage: groups by id. Invariant: the groups' item sets are disjoint; an item is
    /// covered iff some group holds it (there are few groups, so lookups scan them; one map
    /// from item to group would cost more per (relay, item) pair than the sets themselves).
    pub(crate) live_groups: BTreeMap<u64, LiveGroup>,
    /// Live items the last packing that held them could not fit under the budget: they may
    /// have no live REQ, so they are polled (`relay/poll.rs`). Over-approximated (a packing
    /// that fits some of its items marks all of them); emptied with the connection.
    pub(crate) uncovered: BTreeSet<Key>,
    /// Next poll of `uncovered` (`Some` iff `uncovered` was non-empty when it was scheduled).
    pub(crate) poll_at: Option<Mono>,
    /// Wall time the last poll started: the next asks from it minus the poll margin. `None`
    /// until the first poll of this connection.
    pub(crate) polled_through: Option<Timestamp>,
    /// Batches in flight.
    pub(crate) pending: Pending,
    /// Items confirmed complete.
    pub(crate) confirmed: Confirmed,
    /// Some batch failed since the last fresh start.
    pub(crate) had_failures: bool,
    /// Why the last batch that failed for good did (set with `had_failures`).
    pub(crate) batch_failure: Option<crate::historic::batch::BatchFailure>,
    /// Counter for subscription, batch and group ids (unique for the life of the core).
    pub(crate) seq: u64,
    /// Exported counters.
    pub(crate) counters: RelayCounters,
}

impl RelayState {
    pub(crate) fn new(url: RelayUrl, seed: u64, cfg: &Config, first_attempt_at: Mono) -> Self {
        let rng = RelayRng::new(seed, &url);
        Self {
            url,
            status: Status::Disconnected,
            logged_status: Status::Disconnected,
            bootstrap: false,
            source: crate::view::RelaySource::Announced,
            rng,
            health: Health {
                next_attempt_at: first_attempt_at,
                ..Health::default()
            },
            budget: Budget::new(cfg),
            neg: NegSupport::Unknown,
            neg_timeouts: 0,
            dialled: false,
            connected_at: None,
            disconnected_at: None,
            synced_through: None,
            catchup_pending: false,
            status_deadline: None,
            daily_at: None,
            live_repair_at: None,
            auth_retry_at: None,
            live_gap_since: None,
            live_dirty: false,
            lag_followup_since: None,
            live_held: std::collections::VecDeque::new(),
            subs: BTreeMap::new(),
            live_full: false,
            live_groups: BTreeMap::new(),
            uncovered: BTreeSet::new(),
            poll_at: None,
            polled_through: None,
            pending: Pending::default(),
            confirmed: Confirmed::default(),
            had_failures: false,
            batch_failure: None,
            seq: 0,
            counters: RelayCounters::default(),
        }
    }

    /// A fresh id number.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The live group covering `item`, if any.
    pub(crate) fn live_group_of(&self, item: &Key) -> Option<u64> {
        self.live_groups
            .iter()
            .find(|(_, g)| g.items.contains(item))
            .map(|(id, _)| *id)
    }

    /// Every item covered by live subscriptions.
    pub(crate) fn live_items(&self) -> impl Iterator<Item = &Key> {
        self.live_groups.values().flat_map(|g| g.items.iter())
    }

    /// How many items live subscriptions cover.
    pub(crate) fn live_item_count(&self) -> usize {
        self.live_groups.values().map(|g| g.items.len()).sum()
    }

    /// Live subscriptions open.
    pub(crate) fn live_sub_count(&self) -> usize {
        self.live_groups.values().map(|g| g.subs.len()).sum()
    }

    /// Forgets everything tied to the connection (the socket is gone or going).
    pub(crate) fn drop_connection_state(&mut self) {
        self.subs.clear();
        self.live_held.clear();
        self.live_groups.clear();
        self.live_full = false;
        self.uncovered.clear();
        self.poll_at = None;
        self.polled_through = None;
        self.pending.clear();
        self.status_deadline = None;
        self.daily_at = None;
        self.live_repair_at = None;
        self.auth_retry_at = None;
        self.live_dirty = false;
        self.lag_followup_since = None;
        self.connected_at = None;
    }
}
