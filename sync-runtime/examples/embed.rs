//! Your own GRASP relay with grasp-sync inside: what an operator of a nostr-relay-builder relay
//! copies. Everything runs on 127.0.0.1, in this one process:
//!
//! 1. a *remote* GRASP relay holds a repository's three patches;
//! 2. *our* relay: one LMDB store, the GRASP write policy on every client write (wrapped in
//!    `LocalRelayPolicy`, which also tells the sync runtime about what it accepted), served to
//!    clients by nostr-relay-builder's `LocalRelay`;
//! 3. the sync runtime, syncing into the same store and pushing what it stores to our relay's
//!    live subscribers;
//! 4. a client publishes the repository's announcement (listing our relay and the remote) to
//!    our relay; the runtime connects to the remote relay and syncs the patches; the client
//!    reads them back from our relay.
//!
//! Run: `cargo run -p sync-runtime --example embed` (a test in `tests/embed_example.rs` runs it).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nostr::{Event, EventBuilder, Filter, Keys, Kind, Tag};
use nostr_database::{MemoryDatabase, MemoryDatabaseOptions, NostrDatabase};
use nostr_lmdb::NostrLMDB;
use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
use nostr_sdk::Client;
use sync_runtime::grasp::{GraspPolicy, LocalRelayPolicy};
use sync_runtime::{SyncHandle, SyncRuntime, Withdrawal};

const PATCHES: usize = 3;

type BoxError = Box<dyn std::error::Error>;

/// Step 1, a remote relay holding `PATCHES` patches of `owner`'s repository `example`.
async fn remote_relay(owner: &Keys) -> Result<(LocalRelay, String), BoxError> {
    let db = Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
        events: true,
        max_events: None,
    }));
    let remote = LocalRelay::new(RelayBuilder::default().database(db.clone()));
    remote.run().await?;
    let coord = format!("30617:{}:example", owner.public_key().to_hex());
    for n in 0..PATCHES {
        let patch = EventBuilder::new(Kind::GitPatch, format!("patch {n}"))
            .tag(Tag::parse(["a", coord.as_str()])?)
            .sign_with_keys(owner)?;
        db.save_event(&patch).await?;
    }
    let url = remote.url().await.to_string();
    Ok((remote, url))
}

/// A port on 127.0.0.1 that was free a moment ago (our relay must know its own URL before it
/// starts: the GRASP policy accepts announcements that list it).
fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Step 2, our relay: clients publish through the GRASP policy (`LocalRelayPolicy`), which also
/// tells the runtime (once it is in `runtime`) about every event it accepted and every
/// repository such an event withdraws (docs/spec.md §14: a newer announcement without us, a
/// NIP-09 deletion).
fn our_relay(
    port: u16,
    store: &Arc<dyn NostrDatabase>,
    policy: &Arc<GraspPolicy>,
    runtime: &Arc<OnceLock<SyncHandle>>,
) -> LocalRelay {
    let (notify, withdraw) = (runtime.clone(), runtime.clone());
    let on_withdrawn = Arc::new(move |withdrawal: Withdrawal| {
        if let Some(handle) = withdraw.get() {
            let handle = handle.clone();
            tokio::spawn(async move { handle.notify_withdrawn(&withdrawal).await });
        }
    });
    let on_accepted = Arc::new(move |event: &Event| {
        if let Some(handle) = notify.get() {
            let (handle, event) = (handle.clone(), event.clone());
            tokio::spawn(async move { handle.notify_accepted(&event).await });
        }
    });
    LocalRelay::new(
        RelayBuilder::default()
            .port(port)
            .database(store.clone())
            .rate_limit(RateLimit {
                max_reqs: 500,
                notes_per_minute: 600,
            })
            .write_policy(
                LocalRelayPolicy::new(policy.clone(), Some(on_accepted)).on_withdrawn(on_withdrawn),
            ),
    )
}

/// Step 3, the runtime: same store, same policy; what it stores reaches our relay's live
/// subscribers.
async fn spawn_runtime(
    our_url: &str,
    store: &Arc<dyn NostrDatabase>,
    policy: Arc<GraspPolicy>,
    state_dir: std::path::PathBuf,
    relay: &LocalRelay,
) -> Result<SyncHandle, BoxError> {
    let config = sync_core::Config {
        own_relay_urls: vec![our_url.to_string()],
        discovery_window_ms: 100,
        // Both relays here are on loopback. In production leave this off: then no
        // announcement can point your relay at your own network (docs/spec.md §13).
        allow_private_targets: true,
        ..sync_core::Config::default()
    };
    let pushed = relay.clone();
    let handle = SyncRuntime::builder(config)
        .database(store.clone())
        .policy(policy)
        .registry(prometheus::Registry::new())
        .state_dir(state_dir)
        .on_stored(Arc::new(move |event: &Event| {
            let _subscribers = pushed.notify_event(event.clone());
        }))
        .spawn()
        .await?;
    Ok(handle)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let owner = Keys::generate();
    let (remote, remote_url) = remote_relay(&owner).await?;

    let port = free_port()?;
    let our_url = format!("ws://127.0.0.1:{port}");
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn NostrDatabase> = Arc::new(NostrLMDB::open(dir.path().join("db"))?);
    let policy = Arc::new(GraspPolicy::try_new(
        store.clone(),
        vec![our_url.clone()],
        false,
    )?);
    let runtime: Arc<OnceLock<SyncHandle>> = Arc::new(OnceLock::new());
    let relay = our_relay(port, &store, &policy, &runtime);
    let handle = spawn_runtime(&our_url, &store, policy, dir.path().join("state"), &relay).await?;
    let _set = runtime.set(handle.clone());
    relay.run().await?;

    // 4. A client announces the repository on our relay, then reads the patches from it.
    let announcement = EventBuilder::new(Kind::GitRepoAnnouncement, "")
        .tag(Tag::identifier("example"))
        .tag(Tag::parse([
            "relays",
            our_url.as_str(),
            remote_url.as_str(),
        ])?)
        .sign_with_keys(&owner)?;
    let client = Client::default();
    client.add_relay(&our_url).await?;
    client.connect().await;
    client.send_event(&announcement).await?;
    let (status, synced) = handle
        .wait_for_status(Duration::from_secs(20), |s| {
            s.relay(&remote_url).is_some_and(|r| r.status_code == 3)
        })
        .await;
    let patches = client
        .fetch_events(Filter::new().kind(Kind::GitPatch), Duration::from_secs(5))
        .await?
        .len();
    println!("{}", serde_json::to_string_pretty(&status.relays)?);
    println!("remote relay connected: {synced}; patches served by our relay: {patches}");

    client.shutdown().await;
    handle.shutdown().await?;
    relay.shutdown();
    remote.shutdown();
    if !synced || patches != PATCHES {
        return Err("the example did not sync".into());
    }
    Ok(())
}
