//! The entry point: [`SyncRuntime::builder`] → [`SyncRuntimeBuilder::spawn`] → [`SyncHandle`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr::Event;
use nostr_database::{MemoryDatabase, NostrDatabase};
use nostr_sdk::pool::monitor::{Monitor, MonitorNotification};
use nostr_sdk::{Client, ClientOptions, Keys, RelayPoolOptions};
use sync_core::{Config, EventMeta, Input, RepoCoord, SyncCore, SyncLevel};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::cursor_store::CursorStore;
use crate::dial::Dialer;
use crate::driver::Driver;
use crate::error::RuntimeError;
use crate::event_limits::EventLimits;
use crate::executor::{ExecTimings, Executor, Reach};
use crate::grasp::GraspPolicy;
use crate::ingest::{Ingest, OnStored};
use crate::messages::DriverMsg;
use crate::metrics::{Exported, Metrics};
use crate::policy::Withdrawal;
use crate::policy::WritePolicy;
use crate::recorder::Recorder;
use crate::rejected_store::RejectedStore;
use crate::reoffer::ReofferCache;
use crate::routing::Routing;
use crate::status::RuntimeStatus;
use crate::transport::{FrameCounts, NoDelayTransport};
use crate::withdrawal::{OnWithdrawal, Withdrawer};

/// Capacity of the driver's inbox: relay traffic waits (back-pressure) when it is full.
pub const DRIVER_INBOX_CAPACITY: usize = 4_096;

/// Default capacity of nostr-sdk's pool notification channel: when the runtime falls this far
/// behind, the stream lags, the messages in between are lost, and every relay catches up. A
/// new EVENT takes two pool slots (nostr-sdk sends `Event` and `Message` for it), so 32 768
/// slots absorb about 16 000 events of backlog.
///
/// Why this size: at 8 192 the 100 000-event e2e initial sync lagged 27 to 70 times per run
/// (each lag re-sends pages and starts catch-ups) and took 13.4–14.3 s and 23.5–24.8 CPU-s;
/// at 32 768 it lagged 0 times and took 12.5 s and 21.9 CPU-s (65 536: 0 lags, 12.7 s), see
/// docs/performance.md.
///
/// Memory: tokio's broadcast channel preallocates all its slots (capacity rounded up to a power
/// of two), each a mutex, two counters and an `Option` of the notification; measured on
/// x86_64 that is 368 bytes for `RelayPoolNotification`, so 32 768 x 368 B = 11.5 MiB once
/// per runtime. A message's own heap data (the event) is held only while a receiver is behind.
pub const SDK_CHANNEL_CAPACITY: usize = 32_768;

/// The status channel (nostr-sdk's monitor: one `MonitorNotification` of 128 bytes per slot,
/// one message per relay status change) never takes more slots than this, whatever the pool
/// channel's capacity: 8 192 x 128 B = 1 MiB.
const MONITOR_CHANNEL_CAPACITY_MAX: usize = 8_192;

/// Upper bound on rejected event bodies kept for re-offering.
const REOFFER_MAX_ENTRIES: usize = 10_000;

/// The sync runtime (see the crate docs for embedding it).
#[derive(Debug)]
pub struct SyncRuntime;

impl SyncRuntime {
    /// Starts building a runtime with the core's `config`.
    #[must_use]
    pub fn builder(config: Config) -> SyncRuntimeBuilder {
        SyncRuntimeBuilder {
            config,
            database: None,
            policy: None,
            registry: None,
            trace_path: None,
            state_dir: None,
            seed: None,
            on_stored: None,
            capacities: (DRIVER_INBOX_CAPACITY, SDK_CHANNEL_CAPACITY),
            event_limits: EventLimits::default(),
            on_withdrawal: OnWithdrawal::Keep,
            keys: None,
        }
    }
}

/// Configures and spawns a runtime. Only [`SyncRuntimeBuilder::database`] is required.
pub struct SyncRuntimeBuilder {
    config: Config,
    database: Option<Arc<dyn NostrDatabase>>,
    policy: Option<Arc<dyn WritePolicy>>,
    registry: Option<prometheus::Registry>,
    trace_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    seed: Option<u64>,
    on_stored: Option<OnStored>,
    /// `(driver inbox, SDK broadcast channels)`.
    capacities: (usize, usize),
    event_limits: EventLimits,
    on_withdrawal: OnWithdrawal,
    /// The relay's own key for NIP-42; `None`: a key generated for this run.
    keys: Option<Keys>,
}

impl std::fmt::Debug for SyncRuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRuntimeBuilder")
            .field("config", &self.config)
            .field("trace_path", &self.trace_path)
            .field("state_dir", &self.state_dir)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl SyncRuntimeBuilder {
    /// The host's store (required): synced events the policy accepts are saved here, and
    /// negentropy reconciles against it.
    #[must_use]
    pub fn database(mut self, db: Arc<dyn NostrDatabase>) -> Self {
        self.database = Some(db);
        self
    }

    /// The host's write policy. Default: the GRASP policy of this crate
    /// ([`GraspPolicy`](crate::grasp::GraspPolicy) over the same database, with the config's
    /// `own_relay_urls` as service URLs, archive mode off). Use
    /// [`AcceptAll`](crate::AcceptAll) for an archive of everything synced.
    #[must_use]
    pub fn policy(mut self, policy: Arc<dyn WritePolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The prometheus registry to register the metrics in. Default: a private registry
    /// (still readable through [`SyncHandle::metrics_text`]).
    #[must_use]
    pub fn registry(mut self, registry: prometheus::Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Records every core step to `path` as a JSONL trace (`sync_core::trace` format).
    #[must_use]
    pub fn trace_path(mut self, path: PathBuf) -> Self {
        self.trace_path = Some(path);
        self
    }

    /// Persists the rejected-events memory in `dir` (restored at the next start).
    #[must_use]
    pub fn state_dir(mut self, dir: PathBuf) -> Self {
        self.state_dir = Some(dir);
        self
    }

    /// The core's random seed. Default: derived from the clock; logged and recorded.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Called after every synced event the runtime newly stored (e.g. to push it to the host
    /// relay's live subscribers). Runs once per newly stored event, on the task that decided
    /// it; up to [`MAX_IN_FLIGHT_EVENTS`](crate::MAX_IN_FLIGHT_EVENTS) such tasks run at once, so calls may overlap and need
    /// not come in stream order. It must return quickly (spawn for anything slow).
    #[must_use]
    pub fn on_stored(mut self, f: Arc<dyn Fn(&Event) + Send + Sync>) -> Self {
        self.on_stored = Some(f);
        self
    }

    /// Channel capacities: the driver's inbox (default [`DRIVER_INBOX_CAPACITY`]) and
    /// nostr-sdk's broadcast channels (default [`SDK_CHANNEL_CAPACITY`]; the status channel
    /// takes at most 8 192 slots). Larger values absorb longer bursts; when a broadcast channel
    /// overflows, the stream lags and every relay runs a catch-up (nothing is lost, some work is
    /// repeated). Values below 1 are raised to 1.
    #[must_use]
    pub fn channel_capacities(mut self, driver_inbox: usize, sdk_channels: usize) -> Self {
        self.capacities = (driver_inbox.max(1), sdk_channels.max(1));
        self
    }

    /// Size and tag bounds on events taken from sync (default [`EventLimits::default`]); give
    /// it the bounds your relay applies to its own clients, so that what a client may publish
    /// and what sync brings in agree (docs/spec.md §13).
    #[must_use]
    pub fn event_limits(mut self, limits: EventLimits) -> Self {
        self.event_limits = limits;
        self
    }

    /// What happens to a withdrawn repository's stored history (default
    /// [`OnWithdrawal::Keep`]); see [`SyncHandle::notify_withdrawn`] and docs/spec.md §14.
    #[must_use]
    pub fn on_withdrawal(mut self, mode: OnWithdrawal) -> Self {
        self.on_withdrawal = mode;
        self
    }

    /// The relay's own key (docs/spec.md §14): source relays that send a NIP-42 AUTH challenge
    /// get an AUTH event signed with it (nostr-sdk signs and sends it; the core decides what a
    /// refusal means). Give a stable key so that relay operators can allow it; without one a
    /// key is generated for this run only. [`crate::relay_key::load_or_create`] keeps one in a
    /// file; [`SyncHandle::status`] shows its public key.
    #[must_use]
    pub fn keys(mut self, keys: Keys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Validates the configuration, replays the store into the core, restores the rejected
    /// memory and starts the driver, executor and stream readers. Must be called inside a
    /// tokio runtime.
    ///
    /// # Errors
    /// A missing database, an invalid configuration (the error names the field), a store that
    /// cannot be read, a trace or state file that cannot be created, a metrics name clash.
    pub async fn spawn(mut self) -> Result<SyncHandle, RuntimeError> {
        self.config.validate()?;
        let db = self.database.clone().ok_or(RuntimeError::MissingDatabase)?;
        let seed = self.seed.unwrap_or_else(seed_from_clock);
        let metrics = Metrics::register(self.registry.clone().unwrap_or_default())?;
        let clock = Clock::start();
        let start = clock.now();
        let keys = self.keys.get_or_insert_with(Keys::generate);
        let identity = crate::relay_key::identity(keys);
        tracing::info!(seed, pubkey = %identity.pubkey, npub = %identity.npub, "grasp sync starting");
        let recorder = match &self.trace_path {
            Some(path) => Some(Recorder::create(path, seed, &self.config, start)?),
            None => None,
        };
        let rejected_store = match &self.state_dir {
            Some(dir) => Some(RejectedStore::open(dir)?),
            None => None,
        };
        let cursor_store = match &self.state_dir {
            Some(dir) => Some(CursorStore::open(dir)?),
            None => None,
        };
        let mut startup = Vec::new();
        if let Some(store) = &rejected_store {
            startup.extend(crate::startup::restore_rejected(store.load()));
        }

        let policy = self.policy.take().unwrap_or_else(|| {
            Arc::new(
                GraspPolicy::new(db.clone(), self.config.own_relay_urls.clone(), false)
                    .with_relay_lists(self.config.sync_plus),
            )
        });
        let replay =
            crate::startup::replay_store(db.as_ref(), policy.as_ref(), self.config.sync_plus);
        startup.extend(replay.await?);
        // After the replay: restoring flushes the replayed discovery updates at once.
        if let Some(store) = &cursor_store {
            let window_ms = self.config.quick_reconnect_window_ms;
            if let Some(cursors) = store.load(start.wall.as_secs(), window_ms) {
                startup.push(Input::RestoreCursors { cursors });
            }
        }
        let prepared = Prepared {
            db,
            policy,
            seed,
            metrics,
            clock,
            start,
            recorder,
            rejected_store,
            cursor_store,
            startup,
            identity,
        };
        Ok(self.start(prepared))
    }

    /// Wires the tasks together and starts them (nothing here can fail).
    fn start(mut self, p: Prepared) -> SyncHandle {
        let frames = Arc::new(FrameCounts::default());
        let (inbox_capacity, sdk_capacity) = self.capacities;
        let (client, statuses, reach) = self.sdk_client(frames.clone(), sdk_capacity);
        let notifications = client.notifications();
        let (tx, inbox) = mpsc::channel(inbox_capacity);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let routing = Arc::new(Routing::new(p.clock));
        let withdrawer = Withdrawer {
            db: p.db.clone(),
            mode: self.on_withdrawal,
            metrics: p.metrics.clone(),
            tx: tx.clone(),
        };
        let ingest = self.ingest(&p, routing.clone(), withdrawer.clone());
        let timings = ExecTimings::from_config(&self.config);
        let executor = Executor::new(
            client.clone(),
            routing.clone(),
            ingest.clone(),
            tx.clone(),
            timings,
            reach,
        );
        let monitor = crate::monitor::run(client.clone(), routing, tx.clone(), statuses);
        let readers = vec![
            tokio::spawn(ingest.run(notifications)).abort_handle(),
            tokio::spawn(monitor).abort_handle(),
        ];
        tokio::spawn(executor.run(commands_rx));
        let (status_tx, status_rx) = watch::channel(RuntimeStatus::default());
        let mut driver = Driver {
            // The same `start` as the trace header, so a replay builds the same core.
            core: SyncCore::new(self.config, p.seed, p.start),
            clock: p.clock,
            recorder: p.recorder,
            metrics: p.metrics.clone(),
            exported: Exported::default(),
            frames,
            status: status_tx,
            commands: Some(commands_tx),
            rejected_store: p.rejected_store,
            cursor_store: p.cursor_store,
            client,
            readers,
            identity: p.identity,
        };
        for input in p.startup {
            driver.step(input);
        }
        // Published before `spawn` returns, so the first `status()` shows the replayed state.
        driver.refresh();
        let task = tokio::spawn(driver.run(inbox));
        SyncHandle {
            tx,
            status: status_rx,
            metrics: p.metrics,
            driver: Arc::new(Mutex::new(Some(task))),
            withdrawer,
        }
    }

    /// The nostr-sdk client as a dumb pipe dialing under the open-network rules, its status
    /// stream, and what the executor needs to reach relays.
    fn sdk_client(
        &self,
        frames: Arc<FrameCounts>,
        capacity: usize,
    ) -> (Client, broadcast::Receiver<MonitorNotification>, Reach) {
        // Operator-named relays are trusted; everything else follows the open-network rules.
        let dialer = Dialer::new(
            self.config.allow_private_targets,
            self.config.bootstrap_relays.iter().map(String::as_str),
        );
        // nostr-sdk drops a message over `max_message_bytes` and keeps the connection; the
        // socket's own ceiling, well above it, only bounds what one message can make us buffer
        // (a larger one ends the connection).
        let transport = NoDelayTransport::new(
            frames,
            dialer.clone(),
            self.event_limits.max_message_bytes().saturating_mul(16),
        );
        let keys = self.keys.clone().unwrap_or_else(Keys::generate);
        let (client, statuses) = sdk_client(transport, capacity, keys);
        let reach = Reach {
            dialer,
            sdk_limits: self.event_limits.sdk_limits(),
        };
        (client, statuses, reach)
    }

    /// The ingest path: the host's policy, store and `on_stored` callback, the event limits,
    /// and the withdrawals (with the driver's inbox).
    fn ingest(&mut self, p: &Prepared, routing: Arc<Routing>, withdrawer: Withdrawer) -> Ingest {
        Ingest {
            db: p.db.clone(),
            policy: p.policy.clone(),
            routing,
            reoffer: Arc::new(Mutex::new(ReofferCache::new(
                Duration::from_millis(self.config.rejected_hot_ms),
                REOFFER_MAX_ENTRIES,
            ))),
            on_stored: self.on_stored.take(),
            metrics: p.metrics.clone(),
            tx: withdrawer.tx.clone(),
            policy_timeout: crate::ingest::POLICY_TIMEOUT,
            limits: self.event_limits,
            withdrawer,
        }
    }
}

/// What `spawn` prepared before any task starts.
struct Prepared {
    /// The host's store.
    db: Arc<dyn NostrDatabase>,
    /// The host's policy (the GRASP policy unless one was given).
    policy: Arc<dyn WritePolicy>,
    /// The core's seed.
    seed: u64,
    /// Registered metrics.
    metrics: Metrics,
    /// The runtime's clock.
    clock: Clock,
    /// The reading the core and the trace header start at.
    start: sync_core::Now,
    /// The trace recorder, if asked for.
    recorder: Option<Recorder>,
    /// Where the rejected memory is persisted, if asked for.
    rejected_store: Option<RejectedStore>,
    /// Where the sync cursors are kept, if anywhere.
    cursor_store: Option<CursorStore>,
    /// Inputs that rebuild the core's state before any connection.
    startup: Vec<Input>,
    /// The public key of the relay's NIP-42 key.
    identity: crate::relay_key::RelayIdentity,
}

/// The nostr-sdk client as a dumb pipe, and its status stream.
///
/// NIP-42 (docs/spec.md §14): with a signer and automatic authentication, nostr-sdk answers
/// every AUTH challenge with an AUTH event signed by `keys`. Its own re-sending of REQs after
/// a successful AUTH only covers subscriptions it tracks; ours are raw REQs, so the retry after
/// `auth-required:` stays the core's decision.
fn sdk_client(
    transport: NoDelayTransport,
    capacity: usize,
    keys: Keys,
) -> (Client, broadcast::Receiver<MonitorNotification>) {
    let monitor = Monitor::new(capacity.min(MONITOR_CHANNEL_CAPACITY_MAX));
    let statuses = monitor.subscribe();
    // The client's own database only tracks seen ids (bounded LRU); events go through the
    // host's policy and store, never the client's automatic save.
    let client = Client::builder()
        .signer(keys)
        .database(MemoryDatabase::new())
        .monitor(monitor)
        .websocket_transport(transport)
        .opts(
            ClientOptions::new()
                .pool(RelayPoolOptions::new().notification_channel_size(capacity))
                .automatic_authentication(true),
        )
        .build();
    (client, statuses)
}

/// A seed from the wall clock and the process id (logged at start, recorded in the trace).
fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// A handle to a running runtime. Cheap to clone; every clone talks to the same driver.
///
/// Dropping every handle does not stop the runtime (its tasks keep running until the tokio
/// runtime ends); call [`SyncHandle::shutdown`] to close connections, persist the rejected
/// memory and flush the trace.
#[derive(Clone)]
pub struct SyncHandle {
    tx: mpsc::Sender<DriverMsg>,
    status: watch::Receiver<RuntimeStatus>,
    metrics: Metrics,
    driver: Arc<Mutex<Option<JoinHandle<()>>>>,
    withdrawer: Withdrawer,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle").finish_non_exhaustive()
    }
}

impl SyncHandle {
    async fn send(&self, input: Input) {
        // After shutdown there is nobody to tell; the host's call is then a no-op.
        let _stopped = self.tx.send(DriverMsg::Input(input)).await;
    }

    /// The host accepted `event` from its own clients: announcements and root events feed
    /// discovery; accepted events free rejected ones that depended on them. Waits while the
    /// driver's inbox is full.
    pub async fn notify_accepted(&self, event: &Event) {
        self.send(Input::Accepted {
            event: EventMeta::from_event(event),
        })
        .await;
    }

    /// Registers a repository directly at a sync level (e.g. `StateOnly` while provisional).
    pub async fn register_repo(&self, coord: RepoCoord, relays: Vec<String>, level: SyncLevel) {
        self.send(Input::RegisterRepo {
            coord,
            relays,
            level,
        })
        .await;
    }

    /// Withdraws a repository directly (e.g. an operator's blacklist): syncing it stops and its
    /// relays are reaped when nothing else wants them. Not logged, not counted, history kept;
    /// for a withdrawal the policy reported, use [`SyncHandle::notify_withdrawn`].
    pub async fn withdraw_repo(&self, coord: RepoCoord) {
        self.send(Input::WithdrawRepo { coord }).await;
    }

    /// The host accepted, from its own clients, an event that withdraws a repository (what
    /// [`WritePolicy::withdrawals`] answered; `LocalRelayPolicy::on_withdrawn` reports it):
    /// logged at info and counted in `ngit_sync_repos_withdrawn_total{reason}`, the stored
    /// history deleted if the runtime was built with [`OnWithdrawal::Delete`], then the
    /// repository withdrawn as by [`SyncHandle::withdraw_repo`] (docs/spec.md §14). An
    /// announcement that withdraws its own repository must not also go to
    /// [`SyncHandle::notify_accepted`] (that would register its relays); `LocalRelayPolicy`
    /// does not pass it there.
    pub async fn notify_withdrawn(&self, withdrawal: &Withdrawal) {
        self.withdrawer.apply(withdrawal).await;
    }

    /// The latest status snapshot (updated by the driver after its steps: every 100 ms while
    /// inputs keep arriving, within 20 ms once they stop). To wait for a condition, use
    /// [`SyncHandle::wait_for_status`].
    #[must_use]
    pub fn status(&self) -> RuntimeStatus {
        self.status.borrow().clone()
    }

    /// Waits until the status satisfies `pred` or `timeout` passes; returns the last status
    /// and whether `pred` held. `pred` sees the current status and then every update the
    /// driver publishes (updates that replace each other quickly may be skipped).
    pub async fn wait_for_status(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&RuntimeStatus) -> bool,
    ) -> (RuntimeStatus, bool) {
        let mut rx = self.status.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| pred(s))).await;
        let held = matches!(waited, Ok(Ok(_)));
        (self.status(), held)
    }

    /// The Prometheus text exposition of the registry the metrics are in.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        self.metrics.text()
    }

    /// Stops syncing: closes every connection, persists the rejected memory, flushes the trace.
    ///
    /// # Errors
    /// [`RuntimeError::Stopped`] if the driver was already gone; an IO error if the rejected
    /// memory could not be saved.
    pub async fn shutdown(self) -> Result<(), RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(DriverMsg::Shutdown(reply))
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        let result = answer.await.map_err(|_| RuntimeError::Stopped)?;
        let task = self
            .driver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.await.map_err(|_| RuntimeError::Stopped)?;
        }
        result
    }
}
