//! Counters and gauges of the whole engine, read by the shell after each step (metrics are
//! observations, not commands). Gauges are derived from state when the step ends.

use serde::{Deserialize, Serialize};

use crate::historic::batch::Origin;
use crate::rejected::RejectedStats;

/// Events newly saved, by the path that found them (`ngit_sync_events_total{source}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounts {
    /// Live subscriptions.
    pub live: u64,
    /// Initial sync and discovery batches.
    pub startup: u64,
    /// Quick-reconnect, live-repair and lag catch-up.
    pub reconnect: u64,
    /// Daily resync.
    pub daily: u64,
    /// Polls of items the subscription budget leaves without live coverage.
    #[serde(default)]
    pub poll: u64,
}

impl SourceCounts {
    /// Counts one event found by a batch of `origin` (`None`: a live subscription).
    pub(crate) fn add(&mut self, origin: Option<Origin>) {
        match origin {
            None => self.live += 1,
            Some(Origin::Initial | Origin::Discovery) => self.startup += 1,
            Some(Origin::Reconnect | Origin::Lag) => self.reconnect += 1,
            Some(Origin::Daily) => self.daily += 1,
            Some(Origin::Poll) => self.poll += 1,
        }
    }
}

/// Engine-wide statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Inputs processed.
    pub steps: u64,
    /// Events delivered on our subscriptions (any outcome).
    pub events_delivered: u64,
    /// Events the host newly saved from sync (`ngit_sync_events_synced_total`).
    pub events_saved: u64,
    /// Newly saved events by source.
    pub saved_by_source: SourceCounts,
    /// Events first found by catch-up or daily resync although live sync was on.
    pub gap_events: u64,
    /// Deliveries that did not match their subscription's filters (ignored for completeness).
    pub events_out_of_filter: u64,
    /// EVENT/EOSE/CLOSED/negentropy results for subscriptions that are not open (late traffic).
    pub late_messages: u64,
    /// Relay inputs that made no sense in the relay's status (e.g. `Connected` twice).
    pub ignored_inputs: u64,
    /// Relay URLs in announcements or config that could not be used.
    pub invalid_relay_urls: u64,
    /// Relay URLs dropped because an announcement listed more than the cap.
    pub relay_urls_truncated: u64,
    /// Relay URLs from events refused by the open-network rules, by reason.
    #[serde(default)]
    pub targets_refused: crate::targets::RefusalCounts,
    /// Historic REQ pages requested (a REQ carrying several filters' first pages counts each).
    pub pages_requested: u64,
    /// REQs that carried the first pages of several filters (docs/spec.md §7.4).
    #[serde(default)]
    pub page_reqs_grouped: u64,
    /// Of those, REQs that brought too many events to be judged filter by filter (the relay
    /// may have capped the REQ as a whole): their filters continued alone.
    #[serde(default)]
    pub page_groups_untrusted: u64,
    /// Same-second bursts larger than a page on a single-value filter (stepped past).
    pub same_second_overflows: u64,
    /// Filters that hit the page cap.
    pub page_caps_hit: u64,
    /// Probe pages sent after a short page to learn a relay's unannounced result cap
    /// (docs/spec.md §7.4).
    #[serde(default)]
    pub page_probes: u64,
    /// Relays whose unannounced result cap was learned (a probe found more events behind a
    /// short page).
    #[serde(default)]
    pub page_sizes_learned: u64,
    /// Batches started with negentropy.
    pub negentropy_batches: u64,
    /// Batches started with REQ+EOSE.
    pub req_batches: u64,
    /// Negentropy batches that fell back to REQ+EOSE.
    pub negentropy_fallbacks: u64,
    /// Negentropy reconciliations (or batch deadlines in the diff stage) without an answer in
    /// time.
    pub negentropy_timeouts: u64,
    /// Negentropy reconciliations run again because the shell lagged during them.
    pub negentropy_reruns: u64,
    /// Ids fetched after negentropy diffs.
    pub ids_fetched: u64,
    /// Batches confirmed complete.
    pub batches_confirmed: u64,
    /// Batches resolved as failed with their attempts used up (the relay then shows
    /// `ConnectedHistoricSyncFailures`).
    pub batches_failed: u64,
    /// Failed batches started again after a backoff (`Config::batch_retry_max_attempts`).
    #[serde(default)]
    pub batch_retries: u64,
    /// Live consolidations (close and re-pack).
    pub consolidations: u64,
    /// Polls of items without live coverage started (`relay/poll.rs`).
    #[serde(default)]
    pub live_polls: u64,
    /// Rate-limit cooldowns started.
    pub rate_limits: u64,
    /// "too many" answers (each shrinks a relay's budget).
    pub too_many_answers: u64,
    /// Connection attempts sent.
    pub connect_attempts: u64,
    /// Events re-offered to the host after their dependency arrived.
    pub reoffers: u64,
    /// Rejected-memory activity.
    pub rejected: RejectedStats,
    /// Rejected-memory entries still re-offerable (gauge).
    pub rejected_hot: u64,
    /// Rejected-memory entries excluded from fetches (gauge).
    pub rejected_cold: u64,
    /// Repositories in the want index (gauge).
    pub repos: u64,
    /// Root events in the want index (gauge).
    pub root_events: u64,
    /// Relays tracked (gauge).
    pub relays_tracked: u64,
    /// Relays in a live status (gauge).
    pub relays_connected: u64,
    /// Relays failing for `dead_after_ms` (gauge).
    pub relays_dead: u64,
    /// Sync+: participants known across repositories (gauge).
    #[serde(default)]
    pub sync_plus_participants: u64,
    /// Sync+: participants whose relay lists are followed (gauge).
    #[serde(default)]
    pub sync_plus_followed: u64,
    /// Sync+: relays some repository's conversation is synced from through Sync+ (gauge).
    #[serde(default)]
    pub sync_plus_relays: u64,
    /// Sync+: relay URLs from participants' lists left out by the per-repository or global
    /// bounds (counter, counted at each recomputation).
    #[serde(default)]
    pub sync_plus_relays_capped: u64,
}
