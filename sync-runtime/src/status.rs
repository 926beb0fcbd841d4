//! The status snapshot a host shows on its status page: per relay, the core's
//! `RelaySnapshot`, plus the engine's totals. Published by the driver through a watch channel.

use serde::Serialize;
use sync_core::{RelaySnapshot, Stats, SyncCore};

/// Everything `SyncHandle::status` returns (JSON-serialisable).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RuntimeStatus {
    /// The seed of this run (replay a trace or reproduce jitter with it).
    pub seed: u64,
    /// Every tracked relay, in URL order.
    pub relays: Vec<RelaySnapshot>,
    /// Engine-wide counters and gauges.
    pub totals: Stats,
    /// Trace steps written so far (0 without a trace file).
    pub trace_steps: u64,
    /// `false` once the runtime has shut down.
    pub running: bool,
}

impl RuntimeStatus {
    /// The snapshot of `core` now.
    pub(crate) fn of(core: &SyncCore, trace_steps: u64) -> Self {
        Self {
            seed: core.seed(),
            relays: core.relay_status().map(|r| r.snapshot()).collect(),
            totals: core.stats().clone(),
            trace_steps,
            running: true,
        }
    }

    /// The snapshot of one relay, by its canonical URL text.
    #[must_use]
    pub fn relay(&self, url: &str) -> Option<&RelaySnapshot> {
        let canonical = sync_core::RelayUrl::parse(url)?;
        self.relays.iter().find(|r| r.url == canonical)
    }
}
