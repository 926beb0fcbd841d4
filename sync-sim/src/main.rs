//! `sync-sim`: run, sweep, replay and shrink deterministic simulations of the sync engine.
//!
//! ```text
//! sync-sim run --seed 7 [--trace t.jsonl]      one run; non-zero exit on a violation
//! sync-sim run --scenario s.json               a written-out (e.g. shrunk) scenario
//! sync-sim sweep --seeds 0..300 [--check-determinism] [--jobs 2]
//! sync-sim replay t.jsonl                      feed recorded inputs to a fresh core
//! sync-sim shrink t.jsonl|s.json [--out f]     reduce a failing scenario
//! sync-sim bench [--tiny]                      wire accounting per scenario vs the floor
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::{Parser, Subcommand};
use sync_core::trace::{self, ReplayOutcome};
use sync_sim::run::{run, write_trace, Report};
use sync_sim::scenario::Scenario;
use sync_sim::shrink::shrink;

#[derive(Parser)]
#[command(
    name = "sync-sim",
    about = "Deterministic simulation of the GRASP sync engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One run: prints a summary; exits non-zero on any violation.
    Run {
        /// The seed to draw the scenario from.
        #[arg(long, conflicts_with = "scenario")]
        seed: Option<u64>,
        /// A scenario JSON file (e.g. from `shrink` or tests/regressions/) instead of a seed.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Write the JSONL trace here.
        #[arg(long)]
        trace: Option<PathBuf>,
    },
    /// Many seeds; the last line is `N passed, M failed`.
    Sweep {
        /// A range `A..B` (B exclusive).
        #[arg(long)]
        seeds: String,
        /// Run every seed twice and require identical traces.
        #[arg(long)]
        check_determinism: bool,
        /// Worker threads.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
    },
    /// Replays a trace: `replay: identical (K steps)` or the first divergence.
    Replay {
        /// The trace (from `run --trace` or the runtime's recorder).
        file: PathBuf,
    },
    /// Reduces a failing scenario keeping the same failing invariant.
    Shrink {
        /// A trace with a scenario header, or a scenario JSON file.
        file: PathBuf,
        /// Where to write the shrunk scenario (default: FILE.shrunk.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Wire bytes, messages and round trips per scenario against the floor; exits non-zero
    /// only when events go missing, never on a missed target.
    Bench {
        /// Small worlds (CI smoke run).
        #[arg(long)]
        tiny: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Run {
            seed,
            scenario,
            trace,
        } => cmd_run(seed, scenario.as_deref(), trace.as_deref()),
        Cmd::Sweep {
            seeds,
            check_determinism,
            jobs,
        } => cmd_sweep(&seeds, check_determinism, jobs),
        Cmd::Replay { file } => cmd_replay(&file),
        Cmd::Shrink { file, out } => cmd_shrink(&file, out),
        Cmd::Bench { tiny } => Ok(cmd_bench(tiny)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sync-sim: {e}");
            ExitCode::from(2)
        }
    }
}

/// Loads a scenario from a scenario JSON file or from a trace header.
fn load_scenario(path: &Path) -> Result<Scenario, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Ok(s) = serde_json::from_str::<Scenario>(&text) {
        return Ok(s);
    }
    let (header, _) = trace::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if header.scenario.is_null() {
        return Err(format!(
            "{}: the trace has no scenario (recorded by {}); only `replay` applies",
            path.display(),
            header.source
        ));
    }
    serde_json::from_value(header.scenario).map_err(|e| format!("bad scenario in header: {e}"))
}

fn print_failure(report: &Report, repro: &str) {
    if let Some(v) = &report.violation {
        println!("FAILED seed {}: {v}", report.seed);
        println!("  reproduce: {repro}");
    }
}

fn cmd_run(
    seed: Option<u64>,
    file: Option<&Path>,
    trace_out: Option<&Path>,
) -> Result<bool, String> {
    let (scenario, repro) = match (seed, file) {
        (Some(seed), _) => (
            Scenario::generate(seed),
            format!("sync-sim run --seed {seed} --trace t.jsonl"),
        ),
        (None, Some(f)) => (
            load_scenario(f)?,
            format!("sync-sim run --scenario {}", f.display()),
        ),
        (None, None) => return Err("give --seed N or --scenario FILE".into()),
    };
    let started = Instant::now();
    let report = run(&scenario, trace_out.is_some());
    println!(
        "{} ({} ms wall)",
        report.summary(),
        started.elapsed().as_millis()
    );
    if let (Some(path), Some(steps)) = (trace_out, &report.trace) {
        let mut f = std::io::BufWriter::new(
            fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        write_trace(&mut f, &report.header, steps).map_err(|e| e.to_string())?;
        println!("trace: {} ({} steps)", path.display(), steps.len());
    }
    print_failure(&report, &repro);
    Ok(report.violation.is_none())
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("seeds must be A..B, got {s:?}"))?;
    let a: u64 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if b <= a {
        return Err(format!("empty range {s}"));
    }
    Ok((a, b))
}

/// One seed of a sweep: its report, and whether a second run gave a different trace.
/// What a sweep keeps of one seed's run: its figures, not the [`Report`] (whose header holds
/// the whole scenario: kept for 10 000 seeds, that was several GB).
struct SweepResult {
    /// The run's report without its header and trace.
    report: Report,
    /// Two runs gave different traces.
    nondeterministic: bool,
}

fn sweep_one(seed: u64, determinism: bool) -> SweepResult {
    let scenario = Scenario::generate(seed);
    let mut first = run(&scenario, determinism);
    let nondeterministic = determinism && first.trace != run(&scenario, true).trace;
    first.trace = None;
    first.header.scenario = serde_json::Value::Null;
    SweepResult {
        report: first,
        nondeterministic,
    }
}

fn cmd_sweep(seeds: &str, determinism: bool, jobs: usize) -> Result<bool, String> {
    let (a, b) = parse_range(seeds)?;
    let started = Instant::now();
    let next = AtomicU64::new(a);
    let results: Mutex<Vec<SweepResult>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= b {
                    break;
                }
                let r = sweep_one(seed, determinism);
                results
                    .lock()
                    .expect("no worker panics holding the lock")
                    .push(r);
            });
        }
    });
    let mut results = results.into_inner().map_err(|e| e.to_string())?;
    results.sort_by_key(|r| r.report.seed);
    let (mut passed, mut failed) = (0u64, 0u64);
    let (mut virtual_ms, mut events, mut faults, mut steps) = (0u64, 0u64, 0u64, 0u64);
    for SweepResult {
        report: r,
        nondeterministic,
    } in &results
    {
        virtual_ms += r.virtual_ms;
        events += r.events_synced;
        faults += r.faults;
        steps += r.steps;
        if r.violation.is_some() || *nondeterministic {
            failed += 1;
            if *nondeterministic {
                println!("FAILED seed {}: two runs gave different traces", r.seed);
                println!(
                    "  reproduce: sync-sim sweep --seeds {}..{} --check-determinism",
                    r.seed,
                    r.seed + 1
                );
            }
            print_failure(
                r,
                &format!("sync-sim run --seed {} --trace t.jsonl", r.seed),
            );
        } else {
            passed += 1;
        }
    }
    println!(
        "sweep {seeds}: {:.1} days virtual, {steps} steps, {events} events synced, {faults} faults, {:.1} s wall{}",
        virtual_ms as f64 / 86_400_000.0,
        started.elapsed().as_secs_f64(),
        if determinism { ", determinism checked" } else { "" }
    );
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

fn cmd_replay(path: &Path) -> Result<bool, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (header, steps) = trace::parse(&text).map_err(|e| e.to_string())?;
    match trace::replay(&header, &steps) {
        ReplayOutcome::Identical { steps: k } => {
            if !header.scenario.is_null() {
                let scenario: Scenario = serde_json::from_value(header.scenario.clone())
                    .map_err(|e| format!("bad scenario in header: {e}"))?;
                let rerun = run(&scenario, true);
                if rerun.trace.as_deref() != Some(&steps[..]) {
                    let at = rerun
                        .trace
                        .unwrap_or_default()
                        .iter()
                        .zip(&steps)
                        .position(|(a, b)| a != b)
                        .unwrap_or(k.min(steps.len()));
                    println!("replay: the core replays identically, but re-running the scenario diverges at step {at} (the world changed)");
                    return Ok(false);
                }
            }
            println!("replay: identical ({k} steps)");
            Ok(true)
        }
        ReplayOutcome::Diverged {
            index,
            recorded,
            replayed,
        } => {
            println!("replay: diverged at step {index} (line {})", index + 2);
            println!("  now:      {:?}", recorded.now);
            println!(
                "  input:    {}",
                serde_json::to_string(&recorded.input).unwrap_or_default()
            );
            println!(
                "  recorded: {}",
                serde_json::to_string(&recorded.commands).unwrap_or_default()
            );
            println!(
                "  replayed: {}",
                serde_json::to_string(&replayed).unwrap_or_default()
            );
            Ok(false)
        }
    }
}

fn cmd_shrink(path: &Path, out: Option<PathBuf>) -> Result<bool, String> {
    let scenario = load_scenario(path)?;
    let Some(outcome) = shrink(&scenario, |line| println!("{line}")) else {
        println!("shrink: the scenario does not fail; nothing to shrink");
        return Ok(false);
    };
    let out = out.unwrap_or_else(|| path.with_extension("shrunk.json"));
    let text = serde_json::to_string_pretty(&outcome.scenario).map_err(|e| e.to_string())?;
    fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "shrink: `{}` still fails with {} faults, {} relays, {} events, {:.1} h safety; wrote {}",
        outcome.invariant,
        outcome.scenario.faults.len(),
        outcome.scenario.relays.len(),
        outcome.scenario.initial.len(),
        outcome.scenario.safety_ms as f64 / 3_600_000.0,
        out.display()
    );
    Ok(true)
}

fn cmd_bench(tiny: bool) -> bool {
    let scale = if tiny {
        sync_sim::bench::Scale::TINY
    } else {
        sync_sim::bench::Scale::FULL
    };
    let started = Instant::now();
    let rows = sync_sim::bench::all(scale);
    println!("sync-sim bench ({scale:?}); bytes are nostr JSON (`as_json`) lengths");
    print!("{}", sync_sim::bench::table(&rows));
    if let Some(initial) = rows.iter().find(|r| r.name.starts_with("3 ")) {
        print!("{}", sync_sim::bench::breakdown(initial));
    }
    let live = if tiny {
        sync_sim::bench_live::LiveScale::TINY
    } else {
        sync_sim::bench_live::LiveScale::FULL
    };
    let (text, live_holds, live_failure) = sync_sim::bench_live::report(live);
    print!("{text}");
    let mut ok = true;
    if let Some(f) = live_failure {
        println!("CORRECTNESS FAILURE in 5 live beyond the budget: {f}");
        ok = false;
    }
    for r in &rows {
        if let Some(f) = &r.failure {
            println!("CORRECTNESS FAILURE in {}: {f}", r.name);
            ok = false;
        }
    }
    println!(
        "{} of {} targets hold; {:.1} s wall",
        rows.iter().filter(|r| r.verdict.is_ok()).count() + usize::from(live_holds),
        rows.len() + 1,
        started.elapsed().as_secs_f64()
    );
    ok
}
