//! One run: build the world of a scenario, drive the core through both phases, check the
//! final invariants, and report (with the trace, if recorded).

use std::io::Write;

use sync_core::trace::{to_line, TraceHeader, TraceStep};
use sync_core::Now;

use crate::invariants::Violation;
use crate::oracle::check_final;
use crate::scenario::{Scenario, WALL0};
use crate::world::World;

/// What one run did.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario's seed.
    pub seed: u64,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
    /// Inputs fed to the core.
    pub steps: u64,
    /// Virtual time simulated (ms).
    pub virtual_ms: u64,
    /// Events the host newly saved from sync (the core's count).
    pub events_synced: u64,
    /// Events stored locally at the end.
    pub events_local: usize,
    /// Faults applied.
    pub faults: u64,
    /// Relays in the world.
    pub relays: usize,
    /// The trace header (always) and steps (if recorded).
    pub header: TraceHeader,
    /// Recorded steps.
    pub trace: Option<Vec<TraceStep>>,
}

impl Report {
    /// One summary line.
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "seed {}: {} — {:.1} h virtual, {} steps, {} relays, {} events synced ({} stored), {} faults",
            self.seed,
            self.violation
                .as_ref()
                .map_or_else(|| "ok".to_string(), |v| format!("FAILED {}", v.invariant)),
            self.virtual_ms as f64 / 3_600_000.0,
            self.steps,
            self.relays,
            self.events_synced,
            self.events_local,
            self.faults
        )
    }
}

/// The trace header of a scenario (the scenario itself goes into `scenario`).
#[must_use]
pub fn header(scenario: &Scenario) -> TraceHeader {
    let mut h = TraceHeader::new(
        "sync-sim",
        scenario.seed,
        scenario.config.clone(),
        Now::at(0, WALL0),
    );
    h.scenario = serde_json::to_value(scenario).expect("scenarios serialise");
    h
}

/// Runs `scenario` and returns the world at the end (for tests that inspect the core) with
/// the first violation, if any.
pub fn run_world(scenario: &Scenario, record: bool) -> (World, Result<(), Violation>) {
    let mut world = World::new(scenario, record);
    let result = world
        .start(&scenario.local)
        .and_then(|()| world.run())
        .and_then(|()| check_final(&world));
    (world, result)
}

/// Runs `scenario` recording its trace and returns the world at the end; panics on the first
/// violation, after writing the scenario to the temporary directory (`regression-SEED.json`,
/// for `sync-sim run --scenario` and `sync-sim shrink`). For tests.
///
/// # Panics
/// On any violation.
#[must_use]
pub fn run_or_panic(scenario: &Scenario) -> World {
    let (world, result) = run_world(scenario, true);
    if let Err(v) = result {
        let path = std::env::temp_dir().join(format!("regression-{}.json", scenario.seed));
        let written = serde_json::to_string_pretty(scenario)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(&path, json).map_err(|e| e.to_string()));
        match written {
            Ok(()) => panic!("{v}\n  scenario written to {}", path.display()),
            Err(e) => panic!("{v}\n  (scenario not written: {e})"),
        }
    }
    world
}

/// Runs `scenario`; records the trace if `record`.
#[must_use]
pub fn run(scenario: &Scenario, record: bool) -> Report {
    let (mut world, result) = run_world(scenario, record);
    Report {
        seed: scenario.seed,
        violation: result.err(),
        steps: world.counts.steps,
        virtual_ms: world.mono_ms,
        events_synced: world.core.stats().events_saved,
        events_local: world.host.store.len(),
        faults: world.counts.faults,
        relays: world.relays.len(),
        header: header(scenario),
        trace: world.trace.take(),
    }
}

/// Writes a trace as JSONL (header line, then one line per step).
///
/// # Errors
/// IO errors.
pub fn write_trace(
    out: &mut impl Write,
    header: &TraceHeader,
    steps: &[TraceStep],
) -> std::io::Result<()> {
    writeln!(out, "{}", to_line(header).map_err(std::io::Error::other)?)?;
    for s in steps {
        writeln!(out, "{}", to_line(s).map_err(std::io::Error::other)?)?;
    }
    Ok(())
}
