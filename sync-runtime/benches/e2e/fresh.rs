//! Fresh start to complete (issue 12, deliverable 6): a small corpus on three relays; our
//! runtime with the engine's default configuration (startup jitter and discovery window
//! included) into an empty store, bootstrapped with the first relay only, which also holds
//! every announcement, so the other two relays are discovered from them. Timed from `spawn` to
//! every event stored and every relay `Connected` with no pending batch.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nostr_database::NostrDatabase;
use sync_core::{Config, Status};

use crate::ours::{self, PolicyChoice};
use crate::world::{self, OUR_URL};

/// Events in the small corpus.
pub(crate) const FRESH_EVENTS: usize = 400;
/// Fresh start to complete must take at most this long.
pub(crate) const FRESH_TARGET: Duration = Duration::from_secs(5);
/// Give up after this long.
const FRESH_TIMEOUT: Duration = Duration::from_secs(120);

/// What the fresh start measured.
pub(crate) struct Fresh {
    /// Distinct events in the corpus (all expected in the store).
    pub(crate) events: usize,
    /// Events in our store at the end.
    pub(crate) stored: usize,
    /// From `spawn` to complete.
    pub(crate) complete: Duration,
    /// Per source relay: when it was first seen in a live status (connected).
    pub(crate) live_at: Vec<Option<Duration>>,
    /// Historic batches confirmed (each hop of the cascade starts new ones).
    pub(crate) batches: u64,
    /// Connection attempts.
    pub(crate) connects: u64,
}

/// Builds the small world in `dir` and times our fresh start against it.
pub(crate) async fn measure(dir: &Path, seed: u64) -> Result<Fresh, String> {
    let world = world::build(dir, FRESH_EVENTS, seed, true).await?;
    let urls = world.urls();
    let db: Arc<dyn NostrDatabase> = Arc::new(world::open_lmdb(&dir.join("fresh-ours"))?);
    let config = Config {
        own_relay_urls: vec![OUR_URL.to_string()],
        bootstrap_relays: vec![urls[0].clone()],
        // The bench's relays are on loopback (a lab setting, docs/spec.md §13).
        allow_private_targets: true,
        ..Config::default()
    };
    let total = world.total_events();
    let start = Instant::now();
    let run = ours::spawn(config, db.clone(), PolicyChoice::AcceptAll, total, None).await?;
    let stored = run.stored.clone();
    let mut live_at = vec![None; urls.len()];
    let (status, held) = run
        .handle
        .wait_for_status(FRESH_TIMEOUT, |s| {
            for (url, at) in urls.iter().zip(live_at.iter_mut()) {
                let live = s.relay(url).is_some_and(|r| is_live(r.status));
                if live && at.is_none() {
                    *at = Some(start.elapsed());
                }
            }
            stored.load(Ordering::Relaxed) >= total && ours::all_complete(s, &urls)
        })
        .await;
    let complete = start.elapsed();
    run.handle.shutdown().await.map_err(|e| e.to_string())?;
    if !held {
        return Err(format!(
            "fresh start did not complete within {FRESH_TIMEOUT:?}: {} of {total} stored",
            stored.load(Ordering::Relaxed)
        ));
    }
    Ok(Fresh {
        events: total,
        stored: world::count(db.as_ref()).await?,
        complete,
        live_at,
        batches: status.totals.batches_confirmed,
        connects: status.totals.connect_attempts,
    })
}

fn is_live(status: Status) -> bool {
    matches!(
        status,
        Status::Syncing | Status::Connected | Status::ConnectedHistoricSyncFailures
    )
}

/// The row: the figure, when each relay connected, and whether the target holds.
pub(crate) fn print(f: &Fresh) {
    let live: Vec<String> = f
        .live_at
        .iter()
        .enumerate()
        .map(|(i, at)| match at {
            Some(d) => format!("r{i} {} ms", d.as_millis()),
            None => format!("r{i} never seen live"),
        })
        .collect();
    println!();
    println!(
        "fresh start to complete (3 relays, {} events, default config, 1 bootstrap relay + 2 discovered)",
        f.events
    );
    println!(
        "  {} ms (target <= {} ms)  {}",
        f.complete.as_millis(),
        FRESH_TARGET.as_millis(),
        crate::table::verdict(f.complete <= FRESH_TARGET)
    );
    println!(
        "    connected: {}; {} connection attempts, {} historic batches, {} events stored",
        live.join(", "),
        f.connects,
        f.batches,
        f.stored
    );
}
