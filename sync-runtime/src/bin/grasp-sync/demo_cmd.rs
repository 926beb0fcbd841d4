//! `grasp-sync demo`: the main job end to end on loopback.
//!
//! 1. Start the source relays (`sync_runtime::demo::sources`: one capping results at 100 per
//!    filter, one restarted mid-run, one without NIP-77, one only named by announcements, the
//!    rest plain) and fill them with generated NIP-34 data.
//! 2. Start the syncing relay exactly as `run` does (`serve.rs`), bootstrapped with every source
//!    except the discover-only one, with timings shortened for a demo (printed).
//! 3. Drive the scenario (`demo_scenario.rs`): live events published during the run; the
//!    restarting relay is stopped once its historic sync completed, receives events while
//!    down, and comes back. A status line shows progress per relay.
//! 4. Verify every event of every source against the local store, print the table and
//!    `demo: synced X/Y events from N relays, M missing`. Exit code 1 unless nothing is missing.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sync_runtime::demo::{
    final_table, generate, summary_line, Behaviour, Corpus, GeneratorSpec, Report,
};

use crate::cli::DemoArgs;
use crate::data_lock::DataDirLock;
use crate::demo_scenario::Scenario;
use crate::demo_sources::{fill_sources, start_sources, Sources};
use crate::serve::{self, Node};
use crate::settings::Settings;

/// The demo logs warnings of grasp-sync only: the nostr libraries log every connection reset
/// at ERROR, and the demo resets connections on purpose (`RUST_LOG` overrides this).
const DEMO_LOG_FILTER: &str = "warn,nostr_relay_pool=off,nostr_sdk=off,nostr_relay_builder=off";

/// The demo's tunables: shorter than production so a run takes seconds, not minutes.
fn demo_sync_config(own: &str, bootstrap: Vec<String>) -> sync_core::Config {
    sync_core::Config {
        own_relay_urls: vec![own.to_string()],
        bootstrap_relays: bootstrap,
        discovery_window_ms: 500,
        startup_jitter_ms: 200,
        backoff_base_ms: 500,
        backoff_max_ms: 2_000,
        connect_timeout_ms: 3_000,
        batch_deadline_ms: 15_000,
        // The demo's source relays are on loopback (a lab, docs/spec.md §13).
        allow_private_targets: true,
        ..sync_core::Config::default()
    }
}

/// Runs the demo; the exit code says whether the store was verified complete.
pub(crate) async fn run(args: DemoArgs) -> ExitCode {
    crate::logging::init(args.log, DEMO_LOG_FILTER);
    match demo(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("grasp-sync demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The whole demo; `Ok(true)` when verified complete.
async fn demo(args: DemoArgs) -> Result<bool, String> {
    let started = Instant::now();
    let dir = DemoDir::new(args.data_dir.clone())?;
    // First: a `--data-dir` a running grasp-sync holds is refused before any set-up.
    let lock = DataDirLock::acquire(&dir.path)?;
    let mut sources = start_sources(args.relays as usize).await?;
    let (settings, listeners) = node_settings(&args, &dir.path, &sources).await?;
    let our_url = settings.service_urls[0].clone();
    let mut corpus = generate(&GeneratorSpec {
        seed: args.seed,
        events: args.events as usize,
        our_url: our_url.clone(),
        source_urls: sources.urls.clone(),
        must_list: vec![3, 2, 1, 0],
    });
    fill_sources(&sources, &corpus).await?;
    print_header(&args, &settings, &sources, &corpus);
    let node = serve::start(&settings, listeners, lock).await?;
    println!(
        "syncing relay {our_url} started (metrics on http://{}/metrics) after {:.1}s of set-up",
        node.metrics_addr,
        started.elapsed().as_secs_f64()
    );
    let sync_started = Instant::now();
    let mut scenario = Scenario::new(args.seed, &sources, std::io::stdout().is_terminal()).await?;
    let deadline = Duration::from_secs(args.timeout_secs);
    let (report, statuses) = scenario
        .drive(&node, &mut sources, &mut corpus, deadline)
        .await?;
    print_result(&report, &statuses, &node, &sources, (sync_started, started));
    if !report.missing_sample.is_empty() {
        print_missing(&report, &corpus, &node);
    }
    scenario.shutdown().await;
    node.shutdown().await?;
    drop(sources);
    Ok(report.is_complete())
}

/// Settings of the syncing relay (loopback, free ports, a fresh data dir) and its bound
/// listeners.
async fn node_settings(
    args: &DemoArgs,
    data_dir: &std::path::Path,
    sources: &Sources,
) -> Result<(Settings, serve::Listeners), String> {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut settings = Settings {
        listen: any_port,
        service_urls: Vec::new(),
        data_dir: data_dir.to_path_buf(),
        relay_key_file: data_dir.join(sync_runtime::relay_key::RELAY_KEY_FILE),
        archive_all: false,
        on_withdrawal: sync_runtime::OnWithdrawal::Keep,
        metrics_listen: any_port,
        seed: args.seed,
        seed_from_os: false,
        record_trace: None,
        log: args.log,
        event_limits: sync_runtime::EventLimits::default(),
        max_announcements_per_author: sync_runtime::grasp::DEFAULT_MAX_ANNOUNCEMENTS_PER_AUTHOR,
        sync: sync_core::Config::default(),
        clients: sync_runtime::demo::ClientLimits::default(),
    };
    let listeners = serve::bind(&settings).await?;
    settings.listen = listeners.relay.local_addr().map_err(|e| e.to_string())?;
    let own = format!("ws://{}", settings.listen);
    let bootstrap = sources
        .relays
        .iter()
        .zip(&sources.urls)
        .filter(|(r, _)| r.behaviour != Behaviour::DiscoverOnly)
        .map(|(_, url)| url.clone())
        .collect();
    settings.sync = demo_sync_config(&own, bootstrap);
    settings.service_urls = vec![own];
    Ok((settings, listeners))
}

/// What is about to happen.
fn print_header(args: &DemoArgs, settings: &Settings, sources: &Sources, corpus: &Corpus) {
    let (synced, foreign) = corpus.scope_counts();
    println!(
        "demo: {} events in {} repositories on {} source relays (seed {}): {synced} to sync, {foreign} of repositories not listing us (must not be synced)",
        corpus.events.len(),
        corpus.repos.len(),
        sources.relays.len(),
        args.seed
    );
    for (i, (relay, url)) in sources.relays.iter().zip(&sources.urls).enumerate() {
        let held = corpus
            .events
            .iter()
            .filter(|p| p.relays.contains(&i))
            .count();
        println!(
            "  r{i} {url:<24} {:<16} {held} events",
            relay.behaviour.label()
        );
    }
    let c = &settings.sync;
    println!(
        "  demo timings: discovery window {} ms, startup jitter {} ms, backoff {}..{} ms, batch deadline {} ms",
        c.discovery_window_ms, c.startup_jitter_ms, c.backoff_base_ms, c.backoff_max_ms, c.batch_deadline_ms
    );
}

/// The final table, the engine's totals, the summary line and the wall time.
fn print_result(
    report: &Report,
    statuses: &[String],
    node: &Node,
    sources: &Sources,
    (sync_started, started): (Instant, Instant),
) {
    print!("{}", final_table(report, statuses));
    let totals = node.handle.status().totals;
    println!(
        "engine: {} events saved ({} gap events), {} negentropy batches, {} REQ batches, {} pages, {} negentropy fallbacks, {} batches failed",
        totals.events_saved,
        totals.gap_events,
        totals.negentropy_batches,
        totals.req_batches,
        totals.pages_requested,
        totals.negentropy_fallbacks,
        totals.batches_failed
    );
    if let Some((i, relay)) = sources
        .relays
        .iter()
        .enumerate()
        .find(|(_, r)| r.behaviour == Behaviour::NoNegentropy)
    {
        println!(
            "r{i} (no NIP-77): its proxy refused {} NEG-OPEN messages; the engine fell back to REQ+EOSE",
            relay.neg_opens_refused()
        );
    }
    println!(
        "wall time: {:.1}s sync + verification, {:.1}s in total",
        sync_started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", summary_line(report));
}

/// What the first missing events are (kind, tag names, where they were placed), and what the
/// policy rejected, so a failed run can be diagnosed from its output.
fn print_missing(report: &Report, corpus: &Corpus, node: &Node) {
    println!("first missing events:");
    for id in &report.missing_sample {
        let Some(placed) = corpus.events.iter().find(|p| &p.event.id.to_hex() == id) else {
            println!("  {id} (not generated by the demo)");
            continue;
        };
        let tags: Vec<String> = placed
            .event
            .tags
            .iter()
            .map(|t| t.as_slice().first().cloned().unwrap_or_default())
            .collect();
        println!(
            "  {id} kind {} tags [{}] created_at {} on r{:?}",
            placed.event.kind.as_u16(),
            tags.join(","),
            placed.event.created_at.as_secs(),
            placed.relays
        );
    }
    let metrics = node.handle.metrics_text();
    for line in metrics.lines().filter(|l| {
        l.starts_with("ngit_sync_rejected_events_total")
            || l.starts_with("ngit_sync_events_dropped_total")
    }) {
        println!("  {line}");
    }
}

/// The demo's data directory: the given one (kept) or a fresh temporary one (removed).
struct DemoDir {
    /// Where it is.
    path: PathBuf,
    /// Remove it on drop.
    remove: bool,
}

impl DemoDir {
    /// Creates it (empty, for a temporary one).
    fn new(given: Option<PathBuf>) -> Result<Self, String> {
        let (path, remove) = match given {
            Some(path) => (path, false),
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let name = format!("grasp-sync-demo-{}-{nanos}", std::process::id());
                (std::env::temp_dir().join(name), true)
            }
        };
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create the demo data dir {}: {e}", path.display()))?;
        Ok(Self { path, remove })
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
