//! End-to-end sync benchmark (issue 6, deliverable 3): our runtime against a plain nostr-sdk
//! loop, in one process, on loopback, with LMDB stores everywhere.
//!
//! `cargo bench -p sync-runtime --bench e2e` (100 000 events) or, for CI, `... -- --tiny` /
//! `E2E_TINY=1` (2 000 events, everything once, seconds). `-- --events N` sets the scale,
//! `-- --no-grasp` skips the extra GRASP-policy run, `-- --fresh-only` / `E2E_FRESH_ONLY=1`
//! runs only the "fresh start to complete" row (its own small world, default configuration),
//! `-- --restart-only` / `E2E_RESTART_ONLY=1` runs only our initial sync and the two restarts
//! over its store (within the quick-reconnect window with its sync cursors, and without them).
//!
//! | Phase | File |
//! |---|---|
//! | relays, corpus, filters | `world.rs` |
//! | our runtime: initial sync, restart + daily resync | `ours.rs` |
//! | fresh start to complete, small corpus, default configuration | `fresh.rs` |
//! | the nostr-sdk baseline and raw negentropy | `baseline.rs` |
//! | peak RSS and CPU time | `process.rs` |
//! | the printed table and targets | `table.rs` |

mod baseline;
mod fresh;
mod ours;
mod process;
mod table;
mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nostr_database::NostrDatabase;

use crate::ours::PolicyChoice;
use crate::table::{Figures, Row};

/// Events at full scale.
const FULL_EVENTS: usize = 100_000;
/// Events with `--tiny`.
const TINY_EVENTS: usize = 2_000;
/// Seed of the corpus.
const SEED: u64 = 6;

/// Command-line settings.
struct Args {
    events: usize,
    tiny: bool,
    grasp: bool,
    /// Only the fresh-start row.
    fresh_only: bool,
    /// Only our initial sync and the restarts (with and without sync cursors).
    restart_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        events: FULL_EVENTS,
        tiny: std::env::var("E2E_TINY").is_ok_and(|v| v == "1"),
        grasp: true,
        fresh_only: std::env::var("E2E_FRESH_ONLY").is_ok_and(|v| v == "1"),
        restart_only: std::env::var("E2E_RESTART_ONLY").is_ok_and(|v| v == "1"),
    };
    let mut events = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tiny" => args.tiny = true,
            "--no-grasp" => args.grasp = false,
            "--fresh-only" => args.fresh_only = true,
            "--restart-only" => args.restart_only = true,
            "--events" => {
                let n = it.next().ok_or("--events needs a number")?;
                events = Some(n.parse().map_err(|_| format!("bad --events {n:?}"))?);
            }
            // `cargo bench` passes `--bench` to harness-less benches.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    args.events = events.unwrap_or(if args.tiny { TINY_EVENTS } else { FULL_EVENTS });
    Ok(args)
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("e2e: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("e2e: cannot start tokio: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The fresh-start row (its own world); `None` with `--restart-only`.
async fn fresh_phase(args: &Args) -> Result<Option<fresh::Fresh>, String> {
    if args.restart_only {
        return Ok(None);
    }
    let fresh_dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let fresh = fresh::measure(fresh_dir.path(), SEED).await?;
    eprintln!(
        "measured: fresh start to complete {} ms",
        fresh.complete.as_millis()
    );
    Ok(Some(fresh))
}

/// Every phase, in order; prints the table.
async fn run(args: &Args) -> Result<(), String> {
    let timeout = Duration::from_secs(if args.tiny { 60 } else { 900 });
    let fresh = fresh_phase(args).await?;
    if let (true, Some(fresh)) = (args.fresh_only, &fresh) {
        fresh::print(fresh);
        return match fresh.stored == fresh.events {
            true => Ok(()),
            false => Err(format!(
                "fresh start: {} events in the store, expected {}",
                fresh.stored, fresh.events
            )),
        };
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let setup = Instant::now();
    let world = world::build(dir.path(), args.events, SEED, false).await?;
    table::print_header(&world, setup.elapsed());
    let mut figures = Figures::default();
    let ours_db: Arc<dyn NostrDatabase> = Arc::new(world::open_lmdb(&dir.path().join("ours"))?);
    let state = dir.path().join("ours-state");
    let complete = ours_phase(&world, ours_db.clone(), &state, timeout, &mut figures).await?;
    quick_restart_phase(&world, ours_db.clone(), &state, timeout, &mut figures).await?;
    if !args.restart_only {
        let base_db: Arc<dyn NostrDatabase> =
            Arc::new(world::open_lmdb(&dir.path().join("baseline"))?);
        baseline_phase(&world, base_db, &mut figures).await?;
    }
    resync_phase(&world, ours_db, complete, timeout, &mut figures).await?;
    if args.grasp && !args.restart_only {
        let grasp_db: Arc<dyn NostrDatabase> =
            Arc::new(world::open_lmdb(&dir.path().join("grasp"))?);
        grasp_phase(&world, grasp_db, timeout, &mut figures).await?;
    }
    table::print_timeline(&figures);
    table::print(&world, &figures);
    if let Some(fresh) = &fresh {
        fresh::print(fresh);
        figures.check(
            "fresh start: events in the store",
            fresh.stored,
            fresh.events,
        );
    }
    if figures.failures.is_empty() {
        Ok(())
    } else {
        Err(figures.failures.join("; "))
    }
}

/// Our runtime restarted over its full store right after the initial sync, with the sync
/// cursors that run left in `state` (a restart within the quick-reconnect window).
async fn quick_restart_phase(
    world: &world::World,
    db: Arc<dyn NostrDatabase>,
    state: &std::path::Path,
    timeout: Duration,
    figures: &mut Figures,
) -> Result<(), String> {
    let quick = ours::restart_within_window(world, db, state, timeout).await?;
    eprintln!(
        "measured: restart within the window, startup sync {} ms",
        quick.restart_sync.as_millis()
    );
    let what = "events stored by the restart within the window";
    figures.check(what, quick.stored, 0);
    figures.quick_restart = Some(quick);
    Ok(())
}

/// Our initial sync (AcceptAll) into `db`; returns when every relay was complete.
async fn ours_phase(
    world: &world::World,
    db: Arc<dyn NostrDatabase>,
    state: &std::path::Path,
    timeout: Duration,
    figures: &mut Figures,
) -> Result<Duration, String> {
    let total = world.total_events();
    process::reset_peak();
    let cpu = process::cpu_ms();
    let (initial, handle) = ours::initial_sync(
        world,
        db.clone(),
        PolicyChoice::AcceptAll,
        total,
        timeout,
        Some(state),
    )
    .await?;
    let cpu = process::cpu_ms() - cpu;
    let peak = process::peak_kib();
    let lagged = ours::stream_lagged(&handle);
    handle.shutdown().await.map_err(|e| e.to_string())?;
    let count = world::count(db.as_ref()).await?;
    let t = &initial.totals;
    let note = format!(
        "{} stored by the runtime; all relays complete at {} ms; {} neg batches, {} REQ batches, {} ids fetched, {} pages, {} fallbacks, stream lagged {lagged} times",
        initial.stored,
        initial.complete.as_millis(),
        t.negentropy_batches,
        t.req_batches,
        t.ids_fetched,
        t.pages_requested,
        t.negentropy_fallbacks
    );
    figures.ours = Some(
        Row::new("ours: initial sync (AcceptAll)", count, initial.all_stored)
            .with_peak(peak)
            .with_cpu(cpu)
            .with_note(note),
    );
    figures.ours.iter().for_each(table::progress);
    figures.check("ours (AcceptAll): events in the store", count, total);
    figures.timeline = initial.timeline;
    Ok(initial.complete)
}

/// The nostr-sdk baseline into `db`, then raw negentropy and REQ pagination in sync.
async fn baseline_phase(
    world: &world::World,
    db: Arc<dyn NostrDatabase>,
    figures: &mut Figures,
) -> Result<(), String> {
    process::reset_peak();
    let client = baseline::connect(&world.urls(), db.clone()).await?;
    let cpu = process::cpu_ms();
    let started = Instant::now();
    let runs = baseline::initial_sync(world, &client).await?;
    let wall = started.elapsed();
    let cpu = process::cpu_ms() - cpu;
    let count = world::count(db.as_ref()).await?;
    figures.baseline = Some(
        Row::new("baseline: nostr-sdk loop", count, wall)
            .with_peak(process::peak_kib())
            .with_cpu(cpu)
            .with_note(table::baseline_note(world, &runs)),
    );
    figures.baseline.iter().for_each(table::progress);
    figures.check("baseline: events in the store", count, world.total_events());
    let (raw_neg, missing) = baseline::raw_negentropy(world, &client).await?;
    figures.raw_negentropy = Some(raw_neg);
    eprintln!(
        "measured: raw negentropy in sync {} ms",
        raw_neg.as_millis()
    );
    let what = "ids the relays have and the baseline store lacks, in sync";
    figures.check(what, missing, 0);
    figures.req_in_sync = Some(baseline::paginate_in_sync(world, &client).await?);
    figures.at_once = Some(baseline::resync_at_once(world, &client).await?);
    client.shutdown().await;
    // A new client has an empty verification cache, like our runtime after its restart: it
    // verifies every event the in-sync pagination re-delivers (the client above had verified
    // each of them during its initial sync and skips them).
    let fresh = baseline::connect(&world.urls(), db).await?;
    figures.at_once_fresh = Some(baseline::resync_at_once(world, &fresh).await?);
    fresh.shutdown().await;
    Ok(())
}

/// Our runtime restarted over its full store, and its daily resync.
async fn resync_phase(
    world: &world::World,
    db: Arc<dyn NostrDatabase>,
    initial_complete: Duration,
    timeout: Duration,
    figures: &mut Figures,
) -> Result<(), String> {
    process::reset_peak();
    // Short enough not to wait long, long enough that the startup sync is usually over (a
    // daily resync due while still syncing is skipped and comes one period later).
    let daily_ms = (initial_complete.as_millis() as u64 / 10).clamp(1_000, 60_000);
    let resync = ours::restart_and_daily_resync(world, db, daily_ms, timeout).await?;
    figures.resync_peak_kib = process::peak_kib();
    eprintln!(
        "measured: restart sync {} ms, daily resync of the NIP-77 relays {} ms",
        resync.restart_sync.as_millis(),
        resync.daily_nip77.as_millis()
    );
    let what = "events stored by the in-sync restart and resync";
    figures.check(what, resync.stored, 0);
    figures.resync = Some(resync);
    figures.daily_ms = daily_ms;
    Ok(())
}

/// Our initial sync with the GRASP policy into `db`.
async fn grasp_phase(
    world: &world::World,
    db: Arc<dyn NostrDatabase>,
    timeout: Duration,
    figures: &mut Figures,
) -> Result<(), String> {
    process::reset_peak();
    let expected = world.synced_scope_events();
    let cpu = process::cpu_ms();
    let (run, handle) = ours::initial_sync(
        world,
        db.clone(),
        PolicyChoice::Grasp,
        expected,
        timeout,
        None,
    )
    .await?;
    let cpu = process::cpu_ms() - cpu;
    let peak = process::peak_kib();
    handle.shutdown().await.map_err(|e| e.to_string())?;
    let count = world::count(db.as_ref()).await?;
    let note = format!(
        "{expected} of {} events belong to repositories listing us; all relays complete at {} ms",
        world.total_events(),
        run.complete.as_millis()
    );
    figures.grasp = Some(
        Row::new("ours: initial sync (GRASP policy)", count, run.all_stored)
            .with_peak(peak)
            .with_cpu(cpu)
            .with_note(note),
    );
    figures.check("ours (GRASP): events in the store", count, expected);
    Ok(())
}
