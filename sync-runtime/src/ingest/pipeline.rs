//! The ingest pipeline: reads nostr-sdk's notification stream while up to
//! [`MAX_IN_FLIGHT_EVENTS`] events are being decided and stored at once, and hands the resulting
//! inputs to the driver in stream order.
//!
//! Why: handled one at a time, every EVENT waited for its duplicate check, its policy and its
//! own store commit before the next message was read, so the SDK's broadcast buffer overflowed
//! under load (a lag makes the core catch every relay up: more requests, more lag). Decided
//! concurrently, the saves reach nostr-lmdb's ingester together and share one write
//! transaction, and the stream keeps being read while the driver's inbox is full.
//!
//! Order: one FIFO queue holds, per message, either a ready input (EOSE, CLOSED, NOTICE,
//! `Lagged`, a dropped event's `Delivered`) or an event whose decision runs on its own task.
//! Only the head of the queue goes to the driver, so an EVENT of a subscription always reaches
//! the core before that subscription's EOSE or CLOSED.
//!
//! Dependencies between events: the host's policy may accept an event only once another is
//! stored (a state event needs its announcement). Sequentially, every earlier event was stored
//! before a later one was judged; concurrently it may not be yet. So an event rejected or
//! deferred whose policy check began before the store of an event ahead of it completed is
//! judged again when it reaches the head (every earlier event is decided by then): the outcome
//! the core hears is never worse than the sequential one. The price: the host's policy may be
//! asked twice about such an event (once per delivery it is still asked at most twice).

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

use nostr::Event;
use nostr_sdk::RelayPoolNotification;
use sync_core::Input;
use tokio::sync::broadcast;
use tokio::task::{JoinError, JoinHandle};

use super::lag_burst::{LagBurst, LagReader, Received};
use super::{Decision, Ingest, Pending, Step};
use crate::messages::DriverMsg;

/// Most messages between the stream and the driver at once (events being decided plus ready
/// inputs waiting behind them). 256 lets nostr-lmdb's ingester commit up to ~256 saves in one
/// write transaction (its batches take whatever queued while the last commit ran), which is
/// where the per-event commit cost goes away; more would only hold more events in memory (each
/// entry is one event plus a task) while the driver, not the store, is the bottleneck.
pub const MAX_IN_FLIGHT_EVENTS: usize = 256;

/// A decision and where it fell among the pipeline's stores.
#[derive(Debug)]
struct Judged {
    /// What the host's side made of the event.
    decision: Decision,
    /// [`Pipeline::store_seq`] when the judging began: every store numbered up to it was
    /// committed before the policy looked.
    started_seq: u64,
    /// This event's number in [`Pipeline::store_seq`] if it was stored, else 0.
    stored_seq: u64,
}

/// Judges `event` on its own task, numbering a store in `seq`.
fn spawn_judge(ingest: Arc<Ingest>, seq: Arc<AtomicU64>, event: Arc<Event>) -> DecisionTask {
    DecisionTask(tokio::spawn(async move {
        let started_seq = seq.load(Ordering::SeqCst);
        let decision = ingest.judge(&event).await;
        let stored_seq = match decision {
            Decision::Stored => seq.fetch_add(1, Ordering::SeqCst) + 1,
            _ => 0,
        };
        Judged {
            decision,
            started_seq,
            stored_seq,
        }
    }))
}

/// A spawned decision that is aborted if the pipeline is dropped (the runtime shut down).
#[derive(Debug)]
struct DecisionTask(JoinHandle<Judged>);

impl Drop for DecisionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An event in the queue while its decision runs.
#[derive(Debug)]
struct Deciding {
    /// The routed event.
    pending: Pending,
    /// The task judging it.
    task: DecisionTask,
}

/// One queue entry, in stream order.
#[derive(Debug)]
enum Slot {
    /// An input ready for the driver.
    Ready(Input),
    /// An event being decided.
    Deciding(Deciding),
}

/// The reader's state (see the module docs).
struct Pipeline {
    /// The per-event work.
    ingest: Arc<Ingest>,
    /// Entries not yet handed to the driver, in stream order; at most [`MAX_IN_FLIGHT_EVENTS`].
    queue: VecDeque<Slot>,
    /// Numbers the stores of the pipeline's tasks in the order they completed (only grows).
    store_seq: Arc<AtomicU64>,
    /// The highest store number among the entries already handed on. Every entry ahead of the
    /// head has been handed on, so if this exceeds the head's `started_seq`, an event ahead of
    /// it was stored after its policy looked.
    stored_ahead_seq: u64,
}

impl Pipeline {
    /// Queues what one message became.
    fn push(&mut self, step: Step) {
        match step {
            Step::Skip => {}
            Step::Input(input) => self.queue.push_back(Slot::Ready(input)),
            Step::Decide(pending) => {
                let task = spawn_judge(
                    self.ingest.clone(),
                    self.store_seq.clone(),
                    pending.event.clone(),
                );
                self.queue
                    .push_back(Slot::Deciding(Deciding { pending, task }));
            }
        }
    }

    /// Queues a lag burst as `Input::Lagged`, or merges it into a `Lagged` at the back of the
    /// queue (nothing lies between them and the driver has not seen that one yet).
    fn push_lag(&mut self, burst: LagBurst) {
        tracing::warn!(
            missed = burst.missed,
            results = burst.results,
            "relay message stream lagged; every relay catches up"
        );
        self.ingest.metrics.stream_lagged.inc_by(burst.results);
        if !matches!(
            self.queue.back(),
            Some(Slot::Ready(Input::Lagged { relay: None }))
        ) {
            self.queue
                .push_back(Slot::Ready(Input::Lagged { relay: None }));
        }
    }

    /// Handles one read; `false` once the stream ended.
    fn on_received(&mut self, received: Received<RelayPoolNotification>) -> bool {
        match received {
            Received::Message(RelayPoolNotification::Message { relay_url, message }) => {
                let step = self.ingest.translate(relay_url.as_str(), message);
                self.push(step);
                true
            }
            Received::Message(RelayPoolNotification::Event { .. }) => true,
            Received::Message(RelayPoolNotification::Shutdown) | Received::Closed => false,
            Received::Lagged(burst) => {
                self.push_lag(burst);
                true
            }
        }
    }

    /// Resolves the decided head entry into its `Delivered` input: a rejection or deferral
    /// that raced the store of an event ahead of it is judged again first (on its own task,
    /// so a panicking policy cannot take the reader down).
    async fn finish(&mut self, pending: Pending, joined: Result<Judged, JoinError>) -> Input {
        let mut judged = self.joined(&pending, joined);
        let retry = matches!(
            judged.as_ref().map(|j| &j.decision),
            Some(Decision::Rejected { .. } | Decision::Deferred)
        );
        if let (true, Some(j)) = (retry, &judged) {
            if self.stored_ahead_seq > j.started_seq {
                tracing::debug!(id = %pending.event.id, "judged again after the events ahead of it");
                let mut task = spawn_judge(
                    self.ingest.clone(),
                    self.store_seq.clone(),
                    pending.event.clone(),
                );
                let rejoined = (&mut task.0).await;
                judged = self.joined(&pending, rejoined);
            }
        }
        let decision = match judged {
            Some(j) => {
                self.stored_ahead_seq = self.stored_ahead_seq.max(j.stored_seq);
                j.decision
            }
            None => Decision::Deferred,
        };
        let outcome = self.ingest.record(&pending.event, decision);
        Input::Delivered {
            relay: pending.relay,
            sub: pending.sub,
            event: pending.meta,
            outcome,
        }
    }

    /// A finished task's result; `None` (logged) if it panicked.
    fn joined(&self, pending: &Pending, joined: Result<Judged, JoinError>) -> Option<Judged> {
        joined
            .inspect_err(|e| {
                tracing::warn!(id = %pending.event.id, error = %e, "deciding an event failed");
            })
            .ok()
    }
}

/// Waits until the head entry's decision is done (pending forever if the head is not
/// deciding). Cancel safe: it only polls the join handle.
fn head_decided(
    queue: &mut VecDeque<Slot>,
) -> impl Future<Output = Result<Judged, JoinError>> + '_ {
    poll_fn(move |cx| match queue.front_mut() {
        Some(Slot::Deciding(d)) => Pin::new(&mut d.task.0).poll(cx),
        _ => Poll::Pending,
    })
}

/// Reads `notifications` until the stream ends (then delivers what is queued) or the driver
/// is gone.
pub(crate) async fn run(
    ingest: Arc<Ingest>,
    notifications: broadcast::Receiver<RelayPoolNotification>,
) {
    let tx = ingest.tx.clone();
    let mut reader = LagReader::new(notifications);
    let mut p = Pipeline {
        ingest,
        queue: VecDeque::with_capacity(MAX_IN_FLIGHT_EVENTS),
        store_seq: Arc::new(AtomicU64::new(0)),
        stored_ahead_seq: 0,
    };
    let mut reading = true;
    loop {
        let head_ready = matches!(p.queue.front(), Some(Slot::Ready(_)));
        let head_deciding = matches!(p.queue.front(), Some(Slot::Deciding(_)));
        let can_read = reading && p.queue.len() < MAX_IN_FLIGHT_EVENTS;
        if !reading && p.queue.is_empty() {
            return;
        }
        tokio::select! {
            biased;
            permit = tx.reserve(), if head_ready => {
                let Ok(permit) = permit else { return };
                if let Some(Slot::Ready(input)) = p.queue.pop_front() {
                    permit.send(DriverMsg::Input(input));
                }
            }
            joined = head_decided(&mut p.queue), if head_deciding => {
                if let Some(Slot::Deciding(deciding)) = p.queue.pop_front() {
                    let input = p.finish(deciding.pending, joined).await;
                    p.queue.push_front(Slot::Ready(input));
                }
            }
            received = reader.next(), if can_read => {
                reading = p.on_received(received);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use nostr::{Event, EventBuilder, EventId, Filter, Keys, Kind, RelayMessage, SubscriptionId};
    use nostr_database::NostrDatabase;
    use nostr_lmdb::NostrLMDB;
    use nostr_sdk::RelayUrl as SdkUrl;
    use sync_core::{Outcome, SubId};
    use tokio::sync::mpsc;

    use super::*;
    use crate::ingest::tests::ingest_with;
    use crate::policy::{AcceptAll, PolicyFuture, Verdict, WritePolicy};

    const PATCH: u16 = 1617;

    fn patch(keys: &Keys, n: u64) -> Event {
        EventBuilder::new(Kind::from(PATCH), n.to_string())
            .sign_with_keys(keys)
            .unwrap()
    }

    /// Sleeps as many milliseconds as the event's content says, then accepts: later events of
    /// a stream can finish first.
    struct SlowByContent;

    impl WritePolicy for SlowByContent {
        fn check<'a>(&'a self, event: &'a Event) -> PolicyFuture<'a> {
            let ms = event.content.parse::<u64>().unwrap_or(0);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Verdict::Accept
            })
        }
    }

    /// Accepts `dependent` only once `first` is stored; `first` takes 50 ms to judge.
    struct NeedsFirst {
        db: Arc<dyn NostrDatabase>,
        first: EventId,
    }

    impl WritePolicy for NeedsFirst {
        fn check<'a>(&'a self, event: &'a Event) -> PolicyFuture<'a> {
            Box::pin(async move {
                if event.id == self.first {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Verdict::Accept;
                }
                match self.db.event_by_id(&self.first).await {
                    Ok(Some(_)) => Verdict::Accept,
                    _ => Verdict::reject("blocked: needs the first event"),
                }
            })
        }
    }

    fn lmdb() -> (tempfile::TempDir, Arc<dyn NostrDatabase>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(NostrLMDB::open(dir.path().join("db")).unwrap());
        (dir, db)
    }

    fn url(n: u8) -> SdkUrl {
        SdkUrl::parse(&format!("ws://127.0.0.{n}:7000")).unwrap()
    }

    /// Registers relay `n` with subscription `sub` on patches.
    fn route(ingest: &Ingest, n: u8, sub: &str) {
        let sdk = url(n);
        let relay = sync_core::RelayUrl::parse(sdk.as_str()).unwrap();
        ingest.routing.add_relay(sdk.as_str(), &relay);
        ingest.routing.subscribe(
            sdk.as_str(),
            &SubId(sub.into()),
            vec![Filter::new().kind(Kind::from(PATCH))],
        );
    }

    fn message(n: u8, message: RelayMessage<'static>) -> RelayPoolNotification {
        RelayPoolNotification::Message {
            relay_url: url(n),
            message,
        }
    }

    fn event_msg(n: u8, sub: &str, event: &Event) -> RelayPoolNotification {
        message(
            n,
            RelayMessage::event(SubscriptionId::new(sub), event.clone()),
        )
    }

    /// Every input until the ingest (and every other sender) is gone.
    async fn drain(rx: &mut mpsc::Receiver<DriverMsg>) -> Vec<Input> {
        let mut inputs = Vec::new();
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            match msg {
                DriverMsg::Input(input) => inputs.push(input),
                _ => panic!("the ingest only sends inputs"),
            }
        }
        inputs
    }

    #[tokio::test]
    async fn concurrent_decisions_reach_the_driver_in_stream_order_and_store_each_event_once() {
        let (_dir, db) = lmdb();
        let (ingest, mut rx, on_stored) = ingest_with(Arc::new(SlowByContent), db.clone(), 4);
        route(&ingest, 1, "a");
        route(&ingest, 2, "b");
        let keys = Keys::generate();
        // Earlier events take longer, so they finish last.
        let events: Vec<Event> = (0..40).map(|i| patch(&keys, 40 - i)).collect();
        let (tx, notifications) = broadcast::channel(1_024);
        for e in &events {
            tx.send(event_msg(1, "a", e)).unwrap();
        }
        // The same events from a second relay, in reverse, while the first copies are in flight.
        for e in events.iter().rev() {
            tx.send(event_msg(2, "b", e)).unwrap();
        }
        tx.send(message(1, RelayMessage::eose(SubscriptionId::new("a"))))
            .unwrap();
        tx.send(message(2, RelayMessage::eose(SubscriptionId::new("b"))))
            .unwrap();
        drop(tx);
        let task = tokio::spawn(ingest.run(notifications));
        let inputs = drain(&mut rx).await;
        task.await.unwrap();

        let mut expected: Vec<(String, EventId)> =
            events.iter().map(|e| ("a".to_string(), e.id)).collect();
        expected.extend(events.iter().rev().map(|e| ("b".to_string(), e.id)));
        let mut seen = Vec::new();
        let mut saved = std::collections::BTreeMap::<EventId, usize>::new();
        for input in &inputs[..inputs.len() - 2] {
            let Input::Delivered {
                sub,
                event,
                outcome,
                ..
            } = input
            else {
                panic!("expected Delivered, got {input:?}")
            };
            seen.push((sub.0.clone(), event.id));
            assert!(
                matches!(outcome, Outcome::Saved | Outcome::Duplicate),
                "{outcome:?}"
            );
            if *outcome == Outcome::Saved {
                *saved.entry(event.id).or_default() += 1;
            }
        }
        assert_eq!(seen, expected, "inputs in stream order");
        assert!(matches!(&inputs[inputs.len() - 2], Input::Eose { sub, .. } if sub.0 == "a"));
        assert!(matches!(&inputs[inputs.len() - 1], Input::Eose { sub, .. } if sub.0 == "b"));
        assert_eq!(saved.len(), events.len(), "every event Saved once");
        assert!(saved.values().all(|&n| n == 1), "{saved:?}");
        assert_eq!(on_stored.load(Ordering::SeqCst), events.len());
        let count = db
            .count(Filter::new().kind(Kind::from(PATCH)))
            .await
            .unwrap();
        assert_eq!(count, events.len());
    }

    #[tokio::test]
    async fn an_event_rejected_while_an_earlier_one_was_being_stored_is_judged_again() {
        let (_dir, db) = lmdb();
        let keys = Keys::generate();
        let first = patch(&keys, 1);
        let dependent = patch(&keys, 2);
        let policy = Arc::new(NeedsFirst {
            db: db.clone(),
            first: first.id,
        });
        let (ingest, mut rx, on_stored) = ingest_with(policy, db, 4);
        route(&ingest, 1, "a");
        let reoffer = ingest.reoffer.clone();
        let (tx, notifications) = broadcast::channel(16);
        tx.send(event_msg(1, "a", &first)).unwrap();
        tx.send(event_msg(1, "a", &dependent)).unwrap();
        drop(tx);
        let task = tokio::spawn(ingest.run(notifications));
        let inputs = drain(&mut rx).await;
        task.await.unwrap();
        let outcomes: Vec<(EventId, Outcome)> = inputs
            .iter()
            .map(|i| match i {
                Input::Delivered { event, outcome, .. } => (event.id, *outcome),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            outcomes,
            vec![(first.id, Outcome::Saved), (dependent.id, Outcome::Saved)],
            "as if judged one after the other"
        );
        assert_eq!(on_stored.load(Ordering::SeqCst), 2);
        let kept = reoffer
            .lock()
            .unwrap()
            .take(&[dependent.id], std::time::Instant::now());
        assert!(
            kept.is_empty(),
            "the first, racing rejection was not recorded"
        );
    }

    #[tokio::test]
    async fn a_lag_burst_while_the_driver_is_busy_reaches_it_as_one_lagged() {
        // Current-thread runtime: the test's sends cannot interleave with the ingest's reads.
        let (_dir, db) = lmdb();
        let (ingest, mut rx, _) = ingest_with(Arc::new(AcceptAll), db, 1);
        let metrics = ingest.metrics.clone();
        let filler = ingest.tx.clone();
        let relay = sync_core::RelayUrl::parse("ws://127.0.0.9:7000").unwrap();
        filler
            .send(DriverMsg::Input(Input::Notice {
                relay,
                message: "filler".into(),
            }))
            .await
            .unwrap();
        // Traffic the ingest reads and ignores.
        let noise = RelayPoolNotification::Event {
            relay_url: url(1),
            subscription_id: SubscriptionId::new("x"),
            event: Box::new(patch(&Keys::generate(), 0)),
        };
        let (tx, notifications) = broadcast::channel(2);
        for _ in 0..5 {
            tx.send(noise.clone()).unwrap();
        }
        let task = tokio::spawn(ingest.run(notifications));
        // The ingest reads the first lag and finds the driver's inbox full.
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..5 {
            tx.send(noise.clone()).unwrap();
        }
        // It reads the second lag while the first `Lagged` still waits for the driver.
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop((tx, filler));
        let inputs = drain(&mut rx).await;
        task.await.unwrap();
        let lagged = inputs
            .iter()
            .filter(|i| matches!(i, Input::Lagged { relay: None }))
            .count();
        assert_eq!(lagged, 1, "{inputs:?}");
        assert_eq!(inputs.len(), 2, "the filler and one Lagged: {inputs:?}");
        assert_eq!(
            metrics.stream_lagged.get(),
            2,
            "every lag result is counted"
        );
    }
}
