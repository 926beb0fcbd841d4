//! The driver: the one task that owns the [`SyncCore`]. It waits for a message (relay traffic,
//! executor results, host notifications) or the core's next deadline, turns it into one
//! `Input`, calls `step`, records the step, hands the commands to the executor without waiting
//! for them, and refreshes metrics and the status snapshot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nostr_sdk::Client;
use sync_core::{Input, Mono, SyncCore};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::clock::Clock;
use crate::cursor_store::CursorStore;
use crate::error::RuntimeError;
use crate::messages::{DriverMsg, ExecMsg};
use crate::metrics::{Exported, Metrics};
use crate::recorder::Recorder;
use crate::rejected_store::RejectedStore;
use crate::status::RuntimeStatus;
use crate::transport::FrameCounts;

/// How often the status snapshot and gauges are refreshed while inputs keep arriving (when the
/// inbox empties they are refreshed within `IDLE_REFRESH_GAP`).
const REFRESH_EVERY: Duration = Duration::from_millis(100);

/// The shortest gap between two refreshes when the inbox empties: a relay whose events arrive
/// one at a time would otherwise have every gauge and the status rebuilt after each of them
/// (the refresh was 44 % of the driver's CPU during a daily resync). A refresh skipped for
/// this is owed, and done when the gap has passed.
const IDLE_REFRESH_GAP: Duration = Duration::from_millis(20);

/// How long the loop waits before ticking again for a deadline the core did not advance.
const STUCK_DEADLINE_PAUSE: Duration = Duration::from_millis(50);

/// How often the rejected memory is saved while running (it is always saved at shutdown).
const PERSIST_EVERY: Duration = Duration::from_secs(600);

/// How often the sync cursors are saved while running (and always at shutdown): a `kill -9`
/// loses at most this much of them, well inside the catch-up `since` margin (15 min).
pub(crate) const CURSOR_PERSIST_EVERY: Duration = Duration::from_secs(30);

/// The driver's state. Invariant: `core` is only touched by this task.
pub(crate) struct Driver {
    /// The decision engine.
    pub(crate) core: SyncCore,
    /// Where `now` comes from.
    pub(crate) clock: Clock,
    /// Records every step, if a trace was asked for.
    pub(crate) recorder: Option<Recorder>,
    /// Metrics derived from the core after steps.
    pub(crate) metrics: Metrics,
    /// Counter totals already exported.
    pub(crate) exported: Exported,
    /// `EVENT` frames per relay, counted by the transport.
    pub(crate) frames: Arc<FrameCounts>,
    /// The latest status snapshot, for `SyncHandle::status`.
    pub(crate) status: watch::Sender<RuntimeStatus>,
    /// The executor's queue; `None` after shutdown (dropping it stops the executor).
    pub(crate) commands: Option<mpsc::UnboundedSender<ExecMsg>>,
    /// Where the rejected memory is saved (periodically and at shutdown), if anywhere.
    pub(crate) rejected_store: Option<RejectedStore>,
    /// Where the sync cursors are saved (every `CURSOR_PERSIST_EVERY` and at shutdown).
    pub(crate) cursor_store: Option<CursorStore>,
    /// The SDK client, shut down at the end.
    pub(crate) client: Client,
    /// The stream-reading tasks, aborted at the end.
    pub(crate) readers: Vec<AbortHandle>,
    /// The public key the relay authenticates with (NIP-42), shown in the status.
    pub(crate) identity: crate::relay_key::RelayIdentity,
}

impl Driver {
    /// Feeds one input to the core and dispatches its commands.
    pub(crate) fn step(&mut self, input: Input) {
        let now = self.clock.now();
        let commands = self.core.step(now, input.clone());
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.record(now, &input, &commands);
        }
        if let Some(queue) = &self.commands {
            for command in commands {
                // The executor only stops at shutdown, after the driver.
                let _stopped = queue.send(ExecMsg::Command(command));
            }
        }
    }

    /// Refreshes gauges, counters and the status snapshot.
    pub(crate) fn refresh(&mut self) {
        self.metrics.observe(&self.core, &mut self.exported);
        self.frames.retain(self.exported.tracked_relays());
        self.metrics
            .observe_frames(&self.frames.snapshot(), &mut self.exported);
        let steps = self.recorder.as_ref().map_or(0, Recorder::steps_written);
        self.status
            .send_replace(RuntimeStatus::of(&self.core, steps, &self.identity));
    }

    fn persist_rejected(&self) -> Result<(), RuntimeError> {
        match &self.rejected_store {
            Some(store) => store.save(&self.core.rejected_snapshot()),
            None => Ok(()),
        }
    }

    fn persist_cursors(&self) -> Result<(), RuntimeError> {
        match &self.cursor_store {
            Some(store) => {
                let now = self.clock.now();
                store.save(&self.core.cursors(now), now.wall.as_secs())
            }
            None => Ok(()),
        }
    }

    /// When to tick for `deadline`; a deadline equal to the one just ticked for is pushed
    /// `STUCK_DEADLINE_PAUSE` into the future (and logged).
    fn wake_at(&self, deadline: Option<Mono>, ticked_for: Option<Mono>) -> Option<Instant> {
        let at = self.clock.instant_of(deadline?);
        if deadline != ticked_for {
            return Some(at);
        }
        tracing::warn!(
            ?deadline,
            "the core's deadline did not advance after a tick"
        );
        Some(at.max(Instant::now() + STUCK_DEADLINE_PAUSE))
    }

    /// The loop; returns when shut down or when every sender is gone.
    pub(crate) async fn run(mut self, mut inbox: mpsc::Receiver<DriverMsg>) {
        let mut last_refresh = Instant::now();
        let mut last_persist = Instant::now();
        let mut last_cursors = Instant::now();
        self.refresh();
        // The deadline the last tick was for: if the core names it again, it did not advance
        // (a core bug), and the loop pauses instead of spinning.
        let mut ticked_for: Option<Mono> = None;
        // A refresh skipped because the last one was less than `IDLE_REFRESH_GAP` ago.
        let mut refresh_owed: Option<Instant> = None;
        let reply = loop {
            let deadline = self.core.next_deadline().map(|d| d.at);
            let wake = self.wake_at(deadline, ticked_for);
            let msg = tokio::select! {
                msg = inbox.recv() => msg,
                () = sleep_until(wake) => {
                    ticked_for = deadline;
                    Some(DriverMsg::Input(Input::Tick))
                }
                () = sleep_until(refresh_owed) => {
                    self.refresh();
                    last_refresh = Instant::now();
                    refresh_owed = None;
                    continue;
                }
            };
            match msg {
                Some(DriverMsg::Input(input)) => self.step(input),
                Some(DriverMsg::Shutdown(reply)) => break Some(reply),
                None => break None,
            }
            let idle = inbox.is_empty();
            let since_refresh = last_refresh.elapsed();
            if since_refresh >= REFRESH_EVERY || (idle && since_refresh >= IDLE_REFRESH_GAP) {
                self.refresh();
                last_refresh = Instant::now();
                refresh_owed = None;
            } else if idle {
                refresh_owed.get_or_insert(last_refresh + IDLE_REFRESH_GAP);
            }
            if idle {
                if let Some(recorder) = self.recorder.as_mut() {
                    recorder.flush();
                }
            }
            if last_persist.elapsed() >= PERSIST_EVERY {
                if let Err(e) = self.persist_rejected() {
                    tracing::warn!(error = %e, "saving the rejected memory failed");
                }
                last_persist = Instant::now();
            }
            if last_cursors.elapsed() >= CURSOR_PERSIST_EVERY {
                if let Err(e) = self.persist_cursors() {
                    tracing::warn!(error = %e, "saving the sync cursors failed");
                }
                last_cursors = Instant::now();
            }
        };
        let result = self.finish().await;
        if let Some(reply) = reply {
            let _caller_gone = reply.send(result);
        }
    }

    /// Stops the executor and readers, closes connections, persists and flushes.
    async fn finish(&mut self) -> Result<(), RuntimeError> {
        self.commands = None;
        for reader in &self.readers {
            reader.abort();
        }
        self.client.shutdown().await;
        self.refresh();
        let mut status = self.status.borrow().clone();
        status.running = false;
        self.status.send_replace(status);
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.flush();
        }
        let cursors = self.persist_cursors();
        self.persist_rejected().and(cursors)
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
