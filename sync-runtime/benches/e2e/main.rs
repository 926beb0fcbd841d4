//! End-to-end sync benchmark (issue 6, deliverable 3): our runtime against a plain nostr-sdk
//! loop, in one process, on loopback, with LMDB stores everywhere.
//!
//! `cargo bench -p sync-runtime --bench e2e` (100 000 events) or, for CI, `... -- --tiny` /
//! `E2E_TINY=1` (2 000 events, everything once, seconds). `-- --events N` sets the scale,
//! `-- --no-grasp` skips the extra GRASP-policy run.
//!
//! | Phase | File |
//! |---|---|
//! | relays, corpus, filters | `world.rs` |
//! | our runtime: initial sync, restart + daily resync | `ours.rs` |
//! | the nostr-sdk baseline and raw negentropy | `baseline.rs` |
//! | peak RSS | `rss.rs` |
//! | the printed table and targets | `table.rs` |

mod baseline;
mod ours;
mod rss;
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
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        events: FULL_EVENTS,
        tiny: std::env::var("E2E_TINY").is_ok_and(|v| v == "1"),
        grasp: true,
    };
    let mut events = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tiny" => args.tiny = true,
            "--no-grasp" => args.grasp = false,
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

/// Every phase, in order; prints the table.
async fn run(args: &Args) -> Result<(), String> {
    let timeout = Duration::from_secs(if args.tiny { 60 } else { 900 });
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let setup = Instant::now();
    let world = world::build(dir.path(), args.events, SEED).await?;
    table::print_header(&world, setup.elapsed());
    let total = world.total_events();
    let mut figures = Figures::default();

    rss::reset_peak();
    let ours_db: Arc<dyn NostrDatabase> = Arc::new(world::open_lmdb(&dir.path().join("ours"))?);
    let (initial, handle) = ours::initial_sync(
        &world,
        ours_db.clone(),
        PolicyChoice::AcceptAll,
        total,
        timeout,
    )
    .await?;
    handle.shutdown().await.map_err(|e| e.to_string())?;
    let count = world::count(ours_db.as_ref()).await?;
    figures.ours = Some(Row::new("ours: initial sync (AcceptAll)", count, initial.all_stored)
        .with_peak(rss::peak_kib())
        .with_note(format!(
            "{} stored by the runtime; all relays complete at {} ms; {} neg batches, {} REQ batches, {} ids fetched, {} pages, {} fallbacks",
            initial.stored,
            initial.complete.as_millis(),
            initial.totals.negentropy_batches,
            initial.totals.req_batches,
            initial.totals.ids_fetched,
            initial.totals.pages_requested,
            initial.totals.negentropy_fallbacks
        )));
    figures.check("ours (AcceptAll)", count, total);
    figures.timeline = initial.timeline;

    rss::reset_peak();
    let base_db: Arc<dyn NostrDatabase> = Arc::new(world::open_lmdb(&dir.path().join("baseline"))?);
    let client = baseline::connect(&world.urls(), base_db.clone()).await?;
    let started = Instant::now();
    let runs = baseline::initial_sync(&world, &client).await?;
    let base_wall = started.elapsed();
    let count = world::count(base_db.as_ref()).await?;
    figures.baseline = Some(
        Row::new("baseline: nostr-sdk loop", count, base_wall)
            .with_peak(rss::peak_kib())
            .with_note(table::baseline_note(&world, &runs)),
    );
    figures.check("baseline", count, total);

    let (raw_neg, diffs) = baseline::raw_negentropy(&world, &client).await?;
    figures.raw_negentropy = Some(raw_neg);
    figures.check(
        "ids the relays have and the baseline store lacks, in sync",
        diffs,
        0,
    );
    let (req_in_sync, pages) = baseline::paginate_in_sync(&world, &client).await?;
    figures.req_in_sync = Some((req_in_sync, pages));
    client.shutdown().await;

    rss::reset_peak();
    // Short enough not to wait long, long enough that the startup sync is usually over (a
    // daily resync due while still syncing is skipped and comes one period later).
    let daily_ms = (initial.complete.as_millis() as u64 / 2).max(1_000);
    let resync = ours::restart_and_daily_resync(&world, ours_db.clone(), daily_ms, timeout).await?;
    figures.resync_peak_kib = rss::peak_kib();
    figures.check(
        "events stored by the in-sync restart/resync",
        resync.stored,
        0,
    );
    figures.resync = Some(resync);
    figures.daily_ms = daily_ms;

    if args.grasp {
        rss::reset_peak();
        let grasp_db: Arc<dyn NostrDatabase> =
            Arc::new(world::open_lmdb(&dir.path().join("grasp"))?);
        let expected = world.synced_scope_events();
        let (run, handle) = ours::initial_sync(
            &world,
            grasp_db.clone(),
            PolicyChoice::Grasp,
            expected,
            timeout,
        )
        .await?;
        handle.shutdown().await.map_err(|e| e.to_string())?;
        let count = world::count(grasp_db.as_ref()).await?;
        figures.grasp = Some(
            Row::new("ours: initial sync (GRASP policy)", count, run.all_stored)
                .with_peak(rss::peak_kib())
                .with_note(format!(
                    "{} of {} events belong to repositories listing us; all relays complete at {} ms",
                    expected,
                    total,
                    run.complete.as_millis()
                )),
        );
        figures.check("ours (GRASP)", count, expected);
    }
    table::print_timeline(&figures);
    table::print(&world, &figures);
    if figures.failures.is_empty() {
        Ok(())
    } else {
        Err(figures.failures.join("; "))
    }
}
