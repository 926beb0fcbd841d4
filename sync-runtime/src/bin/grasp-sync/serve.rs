//! The syncing relay as one unit ("node"): the LMDB store in the data directory (whose lock
//! the node holds), the default GRASP policy, the sync runtime, the relay served on `--listen`
//! (NIP-01 and NIP-77 by nostr-relay-builder's `LocalRelay`, its clients guarded by
//! `sync_runtime::demo::ClientGuard`) and the metrics/status HTTP server. Used by `run` and by
//! the demo, so the demo exercises exactly what `run` starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use nostr::Event;
use nostr_database::NostrDatabase;
use nostr_lmdb::NostrLMDB;
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use serde::Serialize;
use sync_runtime::demo::{ClientGuard, ClientMetrics, RelayFront};
use sync_runtime::grasp::{AcceptedCallback, GraspPolicy, LocalRelayPolicy, WithdrawnCallback};
use sync_runtime::{RuntimeStatus, SyncHandle, SyncRuntime, Withdrawal};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::data_lock::DataDirLock;
use crate::http::{self, BodyFuture, Endpoints};
use crate::progress_log;
use crate::settings::Settings;
use crate::shutdown::{self, Trigger};

/// Sub-directory of the data directory holding the LMDB environment.
pub(crate) const STORE_DIR: &str = "lmdb";

/// The two listening sockets, bound before anything starts so "address in use" is reported
/// first and clearly.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// For the relay (`--listen`).
    pub(crate) relay: TcpListener,
    /// For `/metrics` and `/status` (`--metrics-listen`).
    pub(crate) metrics: TcpListener,
}

/// Binds `--listen` and `--metrics-listen`.
pub(crate) async fn bind(settings: &Settings) -> Result<Listeners, String> {
    Ok(Listeners {
        relay: bind_one("--listen", settings.listen).await?,
        metrics: bind_one("--metrics-listen", settings.metrics_listen).await?,
    })
}

/// Binds one address; the error says which option and why.
async fn bind_one(flag: &str, addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (port in use: is another grasp-sync or relay running? choose another port)"
        } else {
            ""
        };
        format!("cannot listen on {addr} ({flag}): {e}{hint}")
    })
}

/// A running node.
pub(crate) struct Node {
    /// The sync runtime.
    pub(crate) handle: SyncHandle,
    /// The relay (kept to shut it down).
    relay: LocalRelay,
    /// The listener front of the relay; `None` once stopped.
    front: Option<RelayFront>,
    /// Stops the HTTP server and the progress logger.
    stop: Trigger,
    /// The HTTP server task.
    http: JoinHandle<()>,
    /// The store (the last strong reference the node holds).
    pub(crate) db: Arc<dyn NostrDatabase>,
    /// The relay's own address.
    pub(crate) relay_addr: SocketAddr,
    /// The metrics server's address.
    pub(crate) metrics_addr: SocketAddr,
    /// The data directory's lock; released after the store.
    lock: DataDirLock,
}

/// Opens the store (in the data directory `lock` holds), starts the runtime, then serves the
/// relay and the HTTP endpoints.
pub(crate) async fn start(
    settings: &Settings,
    listeners: Listeners,
    lock: DataDirLock,
) -> Result<Node, String> {
    let store_path = settings.data_dir.join(STORE_DIR);
    let db: Arc<dyn NostrDatabase> = Arc::new(
        NostrLMDB::open(&store_path)
            .map_err(|e| format!("cannot open the store in {}: {e}", store_path.display()))?,
    );
    let policy = Arc::new(
        GraspPolicy::try_new(
            db.clone(),
            settings.service_urls.clone(),
            settings.archive_all,
        )
        .map_err(|e| format!("invalid --service-url: {e:?}"))?
        .with_max_announcements_per_author(settings.max_announcements_per_author)
        .with_relay_lists(settings.sync.sync_plus),
    );
    let handle_cell: Arc<OnceLock<SyncHandle>> = Arc::new(OnceLock::new());
    let (on_accepted, on_withdrawn) = client_callbacks(handle_cell.clone());
    let relay = LocalRelay::new(
        settings
            .clients
            .apply(RelayBuilder::default().database(db.clone()))
            .write_policy(
                LocalRelayPolicy::new(policy.clone(), Some(on_accepted))
                    .on_withdrawn(on_withdrawn)
                    .with_limits(settings.event_limits),
            ),
    );
    let registry = prometheus::Registry::new();
    let client_metrics = ClientMetrics::register(&registry)
        .map_err(|e| format!("cannot register the client metrics: {e}"))?;
    let handle = spawn_runtime(settings, &db, policy, registry, &relay).await?;
    // Set before the relay accepts its first client, so no accepted event is missed.
    let _first = handle_cell.set(handle.clone());
    let relay_addr = listeners.relay.local_addr().map_err(|e| e.to_string())?;
    let metrics_addr = listeners.metrics.local_addr().map_err(|e| e.to_string())?;
    let guard = ClientGuard::new(settings.clients, Some(client_metrics));
    let front = RelayFront::start_guarded(
        relay.clone(),
        listeners.relay,
        Some(nip11_document(settings)),
        guard,
    );
    let (stop, stopped) = shutdown::channel();
    let endpoints = Arc::new(NodeEndpoints {
        handle: handle.clone(),
        listen: relay_addr,
        service_urls: settings.service_urls.clone(),
        data_dir: settings.data_dir.clone(),
    });
    let http = tokio::spawn(http::serve(listeners.metrics, endpoints, stopped.clone()));
    tokio::spawn(progress_log::run(handle.clone(), stopped));
    Ok(Node {
        handle,
        relay,
        front: Some(front),
        stop,
        http,
        db,
        relay_addr,
        metrics_addr,
        lock,
    })
}

/// Starts the sync runtime on the node's store and policy; what it stores is pushed to the
/// relay's live subscribers.
async fn spawn_runtime(
    settings: &Settings,
    db: &Arc<dyn NostrDatabase>,
    policy: Arc<GraspPolicy>,
    registry: prometheus::Registry,
    relay: &LocalRelay,
) -> Result<SyncHandle, String> {
    let (keys, created) = sync_runtime::relay_key::load_or_create(&settings.relay_key_file)
        .map_err(|e| e.to_string())?;
    let id = sync_runtime::relay_key::identity(&keys);
    tracing::info!(
        pubkey = %id.pubkey,
        npub = %id.npub,
        key_file = %settings.relay_key_file.display(),
        created,
        "relay key for NIP-42 AUTH"
    );
    let pushed_relay = relay.clone();
    let on_stored = Arc::new(move |event: &Event| {
        // Live subscribers of our relay see synced events too; a full channel only means a
        // lagging subscriber, which LocalRelay handles.
        let _delivered = pushed_relay.notify_event(event.clone());
    });
    let mut builder = SyncRuntime::builder(settings.sync.clone())
        .database(db.clone())
        .policy(policy)
        .registry(registry)
        .state_dir(settings.data_dir.clone())
        .seed(settings.seed)
        .event_limits(settings.event_limits)
        .on_withdrawal(settings.on_withdrawal)
        .keys(keys)
        .on_stored(on_stored);
    if let Some(trace) = &settings.record_trace {
        builder = builder.trace_path(trace.clone());
    }
    builder
        .spawn()
        .await
        .map_err(|e| format!("cannot start syncing: {e}"))
}

/// What our own clients' accepted events tell the runtime.
enum FromClients {
    /// An accepted event (discovery).
    Accepted(Event),
    /// A repository an accepted event withdraws (docs/spec.md §14).
    Withdrawn(Withdrawal),
}

/// Tells the runtime about every event our own clients publish and the policy accepts, and
/// about the withdrawals they cause. The relay's policy hook is synchronous, so both go through
/// one channel to one forwarding task (order kept); the channel only holds them while the
/// runtime's inbox is full.
fn client_callbacks(cell: Arc<OnceLock<SyncHandle>>) -> (AcceptedCallback, WithdrawnCallback) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<FromClients>();
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let Some(handle) = cell.get() else { continue };
            match message {
                FromClients::Accepted(event) => handle.notify_accepted(&event).await,
                FromClients::Withdrawn(withdrawal) => handle.notify_withdrawn(&withdrawal).await,
            }
        }
    });
    // Sending fails only once the forwarder is gone, i.e. during shutdown.
    let accepted_tx = tx.clone();
    let on_accepted: AcceptedCallback = Arc::new(move |event: &Event| {
        let _queued = accepted_tx.send(FromClients::Accepted(event.clone()));
    });
    let on_withdrawn: WithdrawnCallback = Arc::new(move |withdrawal: Withdrawal| {
        let _queued = tx.send(FromClients::Withdrawn(withdrawal));
    });
    (on_accepted, on_withdrawn)
}

impl Node {
    /// Stops accepting clients, stops syncing (the runtime persists the rejected memory and
    /// flushes the trace), stops the HTTP server and releases the store. Every LMDB write was
    /// committed when it was acknowledged, so the store reopens as it was.
    pub(crate) async fn shutdown(mut self) -> Result<(), String> {
        if let Some(front) = self.front.take() {
            front.stop().await;
        }
        let result = self
            .handle
            .shutdown()
            .await
            .map_err(|e| format!("stopping the sync runtime: {e}"));
        self.stop.trigger();
        let _http = (&mut self.http).await;
        self.relay.shutdown();
        drop(self.relay);
        drop(self.db);
        drop(self.lock);
        result
    }
}

/// The NIP-11 document served on `--listen` to `Accept: application/nostr+json`.
fn nip11_document(settings: &Settings) -> String {
    serde_json::json!({
        "name": "grasp-sync",
        "description": "A GRASP relay that proactively syncs NIP-34 repositories from the relays their announcements list.",
        "software": "grasp-sync",
        "version": env!("CARGO_PKG_VERSION"),
        "supported_nips": [1, 9, 11, 34, 77],
        "service_urls": settings.service_urls,
        "limitation": {
            "max_message_length": settings.clients.max_message_bytes,
            "max_subscriptions": settings.clients.max_subscriptions,
        },
    })
    .to_string()
}

/// What `/status` returns: where this node is, plus the runtime's snapshot.
#[derive(Serialize)]
struct NodeStatus<'a> {
    /// The relay's bound address.
    listen: String,
    /// The URLs this relay is known by.
    service_urls: &'a [String],
    /// The data directory.
    data_dir: String,
    /// The sync runtime's status (per relay and totals).
    sync: RuntimeStatus,
}

/// The HTTP endpoints of a node.
struct NodeEndpoints {
    /// Source of metrics and status.
    handle: SyncHandle,
    /// The relay's bound address.
    listen: SocketAddr,
    /// The URLs this relay is known by.
    service_urls: Vec<String>,
    /// The data directory.
    data_dir: PathBuf,
}

impl Endpoints for NodeEndpoints {
    fn metrics(&self) -> BodyFuture<'_> {
        Box::pin(async move { self.handle.metrics_text() })
    }

    fn status(&self) -> BodyFuture<'_> {
        Box::pin(async move {
            let status = NodeStatus {
                listen: self.listen.to_string(),
                service_urls: &self.service_urls,
                data_dir: self.data_dir.display().to_string(),
                sync: self.handle.status(),
            };
            serde_json::to_string_pretty(&status)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        })
    }
}
