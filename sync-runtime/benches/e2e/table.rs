//! The printed report: set-up, one row per measured phase, the in-sync resync figures and
//! whether each target holds.

use std::time::Duration;

use crate::baseline::{RelayRun, IDS_PER_REQ, NEG_IN_FLIGHT, PAGE_LIMIT, REQS_IN_FLIGHT};
use crate::ours::{discovery_window_ms, Resync};
use crate::process;
use crate::world::World;

/// Initial sync throughput, ours ÷ baseline, must be at least this.
const THROUGHPUT_TARGET: f64 = 0.8;
/// In-sync resync ÷ raw negentropy must be at most this.
const RESYNC_TARGET: f64 = 1.5;
/// A restart within the quick-reconnect window: startup sync of the 3 relays (issue 12).
const QUICK_RESTART_TARGET_MS: u128 = 2_000;
/// Initial sync, ours ÷ baseline (issue 12)...
const SPEEDUP_TARGET: f64 = 1.5;
/// ...or the process keeps this share of every core busy (issue 12).
const BUSY_TARGET: f64 = 0.9;
/// Daily resync of the relay without NIP-77 ÷ the baseline's pagination under the same load
/// (issue 12).
const DAILY_REQ_TARGET: f64 = 1.0;

/// One measured phase.
pub(crate) struct Row {
    label: String,
    events: usize,
    wall: Duration,
    peak_kib: Option<u64>,
    cpu_ms: u64,
    note: String,
}

impl Row {
    /// `events` stored in `wall`.
    pub(crate) fn new(label: &str, events: usize, wall: Duration) -> Self {
        Self {
            label: label.to_string(),
            events,
            wall,
            peak_kib: None,
            cpu_ms: 0,
            note: String::new(),
        }
    }

    /// With the phase's peak RSS.
    pub(crate) fn with_peak(mut self, kib: Option<u64>) -> Self {
        self.peak_kib = kib;
        self
    }

    /// With the process CPU time (user + system) of the phase.
    pub(crate) fn with_cpu(mut self, ms: u64) -> Self {
        self.cpu_ms = ms;
        self
    }

    /// With a detail line.
    pub(crate) fn with_note(mut self, note: String) -> Self {
        self.note = note;
        self
    }

    fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Everything measured.
#[derive(Default)]
pub(crate) struct Figures {
    /// Our initial sync with AcceptAll.
    pub(crate) ours: Option<Row>,
    /// The nostr-sdk loop.
    pub(crate) baseline: Option<Row>,
    /// Our initial sync with the GRASP policy.
    pub(crate) grasp: Option<Row>,
    /// Raw in-sync negentropy over the NIP-77 relays.
    pub(crate) raw_negentropy: Option<Duration>,
    /// In-sync REQ pagination over the relay without NIP-77, and its pages.
    pub(crate) req_in_sync: Option<(Duration, usize)>,
    /// The baseline's negentropy and pagination in sync, run at the same time, by the client
    /// that did the initial sync (its verification cache holds every event).
    pub(crate) at_once: Option<crate::baseline::AtOnce>,
    /// The same with a new client (empty verification cache, as our runtime after a restart).
    pub(crate) at_once_fresh: Option<crate::baseline::AtOnce>,
    /// Our restart and daily resync.
    pub(crate) resync: Option<Resync>,
    /// Our restart within the quick-reconnect window (with the initial sync's cursors).
    pub(crate) quick_restart: Option<crate::ours::QuickRestart>,
    /// Peak RSS during the restart and resync.
    pub(crate) resync_peak_kib: Option<u64>,
    /// The daily-resync period used.
    pub(crate) daily_ms: u64,
    /// Progress samples of our initial sync (AcceptAll).
    pub(crate) timeline: Vec<String>,
    /// Failed checks (store counts, in-sync differences).
    pub(crate) failures: Vec<String>,
}

impl Figures {
    /// Records a failure unless `actual == expected`.
    pub(crate) fn check(&mut self, what: &str, actual: usize, expected: usize) {
        if actual != expected {
            self.failures
                .push(format!("{what}: {actual}, expected {expected}"));
        }
    }
}

/// The machine, the world and the settings.
pub(crate) fn print_header(world: &World, setup: Duration) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "e2e sync benchmark: machine {cores} cores, {cpu}; release={}",
        !cfg!(debug_assertions)
    );
    println!(
        "corpus: {} events ({} repositories, {} root events) on 3 LMDB LocalRelays, set up in {:.1} s",
        world.total_events(),
        world.corpus.repos.len(),
        world.root_events(),
        setup.as_secs_f64()
    );
    for (i, s) in world.sources.iter().enumerate() {
        println!(
            "  r{i} {:<22} {:<34} {:>6} events {:>5} filters",
            s.url,
            if s.nip77 {
                "NIP-77"
            } else {
                "no NIP-77 (NegProxy, strfry NOTICE)"
            },
            s.events,
            s.filters.len()
        );
    }
    println!(
        "transport: TCP_NODELAY on both ends (RelayFront, NegProxy, NoDelayTransport); ours: discovery window {} ms, startup jitter 0, other settings default; baseline: negentropy dry-run {NEG_IN_FLIGHT} filters in flight, ids REQs of {IDS_PER_REQ} x {REQS_IN_FLIGHT} in flight, pagination limit {PAGE_LIMIT} x {REQS_IN_FLIGHT} filters in flight",
        discovery_window_ms()
    );
}

/// The baseline's per-relay detail.
pub(crate) fn baseline_note(world: &World, runs: &[RelayRun]) -> String {
    world
        .sources
        .iter()
        .zip(runs)
        .enumerate()
        .map(|(i, (s, r))| {
            if s.nip77 {
                format!(
                    "r{i}: neg {} ms ({} missing), ids fetch {} ms ({} REQs, {} events)",
                    r.negentropy.as_millis(),
                    r.missing_ids,
                    r.fetch.as_millis(),
                    r.requests,
                    r.received
                )
            } else {
                format!(
                    "r{i}: pagination {} ms ({} pages, {} events)",
                    r.fetch.as_millis(),
                    r.requests,
                    r.received
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Prints a row as soon as it is measured (to stderr, so the final table stays one block).
pub(crate) fn progress(row: &Row) {
    eprintln!(
        "measured: {} {} events in {} ms ({} CPU ms)",
        row.label,
        row.events,
        row.wall.as_millis(),
        row.cpu_ms
    );
}

fn print_row(row: &Row) {
    println!(
        "{:<36} {:>8} {:>9} {:>10.0} {:>9} {:>12}",
        row.label,
        row.events,
        row.wall.as_millis(),
        row.events_per_sec(),
        row.cpu_ms,
        process::mib(row.peak_kib)
    );
    if !row.note.is_empty() {
        println!("    {}", row.note);
    }
}

/// `HOLDS` or `DOES NOT HOLD`.
pub(crate) fn verdict(holds: bool) -> &'static str {
    if holds {
        "HOLDS"
    } else {
        "DOES NOT HOLD"
    }
}

/// The whole table and the targets.
pub(crate) fn print(world: &World, f: &Figures) {
    println!();
    println!(
        "{:<36} {:>8} {:>9} {:>10} {:>9} {:>12}",
        "initial sync", "events", "wall ms", "events/s", "CPU ms", "peak RSS MiB"
    );
    for row in [&f.ours, &f.baseline, &f.grasp].into_iter().flatten() {
        print_row(row);
    }
    println!();
    println!("{:<66} {:>9}", "in-sync resync", "wall ms");
    if let Some(q) = &f.quick_restart {
        println!(
            "{:<66} {:>9}",
            "ours: restart within the window (cursors), spawn (store replay)",
            q.spawn.as_millis()
        );
        println!(
            "{:<66} {:>9}",
            "ours: restart within the window, startup sync of all 3 relays",
            q.restart_sync.as_millis()
        );
        let t = &q.totals;
        println!(
            "    catch-up: {} neg batches, {} REQ batches, {} pages, {} ids fetched, {} events stored",
            t.negentropy_batches, t.req_batches, t.pages_requested, t.ids_fetched, q.stored
        );
    }
    if let Some(r) = &f.resync {
        let ms = |d: Duration| d.as_millis();
        println!(
            "{:<66} {:>9}",
            "ours: restart over the full store, spawn (store replay)",
            ms(r.spawn)
        );
        println!(
            "{:<66} {:>9}",
            "ours: restart, startup sync of all 3 relays (nothing missing)",
            ms(r.restart_sync)
        );
        for (i, s) in world.sources.iter().enumerate() {
            if let Some(d) = r.daily_by_relay.get(&s.url) {
                let kind = if s.nip77 {
                    "NIP-77"
                } else {
                    "no NIP-77: REQ fallback"
                };
                println!(
                    "{:<66} {:>9}",
                    format!("ours: daily resync r{i} ({kind})"),
                    ms(*d)
                );
            }
        }
        println!(
            "{:<66} {:>9}",
            "ours: daily resync of the NIP-77 relays (first start to last end)",
            ms(r.daily_nip77)
        );
        let (b, a) = (&r.totals_before, &r.totals_after);
        println!(
            "    daily period {} ms; resync: {} neg batches, {} REQ batches, {} fallbacks, {} ids fetched, {} pages, {} events stored; peak RSS {} MiB",
            f.daily_ms,
            a.negentropy_batches - b.negentropy_batches,
            a.req_batches - b.req_batches,
            a.negentropy_fallbacks - b.negentropy_fallbacks,
            a.ids_fetched - b.ids_fetched,
            a.pages_requested - b.pages_requested,
            r.stored,
            process::mib(f.resync_peak_kib)
        );
    }
    if let Some(raw) = f.raw_negentropy {
        let filters: usize = world
            .sources
            .iter()
            .filter(|s| s.nip77)
            .map(|s| s.filters.len())
            .sum();
        println!(
            "{:<66} {:>9}",
            format!("raw negentropy in sync, NIP-77 relays ({filters} filters, dry-run)"),
            raw.as_millis()
        );
    }
    if let Some((d, pages)) = f.req_in_sync {
        println!(
            "{:<66} {:>9}",
            format!("baseline REQ pagination in sync, relay without NIP-77 ({pages} pages)"),
            d.as_millis()
        );
    }
    for (a, client) in [
        (&f.at_once, "same client"),
        (&f.at_once_fresh, "new client"),
    ] {
        let Some(a) = a else { continue };
        println!(
            "{:<66} {:>9}",
            format!("baseline at once ({client}): raw negentropy, NIP-77 relays"),
            a.negentropy.as_millis()
        );
        println!(
            "{:<66} {:>9}",
            format!(
                "baseline at once ({client}): REQ pagination ({} pages)",
                a.pages
            ),
            a.pagination.as_millis()
        );
    }
    print_targets(f);
}

/// Our initial sync's progress samples (status/pending batches/NIP-77 support per relay).
pub(crate) fn print_timeline(f: &Figures) {
    println!();
    println!("ours: initial sync (AcceptAll) progress");
    for line in &f.timeline {
        println!("  {line}");
    }
}

fn print_targets(f: &Figures) {
    println!();
    println!("targets");
    if let (Some(ours), Some(base)) = (&f.ours, &f.baseline) {
        let ratio = ours.events_per_sec() / base.events_per_sec();
        println!(
            "  initial sync throughput ours/baseline   {ratio:>6.2}   (target >= {THROUGHPUT_TARGET})  {}",
            verdict(ratio >= THROUGHPUT_TARGET)
        );
    }
    if let (Some(r), Some(raw)) = (&f.resync, f.raw_negentropy) {
        let ratio = r.daily_nip77.as_secs_f64() / raw.as_secs_f64().max(1e-9);
        println!(
            "  in-sync daily resync / raw negentropy   {ratio:>6.2}x  (target <= {RESYNC_TARGET}x) {}",
            verdict(ratio <= RESYNC_TARGET)
        );
        if let Some(a) = &f.at_once_fresh {
            let ratio = r.daily_nip77.as_secs_f64() / a.negentropy.as_secs_f64().max(1e-9);
            println!(
                "  in-sync daily resync / raw negentropy at once, new client {ratio:>5.2}x (for reference: alongside the pagination, as ours)"
            );
        }
    }
    print_issue12_targets(f);
    if let Some(q) = &f.quick_restart {
        let ms = q.restart_sync.as_millis();
        println!(
            "  restart within the window, startup sync {ms:>6} ms (target <= {QUICK_RESTART_TARGET_MS} ms) {}",
            verdict(ms <= QUICK_RESTART_TARGET_MS)
        );
    }
    let peak = [&f.ours, &f.baseline, &f.grasp]
        .into_iter()
        .flatten()
        .filter_map(|r| r.peak_kib)
        .chain(f.resync_peak_kib)
        .max();
    println!(
        "  peak RSS of the process (max over phases) {} MiB (includes the 3 source relays in process and touched LMDB pages)",
        process::mib(peak)
    );
    for failure in &f.failures {
        println!("  CHECK FAILED: {failure}");
    }
}

/// The initial sync's speed-up or CPU use, and the daily resync without NIP-77 (issue 12).
fn print_issue12_targets(f: &Figures) {
    if let (Some(ours), Some(base)) = (&f.ours, &f.baseline) {
        let ratio = ours.events_per_sec() / base.events_per_sec();
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let busy = ours.cpu_ms as f64 / (ours.wall.as_secs_f64() * 1000.0 * cores as f64);
        println!(
            "  initial sync: {ratio:.2}x the baseline, {:.0} % of {cores} cores busy (target >= {SPEEDUP_TARGET}x or >= {:.0} % busy; CPU is the whole process, source relays included) {}",
            busy * 100.0,
            BUSY_TARGET * 100.0,
            verdict(ratio >= SPEEDUP_TARGET || busy >= BUSY_TARGET)
        );
    }
    let Some(r) = &f.resync else {
        return;
    };
    let Some(ours) = r.daily_req else {
        return;
    };
    // Ours runs in a restarted process: the like-for-like baseline is the new client's.
    if let Some(a) = &f.at_once_fresh {
        let ratio = ours.as_secs_f64() / a.pagination.as_secs_f64().max(1e-9);
        println!(
            "  daily resync without NIP-77 / baseline pagination at once, new client {ratio:>5.2}x (target <= {DAILY_REQ_TARGET}x) {}",
            verdict(ratio <= DAILY_REQ_TARGET)
        );
    }
    if let Some(a) = &f.at_once {
        let ratio = ours.as_secs_f64() / a.pagination.as_secs_f64().max(1e-9);
        println!(
            "  daily resync without NIP-77 / baseline pagination at once, same client {ratio:>5.2}x (for reference: its verification cache skips every signature)"
        );
    }
    if let Some((alone, _)) = f.req_in_sync {
        let ratio = ours.as_secs_f64() / alone.as_secs_f64().max(1e-9);
        println!(
            "  daily resync without NIP-77 / baseline pagination alone   {ratio:>5.2}x (for reference: ours ran beside the NIP-77 resyncs)"
        );
    }
}
