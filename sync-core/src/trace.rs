//! Traces: the JSONL record of a run that lets any run be replayed exactly.
//!
//! Line 1 is a [`TraceHeader`] (format version, seed, config, start time and an optional
//! free-form scenario description); every further line is a [`TraceStep`]: the `now` and the
//! [`Input`] given to [`SyncCore::step`] and the commands it returned. The simulator writes this
//! format and the runtime records it, so a production trace replays in the simulator.
//!
//! [`replay`] feeds the inputs to a fresh core built from the header and reports the first step
//! whose commands differ from the recorded ones.

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::config::Config;
use crate::core::SyncCore;
use crate::input::Input;
use crate::time::Now;

/// The trace format version this crate writes and reads.
///
/// 2: `NegentropyResult` reports facts (`Refused`, `Timeout`, `Lagged`, `Error` instead of
/// `Unsupported`/`Failed`), `Input::SendFailed`, `Outcome::NotOffered`, `Command::Forget`
/// (a version-1 trace no longer replays identically: relays that leave the core now emit
/// `Forget`).
pub const TRACE_FORMAT: u32 = 2;

/// The first line of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Always [`TRACE_FORMAT`] when written by this crate.
    pub format: u32,
    /// The core's seed.
    pub seed: u64,
    /// The core's configuration.
    pub config: Config,
    /// The `now` the core was created with.
    pub start: Now,
    /// Who wrote the trace (`sync-sim`, `sync-runtime`), for humans.
    pub source: String,
    /// A free-form description of the scenario (the simulator stores its world parameters here
    /// so `sync-sim replay` / `shrink` can rebuild it). `null` when there is none.
    #[serde(default)]
    pub scenario: serde_json::Value,
}

impl TraceHeader {
    /// A header for a core built with `config`, `seed` and `start`.
    #[must_use]
    pub fn new(source: &str, seed: u64, config: Config, start: Now) -> Self {
        Self {
            format: TRACE_FORMAT,
            seed,
            config,
            start,
            source: source.to_string(),
            scenario: serde_json::Value::Null,
        }
    }
}

/// One `step` of the core: what went in and what came out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    /// The `now` passed to `step`.
    pub now: Now,
    /// The input.
    pub input: Input,
    /// The commands `step` returned, in order.
    pub commands: Vec<Command>,
}

/// A trace that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "trace line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for TraceError {}

/// One JSON line (no trailing newline) for any serialisable trace record.
///
/// # Errors
/// Only if a value cannot be represented in JSON (never for the types of this module).
pub fn to_line<T: Serialize>(record: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(record)
}

/// Parses a whole trace: the header line and every step line. Blank lines are skipped.
///
/// # Errors
/// A [`TraceError`] naming the first line that is not valid JSON of the expected shape, or a
/// header with an unknown format version.
pub fn parse(text: &str) -> Result<(TraceHeader, Vec<TraceStep>), TraceError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines.next().ok_or_else(|| TraceError {
        line: 1,
        message: "empty trace (no header line)".into(),
    })?;
    let header: TraceHeader = serde_json::from_str(first).map_err(|e| TraceError {
        line: 1,
        message: format!("bad header: {e}"),
    })?;
    if header.format != TRACE_FORMAT {
        return Err(TraceError {
            line: 1,
            message: format!(
                "trace format {} is not supported (this build reads {TRACE_FORMAT})",
                header.format
            ),
        });
    }
    let mut steps = Vec::new();
    for (index, line) in lines {
        let step: TraceStep = serde_json::from_str(line).map_err(|e| TraceError {
            line: index + 1,
            message: format!("bad step: {e}"),
        })?;
        steps.push(step);
    }
    Ok((header, steps))
}

/// What [`replay`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplayOutcome {
    /// Every step gave the recorded commands.
    Identical {
        /// How many steps were replayed.
        steps: usize,
    },
    /// Step `index` (0-based, among steps) gave different commands.
    Diverged {
        /// The step's index.
        index: usize,
        /// The step as recorded.
        recorded: Box<TraceStep>,
        /// The commands the fresh core returned.
        replayed: Vec<Command>,
    },
}

/// Feeds every recorded input to a fresh core built from `header` and compares the commands.
#[must_use]
pub fn replay(header: &TraceHeader, steps: &[TraceStep]) -> ReplayOutcome {
    let mut core = SyncCore::new(header.config.clone(), header.seed, header.start);
    for (index, step) in steps.iter().enumerate() {
        let replayed = core.step(step.now, step.input.clone());
        if replayed != step.commands {
            return ReplayOutcome::Diverged {
                index,
                recorded: Box::new(step.clone()),
                replayed,
            };
        }
    }
    ReplayOutcome::Identical { steps: steps.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded_run() -> (TraceHeader, Vec<TraceStep>) {
        let config = Config {
            own_relay_urls: vec!["wss://our.relay".into()],
            bootstrap_relays: vec!["wss://other.relay".into()],
            ..Config::default()
        };
        let start = Now::at(0, 1_700_000_000);
        let header = TraceHeader::new("test", 7, config.clone(), start);
        let mut core = SyncCore::new(config, 7, start);
        let mut steps = Vec::new();
        let mut now = start;
        for _ in 0..3 {
            if let Some(d) = core.next_deadline() {
                now = Now::at(d.at.0, 1_700_000_000 + d.at.0 / 1000);
            }
            let commands = core.step(now, Input::Tick);
            steps.push(TraceStep {
                now,
                input: Input::Tick,
                commands,
            });
        }
        (header, steps)
    }

    #[test]
    fn a_written_trace_parses_and_replays_identically() {
        let (header, steps) = recorded_run();
        assert!(
            steps.iter().any(|s| !s.commands.is_empty()),
            "the run must do something for the comparison to mean anything"
        );
        let mut text = to_line(&header).unwrap();
        for s in &steps {
            text.push('\n');
            text.push_str(&to_line(s).unwrap());
        }
        let (h2, s2) = parse(&text).unwrap();
        assert_eq!(h2, header);
        assert_eq!(s2, steps);
        assert_eq!(replay(&h2, &s2), ReplayOutcome::Identical { steps: 3 });
    }

    #[test]
    fn a_tampered_step_is_reported_as_the_divergence() {
        let (header, mut steps) = recorded_run();
        let index = steps.iter().position(|s| !s.commands.is_empty()).unwrap();
        steps[index].commands.clear();
        match replay(&header, &steps) {
            ReplayOutcome::Diverged { index: i, .. } => assert_eq!(i, index),
            other => panic!("expected a divergence, got {other:?}"),
        }
    }

    #[test]
    fn bad_lines_name_their_line_number() {
        let (header, _) = recorded_run();
        let text = format!("{}\n{{\"now\": 1}}\n", to_line(&header).unwrap());
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(parse("").unwrap_err().message.contains("empty"));
        let wrong = to_line(&TraceHeader {
            format: 99,
            ..header
        })
        .unwrap();
        assert!(parse(&wrong).unwrap_err().message.contains("format 99"));
    }
}
