//! Planner benchmark (issue 6, deliverable 1): the CPU and memory cost of sync-core's planning
//! at 10 000 repositories / 100 000 root events over 100 and 500 relays, side by side with a
//! faithful model of the public implementation's algorithm run on the same data in the same
//! process. Prints a table of figures, ratios and whether each target holds.
//!
//! ```text
//! cargo bench -p sync-core --bench planner              # full run (release)
//! cargo bench -p sync-core --bench planner -- --tiny    # every case once, small scale
//! cargo test  -p sync-core --bench planner -- --tiny    # the same in the debug profile (CI)
//! ```
//! `PLANNER_TINY=1` does the same as `--tiny`; `PLANNER_RUNS=0,2` runs only those runs of the list. Not a test: it prints figures and never fails on
//! a slow machine; it exits non-zero only if the engine did not reach steady state.

mod anchor;
mod cases;
mod drive;
mod measure;
mod workload;

use cases::{Figure, Report};
use workload::{Shape, Workload};

/// Target: a discovery batch at least this many times faster than the anchor's (issue 12;
/// the first release's target was 50).
const DISCOVERY_SPEEDUP_TARGET: f64 = 100.0;
/// Target: CPU for all 100 relays reconnecting at once.
const RECONNECT_100_TARGET_MS: f64 = 100.0;
/// Target: bytes per (relay, item) pair.
const BYTES_PER_PAIR_TARGET: f64 = 64.0;

/// One run of the benchmark.
struct Run {
    shape: Shape,
    reps: usize,
    /// Whether the target rows are printed for this run.
    headline: bool,
}

fn runs(tiny: bool) -> Vec<Run> {
    let shape = |repos, roots, relays, per| Shape {
        repos,
        roots,
        relays,
        relays_per_repo: per,
    };
    if tiny {
        return vec![Run {
            shape: shape(100, 1_000, 10, 3),
            reps: 1,
            headline: true,
        }];
    }
    vec![
        Run {
            shape: shape(100, 1_000, 100, 3),
            reps: 5,
            headline: false,
        },
        Run {
            shape: shape(1_000, 10_000, 100, 3),
            reps: 5,
            headline: false,
        },
        Run {
            shape: shape(10_000, 100_000, 100, 3),
            reps: 5,
            headline: true,
        },
        Run {
            shape: shape(10_000, 100_000, 500, 4),
            reps: 5,
            headline: true,
        },
    ]
}

fn run(r: &Run, seed: u64) -> Report {
    let mut report = Report::default();
    let w = Workload::generate(r.shape, seed);
    eprintln!(
        "generated {} repos / {} roots / {} relays (busiest relay wants {} items)",
        r.shape.repos,
        r.shape.roots,
        r.shape.relays,
        w.busiest_relay_items()
    );
    let mut s = cases::setup(w, seed, &mut report);
    // `PLANNER_DISCOVERY_REPS=200` repeats the discovery case (to profile it).
    let reps = std::env::var("PLANNER_DISCOVERY_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(r.reps);
    let fig = cases::discovery_batch(&mut s, 10, 100, reps);
    report.figures.push(fig);
    report.figures.push(cases::one_root(&mut s, r.reps));
    report.figures.push(cases::one_delivery(&mut s, 1_000));
    report.figures.extend(cases::daily_resync(&mut s));
    // `PLANNER_RECONNECT_REPS=20` repeats the reconnect case (to profile it; the last counts).
    let reconnects = std::env::var("PLANNER_RECONNECT_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize);
    let mut storm = Vec::new();
    for _ in 0..reconnects.max(1) {
        storm = cases::reconnect_storm(&mut s);
    }
    report.figures.extend(storm);
    report
}

fn ratio(f: &Figure) -> Option<f64> {
    f.anchor
        .map(|a| a.cpu_ns as f64 / (f.ours.cpu_ns.max(1)) as f64)
}

fn print_report(r: &Run, rep: &Report) {
    let s = r.shape;
    println!();
    println!(
        "## {} repos, {} root events, {} relays ({} per repo); {} (relay, item) pairs",
        s.repos, s.roots, s.relays, s.relays_per_repo, rep.pairs
    );
    println!(
        "relays tracked {}, Connected {}; live filters over budget (all relays) {}",
        rep.relays, rep.connected, rep.live_over_budget
    );
    println!();
    println!("| case | ours CPU ms | ours allocs | anchor CPU ms | anchor / ours | notes |");
    println!("|---|---:|---:|---:|---:|---|");
    for f in &rep.figures {
        let (a, x) = match (f.anchor, ratio(f)) {
            (Some(a), Some(x)) => (format!("{:.3}", a.ms()), format!("{x:.1}x")),
            _ => ("n/a".into(), "n/a".into()),
        };
        println!(
            "| {} | {:.3} | {} | {} | {} | {} |",
            f.name,
            f.ours.ms(),
            f.ours.allocs,
            a,
            x,
            f.note
        );
    }
    println!(
        "| memory, bytes per (relay, item) pair | {:.1} B | | {:.1} B | {:.1}x | counting allocator, live bytes at steady state / pairs |",
        rep.ours_bytes_per_pair,
        rep.anchor_bytes_per_pair,
        rep.anchor_bytes_per_pair / rep.ours_bytes_per_pair.max(1e-9)
    );
    if r.headline {
        print_targets(r, rep);
    }
}

fn print_targets(r: &Run, rep: &Report) {
    let find = |prefix: &str| rep.figures.iter().find(|f| f.name.starts_with(prefix));
    println!();
    println!("| target | measured | holds |");
    println!("|---|---:|---|");
    if let Some(x) = find("discovery batch").and_then(ratio) {
        let ok = x >= DISCOVERY_SPEEDUP_TARGET;
        println!(
            "| discovery batch >= {DISCOVERY_SPEEDUP_TARGET}x faster than the anchor | {x:.1}x | {} |",
            yes(ok)
        );
    }
    if let Some(f) = rep
        .figures
        .iter()
        .find(|f| f.name.starts_with("reconnect") && f.name.ends_with("total CPU"))
    {
        let scaled = f.ours.ms() * 100.0 / rep.connected.max(1) as f64;
        println!(
            "| reconnect of 100 relays <= {RECONNECT_100_TARGET_MS} ms CPU (total, scaled to 100 relays; {} relays here) | {scaled:.1} ms | {} |",
            rep.connected,
            yes(scaled <= RECONNECT_100_TARGET_MS)
        );
    }
    println!(
        "| <= {BYTES_PER_PAIR_TARGET} bytes per (relay, item) pair | {:.1} B | {} |",
        rep.ours_bytes_per_pair,
        yes(rep.ours_bytes_per_pair <= BYTES_PER_PAIR_TARGET)
    );
    let _ = r;
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "NO"
    }
}

fn main() {
    let tiny = std::env::args().any(|a| a == "--tiny")
        || std::env::var("PLANNER_TINY").is_ok_and(|v| v == "1");
    let seed = 0x5EED_0006;
    println!(
        "# sync-core planner benchmark{}",
        if tiny { " (tiny)" } else { "" }
    );
    println!("seed {seed:#x}; CPU = thread CPU time; allocs = allocator calls; medians of repeated cases");
    // `PLANNER_RUNS=2,3` runs only those runs (0-based) of the full list.
    let only: Option<Vec<usize>> = std::env::var("PLANNER_RUNS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let mut steady = true;
    for (i, r) in runs(tiny).into_iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        let rep = run(&r, seed);
        steady &= rep.connected == rep.relays;
        print_report(&r, &rep);
    }
    if !steady {
        eprintln!("error: some relay did not reach Connected; figures are not of a steady state");
        std::process::exit(1);
    }
}
