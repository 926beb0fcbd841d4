//! The trace recorder: every `step` of the core as one JSONL line in the shared
//! `sync_core::trace` format (header with seed, config and start time, then `(now, input,
//! commands)`), so a production run replays in the simulator (`sync-sim replay`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sync_core::trace::{to_line, TraceHeader, TraceStep};
use sync_core::{Command, Config, Input, Now};

use crate::error::RuntimeError;

/// Writes a trace file. A write error is logged once and stops recording (the sync keeps
/// running: a full disk must not stop the relay).
#[derive(Debug)]
pub(crate) struct Recorder {
    /// The file being written.
    path: PathBuf,
    /// `None` after a write error.
    out: Option<BufWriter<File>>,
    /// Steps written so far.
    steps_written: u64,
}

impl Recorder {
    /// Creates (truncates) `path` and writes the header line.
    pub(crate) fn create(
        path: &Path,
        seed: u64,
        config: &Config,
        start: Now,
    ) -> Result<Self, RuntimeError> {
        let io = |source| RuntimeError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut out = BufWriter::new(File::create(path).map_err(io)?);
        let header = TraceHeader::new("sync-runtime", seed, config.clone(), start);
        let line = to_line(&header).map_err(|e| io(std::io::Error::other(e)))?;
        writeln!(out, "{line}").map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            out: Some(out),
            steps_written: 0,
        })
    }

    /// Appends one step.
    pub(crate) fn record(&mut self, now: Now, input: &Input, commands: &[Command]) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let step = TraceStep {
            now,
            input: input.clone(),
            commands: commands.to_vec(),
        };
        let result = to_line(&step)
            .map_err(std::io::Error::other)
            .and_then(|line| writeln!(out, "{line}"));
        match result {
            Ok(()) => self.steps_written += 1,
            Err(e) => self.fail(&e),
        }
    }

    /// Flushes buffered lines to the file.
    pub(crate) fn flush(&mut self) {
        if let Some(Err(e)) = self.out.as_mut().map(Write::flush) {
            self.fail(&e);
        }
    }

    /// Steps written so far.
    pub(crate) fn steps_written(&self) -> u64 {
        self.steps_written
    }

    fn fail(&mut self, e: &std::io::Error) {
        tracing::error!(path = %self.path.display(), error = %e, "trace recording stopped");
        self.out = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::trace::{parse, replay, ReplayOutcome};
    use sync_core::SyncCore;

    #[test]
    fn a_recorded_run_parses_and_replays() {
        let dir = std::env::temp_dir().join(format!("rec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.jsonl");
        let config = Config {
            own_relay_urls: vec!["wss://our.relay".into()],
            bootstrap_relays: vec!["wss://other.relay".into()],
            startup_jitter_ms: 0,
            ..Config::default()
        };
        let start = Now::at(0, 1_700_000_000);
        let mut rec = Recorder::create(&path, 9, &config, start).unwrap();
        let mut core = SyncCore::new(config, 9, start);
        let now = start.plus_ms(10);
        let commands = core.step(now, Input::Tick);
        assert!(!commands.is_empty(), "the bootstrap relay must be dialled");
        rec.record(now, &Input::Tick, &commands);
        rec.flush();
        assert_eq!(rec.steps_written(), 1);
        let (header, steps) = parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(header.seed, 9);
        assert_eq!(
            replay(&header, &steps),
            ReplayOutcome::Identical { steps: 1 }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
