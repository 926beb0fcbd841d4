//! Our runtime (`SyncRuntime`) against the world: the initial sync into an empty LMDB store,
//! and the in-sync daily resync (a runtime restarted over the full store with a short daily
//! resync period, so the resync happens on warm connections with nothing else running).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nostr_database::NostrDatabase;
use sync_core::{Config, Stats, Status};
use sync_runtime::grasp::GraspPolicy;
use sync_runtime::{AcceptAll, RuntimeStatus, SyncHandle, SyncRuntime, WritePolicy};

use crate::world::{World, OUR_URL};

/// Discovery updates are coalesced for this long unless `E2E_DISCOVERY_WINDOW_MS` says
/// otherwise: the engine's default (5 s). A shorter window removes idle time from the
/// L1 → L2 → L3 cascade but makes the core re-plan (and rebuild every live filter) more often.
pub(crate) fn discovery_window_ms() -> u64 {
    std::env::var("E2E_DISCOVERY_WINDOW_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(Config::default().discovery_window_ms)
}

/// Which write policy the runtime runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PolicyChoice {
    /// Everything that passes signature and filter checks (comparable with the baseline).
    AcceptAll,
    /// The GRASP policy of `grasp-sync run` (repositories listing us only).
    Grasp,
}

/// The engine configuration of every run; `daily_ms` sets a fixed daily-resync period.
pub(crate) fn bench_config(world: &World, daily_ms: Option<u64>) -> Config {
    let mut config = Config {
        own_relay_urls: vec![OUR_URL.to_string()],
        bootstrap_relays: world.urls(),
        discovery_window_ms: discovery_window_ms(),
        startup_jitter_ms: 0,
        // The bench's relays are on loopback (a lab setting, docs/spec.md §13).
        allow_private_targets: true,
        ..Config::default()
    };
    if let Some(ms) = daily_ms {
        config.daily_resync_min_ms = ms;
        config.daily_resync_max_ms = ms;
    }
    config
}

/// The result of an initial sync.
pub(crate) struct InitialSync {
    /// Events the runtime stored (`on_stored` calls).
    pub(crate) stored: usize,
    /// From `spawn` to the last expected event stored.
    pub(crate) all_stored: Duration,
    /// From `spawn` to every relay `Connected` with no pending batch (historic sync done).
    pub(crate) complete: Duration,
    /// Engine totals at the end.
    pub(crate) totals: Stats,
    /// Progress samples (about one per second): where the time goes.
    pub(crate) timeline: Vec<String>,
}

/// How often the initial sync's progress is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// One progress sample: elapsed, stored, and per relay status/pending batches/neg support.
fn sample(start: Instant, stored: usize, status: &RuntimeStatus) -> String {
    let relays: Vec<String> = status
        .relays
        .iter()
        .map(|r| format!("{:?}/{}p/{:?}", r.status, r.pending_batches, r.negentropy))
        .collect();
    format!(
        "{:>7} ms {:>7} stored, {:>5} repos {:>6} roots | {}",
        start.elapsed().as_millis(),
        stored,
        status.totals.repos,
        status.totals.root_events,
        relays.join(" ")
    )
}

/// A spawned runtime with its stored-event counter.
pub(crate) struct Running {
    /// The handle.
    pub(crate) handle: SyncHandle,
    /// Events stored so far.
    pub(crate) stored: Arc<AtomicUsize>,
    /// When the `expected`-th event was stored.
    reached: Arc<Mutex<Option<Instant>>>,
}

/// Spawns a runtime over `db` with `policy`; `expected` is the stored count to time.
pub(crate) async fn spawn(
    config: Config,
    db: Arc<dyn NostrDatabase>,
    policy: PolicyChoice,
    expected: usize,
    state_dir: Option<&Path>,
) -> Result<Running, String> {
    let policy: Arc<dyn WritePolicy> = match policy {
        PolicyChoice::AcceptAll => Arc::new(AcceptAll),
        PolicyChoice::Grasp => Arc::new(GraspPolicy::new(
            db.clone(),
            config.own_relay_urls.clone(),
            false,
        )),
    };
    let stored = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(Mutex::new(None));
    let (counter, when) = (stored.clone(), reached.clone());
    let mut builder = SyncRuntime::builder(config);
    if let Some(dir) = state_dir {
        // Rejected memory and sync cursors (written at shutdown, read at the next spawn).
        builder = builder.state_dir(dir.to_path_buf());
    }
    if let Ok(path) = std::env::var("E2E_TRACE") {
        // One file per runtime spawned: `<path>.1` is the initial sync.
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed) + 1;
        builder = builder.trace_path(format!("{path}.{n}").into());
    }
    if let Some(n) = std::env::var("E2E_SDK_CHANNEL")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        // A small SDK channel forces lags: the lag-recovery stress knob.
        builder = builder.channel_capacities(sync_runtime::DRIVER_INBOX_CAPACITY, n);
    }
    let handle = builder
        .database(db)
        .policy(policy)
        .seed(1)
        .on_stored(Arc::new(move |_event| {
            if counter.fetch_add(1, Ordering::Relaxed) + 1 == expected {
                *when
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
            }
        }))
        .spawn()
        .await
        .map_err(|e| format!("spawning the runtime: {e}"))?;
    Ok(Running {
        handle,
        stored,
        reached,
    })
}

/// How often the relay message stream lagged (each burst makes the core recover what was on the wire).
pub(crate) fn stream_lagged(handle: &SyncHandle) -> u64 {
    handle
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("ngit_sync_stream_lagged_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// True when every source relay is `Connected` with no pending batch.
pub(crate) fn all_complete(status: &RuntimeStatus, urls: &[String]) -> bool {
    urls.iter().all(|url| {
        status
            .relay(url)
            .is_some_and(|r| r.status == Status::Connected && r.pending_batches == 0)
    })
}

/// Initial sync of an empty store: waits until `expected` events are stored and every relay
/// finished its historic sync (or `timeout`).
pub(crate) async fn initial_sync(
    world: &World,
    db: Arc<dyn NostrDatabase>,
    policy: PolicyChoice,
    expected: usize,
    timeout: Duration,
    state_dir: Option<&Path>,
) -> Result<(InitialSync, SyncHandle), String> {
    let urls = world.urls();
    let start = Instant::now();
    let run = spawn(bench_config(world, None), db, policy, expected, state_dir).await?;
    let stored = run.stored.clone();
    let mut timeline = Vec::new();
    let mut last_sample: Option<Instant> = None;
    let (status, held) = run
        .handle
        .wait_for_status(timeout, |s| {
            let n = stored.load(Ordering::Relaxed);
            if last_sample.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY) {
                last_sample = Some(Instant::now());
                timeline.push(sample(start, n, s));
            }
            n >= expected && all_complete(s, &urls)
        })
        .await;
    timeline.push(sample(start, stored.load(Ordering::Relaxed), &status));
    let complete = start.elapsed();
    if !held {
        return Err(format!(
            "initial sync did not finish within {timeout:?}: {} of {expected} stored; relays: {}",
            run.stored.load(Ordering::Relaxed),
            relay_summary(&status)
        ));
    }
    let reached = run
        .reached
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .unwrap_or_else(Instant::now);
    let result = InitialSync {
        stored: run.stored.load(Ordering::Relaxed),
        all_stored: reached.duration_since(start),
        complete,
        totals: status.totals,
        timeline,
    };
    Ok((result, run.handle))
}

/// `url status pending` per relay, for error messages.
fn relay_summary(status: &RuntimeStatus) -> String {
    status
        .relays
        .iter()
        .map(|r| {
            format!(
                "{} {:?} pending={} neg={:?}",
                r.url, r.status, r.pending_batches, r.negentropy
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The restart over the full store and its daily resync.
pub(crate) struct Resync {
    /// `spawn` itself (store replay into the core).
    pub(crate) spawn: Duration,
    /// From `spawn` returning to every relay complete (the startup sync: an in-sync
    /// reconciliation of everything, plus connecting).
    pub(crate) restart_sync: Duration,
    /// Per relay URL: how long its daily resync took (status `Syncing` → `Connected`).
    pub(crate) daily_by_relay: BTreeMap<String, Duration>,
    /// From the first relay's daily resync start to the last NIP-77 relay's end.
    pub(crate) daily_nip77: Duration,
    /// The longest daily resync of a relay without NIP-77, if there is one.
    pub(crate) daily_req: Option<Duration>,
    /// Events stored during the restart and the resync (must be 0: the store was complete).
    pub(crate) stored: usize,
    /// Engine totals after the startup sync and at the end (to tell the resync's share).
    pub(crate) totals_before: Stats,
    /// Engine totals at the end.
    pub(crate) totals_after: Stats,
}

/// Per relay: when the daily resync was seen to start and to end.
#[derive(Default)]
struct Transitions {
    started: BTreeMap<String, Instant>,
    ended: BTreeMap<String, Instant>,
}

impl Transitions {
    /// Records what `status` shows now; true once every relay's resync ended.
    fn observe(&mut self, status: &RuntimeStatus, urls: &[String]) -> bool {
        let now = Instant::now();
        for url in urls {
            let Some(relay) = status.relay(url) else {
                continue;
            };
            if relay.status == Status::Syncing {
                self.started.entry(url.clone()).or_insert(now);
            } else if self.started.contains_key(url)
                && relay.status == Status::Connected
                && relay.pending_batches == 0
            {
                self.ended.entry(url.clone()).or_insert(now);
            }
        }
        urls.iter().all(|u| self.ended.contains_key(u))
    }
}

/// Waits until every relay of `urls` completed its startup sync; the status then and how long
/// it took from now.
async fn startup_sync(
    run: &Running,
    urls: &[String],
    timeout: Duration,
    what: &str,
) -> Result<(RuntimeStatus, Duration), String> {
    let spawned = Instant::now();
    let (status, held) = run
        .handle
        .wait_for_status(timeout, |s| all_complete(s, urls))
        .await;
    if !held {
        return Err(format!("{what} timed out: {}", relay_summary(&status)));
    }
    Ok((status, spawned.elapsed()))
}

/// Restarts a runtime over the full store `db` (with a daily resync period of `daily_ms`),
/// waits for its startup sync, then for one daily resync of every relay.
pub(crate) async fn restart_and_daily_resync(
    world: &World,
    db: Arc<dyn NostrDatabase>,
    daily_ms: u64,
    timeout: Duration,
) -> Result<Resync, String> {
    let urls = world.urls();
    let start = Instant::now();
    let config = bench_config(world, Some(daily_ms));
    let run = spawn(config, db, PolicyChoice::AcceptAll, usize::MAX, None).await?;
    let spawned = Instant::now();
    let (status, restart_sync) = startup_sync(&run, &urls, timeout, "restart sync").await?;
    let totals_before = status.totals;
    let mut transitions = Transitions::default();
    let (status, held) = run
        .handle
        .wait_for_status(timeout + Duration::from_millis(daily_ms), |s| {
            transitions.observe(s, &urls)
        })
        .await;
    if !held {
        return Err(format!(
            "daily resync not seen on every relay: {}",
            relay_summary(&status)
        ));
    }
    let stored = run.stored.load(Ordering::Relaxed);
    run.handle
        .shutdown()
        .await
        .map_err(|e| format!("shutting down: {e}"))?;
    let daily_by_relay: BTreeMap<String, Duration> = urls
        .iter()
        .map(|u| (u.clone(), transitions.ended[u] - transitions.started[u]))
        .collect();
    let daily_req = world
        .sources
        .iter()
        .filter(|s| !s.nip77)
        .map(|s| daily_by_relay[&s.url])
        .max();
    let nip77: Vec<&String> = world
        .sources
        .iter()
        .filter(|s| s.nip77)
        .map(|s| &s.url)
        .collect();
    let first = nip77.iter().map(|u| transitions.started[*u]).min();
    let last = nip77.iter().map(|u| transitions.ended[*u]).max();
    let daily_nip77 = match (first, last) {
        (Some(f), Some(l)) => l - f,
        _ => Duration::ZERO,
    };
    Ok(Resync {
        spawn: spawned - start,
        restart_sync,
        daily_by_relay,
        daily_nip77,
        daily_req,
        stored,
        totals_before,
        totals_after: status.totals,
    })
}

/// A restart over the full store with the sync cursors the previous run left in its state
/// directory, within the quick-reconnect window.
pub(crate) struct QuickRestart {
    /// `spawn` itself (store replay, cursors read).
    pub(crate) spawn: Duration,
    /// From `spawn` returning to every relay complete (a catch-up per relay).
    pub(crate) restart_sync: Duration,
    /// Events stored (0: the store was complete).
    pub(crate) stored: usize,
    /// Engine totals when every relay was complete.
    pub(crate) totals: Stats,
}

/// Restarts a runtime over the full store `db` with the state directory `state_dir` of the
/// run before (its sync cursors) and waits for its startup sync.
pub(crate) async fn restart_within_window(
    world: &World,
    db: Arc<dyn NostrDatabase>,
    state_dir: &Path,
    timeout: Duration,
) -> Result<QuickRestart, String> {
    let urls = world.urls();
    let start = Instant::now();
    let config = bench_config(world, None);
    let run = spawn(
        config,
        db,
        PolicyChoice::AcceptAll,
        usize::MAX,
        Some(state_dir),
    )
    .await?;
    let spawned = Instant::now();
    let (status, restart_sync) =
        startup_sync(&run, &urls, timeout, "restart within the window").await?;
    let stored = run.stored.load(Ordering::Relaxed);
    run.handle
        .shutdown()
        .await
        .map_err(|e| format!("shutting down: {e}"))?;
    Ok(QuickRestart {
        spawn: spawned - start,
        restart_sync,
        stored,
        totals: status.totals,
    })
}
