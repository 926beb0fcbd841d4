//! The status snapshot a host shows on its status page: per relay, the core's
//! `RelaySnapshot`, plus the engine's totals. Published by the driver through a watch channel.

use serde::Serialize;
use sync_core::{RelaySnapshot, Stats, SyncCore};

/// Everything `SyncHandle::status` returns (JSON-serialisable).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RuntimeStatus {
    /// The seed of this run (replay a trace or reproduce jitter with it).
    pub seed: u64,
    /// The public key this relay answers NIP-42 AUTH challenges with (docs/spec.md §14): the
    /// key a source relay's operator allows. Relays that refuse it anyway show
    /// `last_failure: "Auth"`.
    pub auth_key: crate::relay_key::RelayIdentity,
    /// Every tracked relay, in URL order.
    pub relays: Vec<RelaySnapshot>,
    /// Engine-wide counters and gauges.
    pub totals: Stats,
    /// The most recently refused relay URLs from events (at most
    /// [`sync_core::RECENT_REFUSALS`]), in URL order; counts by reason are in
    /// `totals.targets_refused` (docs/spec.md §13).
    pub refused_relays: Vec<RefusedRelay>,
    /// Trace steps written so far (0 without a trace file).
    pub trace_steps: u64,
    /// `false` once the runtime has shut down.
    pub running: bool,
}

/// A relay URL from an event that the open-network rules refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefusedRelay {
    /// The URL as canonicalised (or the first 64 characters of one too long to keep).
    pub url: String,
    /// The metric label of the reason (`non_global_address`, `resolves_non_global`,
    /// `url_too_long`, `tracked_relays_cap`).
    pub reason: String,
    /// The address class for address refusals (`loopback`, `private`, …).
    pub address: Option<String>,
}

impl RefusedRelay {
    fn new(url: &str, refusal: sync_core::Refusal) -> Self {
        let address = match refusal {
            sync_core::Refusal::NonGlobalAddress(c) | sync_core::Refusal::ResolvesNonGlobal(c) => {
                Some(c.label().to_string())
            }
            sync_core::Refusal::UrlTooLong | sync_core::Refusal::TrackedRelaysCap => None,
        };
        Self {
            url: url.to_string(),
            reason: refusal.label().to_string(),
            address,
        }
    }
}

impl RuntimeStatus {
    /// The snapshot of `core` now.
    pub(crate) fn of(
        core: &SyncCore,
        trace_steps: u64,
        auth_key: &crate::relay_key::RelayIdentity,
    ) -> Self {
        Self {
            seed: core.seed(),
            auth_key: auth_key.clone(),
            relays: core.relay_status().map(|r| r.snapshot()).collect(),
            totals: core.stats().clone(),
            refused_relays: core
                .refused_targets()
                .map(|(url, refusal)| RefusedRelay::new(url, refusal))
                .collect(),
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
