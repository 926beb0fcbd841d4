//! Read-only views of relays for metrics, status pages, invariants and snapshots.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::historic::batch::BatchFailure;
use crate::relay::health::{ErrorClass, HealthState};
use crate::relay::{NegSupport, RelayCounters, RelayState, Status};
use crate::time::{Mono, Now};
use crate::url::RelayUrl;
use nostr::Timestamp;

/// Why a relay is tracked (`source` in `/status` and the metrics), first that applies.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RelaySource {
    /// Named by the operator as a bootstrap relay.
    Bootstrap,
    /// Listed by a repository announcement (or registration).
    #[default]
    Announced,
    /// Sync+ (docs/spec.md §15): named by a participant's relay list.
    SyncPlus,
    /// Sync+: an operator-named index relay, asked for participants' relay lists.
    Index,
}

impl RelaySource {
    /// The label (`bootstrap`, `announced`, `sync_plus`, `index`).
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Bootstrap => "bootstrap",
            Self::Announced => "announced",
            Self::SyncPlus => "sync_plus",
            Self::Index => "index",
        }
    }
}

/// A borrowed view of one relay.
#[derive(Clone, Copy, Debug)]
pub struct RelayView<'a> {
    state: &'a RelayState,
    now: Now,
    cfg: &'a Config,
}

impl<'a> RelayView<'a> {
    pub(crate) fn new(state: &'a RelayState, now: Now, cfg: &'a Config) -> Self {
        Self { state, now, cfg }
    }

    /// The relay.
    #[must_use]
    pub fn url(&self) -> &'a RelayUrl {
        &self.state.url
    }

    /// Lifecycle status.
    #[must_use]
    pub fn status(&self) -> Status {
        self.state.status
    }

    /// Health as exported, from the present (docs/architecture.md, "Health, backoff, rate
    /// limits, naughty list"): `RateLimited` during a cooldown; a live relay is `Degraded` if
    /// its historic sync had failures (`ConnectedHistoricSyncFailures`) or it is flapping, else
    /// `Healthy` — never `Dead`, whatever failed before it connected; a relay not live is
    /// `Dead` after `dead_after_ms` of failures without a stable connection, `Degraded` with
    /// fewer, `Disconnected` with none.
    #[must_use]
    pub fn health(&self) -> HealthState {
        let (h, now, status) = (&self.state.health, self.now.mono, self.state.status);
        if h.is_rate_limited(now) {
            HealthState::RateLimited
        } else if status.is_live() {
            if status == Status::ConnectedHistoricSyncFailures || h.is_flapping(now, self.cfg) {
                HealthState::Degraded
            } else {
                HealthState::Healthy
            }
        } else if h.is_dead(now, self.cfg) {
            HealthState::Dead
        } else if h.failures > 0 {
            HealthState::Degraded
        } else {
            HealthState::Disconnected
        }
    }

    /// When the next connection attempt is due (`Disconnected` only).
    #[must_use]
    pub fn next_attempt_at(&self) -> Option<Mono> {
        (self.state.status == Status::Disconnected).then_some(self.state.health.next_attempt_at)
    }

    /// Consecutive failures.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.state.health.failures
    }

    /// The class of the newest failure of the current run of failures (`None` without
    /// failures): why the relay is backed off. `Auth`: it refused our subscriptions even after
    /// NIP-42 authentication and one retry (docs/spec.md §14).
    #[must_use]
    pub fn last_failure(&self) -> Option<ErrorClass> {
        self.state.health.last_failure
    }

    /// The error class that put the relay on the naughty list, if any.
    #[must_use]
    pub fn naughty(&self) -> Option<ErrorClass> {
        self.state.health.naughty
    }

    /// Whether this is a bootstrap relay.
    #[must_use]
    pub fn is_bootstrap(&self) -> bool {
        self.state.bootstrap
    }

    /// Why the relay is tracked.
    #[must_use]
    pub fn source(&self) -> RelaySource {
        self.state.source
    }

    /// Open subscriptions (live, historic and negentropy).
    #[must_use]
    pub fn open_subscriptions(&self) -> usize {
        self.state.subs.len()
    }

    /// Open subscription ids, in order.
    pub fn subscription_ids(&self) -> impl Iterator<Item = &'a str> {
        self.state.subs.keys().map(|s| s.0.as_str())
    }

    /// Open live subscriptions.
    #[must_use]
    pub fn live_subscriptions(&self) -> usize {
        self.state.live_sub_count()
    }

    /// The subscription budget in force.
    #[must_use]
    pub fn budget(&self) -> usize {
        self.state.budget.total()
    }

    /// Historic batches in flight: the sync still to finish. The periodic poll of items over
    /// the live budget (`relay/poll.rs`) is steady-state work like a live subscription and is
    /// not counted (a relay whose live coverage does not fit its budget always has one
    /// coming); see [`RelayView::polled_items`].
    #[must_use]
    pub fn pending_batches(&self) -> usize {
        (self.state.pending.batches.values())
            .filter(|b| b.origin != crate::historic::batch::Origin::Poll)
            .count()
    }

    /// Items confirmed complete.
    #[must_use]
    pub fn confirmed_items(&self) -> usize {
        self.state.confirmed.len()
    }

    /// Items covered by live subscriptions.
    #[must_use]
    pub fn live_items(&self) -> usize {
        self.state.live_item_count()
    }

    /// Live items the subscription budget may leave without a live REQ: polled every
    /// `live_poll_interval_ms` instead (`relay/poll.rs`).
    #[must_use]
    pub fn polled_items(&self) -> usize {
        self.state.uncovered.len()
    }

    /// NIP-77 support as known.
    #[must_use]
    pub fn negentropy(&self) -> NegSupport {
        self.state.neg
    }

    /// The relay's last known complete sync (wall clock): now while it is `Connected`
    /// (historic sync done, live, no catch-up outstanding), else the time through which every
    /// item confirmed on it was complete when its last connection was lost (`None`: never
    /// known complete since the engine started).
    #[must_use]
    pub fn last_complete(&self) -> Option<Timestamp> {
        let s = self.state;
        let complete_now =
            s.status == Status::Connected && !s.catchup_pending && s.live_gap_since.is_none();
        if complete_now {
            Some(self.now.wall)
        } else {
            s.synced_through
        }
    }

    /// Per-relay counters.
    #[must_use]
    pub fn counters(&self) -> &'a RelayCounters {
        &self.state.counters
    }

    /// The page size learned from this relay's answers (an unannounced result cap below the
    /// page-full threshold, docs/spec.md §7.4), if any.
    #[must_use]
    pub fn learned_page_size(&self) -> Option<usize> {
        self.state.budget.page_size.learned()
    }

    /// Why the relay's last batch that failed for good did (its retries used up), while the
    /// relay shows `ConnectedHistoricSyncFailures` (until its next fresh start).
    #[must_use]
    pub fn batch_failure(&self) -> Option<BatchFailure> {
        self.state.batch_failure
    }

    /// The least time between two new historic requests learned from the relay's rate
    /// limits (ms; 0: unpaced).
    #[must_use]
    pub fn req_pace_ms(&self) -> u64 {
        self.state.health.pace.interval_ms
    }

    /// An owned, serialisable snapshot of this view.
    #[must_use]
    pub fn snapshot(&self) -> RelaySnapshot {
        RelaySnapshot {
            url: self.url().clone(),
            status: self.status(),
            status_code: self.status().code(),
            health: self.health(),
            health_code: self.health().code(),
            failures: self.failures(),
            naughty: self.naughty(),
            last_failure: self.last_failure(),
            bootstrap: self.is_bootstrap(),
            source: self.source(),
            open_subscriptions: self.open_subscriptions(),
            live_subscriptions: self.live_subscriptions(),
            budget: self.budget(),
            pending_batches: self.pending_batches(),
            confirmed_items: self.confirmed_items(),
            live_items: self.live_items(),
            polled_items: self.polled_items(),
            negentropy: self.negentropy(),
            counters: self.counters().clone(),
            last_complete: self.last_complete().map(|t| t.as_secs()),
            learned_page_size: self.learned_page_size(),
            batch_failure: self.batch_failure(),
            req_pace_ms: self.req_pace_ms(),
        }
    }
}

/// An owned per-relay status snapshot (JSON-serialisable) for a host's status page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(
    missing_docs,
    reason = "each field mirrors the RelayView accessor of the same name"
)]
pub struct RelaySnapshot {
    pub url: RelayUrl,
    pub status: Status,
    pub status_code: u8,
    pub health: HealthState,
    pub health_code: u8,
    pub failures: u32,
    pub naughty: Option<ErrorClass>,
    #[serde(default)]
    pub last_failure: Option<ErrorClass>,
    pub bootstrap: bool,
    #[serde(default)]
    pub source: RelaySource,
    pub open_subscriptions: usize,
    pub live_subscriptions: usize,
    pub budget: usize,
    pub pending_batches: usize,
    pub confirmed_items: usize,
    pub live_items: usize,
    #[serde(default)]
    pub polled_items: usize,
    pub negentropy: NegSupport,
    pub counters: RelayCounters,
    /// [`RelayView::last_complete`] in Unix seconds.
    #[serde(default)]
    pub last_complete: Option<u64>,
    #[serde(default)]
    pub learned_page_size: Option<usize>,
    #[serde(default)]
    pub batch_failure: Option<BatchFailure>,
    #[serde(default)]
    pub req_pace_ms: u64,
}
