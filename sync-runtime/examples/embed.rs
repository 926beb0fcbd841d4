//! Embedding `sync-runtime` in a relay, end to end, with no network beyond 127.0.0.1:
//!
//! 1. a "remote" GRASP relay (nostr-relay-builder, in process) holds a repository
//!    announcement and three patches;
//! 2. the host (this program) opens its LMDB store, builds the runtime with a write policy,
//!    a prometheus registry, a trace file and a state directory, and spawns it;
//! 3. the host accepts the announcement from "its own client" and tells the runtime, which
//!    connects to the relay the announcement lists and syncs the patches into the store;
//! 4. the host prints the status snapshot (JSON) and a few metrics, then shuts down.
//!
//! Run: `cargo run -p sync-runtime --example embed`

use std::sync::Arc;
use std::time::Duration;

use nostr::{EventBuilder, Filter, Keys, Kind, Tag};
use nostr_database::{MemoryDatabase, MemoryDatabaseOptions, NostrDatabase};
use nostr_lmdb::NostrLMDB;
use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
use sync_runtime::{AcceptAll, SyncRuntime};

const OWN_URL: &str = "wss://relay.example.org";
const PATCHES: usize = 3;

/// Step 1: a "remote" relay in process holding a repository with `PATCHES` patches; returns
/// the relay, its URL and the announcement (which the host accepts from its own client).
async fn remote_relay_with_repo(
) -> Result<(LocalRelay, String, nostr::Event), Box<dyn std::error::Error>> {
    let remote_db = Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
        events: true,
        max_events: None,
    }));
    let remote = LocalRelay::new(
        RelayBuilder::default()
            .database(remote_db.clone())
            .rate_limit(RateLimit {
                max_reqs: 500,
                notes_per_minute: 1_000_000,
            }),
    );
    remote.run().await?;
    let remote_url = remote.url().await.to_string();
    let owner = Keys::generate();
    let announcement = EventBuilder::new(Kind::from(30617u16), "")
        .tag(Tag::identifier("example"))
        .tag(Tag::parse(["relays", remote_url.as_str(), OWN_URL])?)
        .sign_with_keys(&owner)?;
    let coord = format!("30617:{}:example", owner.public_key().to_hex());
    for n in 0..PATCHES {
        let patch = EventBuilder::new(Kind::from(1617u16), format!("patch {n}"))
            .tag(Tag::parse(["a", coord.as_str()])?)
            .sign_with_keys(&owner)?;
        remote_db.save_event(&patch).await?;
    }
    Ok((remote, remote_url, announcement))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (remote, remote_url, announcement) = remote_relay_with_repo().await?;

    // 2. The host: its store, its policy, its registry; then spawn.
    let dir = std::env::temp_dir().join(format!("grasp-sync-embed-{}", std::process::id()));
    let store: Arc<dyn NostrDatabase> = Arc::new(NostrLMDB::open(dir.join("db"))?);
    let config = sync_core::Config {
        own_relay_urls: vec![OWN_URL.into()],
        discovery_window_ms: 100,
        // This example's remote relay is on loopback; in production leave this off, so no
        // announcement can point your relay at your own network (docs/spec.md §13).
        allow_private_targets: true,
        ..sync_core::Config::default()
    };
    let registry = prometheus::Registry::new();
    let handle = SyncRuntime::builder(config)
        .database(store.clone())
        .policy(Arc::new(AcceptAll))
        .registry(registry)
        .trace_path(dir.join("trace.jsonl"))
        .state_dir(dir.join("state"))
        .on_stored(Arc::new(|event| {
            println!("stored {} (kind {})", event.id, event.kind)
        }))
        .spawn()
        .await?;

    // 3. The host accepted an announcement from one of its own clients.
    store.save_event(&announcement).await?;
    handle.notify_accepted(&announcement).await;

    let (status, synced) = handle
        .wait_for_status(Duration::from_secs(20), |s| {
            s.relay(&remote_url).is_some_and(|r| r.status_code == 3)
        })
        .await;
    let patches = store.count(Filter::new().kind(Kind::from(1617u16))).await?;

    // 4. What an operator sees.
    println!("{}", serde_json::to_string_pretty(&status)?);
    for line in handle.metrics_text().lines() {
        if line.starts_with("ngit_sync_relay_connected")
            || line.starts_with("ngit_sync_events_synced_total")
        {
            println!("{line}");
        }
    }
    println!("connected: {synced}; patches in the host store: {patches}");
    handle.shutdown().await?;
    remote.shutdown();
    std::fs::remove_dir_all(&dir)?;
    if !synced || patches != PATCHES {
        return Err("the example did not sync".into());
    }
    Ok(())
}
