//! The way in for events from remote relays: every EVENT nostr-sdk delivered (signature and id
//! already verified by the SDK, which drops invalid ones) is routed to its subscription, checked
//! against that subscription's filters, put to the host's [`WritePolicy`], stored if accepted,
//! and reported to the core as `Input::Delivered` with the outcome. EOSE, CLOSED and NOTICE
//! become inputs as they are; a lagging notification stream becomes `Input::Lagged` (a resync,
//! never a disconnect).
//!
//! This file holds the per-event work ([`Ingest::translate`], [`Ingest::judge`],
//! [`Ingest::record`]); `ingest/pipeline.rs` runs many events' decisions at once while keeping
//! the inputs in stream order, and `ingest/lag_burst.rs` folds bursts of lag into one input.

mod lag_burst;
mod pipeline;

pub use pipeline::MAX_IN_FLIGHT_EVENTS;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nostr::{Event, EventId, RelayMessage};
use nostr_database::{DatabaseEventStatus, NostrDatabase, RejectedReason, SaveEventStatus};
use nostr_sdk::RelayPoolNotification;
use sync_core::{EventMeta, Input, Outcome};
use tokio::sync::{broadcast, mpsc};

use crate::event_limits::{EventLimits, EventRefusal};
use crate::messages::DriverMsg;
use crate::metrics::Metrics;
use crate::policy::{Verdict, WritePolicy};
use crate::reoffer::ReofferCache;
use crate::routing::{Route, Routing};
use crate::withdrawal::{withdraws_itself, Withdrawer};

/// Called with every event the runtime newly stored.
pub type OnStored = Arc<dyn Fn(&Event) + Send + Sync>;

/// Everything needed to decide about and store one event.
#[derive(Clone)]
pub(crate) struct Ingest {
    /// The host's store.
    pub(crate) db: Arc<dyn NostrDatabase>,
    /// The host's policy.
    pub(crate) policy: Arc<dyn WritePolicy>,
    /// Relay and subscription lookup.
    pub(crate) routing: Arc<Routing>,
    /// Bodies of rejected events for re-offering.
    pub(crate) reoffer: Arc<Mutex<ReofferCache>>,
    /// The host's callback after a store.
    pub(crate) on_stored: Option<OnStored>,
    /// Shell-side counters.
    pub(crate) metrics: Metrics,
    /// The driver's inbox (bounded).
    pub(crate) tx: mpsc::Sender<DriverMsg>,
    /// A policy check that has not answered by then counts as `Defer` ([`POLICY_TIMEOUT`]).
    pub(crate) policy_timeout: Duration,
    /// Size and tag bounds; events over them (and NIP-70 protected ones) are refused before
    /// the policy.
    pub(crate) limits: EventLimits,
    /// Applies the withdrawals the policy reports for a stored event (docs/spec.md §14).
    pub(crate) withdrawer: Withdrawer,
}

/// How long the host's policy may take over one event before it counts as `Defer` (not
/// stored; found again by a later resync). A hung policy would otherwise hold a pipeline slot
/// for ever, and with every slot held the stream stops being read.
pub const POLICY_TIMEOUT: Duration = Duration::from_secs(30);

fn event_type(kind: u16) -> &'static str {
    match kind {
        30617 => "announcement",
        30618 => "state",
        1617 | 1618 | 1621 => "root",
        5 => "deletion",
        _ => "other",
    }
}

/// What the host's side made of one event, before the core hears about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Newly stored (`on_stored` has run).
    Stored,
    /// Newly stored, and it withdrew its own repository (a newer announcement that no longer
    /// lists us): the core hears a duplicate, since discovering it would sync the relays it
    /// names, and has already been told `WithdrawRepo`.
    StoredWithdrawing,
    /// Already stored, or the store declined it (replaced, deleted, …).
    Duplicate,
    /// The policy deferred it, or the store failed: not stored.
    Deferred,
    /// The policy rejected it.
    Rejected {
        /// The policy's reason, for logs.
        reason: String,
    },
    /// Refused before the policy: over the event limits, or NIP-70 protected.
    Refused(EventRefusal),
}

/// An event routed to an open (or recently closed) subscription, waiting for its decision.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The core's URL of the relay it came from.
    pub(crate) relay: sync_core::RelayUrl,
    /// The subscription it arrived on.
    pub(crate) sub: sync_core::SubId,
    /// What the core sees of it.
    pub(crate) meta: EventMeta,
    /// The event (shared with the task deciding it).
    pub(crate) event: Arc<Event>,
}

impl Pending {
    fn new(
        relay: sync_core::RelayUrl,
        sub: sync_core::SubId,
        meta: EventMeta,
        event: Event,
    ) -> Self {
        Self {
            relay,
            sub,
            meta,
            event: Arc::new(event),
        }
    }
}

/// What one relay message becomes.
#[derive(Debug)]
pub(crate) enum Step {
    /// Nothing for the core.
    Skip,
    /// An input as it is.
    Input(Input),
    /// An event to decide; its `Input::Delivered` follows the decision.
    Decide(Pending),
}

impl Ingest {
    /// Feeds `input` to the driver; `false` if the driver is gone.
    async fn send(&self, input: Input) -> bool {
        self.tx.send(DriverMsg::Input(input)).await.is_ok()
    }

    /// Decides about a verified event and records a rejection (see [`Ingest::judge`] and
    /// [`Ingest::record`]).
    #[cfg(test)]
    pub(crate) async fn decide(&self, event: &Event) -> Outcome {
        let decision = self.judge(event).await;
        self.record(event, decision)
    }

    /// Duplicate check, policy, store; runs `on_stored` after a store. Safe to run for many
    /// events at once: the store's own duplicate check makes exactly one of two concurrent
    /// saves of the same event `Stored`.
    pub(crate) async fn judge(&self, event: &Event) -> Decision {
        // The duplicate check first: an event already stored passed the limits when it was, and
        // measuring one serialises it (a resync re-delivers every event a relay has).
        match self.db.check_id(&event.id).await {
            Ok(DatabaseEventStatus::Saved | DatabaseEventStatus::Deleted) => {
                return Decision::Duplicate
            }
            Ok(DatabaseEventStatus::NotExistent) => {}
            Err(e) => tracing::warn!(id = %event.id, error = %e, "store check_id failed"),
        }
        if let Some(refusal) = self.limits.refusal(event, true) {
            return Decision::Refused(refusal);
        }
        match tokio::time::timeout(self.policy_timeout, self.policy.check(event)).await {
            Ok(Verdict::Accept) => {
                // Asked before the store: a deletion's target is gone once it is stored.
                let withdrawals = self.policy.withdrawals(event).await;
                let decision = self.store(event).await;
                if decision != Decision::Stored || withdrawals.is_empty() {
                    return decision;
                }
                for withdrawal in &withdrawals {
                    self.withdrawer.apply(withdrawal).await;
                }
                if withdraws_itself(event, &withdrawals) {
                    Decision::StoredWithdrawing
                } else {
                    Decision::Stored
                }
            }
            Ok(Verdict::Defer) => Decision::Deferred,
            Ok(Verdict::Reject { reason }) => Decision::Rejected { reason },
            Err(_) => {
                tracing::warn!(id = %event.id, timeout = ?self.policy_timeout, "policy did not answer in time; event deferred");
                self.metrics.policy_timeouts.inc();
                Decision::Deferred
            }
        }
    }

    /// Turns a final decision into the core's outcome: a rejection is logged, counted and its
    /// body kept for a re-offer. Called once per decision the core hears about.
    pub(crate) fn record(&self, event: &Event, decision: Decision) -> Outcome {
        match decision {
            Decision::Stored => Outcome::Saved,
            Decision::Duplicate | Decision::StoredWithdrawing => Outcome::Duplicate,
            Decision::Deferred => Outcome::Deferred,
            // Delivered (so an id fetch counts it as received) and never stored or re-offered.
            Decision::Refused(refusal) => {
                tracing::debug!(id = %event.id, kind = event.kind.as_u16(), reason = refusal.label(), "event refused before the policy");
                self.metrics
                    .events_dropped
                    .with_label_values(&[refusal.label()])
                    .inc();
                Outcome::Rejected
            }
            Decision::Rejected { reason } => {
                tracing::debug!(id = %event.id, kind = event.kind.as_u16(), %reason, "policy rejected");
                self.metrics
                    .policy_rejected
                    .with_label_values(&[event_type(event.kind.as_u16())])
                    .inc();
                self.reoffer
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(event, Instant::now());
                Outcome::Rejected
            }
        }
    }

    async fn store(&self, event: &Event) -> Decision {
        match self.db.save_event(event).await {
            Ok(SaveEventStatus::Success) => {
                if let Some(f) = &self.on_stored {
                    f(event);
                }
                Decision::Stored
            }
            Ok(SaveEventStatus::Rejected(RejectedReason::Duplicate)) => Decision::Duplicate,
            Ok(SaveEventStatus::Rejected(reason)) => {
                // Replaced by a newer version, deleted, expired, …: nothing new was stored.
                tracing::debug!(id = %event.id, ?reason, "store declined event");
                Decision::Duplicate
            }
            Err(e) => {
                tracing::warn!(id = %event.id, error = %e, "store failed");
                self.metrics.store_errors.inc();
                Decision::Deferred
            }
        }
    }

    /// Routes one EVENT from `sdk_url` on `sub`: to be decided, or an input at once.
    fn route_event(&self, sdk_url: &str, sub: &str, event: Event) -> Step {
        let meta = EventMeta::from_event(&event);
        let sub_id = sync_core::SubId(sub.to_string());
        let (relay, dropped) = match self.routing.route(sdk_url, sub, &meta) {
            Route::UnknownRelay => return Step::Skip,
            Route::Matched(relay) => return Step::Decide(Pending::new(relay, sub_id, meta, event)),
            // Asked-for data that queued behind other traffic past its batch's deadline: still
            // offered to the host (the core counts it as late and still learns what was saved).
            Route::LateMatched(relay) => {
                tracing::debug!(relay = %relay, %sub, id = %event.id, "late event on a closed subscription");
                return Step::Decide(Pending::new(relay, sub_id, meta, event));
            }
            // Not offered to the host; the core counts the delivery as late / out of filter.
            Route::UnknownSub(relay) => (relay, "unknown_subscription"),
            Route::OutOfFilter(relay) => {
                tracing::debug!(relay = %relay, %sub, id = %event.id, "event outside the subscription's filters");
                (relay, "out_of_filter")
            }
        };
        self.metrics
            .events_dropped
            .with_label_values(&[dropped])
            .inc();
        Step::Input(Input::Delivered {
            relay,
            sub: sub_id,
            event: meta,
            outcome: Outcome::NotOffered,
        })
    }

    /// Translates one relay message into what the pipeline does with it.
    fn translate(&self, sdk_url: &str, message: RelayMessage<'_>) -> Step {
        let relay = || self.routing.relay(sdk_url);
        let input = match message {
            RelayMessage::Event {
                subscription_id,
                event,
            } => return self.route_event(sdk_url, subscription_id.as_str(), event.into_owned()),
            RelayMessage::EndOfStoredEvents(sub) => relay().map(|relay| Input::Eose {
                relay,
                sub: sync_core::SubId(sub.to_string()),
            }),
            RelayMessage::Closed {
                subscription_id,
                message,
            } => relay().map(|relay| Input::Closed {
                relay,
                sub: sync_core::SubId(subscription_id.to_string()),
                message: message.into_owned(),
            }),
            RelayMessage::Notice(message) => relay().map(|relay| Input::Notice {
                relay,
                message: message.into_owned(),
            }),
            // NEG-* are consumed by the negentropy executor; OK/AUTH/COUNT are not ours.
            _ => None,
        };
        input.map_or(Step::Skip, Step::Input)
    }

    /// Reads the SDK's notification stream until it or the driver ends (see
    /// `ingest/pipeline.rs`: many events decided at once, inputs in stream order).
    pub(crate) async fn run(self, notifications: broadcast::Receiver<RelayPoolNotification>) {
        pipeline::run(Arc::new(self), notifications).await;
    }

    /// Runs re-offered events through the policy again and tells the core the verdicts.
    pub(crate) async fn reoffer(&self, ids: Vec<EventId>) {
        let bodies = self
            .reoffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(&ids, Instant::now());
        for event in bodies {
            let event_meta = EventMeta::from_event(&event);
            let decision = self.judge(&event).await;
            if decision == Decision::StoredWithdrawing {
                continue;
            }
            let input = match self.record(&event, decision) {
                Outcome::Saved | Outcome::Duplicate => Input::Accepted { event: event_meta },
                Outcome::Rejected => Input::Rejected { event: event_meta },
                Outcome::Deferred | Outcome::NotOffered => continue,
            };
            if !self.send(input).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use nostr::{EventBuilder, Keys, Kind, Tag};
    use nostr_database::{MemoryDatabase, MemoryDatabaseOptions};

    use super::*;
    use crate::policy::PolicyFuture;

    /// Answers with a fixed verdict and counts its calls.
    struct Fixed(Verdict, AtomicUsize);

    impl WritePolicy for Fixed {
        fn check<'a>(&'a self, _event: &'a Event) -> PolicyFuture<'a> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let verdict = self.0.clone();
            Box::pin(async move { verdict })
        }
    }

    /// An ingest over `db` with `policy`, a driver inbox of `inbox`, and a counter of
    /// `on_stored` calls (shared with the pipeline's tests).
    pub(super) fn ingest_with(
        policy: Arc<dyn WritePolicy>,
        db: Arc<dyn NostrDatabase>,
        inbox: usize,
    ) -> (Ingest, mpsc::Receiver<DriverMsg>, Arc<AtomicUsize>) {
        let stored = Arc::new(AtomicUsize::new(0));
        let counter = stored.clone();
        let (tx, rx) = mpsc::channel(inbox);
        let metrics = Metrics::register(prometheus::Registry::new()).unwrap();
        let withdrawer = Withdrawer {
            db: db.clone(),
            mode: crate::withdrawal::OnWithdrawal::Keep,
            metrics: metrics.clone(),
            tx: tx.clone(),
        };
        let ingest = Ingest {
            db,
            policy,
            routing: Arc::new(Routing::default()),
            reoffer: Arc::new(Mutex::new(ReofferCache::new(Duration::from_secs(120), 10))),
            on_stored: Some(Arc::new(move |_e: &Event| {
                counter.fetch_add(1, Ordering::SeqCst);
            })),
            metrics,
            tx,
            policy_timeout: POLICY_TIMEOUT,
            limits: EventLimits::default(),
            withdrawer,
        };
        (ingest, rx, stored)
    }

    fn ingest(
        verdict: Verdict,
    ) -> (
        Ingest,
        Arc<Fixed>,
        mpsc::Receiver<DriverMsg>,
        Arc<AtomicUsize>,
    ) {
        let db = Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: None,
        }));
        let policy = Arc::new(Fixed(verdict, AtomicUsize::new(0)));
        let (ingest, rx, stored) = ingest_with(policy.clone(), db, 16);
        (ingest, policy, rx, stored)
    }

    fn announcement() -> Event {
        EventBuilder::new(Kind::from(30617u16), "")
            .tag(Tag::identifier("r"))
            .sign_with_keys(&Keys::generate())
            .unwrap()
    }

    #[tokio::test]
    async fn accepted_events_are_stored_once_and_duplicates_skip_the_policy() {
        let (ingest, policy, _rx, stored) = ingest(Verdict::Accept);
        let event = announcement();
        assert_eq!(ingest.decide(&event).await, Outcome::Saved);
        assert_eq!(ingest.decide(&event).await, Outcome::Duplicate);
        assert_eq!(
            policy.1.load(Ordering::SeqCst),
            1,
            "the duplicate never reached the policy"
        );
        assert_eq!(
            stored.load(Ordering::SeqCst),
            1,
            "on_stored runs once, after the store"
        );
    }

    /// Never answers.
    struct Hung;

    impl WritePolicy for Hung {
        fn check<'a>(&'a self, _event: &'a Event) -> PolicyFuture<'a> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_policy_that_never_answers_defers_the_event_after_the_timeout() {
        let db = Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: None,
        }));
        let (mut ingest, _rx, stored) = ingest_with(Arc::new(Hung), db, 4);
        ingest.policy_timeout = Duration::from_millis(50);
        let event = announcement();
        assert_eq!(ingest.decide(&event).await, Outcome::Deferred);
        assert!(ingest.db.event_by_id(&event.id).await.unwrap().is_none());
        assert_eq!(stored.load(Ordering::SeqCst), 0);
        assert!(
            ingest
                .metrics
                .text()
                .contains("ngit_sync_policy_timeouts_total 1"),
            "{}",
            ingest.metrics.text()
        );
    }

    #[tokio::test]
    async fn events_over_the_bounds_and_protected_ones_are_refused_counted_and_never_stored() {
        let (mut ingest, policy, _rx, stored) = ingest(Verdict::Accept);
        ingest.limits = EventLimits {
            max_event_bytes: 4_096,
            max_event_tags: 3,
        };
        let keys = Keys::generate();
        let with_tags = |n: usize, content: &str| {
            let tags = (0..n).map(|i| Tag::parse(["t", &i.to_string()]).unwrap());
            EventBuilder::new(Kind::GitPatch, content)
                .tags(tags)
                .sign_with_keys(&keys)
                .unwrap()
        };
        let protected = EventBuilder::new(Kind::GitPatch, "p")
            .tag(Tag::protected())
            .sign_with_keys(&keys)
            .unwrap();
        for (event, reason) in [
            (with_tags(4, "x"), "too_many_tags"),
            (with_tags(0, &"x".repeat(5_000)), "too_large"),
            (protected, "protected"),
        ] {
            // Rejected (so an id fetch counts it as received), and kept out of the re-offer
            // memory: nothing of it is held.
            assert_eq!(ingest.decide(&event).await, Outcome::Rejected, "{reason}");
            let dropped = ingest
                .metrics
                .events_dropped
                .with_label_values(&[reason])
                .get();
            assert_eq!(dropped, 1, "{reason} counted");
            let status = ingest.db.check_id(&event.id).await.unwrap();
            assert_eq!(status, DatabaseEventStatus::NotExistent, "{reason}");
        }
        assert_eq!(
            policy.1.load(Ordering::SeqCst),
            0,
            "the policy never saw them"
        );
        assert_eq!(stored.load(Ordering::SeqCst), 0);
        assert_eq!(ingest.reoffer.lock().unwrap().len(), 0);
        assert_eq!(ingest.decide(&with_tags(3, "ok")).await, Outcome::Saved);
    }

    /// Accepts everything; an announcement withdraws its own repository.
    struct Unlisting;

    impl WritePolicy for Unlisting {
        fn check<'a>(&'a self, _event: &'a Event) -> PolicyFuture<'a> {
            Box::pin(async { Verdict::Accept })
        }

        fn withdrawals<'a>(&'a self, event: &'a Event) -> crate::policy::WithdrawalsFuture<'a> {
            let coord = EventMeta::from_event(event).own_coord();
            let reason = crate::policy::WithdrawalReason::Unlisted;
            let found = coord.map(|coord| crate::policy::Withdrawal { coord, reason });
            Box::pin(async move { found.into_iter().collect() })
        }
    }

    #[tokio::test]
    async fn a_stored_unlisting_announcement_withdraws_and_is_no_discovery() {
        let db = Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: None,
        }));
        let (ingest, mut rx, stored) = ingest_with(Arc::new(Unlisting), db, 4);
        let event = announcement();
        // Stored and pushed (on_stored), but the core hears a duplicate plus the withdrawal.
        assert_eq!(ingest.decide(&event).await, Outcome::Duplicate);
        assert!(ingest.db.event_by_id(&event.id).await.unwrap().is_some());
        assert_eq!(stored.load(Ordering::SeqCst), 1);
        match rx.try_recv() {
            Ok(DriverMsg::Input(Input::WithdrawRepo { coord })) => {
                assert_eq!(Some(coord), EventMeta::from_event(&event).own_coord());
            }
            other => panic!("expected WithdrawRepo, got {other:?}"),
        }
        let text = ingest.metrics.text();
        let series = "ngit_sync_repos_withdrawn_total{reason=\"unlisted\"} 1";
        assert!(text.contains(series), "{text}");
    }

    #[tokio::test]
    async fn deferred_events_are_not_stored() {
        let (ingest, _policy, _rx, stored) = ingest(Verdict::Defer);
        let event = announcement();
        assert_eq!(ingest.decide(&event).await, Outcome::Deferred);
        assert!(ingest.db.event_by_id(&event.id).await.unwrap().is_none());
        assert_eq!(stored.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn rejected_announcements_are_kept_for_a_reoffer_that_reports_the_new_verdict() {
        let (ingest, policy, mut rx, _stored) = ingest(Verdict::reject("blocked: test"));
        let event = announcement();
        assert_eq!(ingest.decide(&event).await, Outcome::Rejected);
        assert!(ingest.db.event_by_id(&event.id).await.unwrap().is_none());
        ingest.reoffer(vec![event.id]).await;
        match rx.recv().await {
            Some(DriverMsg::Input(Input::Rejected { event: meta })) => {
                assert_eq!(meta.id, event.id)
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert_eq!(
            policy.1.load(Ordering::SeqCst),
            2,
            "re-offered to the policy"
        );
        let text = ingest.metrics.text();
        assert!(
            text.contains("ngit_sync_rejected_events_total{event_type=\"announcement\"} 2"),
            "{text}"
        );
    }
}
