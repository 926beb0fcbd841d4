//! A batch: one unit of historic sync for a set of items on one relay, confirmed when complete.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use nostr::{EventId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::command::SubId;
use crate::filters::ChunkFilter;
use crate::historic::negentropy::IdFetch;
use crate::historic::pagination::Cursor;
use crate::index::keyset::KeySet;
use crate::item::Key;
use crate::time::Mono;

/// Why a batch was started (decides the `source` label of what it finds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Origin {
    /// Fresh start after the first connect or a long disconnect.
    Initial,
    /// New items discovered while connected.
    Discovery,
    /// Catch-up after a quick reconnect (`since` = last complete − margin).
    Reconnect,
    /// Daily full reconciliation.
    Daily,
    /// Catch-up after the shell reported lag (`since` = lag time − margin).
    Lag,
    /// Periodic poll of confirmed items the subscription budget leaves without live coverage
    /// (`since` = previous poll − `live_poll_margin_secs`; `relay/poll.rs`).
    Poll,
}

impl Origin {
    /// A since-bounded catch-up of confirmed items (quick reconnect or lag): while one runs,
    /// the relay is not known complete through any later time.
    #[must_use]
    pub const fn is_catchup(self) -> bool {
        matches!(self, Self::Reconnect | Self::Lag)
    }
}

/// Why a historic batch failed (the last one is kept per relay: `RelayView::batch_failure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchFailure {
    /// No progress (no delivery, no EOSE) within `batch_deadline_ms` outside the diff stage.
    Deadline,
    /// A request was rate-limited more often than the re-queue bound allows.
    RateLimited,
    /// A filter reached `max_pages_per_filter`.
    PageCap,
    /// A page was CLOSED without rate limiting (or could not be sent).
    Closed,
}

impl BatchFailure {
    /// Label for logs and metrics.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::RateLimited => "rate_limited",
            Self::PageCap => "page_cap",
            Self::Closed => "closed",
        }
    }
}

/// Where a batch is in its pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Negentropy diffs running; ids found missing so far.
    Diff { missing: BTreeSet<EventId> },
    /// Fetching ids the diffs found.
    Fetch(IdFetch),
    /// REQ+EOSE with pagination over the semantic filters.
    Req,
}

/// One request of a batch: sent when the relay has a free subscription slot.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a batch holds at most one request per filter; boxing every page cursor would add an allocation per page"
)]
pub(crate) enum Request {
    /// A negentropy reconciliation of one semantic filter: its index in `Batch::filters`, and
    /// how many earlier attempts of it the shell reported as lagged (see
    /// [`crate::NEG_LAG_ATTEMPTS`]).
    Diff(usize, u32),
    /// An `ids` fetch.
    Ids(Vec<EventId>),
    /// One page of a paginated semantic filter.
    Page(Cursor),
    /// The first pages of several semantic filters of the batch in one REQ (at least two,
    /// each [`Cursor::groupable`]), within the relay's filters and bytes per REQ
    /// (docs/spec.md §7.4). Each delivery is recorded on every cursor whose filter it matches.
    Pages(Vec<Cursor>),
}

/// A request on the wire, with what it has delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenRequest {
    pub(crate) request: Request,
    /// Times this request was re-queued after a rate-limit CLOSED.
    pub(crate) requeues: u32,
    /// Matching deliveries on this subscription.
    pub(crate) delivered: usize,
    /// The shell's stream lagged while this REQ was on the wire: some of its events may be
    /// lost, so at its EOSE (or its batch's deadline, if the EOSE was lost) it is sent again
    /// from the start of its page instead of being trusted. Always false for negentropy
    /// reconciliations, which do not travel on that stream.
    pub(crate) lagged: bool,
    /// Set with `lagged`: if nothing of this REQ arrives by then, its EOSE was probably lost
    /// in the lag and it is re-sent. Cleared by its next delivery (the stream is past the
    /// lag for it). Invariant: `Some` only if `lagged`.
    pub(crate) lag_grace: Option<Mono>,
}

/// A historic batch. Invariants: `open` and `queued` are both empty only while resolving;
/// `deadline` is set iff `open` is non-empty.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    /// Unique per relay.
    pub(crate) id: u64,
    /// Items confirmed when the batch completes (items leaving the target are removed).
    pub(crate) items: BTreeSet<Key>,
    /// Why it runs.
    pub(crate) origin: Origin,
    /// Lower bound of what it fetches (catch-up), `None` for a full pass.
    pub(crate) since: Option<Timestamp>,
    /// The semantic filters of `items` (for REQ+EOSE and the fallback), as built when the
    /// batch started.
    pub(crate) filters: Vec<ChunkFilter>,
    /// How many items `filters` were built from. Items only ever leave a batch, so while
    /// `items.len()` equals it, `filters` are exactly the filters of `items`.
    pub(crate) filter_items: usize,
    /// Pipeline stage.
    pub(crate) stage: Stage,
    /// Some part could not be completed (the first reason): the batch is retried, or once
    /// its attempts are used up the relay ends `ConnectedHistoricSyncFailures`.
    pub(crate) failed: Option<BatchFailure>,
    /// Which attempt at these items this is (1 for the first; see
    /// `Config::batch_retry_max_attempts`).
    pub(crate) attempt: u32,
    /// A retry waits for its backoff: nothing of it is sent before this. Cleared when due.
    pub(crate) not_before: Option<Mono>,
    /// Requests on the wire.
    pub(crate) open: BTreeMap<SubId, OpenRequest>,
    /// Requests waiting for a subscription slot (with their requeue counts).
    pub(crate) queued: VecDeque<(Request, u32)>,
    /// Resolved as failed (or falls back) if no progress by then.
    pub(crate) deadline: Option<Mono>,
}

impl Batch {
    /// Whether `filters` are exactly the filters of `items` (see `filter_items`).
    pub(crate) fn filters_are_of(&self, items: &KeySet) -> bool {
        self.items.len() == self.filter_items && items.same_as(&self.items)
    }

    /// Whether nothing is on the wire or waiting (ids deferred to another relay's fetch count
    /// as waiting).
    pub(crate) fn is_idle(&self) -> bool {
        self.open.is_empty() && self.queued.is_empty() && !self.has_deferred()
    }

    /// Whether its id fetch waits for ids another relay is fetching.
    pub(crate) fn has_deferred(&self) -> bool {
        matches!(&self.stage, Stage::Fetch(f) if !f.deferred.is_empty())
    }

    /// Whether an id-fetch round of this batch is open or queued.
    pub(crate) fn fetching_ids(&self) -> bool {
        self.has_outstanding(|r| matches!(r, Request::Ids(_)))
    }

    /// Whether this batch's id fetch still asks for `id`: requested, not received, and an
    /// id-fetch round open or queued (a relay waiting for it can keep waiting).
    pub(crate) fn fetches_live(&self, id: &EventId) -> bool {
        match &self.stage {
            Stage::Fetch(f) => {
                f.requested.contains(id) && !f.received.contains(id) && self.fetching_ids()
            }
            _ => false,
        }
    }

    /// Progress was made: the deadline moves to `batch_deadline_ms` from now.
    pub(crate) fn extend_deadline(&mut self, now: Mono, batch_deadline_ms: u64) {
        self.deadline = Some(now.plus_ms(batch_deadline_ms));
    }

    /// Marks the batch failed for `why` (the first reason is kept).
    pub(crate) fn fail(&mut self, why: BatchFailure) {
        self.failed.get_or_insert(why);
    }

    /// Whether a request of it may be sent now (it is not waiting for its retry backoff).
    pub(crate) fn may_send(&self) -> bool {
        self.not_before.is_none() && !self.queued.is_empty()
    }

    /// When the batch next needs attention: its deadline, or earlier the grace of a lagged
    /// request on the wire (see [`OpenRequest::lag_grace`]). `None` iff nothing is open.
    pub(crate) fn due_at(&self) -> Option<Mono> {
        let graces = self.open.values().filter_map(|o| o.lag_grace);
        self.deadline.map(|d| graces.fold(d, Mono::min))
    }

    /// Whether any request of the given shape is still open or queued.
    pub(crate) fn has_outstanding(&self, pred: impl Fn(&Request) -> bool) -> bool {
        self.open.values().any(|o| pred(&o.request)) || self.queued.iter().any(|(r, _)| pred(r))
    }
}
