//! The way in for events from remote relays: every EVENT nostr-sdk delivered (signature and id
//! already verified by the SDK, which drops invalid ones) is routed to its subscription, checked
//! against that subscription's filters, put to the host's [`WritePolicy`], stored if accepted,
//! and reported to the core as `Input::Delivered` with the outcome. EOSE, CLOSED and NOTICE
//! become inputs as they are; a lagging notification stream becomes `Input::Lagged` (a resync,
//! never a disconnect).
//!
//! One task reads the stream in order, so every EVENT of a subscription reaches the core before
//! its EOSE. The driver's channel is bounded: when the core falls behind, this task waits, the
//! SDK's broadcast buffer fills, and the resulting lag is reported as `Lagged`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use nostr::{Event, EventId, RelayMessage};
use nostr_database::{DatabaseEventStatus, NostrDatabase, RejectedReason, SaveEventStatus};
use nostr_sdk::RelayPoolNotification;
use sync_core::{EventMeta, Input, Outcome};
use tokio::sync::{broadcast, mpsc};

use crate::driver::DriverMsg;
use crate::metrics::Metrics;
use crate::policy::{Verdict, WritePolicy};
use crate::reoffer::ReofferCache;
use crate::routing::{Route, Routing};

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
}

fn event_type(kind: u16) -> &'static str {
    match kind {
        30617 => "announcement",
        30618 => "state",
        1617 | 1618 | 1621 => "root",
        5 => "deletion",
        _ => "other",
    }
}

impl Ingest {
    /// Feeds `input` to the driver; `false` if the driver is gone.
    async fn send(&self, input: Input) -> bool {
        self.tx.send(DriverMsg::Input(input)).await.is_ok()
    }

    /// Decides about a verified event: duplicate check, policy, store.
    pub(crate) async fn decide(&self, event: &Event) -> Outcome {
        match self.db.check_id(&event.id).await {
            Ok(DatabaseEventStatus::Saved | DatabaseEventStatus::Deleted) => {
                return Outcome::Duplicate
            }
            Ok(DatabaseEventStatus::NotExistent) => {}
            Err(e) => tracing::warn!(id = %event.id, error = %e, "store check_id failed"),
        }
        match self.policy.check(event).await {
            Verdict::Accept => self.store(event).await,
            Verdict::Defer => Outcome::Deferred,
            Verdict::Reject { reason } => {
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

    async fn store(&self, event: &Event) -> Outcome {
        match self.db.save_event(event).await {
            Ok(SaveEventStatus::Success) => {
                if let Some(f) = &self.on_stored {
                    f(event);
                }
                Outcome::Saved
            }
            Ok(SaveEventStatus::Rejected(RejectedReason::Duplicate)) => Outcome::Duplicate,
            Ok(SaveEventStatus::Rejected(reason)) => {
                // Replaced by a newer version, deleted, expired, …: nothing new was stored.
                tracing::debug!(id = %event.id, ?reason, "store declined event");
                Outcome::Duplicate
            }
            Err(e) => {
                tracing::warn!(id = %event.id, error = %e, "store failed");
                self.metrics.store_errors.inc();
                Outcome::Deferred
            }
        }
    }

    /// Handles one EVENT from `sdk_url` on `sub`.
    async fn on_event(&self, sdk_url: &str, sub: &str, event: &Event) -> bool {
        let meta = EventMeta::from_event(event);
        let (relay, outcome) = match self.routing.route(sdk_url, sub, &meta) {
            Route::UnknownRelay => return true,
            // Not offered to the host. `Deferred` has no effect in the core, which counts the
            // delivery as late / out of filter.
            Route::UnknownSub(relay) => {
                self.metrics
                    .events_dropped
                    .with_label_values(&["unknown_subscription"])
                    .inc();
                (relay, Outcome::Deferred)
            }
            Route::OutOfFilter(relay) => {
                tracing::debug!(relay = %relay, %sub, id = %event.id, "event outside the subscription's filters");
                self.metrics
                    .events_dropped
                    .with_label_values(&["out_of_filter"])
                    .inc();
                (relay, Outcome::Deferred)
            }
            Route::Matched(relay) => (relay, self.decide(event).await),
        };
        let sub = sync_core::SubId(sub.to_string());
        self.send(Input::Delivered {
            relay,
            sub,
            event: meta,
            outcome,
        })
        .await
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
            let input = match self.decide(&event).await {
                Outcome::Saved | Outcome::Duplicate => Input::Accepted { event: event_meta },
                Outcome::Rejected => Input::Rejected { event: event_meta },
                Outcome::Deferred => continue,
            };
            if !self.send(input).await {
                return;
            }
        }
    }

    /// Translates one relay message; `false` when the driver is gone.
    async fn on_message(&self, sdk_url: &str, message: RelayMessage<'_>) -> bool {
        let relay = || self.routing.relay(sdk_url);
        let input = match message {
            RelayMessage::Event {
                subscription_id,
                event,
            } => {
                return self
                    .on_event(sdk_url, subscription_id.as_str(), &event)
                    .await
            }
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
        match input {
            Some(input) => self.send(input).await,
            None => true,
        }
    }

    /// Reads the SDK's notification stream until it or the driver ends.
    pub(crate) async fn run(self, mut notifications: broadcast::Receiver<RelayPoolNotification>) {
        loop {
            let keep_going = match notifications.recv().await {
                Ok(RelayPoolNotification::Message { relay_url, message }) => {
                    self.on_message(relay_url.as_str(), message).await
                }
                Ok(RelayPoolNotification::Event { .. }) => true,
                Ok(RelayPoolNotification::Shutdown) | Err(broadcast::error::RecvError::Closed) => {
                    false
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "relay message stream lagged; every relay catches up"
                    );
                    self.metrics.stream_lagged.inc();
                    self.send(Input::Lagged { relay: None }).await
                }
            };
            if !keep_going {
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
        let stored = Arc::new(AtomicUsize::new(0));
        let counter = stored.clone();
        let (tx, rx) = mpsc::channel(16);
        let ingest = Ingest {
            db,
            policy: policy.clone(),
            routing: Arc::new(Routing::default()),
            reoffer: Arc::new(Mutex::new(ReofferCache::new(Duration::from_secs(120), 10))),
            on_stored: Some(Arc::new(move |_e: &Event| {
                counter.fetch_add(1, Ordering::SeqCst);
            })),
            metrics: Metrics::register(prometheus::Registry::new()).unwrap(),
            tx,
        };
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
