//! The host's write policy: the one question the runtime asks the host about every event that
//! arrives from a remote relay (after signature verification and the subscription-filter check)
//! and about every event the core asks to re-offer.
//!
//! The runtime stores what the policy accepts in the host's `NostrDatabase` and tells the core
//! the [`sync_core::Outcome`] (`Saved` / `Duplicate` from the store's answer, `Deferred`,
//! `Rejected`). A GRASP relay uses the default GRASP policy of this crate; a host with its own
//! rules implements [`WritePolicy`].

use std::future::Future;
use std::pin::Pin;

use nostr::Event;
use sync_core::RepoCoord;

/// A boxed, sendable future (the trait stays object safe without `async-trait`).
pub type PolicyFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// What [`WritePolicy::withdrawals`] answers.
pub type WithdrawalsFuture<'a> = Pin<Box<dyn Future<Output = Vec<Withdrawal>> + Send + 'a>>;

/// Why a repository stops being synced (docs/spec.md §14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WithdrawalReason {
    /// A newer announcement of the coordinate lists none of our service URLs.
    Unlisted,
    /// The owner deleted the announcement (NIP-09).
    Deleted,
}

impl WithdrawalReason {
    /// The label in logs and in `ngit_sync_repos_withdrawn_total{reason}`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Unlisted => "unlisted",
            Self::Deleted => "deleted",
        }
    }
}

/// One repository an accepted event withdraws from sync.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Withdrawal {
    /// The repository (owner + `d`).
    pub coord: RepoCoord,
    /// Why.
    pub reason: WithdrawalReason,
}

/// What a [`WritePolicy`] decided about one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Store it.
    Accept,
    /// Hold it provisionally (e.g. until git data arrives); the runtime does not store it and
    /// reports `Outcome::Deferred` to the core.
    Defer,
    /// Refuse it; `reason` is logged and counted, never sent anywhere.
    Reject {
        /// Why, for logs (`blocked: announcement does not list this relay`, …).
        reason: String,
    },
}

impl Verdict {
    /// A rejection with `reason`.
    #[must_use]
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject {
            reason: reason.into(),
        }
    }
}

/// The host's write policy. Implementations must be cheap to call concurrently; the runtime
/// checks up to [`MAX_IN_FLIGHT_EVENTS`](crate::MAX_IN_FLIGHT_EVENTS) events at once. An event
/// the policy rejected or deferred while an event that arrived before it was still being
/// stored is checked a second time once that store is done (the store may be what it needed),
/// so a policy must not count calls as deliveries. A check that has not answered within
/// [`POLICY_TIMEOUT`](crate::POLICY_TIMEOUT) counts as [`Verdict::Defer`] (and is counted in
/// `ngit_sync_policy_timeouts_total`).
pub trait WritePolicy: Send + Sync + 'static {
    /// Decides about `event` (already verified). Must not store it: the runtime does.
    fn check<'a>(&'a self, event: &'a Event) -> PolicyFuture<'a>;

    /// The repositories that `event`, accepted by [`WritePolicy::check`] and not stored yet,
    /// withdraws from sync (docs/spec.md §14): a newer announcement that no longer lists this
    /// host, a NIP-09 deletion of an announcement. Asked before the store (a deletion's target
    /// must still be readable) and, at startup, about every stored announcement: one that
    /// withdraws its own coordinate is not replayed, so a withdrawal survives a restart.
    /// Default: nothing is ever withdrawn (every accepted announcement is synced).
    fn withdrawals<'a>(&'a self, event: &'a Event) -> WithdrawalsFuture<'a> {
        let _ = event;
        Box::pin(async { Vec::new() })
    }
}

/// Accepts everything (archive hosts and tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl WritePolicy for AcceptAll {
    fn check<'a>(&'a self, _event: &'a Event) -> PolicyFuture<'a> {
        Box::pin(async { Verdict::Accept })
    }
}
