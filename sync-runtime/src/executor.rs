//! Executes the core's commands with nostr-sdk, used as a dumb pipe: no auto-reconnect, no
//! library-side resubscription (raw `REQ`/`CLOSE` through `send_msg`), one connection attempt
//! per `Connect`. Commands are taken in order from an unbounded queue (the core emits a bounded
//! number per input); anything that waits on the network (connect, NIP-11, negentropy, re-offer)
//! runs in its own task and reports back to the driver as an input, so neither the driver nor
//! this queue ever blocks on a relay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nostr::{ClientMessage, SubscriptionId};
use nostr_sdk::{Client, Relay, RelayOptions};
use sync_core::{Command, Input, RelayUrl, SubId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::dial::Dialer;
use crate::ingest::Ingest;
use crate::messages::{DriverMsg, ExecMsg};
use crate::routing::Routing;

/// Timing knobs of the executor, derived from the core's config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExecTimings {
    /// Upper bound for one connection attempt (below the core's connect timeout).
    pub(crate) connect: Duration,
    /// How long a relay may take to answer NEG-OPEN.
    pub(crate) negentropy_initial: Duration,
    /// Upper bound for a NIP-11 fetch.
    pub(crate) nip11: Duration,
}

/// How the executor reaches relays: the open-network dialer (shared with the transport) and
/// the SDK's limits for every relay it adds.
#[derive(Clone, Debug)]
pub(crate) struct Reach {
    /// Resolves, checks and connects; holds the refusals the transport made.
    pub(crate) dialer: Arc<Dialer>,
    /// nostr-sdk's message and event limits (`EventLimits::sdk_limits`).
    pub(crate) sdk_limits: nostr_sdk::pool::RelayLimits,
}

impl ExecTimings {
    /// Timings for `config`: the SDK's connect timeout stays below the core's, so the core
    /// hears the SDK's answer before its own timer fires.
    pub(crate) fn from_config(config: &sync_core::Config) -> Self {
        Self {
            connect: Duration::from_millis(config.connect_timeout_ms * 9 / 10),
            negentropy_initial: Duration::from_millis(
                config.negentropy_timeout_ms.min(config.batch_deadline_ms),
            ),
            nip11: Duration::from_secs(5),
        }
    }
}

/// The executor task's state.
pub(crate) struct Executor {
    /// The SDK client every relay lives in.
    client: Client,
    /// Written on connect, subscribe, unsubscribe and disconnect.
    routing: Arc<Routing>,
    /// For re-offers and the host's store (negentropy's local set).
    ingest: Ingest,
    /// The driver's inbox, for results of spawned tasks.
    tx: mpsc::Sender<DriverMsg>,
    /// Timeouts.
    timings: ExecTimings,
    /// The dialer and the SDK limits.
    reach: Reach,
    /// Negentropy reconciliations in flight, by relay and id, so `Unsubscribe` can stop them.
    /// Invariant: finished handles are pruned before every insert.
    negentropy: BTreeMap<(RelayUrl, SubId), JoinHandle<()>>,
}

/// One connection attempt in its own task: connect, report, then fetch NIP-11.
struct Attempt {
    /// The SDK client the relay was added to.
    client: Client,
    /// Marked open once `Connected` is queued.
    routing: Arc<Routing>,
    /// The driver's inbox.
    tx: mpsc::Sender<DriverMsg>,
    /// Connect and NIP-11 timeouts.
    timings: ExecTimings,
    /// Holds the transport's refusals; dials the NIP-11 request.
    dialer: Arc<Dialer>,
}

impl Attempt {
    async fn report(&self, input: Input) -> bool {
        self.tx.send(DriverMsg::Input(input)).await.is_ok()
    }

    async fn run(self, relay: RelayUrl, url: nostr::RelayUrl) {
        let handle = match self.client.relay(&url).await {
            Ok(handle) => handle,
            Err(e) => {
                let error = e.to_string();
                self.report(Input::ConnectFailed { relay, error }).await;
                return;
            }
        };
        if let Err(e) = handle.try_connect(self.timings.connect).await {
            let error = e.to_string();
            let input = match self.dialer.take_refusal(relay.as_str()) {
                Some(address) => Input::ConnectRefused { relay, address },
                None => {
                    tracing::debug!(%error, "connection failed");
                    Input::ConnectFailed { relay, error }
                }
            };
            self.report(input).await;
            return;
        }
        tracing::debug!("connected");
        // `Connected` is queued before the connection counts as open, so the monitor's
        // `Disconnected` for it can only come after; a drop in between is caught by the status
        // re-check.
        if !self
            .report(Input::Connected {
                relay: relay.clone(),
            })
            .await
        {
            return;
        }
        self.routing.opened(url.as_str());
        if crate::monitor::is_down(handle.status()) && self.routing.closed(url.as_str()) {
            self.report(Input::Disconnected { relay }).await;
            return;
        }
        let fetched = crate::nip11::fetch_limits(&self.dialer, url.as_str(), self.timings.nip11);
        if let Some(limits) = fetched.await {
            self.report(Input::RelayInfo { relay, limits }).await;
        }
    }
}

/// The nostr-sdk text of a core URL (the key of every routing table).
fn sdk_url(relay: &RelayUrl) -> Option<nostr::RelayUrl> {
    nostr::RelayUrl::parse(relay.as_str()).ok()
}

impl Executor {
    /// An executor over `client`.
    pub(crate) fn new(
        client: Client,
        routing: Arc<Routing>,
        ingest: Ingest,
        tx: mpsc::Sender<DriverMsg>,
        timings: ExecTimings,
        reach: Reach,
    ) -> Self {
        Self {
            client,
            routing,
            ingest,
            tx,
            timings,
            reach,
            negentropy: BTreeMap::new(),
        }
    }

    /// Runs until the command queue closes (shutdown).
    pub(crate) async fn run(mut self, mut queue: mpsc::UnboundedReceiver<ExecMsg>) {
        while let Some(msg) = queue.recv().await {
            match msg {
                ExecMsg::Command(command) => {
                    let url = command.relay().map_or("-", |r| r.as_str());
                    let span = tracing::debug_span!("relay", url);
                    self.execute(command).instrument(span).await;
                }
            }
        }
        for task in std::mem::take(&mut self.negentropy).into_values() {
            task.abort();
        }
    }

    async fn relay_handle(&self, url: &nostr::RelayUrl) -> Option<Relay> {
        self.client.relay(url).await.ok()
    }

    async fn execute(&mut self, command: Command) {
        match command {
            Command::Connect { relay } => self.connect(relay).await,
            Command::Disconnect { relay } => self.disconnect(relay),
            Command::Subscribe {
                relay,
                sub,
                filters,
                ..
            } => {
                let Some(url) = sdk_url(&relay) else { return };
                // The core shares tag values between filters; nostr wants owned filters.
                let filters: Vec<nostr::Filter> = filters
                    .iter()
                    .map(sync_core::WireFilter::to_filter)
                    .collect();
                self.routing.subscribe(url.as_str(), &sub, filters.clone());
                let sent = match self.relay_handle(&url).await {
                    Some(handle) => handle
                        .send_msg(ClientMessage::req(
                            SubscriptionId::new(sub.0.clone()),
                            filters,
                        ))
                        .map_err(|e| e.to_string()),
                    None => Err("relay not in the pool".to_string()),
                };
                if let Err(error) = sent {
                    tracing::debug!(%sub, %error, "REQ not sent");
                    self.report(Input::SendFailed { relay, sub, error });
                }
            }
            Command::Unsubscribe {
                relay,
                sub,
                late_until,
            } => {
                let Some(url) = sdk_url(&relay) else { return };
                self.routing.unsubscribe(url.as_str(), &sub, late_until);
                if let Some(task) = self.negentropy.remove(&(relay, sub.clone())) {
                    task.abort();
                } else if let Some(handle) = self.relay_handle(&url).await {
                    // Best effort: a closed connection has no subscription left to close.
                    let _ignored =
                        handle.send_msg(ClientMessage::close(SubscriptionId::new(sub.0)));
                }
            }
            Command::NegentropyDiff { relay, sub, filter } => {
                self.negentropy(relay, sub, filter.to_filter()).await
            }
            // The core no longer tracks this relay: drop it from the SDK's pool and the
            // routing tables (bounded memory; the core re-dials it if it is ever wanted again).
            Command::Forget { relay } => self.forget(relay),
            Command::Reoffer { ids } => {
                let ingest = self.ingest.clone();
                tokio::spawn(async move { ingest.reoffer(ids).await });
            }
        }
    }

    /// Sends `input` from a task (never blocks the executor's queue).
    fn report(&self, input: Input) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let _driver_gone = tx.send(DriverMsg::Input(input)).await;
        });
    }

    async fn connect(&mut self, relay: RelayUrl) {
        let Some(url) = sdk_url(&relay) else {
            let error = format!("invalid relay URL {relay}");
            self.report(Input::ConnectFailed { relay, error });
            return;
        };
        self.routing.add_relay(url.as_str(), &relay);
        let opts = RelayOptions::new()
            .reconnect(false)
            .limits(self.reach.sdk_limits.clone());
        if let Err(e) = self.client.pool().add_relay(url.clone(), opts).await {
            self.report(Input::ConnectFailed {
                relay,
                error: e.to_string(),
            });
            return;
        }
        let attempt = Attempt {
            client: self.client.clone(),
            routing: self.routing.clone(),
            tx: self.tx.clone(),
            timings: self.timings,
            dialer: self.reach.dialer.clone(),
        };
        let span = tracing::info_span!("connect", relay = %relay);
        tokio::spawn(attempt.run(relay, url).instrument(span));
    }

    fn forget(&mut self, relay: RelayUrl) {
        self.stop_negentropy(&relay);
        let Some(url) = sdk_url(&relay) else { return };
        let _was_open = self.routing.closed(url.as_str());
        self.routing.forget(url.as_str());
        let client = self.client.clone();
        tokio::spawn(async move {
            // Not in the pool (never added, or removed by a Disconnect) is fine.
            let _absent = client.pool().remove_relay(&url).await;
        });
    }

    fn stop_negentropy(&mut self, relay: &RelayUrl) {
        let (keep, stop): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.negentropy)
            .into_iter()
            .partition(|((r, _), _)| r != relay);
        self.negentropy = keep;
        for task in stop.into_values() {
            task.abort();
        }
    }

    fn disconnect(&mut self, relay: RelayUrl) {
        self.stop_negentropy(&relay);
        let Some(url) = sdk_url(&relay) else { return };
        // Closed here, so the monitor does not report this intentional disconnect again.
        let _was_open = self.routing.closed(url.as_str());
        let (client, tx) = (self.client.clone(), self.tx.clone());
        tokio::spawn(async move {
            if let Err(e) = client.pool().remove_relay(&url).await {
                tracing::debug!(relay = %relay, error = %e, "remove_relay");
            }
            let _driver_gone = tx
                .send(DriverMsg::Input(Input::Disconnected { relay }))
                .await;
        });
    }

    async fn negentropy(&mut self, relay: RelayUrl, sub: SubId, filter: nostr::Filter) {
        let handle = match sdk_url(&relay) {
            Some(url) => self.relay_handle(&url).await,
            None => None,
        };
        let Some(handle) = handle else {
            let result = sync_core::NegentropyResult::Error {
                message: "relay not in the pool".into(),
            };
            self.report(Input::NegentropyDiff { relay, sub, result });
            return;
        };
        self.negentropy.retain(|_, task| !task.is_finished());
        let (db, tx, timeout) = (
            self.ingest.db.clone(),
            self.tx.clone(),
            self.timings.negentropy_initial,
        );
        let key = (relay.clone(), sub.clone());
        let span = tracing::debug_span!("negentropy", relay = %relay, %sub);
        let task = tokio::spawn(
            async move {
                let result = crate::negentropy::diff(handle, db, filter, timeout).await;
                tracing::debug!(?result, "negentropy diff");
                let _driver_gone = tx
                    .send(DriverMsg::Input(Input::NegentropyDiff {
                        relay,
                        sub,
                        result,
                    }))
                    .await;
            }
            .instrument(span),
        );
        self.negentropy.insert(key, task);
    }
}
