//! Prometheus metrics (docs/spec.md §10), registered in the host's registry. Gauges are derived from
//! the core's state after each step (never incremented and decremented); counters advance by
//! the difference between the core's cumulative statistics and what was already exported.
//! A few counters only the shell can see (events dropped before the host, policy rejections,
//! stream lag) are written by the ingest path directly.

use std::collections::{BTreeMap, BTreeSet};

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use sync_core::{ErrorClass, RelaySource, RelayView, Stats, SyncCore};

/// Every [`RelaySource`], for `ngit_sync_relay_source`.
const SOURCES: [RelaySource; 4] = [
    RelaySource::Bootstrap,
    RelaySource::Announced,
    RelaySource::SyncPlus,
    RelaySource::Index,
];

/// Every metric the runtime exports. Invariant: all are registered in `registry`.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    /// The registry the metrics live in (the host's, or a private one).
    pub(crate) registry: Registry,
    /// `ngit_sync_relay_connected{relay}`: lifecycle status code.
    relay_connected: IntGaugeVec,
    /// `ngit_sync_relay_status{relay}`: health code.
    relay_status: IntGaugeVec,
    /// `ngit_sync_relay_failures{relay}`: consecutive failures.
    relay_failures: IntGaugeVec,
    /// Open subscriptions per relay.
    relay_open_subscriptions: IntGaugeVec,
    /// Historic batches in flight per relay.
    relay_pending_batches: IntGaugeVec,
    /// Items confirmed complete per relay.
    relay_confirmed_items: IntGaugeVec,
    /// `ngit_sync_connection_attempts_total{relay,result}`.
    connection_attempts: IntCounterVec,
    /// `ngit_sync_gap_events_total{relay}`.
    gap_events: IntCounterVec,
    /// Deliveries per relay, any outcome.
    relay_events_delivered: IntCounterVec,
    /// `EVENT` frames per relay on the wire (minus deliveries: dropped by the SDK's checks).
    relay_event_frames: IntCounterVec,
    /// `ngit_sync_events_synced_total`.
    events_synced: IntCounter,
    /// `ngit_sync_events_total{source}`.
    events_by_source: IntCounterVec,
    /// `ngit_sync_relays_tracked_total`.
    relays_tracked: IntGauge,
    /// `ngit_sync_relays_connected_total`.
    relays_connected: IntGauge,
    /// `ngit_sync_relays_dead_total`.
    relays_dead: IntGauge,
    /// `ngit_sync_naughty_relays_total{category}`.
    naughty_relays: IntGaugeVec,
    /// `ngit_sync_naughty_relay_info{relay,category,reason}`: one series per naughty relay,
    /// valued with its consecutive failures.
    naughty_relay_info: IntGaugeVec,
    /// `ngit_sync_rejected_hot_cache_current{event_type}`.
    rejected_hot: IntGaugeVec,
    /// `ngit_sync_rejected_cold_index_current{event_type}`.
    rejected_cold: IntGaugeVec,
    /// `ngit_sync_rejected_hot_cache_hits_total{event_type}`: re-offered.
    rejected_hot_hits: IntCounterVec,
    /// `ngit_sync_rejected_hot_cache_misses_total{event_type}`: dependency arrived too late.
    rejected_hot_misses: IntCounterVec,
    /// `ngit_sync_rejected_hot_cache_expired_total{event_type}`.
    rejected_hot_expired: IntCounterVec,
    /// `ngit_sync_rejected_cold_index_expired_total{event_type}`.
    rejected_cold_expired: IntCounterVec,
    /// `ngit_sync_rejected_invalidated_total{event_type}`.
    rejected_invalidated: IntCounterVec,
    /// `ngit_sync_rejected_cold_index_hits_total{event_type}`: ids excluded from fetches.
    rejected_cold_hits: IntCounterVec,
    /// `ngit_sync_relay_disconnects_total{relay}`: live connections lost.
    relay_disconnects: IntCounterVec,
    /// `ngit_sync_relay_last_complete_timestamp_seconds{relay}`.
    relay_last_complete: IntGaugeVec,
    /// Repositories wanted.
    repos: IntGauge,
    /// Root events wanted.
    root_events: IntGauge,
    /// Historic batches by method and result.
    batches: IntCounterVec,
    /// Other engine counters by kind.
    engine_activity: IntCounterVec,
    /// Events dropped by the shell before the host saw them, by reason.
    pub(crate) events_dropped: IntCounterVec,
    /// Events the host's policy rejected, by event type.
    pub(crate) policy_rejected: IntCounterVec,
    /// Events the host's store could not save.
    pub(crate) store_errors: IntCounter,
    /// Notification-stream lag results, every one counted (a burst of them triggers one
    /// catch-up, `ingest/lag_burst.rs`).
    pub(crate) stream_lagged: IntCounter,
    /// Policy checks that did not answer within `ingest::POLICY_TIMEOUT` (event deferred).
    pub(crate) policy_timeouts: IntCounter,
    /// `ngit_sync_repos_withdrawn_total{reason}` (docs/spec.md §14).
    pub(crate) repos_withdrawn: IntCounterVec,
    /// `ngit_sync_withdrawn_events_deleted_total`: stored events removed by
    /// `--on-withdrawal delete`.
    pub(crate) withdrawn_events_deleted: IntCounter,
    /// `ngit_sync_relays_refused_total{reason}`: relay URLs from events refused by the
    /// open-network rules (docs/spec.md §13).
    relays_refused: IntCounterVec,
    /// `ngit_sync_relay_source{relay,source}`: 1 for why the relay is tracked (bootstrap,
    /// announced, sync_plus, index; docs/spec.md §15).
    relay_source: IntGaugeVec,
    /// `ngit_sync_plus{kind}`: Sync+ participants known, followed, and relays used.
    sync_plus: IntGaugeVec,
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let m = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let m = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let m = IntGauge::new(name, help)?;
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let m = IntCounter::new(name, help)?;
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub(crate) fn register(registry: Registry) -> prometheus::Result<Self> {
        let r = &registry;
        let relay = &["relay"];
        let (category, event_type) = (&["category"], &["event_type"]);
        let metrics = Self {
            relay_connected: gauge_vec(r, "ngit_sync_relay_connected", "Relay lifecycle: 0 Disconnected, 1 Connecting, 2 Syncing, 3 Connected, 4 ConnectedHistoricSyncFailures, 5 Disconnecting", relay)?,
            relay_status: gauge_vec(r, "ngit_sync_relay_status", "Relay health: 1 Healthy, 2 Disconnected, 3 Degraded, 4 Dead, 5 RateLimited", relay)?,
            relay_failures: gauge_vec(r, "ngit_sync_relay_failures", "Consecutive connection failures", relay)?,
            relay_open_subscriptions: gauge_vec(r, "ngit_sync_relay_open_subscriptions", "Open subscriptions (live, historic, negentropy)", relay)?,
            relay_pending_batches: gauge_vec(r, "ngit_sync_relay_pending_batches", "Historic batches in flight", relay)?,
            relay_confirmed_items: gauge_vec(r, "ngit_sync_relay_confirmed_items", "Repositories and root events confirmed complete", relay)?,
            connection_attempts: counter_vec(r, "ngit_sync_connection_attempts_total", "Connection attempts by result", &["relay", "result"])?,
            gap_events: counter_vec(r, "ngit_sync_gap_events_total", "Events first found by catch-up or daily resync although live sync was on", relay)?,
            relay_events_delivered: counter_vec(r, "ngit_sync_relay_events_delivered_total", "Events delivered by a relay on our subscriptions (any outcome)", relay)?,
            relay_event_frames: counter_vec(
                r,
                "ngit_sync_relay_event_frames_total",
                "EVENT frames received from a relay; minus ngit_sync_relay_events_delivered_total: events nostr-sdk dropped (invalid id or signature, oversized)",
                relay,
            )?,
            events_synced: counter(r, "ngit_sync_events_synced_total", "Events the host newly saved from sync")?,
            events_by_source: counter_vec(r, "ngit_sync_events_total", "Events newly saved, by the path that found them", &["source"])?,
            relays_tracked: gauge(r, "ngit_sync_relays_tracked_total", "Relays tracked")?,
            relays_connected: gauge(r, "ngit_sync_relays_connected_total", "Relays connected")?,
            relays_dead: gauge(r, "ngit_sync_relays_dead_total", "Relays not connected and failing for the dead-after period (never a connected relay)")?,
            naughty_relays: gauge_vec(r, "ngit_sync_naughty_relays_total", "Relays on the naughty list by error class", category)?,
            naughty_relay_info: gauge_vec(r, "ngit_sync_naughty_relay_info", "A relay on the naughty list (value: its consecutive connection failures; reason: the class's description)", &["relay", "category", "reason"])?,
            rejected_hot: gauge_vec(r, "ngit_sync_rejected_hot_cache_current", "Rejected events still re-offerable when their dependency arrives (hot cache)", event_type)?,
            rejected_cold: gauge_vec(r, "ngit_sync_rejected_cold_index_current", "Rejected event ids excluded from fetches (cold index; includes the hot entries)", event_type)?,
            rejected_hot_hits: counter_vec(r, "ngit_sync_rejected_hot_cache_hits_total", "Rejected events re-offered from the hot cache when their dependency arrived", event_type)?,
            rejected_hot_misses: counter_vec(r, "ngit_sync_rejected_hot_cache_misses_total", "Rejected events whose dependency arrived after their hot period (forgotten, not re-offered)", event_type)?,
            rejected_hot_expired: counter_vec(r, "ngit_sync_rejected_hot_cache_expired_total", "Hot-cache entries whose re-offer period ended", event_type)?,
            rejected_cold_expired: counter_vec(r, "ngit_sync_rejected_cold_index_expired_total", "Cold-index entries forgotten because they aged out or the memory was full", event_type)?,
            rejected_invalidated: counter_vec(r, "ngit_sync_rejected_invalidated_total", "Cold-index entries removed because their dependency arrived", event_type)?,
            rejected_cold_hits: counter_vec(r, "ngit_sync_rejected_cold_index_hits_total", "Event ids left out of a negentropy fetch because the cold index remembers them", event_type)?,
            relay_disconnects: counter_vec(r, "ngit_sync_relay_disconnects_total", "Live connections lost (leaving a relay on purpose is not counted)", relay)?,
            relay_last_complete: gauge_vec(r, "ngit_sync_relay_last_complete_timestamp_seconds", "Unix time of the relay's last known complete sync (now while Connected)", relay)?,
            repos: gauge(r, "ngit_sync_repos", "Repositories wanted")?,
            root_events: gauge(r, "ngit_sync_root_events", "Root events wanted")?,
            batches: counter_vec(r, "ngit_sync_batches_total", "Historic batches by method or result", &["kind"])?,
            engine_activity: counter_vec(r, "ngit_sync_engine_activity_total", "Engine activity counters (pages, ids fetched, consolidations, rate limits, late messages, out-of-filter)", &["kind"])?,
            events_dropped: counter_vec(r, "ngit_sync_events_dropped_total", "Events dropped by the runtime before the host's policy", &["reason"])?,
            policy_rejected: counter_vec(r, "ngit_sync_rejected_events_total", "Events the host's policy rejected, by event type", &["event_type"])?,
            store_errors: counter(r, "ngit_sync_store_errors_total", "Events the host's store failed to save")?,
            stream_lagged: counter(r, "ngit_sync_stream_lagged_total", "Times the relay message stream lagged (a burst of lags triggers one catch-up)")?,
            policy_timeouts: counter(r, "ngit_sync_policy_timeouts_total", "Policy checks that did not answer in time (event deferred, found again by a later resync)")?,
            repos_withdrawn: counter_vec(r, "ngit_sync_repos_withdrawn_total", "Repositories withdrawn from sync (a newer announcement no longer lists us, or the announcement was deleted)", &["reason"])?,
            withdrawn_events_deleted: counter(r, "ngit_sync_withdrawn_events_deleted_total", "Stored events of withdrawn repositories deleted (on-withdrawal delete)")?,
            relays_refused: counter_vec(r, "ngit_sync_relays_refused_total", "Relay URLs from events refused by the open-network rules (non-global address, URL too long, tracked-relay cap)", &["reason"])?,
            relay_source: gauge_vec(r, "ngit_sync_relay_source", "Why a relay is tracked (value 1): bootstrap, announced, sync_plus (a participant's relay list) or index", &["relay", "source"])?,
            sync_plus: gauge_vec(r, "ngit_sync_plus", "Sync+: participants known, participants followed, relays used", &["kind"])?,
            registry,
        };
        metrics.init_fixed_labels();
        Ok(metrics)
    }

    /// Creates the series of every fixed label value, so dashboards show 0 rather than "no
    /// data" before the first occurrence.
    fn init_fixed_labels(&self) {
        for class in NAUGHTY_CLASSES {
            let _series = self
                .naughty_relays
                .with_label_values(&[naughty_category(class)]);
        }
        for event_type in EVENT_TYPES {
            let _series = self.rejected_hot.with_label_values(&[event_type]);
            let _series = self.rejected_cold.with_label_values(&[event_type]);
            for family in self.rejected_counters() {
                let _series = family.with_label_values(&[event_type]);
            }
            let _series = self.policy_rejected.with_label_values(&[event_type]);
        }
        for reason in ["unlisted", "deleted"] {
            let _series = self.repos_withdrawn.with_label_values(&[reason]);
        }
    }

    fn rejected_counters(&self) -> [&IntCounterVec; 6] {
        [
            &self.rejected_hot_hits,
            &self.rejected_hot_misses,
            &self.rejected_hot_expired,
            &self.rejected_cold_expired,
            &self.rejected_invalidated,
            &self.rejected_cold_hits,
        ]
    }

    /// The text exposition of the whole registry.
    pub(crate) fn text(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# metrics encoding failed: {e}\n"))
    }
}

/// The `event_type` label values of the rejected-memory families (kinds 30617, 30618).
const EVENT_TYPES: [&str; 2] = ["announcement", "state"];

/// The error classes that put a relay on the naughty list (`Other` and `Auth` never do).
const NAUGHTY_CLASSES: [ErrorClass; 4] = [
    ErrorClass::Dns,
    ErrorClass::Tls,
    ErrorClass::Protocol,
    ErrorClass::Address,
];

/// The `category` label of a naughty class: the public implementation's values, plus
/// `address_refused` for our open-network refusal (docs/spec.md §13).
fn naughty_category(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Dns => "dns_lookup_failed",
        ErrorClass::Tls => "tls_certificate_invalid",
        ErrorClass::Protocol => "protocol_error",
        ErrorClass::Address => "address_refused",
        ErrorClass::Other => "other",
        ErrorClass::Auth => "auth_refused",
    }
}

/// The `reason` label of `ngit_sync_naughty_relay_info`: a fixed description of the class
/// (the public implementation put the full error text there, an unbounded label).
fn naughty_reason(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Dns => "host name does not resolve",
        ErrorClass::Tls => "TLS handshake or certificate failure",
        ErrorClass::Protocol => "not a WebSocket server",
        ErrorClass::Address => "resolves to a non-global address",
        ErrorClass::Other => "other connection failure",
        ErrorClass::Auth => "refuses our NIP-42 authentication",
    }
}

/// Advances `counter` to `total` (the core's cumulative value). A total below what was exported
/// (a relay removed and re-added restarts its counters) only moves the baseline.
fn advance(counter: &IntCounter, exported: &mut u64, total: u64) {
    if total > *exported {
        counter.inc_by(total - *exported);
    }
    *exported = total;
}

/// What has been exported so far, so counters advance by differences.
#[derive(Debug, Default)]
pub(crate) struct Exported {
    /// Per counter name (engine-wide) or `name\0relay` (per relay): the last total seen.
    totals: BTreeMap<String, u64>,
    /// Relays that have per-relay gauge series, to remove series of relays no longer tracked.
    relays: BTreeSet<String>,
    /// The label values of the `ngit_sync_naughty_relay_info` series exported last.
    naughty: BTreeSet<[String; 3]>,
}

impl Exported {
    fn advance(&mut self, key: String, counter: &IntCounter, total: u64) {
        advance(counter, self.totals.entry(key).or_default(), total);
    }

    /// The relays exported at the last observation (the core's tracked relays).
    pub(crate) fn tracked_relays(&self) -> &BTreeSet<String> {
        &self.relays
    }

    /// Advances one series of a one-label counter family per `(label, total)`.
    fn advance_all(&mut self, family: &IntCounterVec, prefix: &str, totals: &[(&str, u64)]) {
        for (label, total) in totals {
            let key = format!("{prefix}\0{label}");
            self.advance(key, &family.with_label_values(&[label]), *total);
        }
    }
}

impl Metrics {
    /// Derives every gauge from the core's state and advances every counter.
    pub(crate) fn observe(&self, core: &SyncCore, exported: &mut Exported) {
        let mut seen = BTreeSet::new();
        let mut naughty: BTreeMap<&'static str, i64> = NAUGHTY_CLASSES
            .into_iter()
            .map(|c| (naughty_category(c), 0))
            .collect();
        let mut info = BTreeSet::new();
        for view in core.relay_status() {
            self.observe_relay(&view, exported);
            let url = view.url().as_str();
            if let Some(class) = view.naughty() {
                let category = naughty_category(class);
                *naughty.entry(category).or_default() += 1;
                let labels = [url, category, naughty_reason(class)];
                let failures = i64::from(view.failures());
                self.naughty_relay_info
                    .with_label_values(&labels)
                    .set(failures);
                info.insert(labels.map(String::from));
            }
            seen.insert(url.to_string());
        }
        for gone in exported.naughty.difference(&info) {
            let labels = [gone[0].as_str(), gone[1].as_str(), gone[2].as_str()];
            let _removed = self.naughty_relay_info.remove_label_values(&labels);
        }
        exported.naughty = info;
        self.forget_relays(exported, seen);
        for (category, count) in naughty {
            self.naughty_relays
                .with_label_values(&[category])
                .set(count);
        }
        self.observe_gauges(core.stats());
        self.observe_counters(core.stats(), exported);
    }

    fn observe_relay(&self, view: &RelayView<'_>, exported: &mut Exported) {
        let url = view.url().as_str();
        let gauges = [
            (&self.relay_connected, i64::from(view.status().code())),
            (&self.relay_status, i64::from(view.health().code())),
            (&self.relay_failures, i64::from(view.failures())),
            (
                &self.relay_open_subscriptions,
                view.open_subscriptions() as i64,
            ),
            (&self.relay_pending_batches, view.pending_batches() as i64),
            (&self.relay_confirmed_items, view.confirmed_items() as i64),
        ];
        for (gauge, value) in gauges {
            gauge.with_label_values(&[url]).set(value);
        }
        for source in SOURCES {
            if source != view.source() {
                let _absent = self
                    .relay_source
                    .remove_label_values(&[url, source.label()]);
            }
        }
        let source = [url, view.source().label()];
        self.relay_source.with_label_values(&source).set(1);
        match view.last_complete() {
            Some(t) => {
                let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
                self.relay_last_complete.with_label_values(&[url]).set(secs);
            }
            None => {
                let _absent = self.relay_last_complete.remove_label_values(&[url]);
            }
        }
        let c = view.counters();
        let counters = [
            (
                self.connection_attempts
                    .with_label_values(&[url, "success"]),
                "ok",
                c.connects_ok,
            ),
            (
                self.connection_attempts
                    .with_label_values(&[url, "failure"]),
                "failed",
                c.connects_failed,
            ),
            (
                self.gap_events.with_label_values(&[url]),
                "gap",
                c.gap_events,
            ),
            (
                self.relay_events_delivered.with_label_values(&[url]),
                "delivered",
                c.events_delivered,
            ),
            (
                self.relay_disconnects.with_label_values(&[url]),
                "disconnects",
                c.disconnects,
            ),
        ];
        for (counter, name, total) in counters {
            exported.advance(format!("{name}\0{url}"), &counter, total);
        }
    }

    /// Advances the per-relay frame counters (cumulative while the relay is tracked). Only
    /// relays the core tracks are exported (see `forget_relays`).
    pub(crate) fn observe_frames(&self, frames: &[(String, u64)], exported: &mut Exported) {
        for (url, total) in frames {
            if !exported.relays.contains(url) {
                continue;
            }
            let series = self.relay_event_frames.with_label_values(&[url]);
            exported.advance(format!("frames\0{url}"), &series, *total);
        }
    }

    /// Removes every per-relay series of relays no longer tracked (a relay that comes back
    /// starts its counters again, which Prometheus reads as a counter reset), so memory and
    /// label cardinality follow the tracked relays, not every URL ever seen.
    fn forget_relays(&self, exported: &mut Exported, seen: BTreeSet<String>) {
        for gone in exported.relays.difference(&seen) {
            for g in [
                &self.relay_connected,
                &self.relay_status,
                &self.relay_failures,
                &self.relay_open_subscriptions,
                &self.relay_pending_batches,
                &self.relay_confirmed_items,
                &self.relay_last_complete,
            ] {
                let _removed = g.remove_label_values(&[gone]);
            }
            for c in [
                &self.gap_events,
                &self.relay_events_delivered,
                &self.relay_event_frames,
                &self.relay_disconnects,
            ] {
                let _removed = c.remove_label_values(&[gone]);
            }
            for result in ["success", "failure"] {
                let _removed = self
                    .connection_attempts
                    .remove_label_values(&[gone, result]);
            }
            for source in SOURCES {
                let _removed = self
                    .relay_source
                    .remove_label_values(&[gone, source.label()]);
            }
            let suffix = format!("\0{gone}");
            exported.totals.retain(|key, _| !key.ends_with(&suffix));
        }
        exported.relays = seen;
    }

    fn observe_gauges(&self, s: &Stats) {
        self.relays_tracked.set(s.relays_tracked as i64);
        self.relays_connected.set(s.relays_connected as i64);
        self.relays_dead.set(s.relays_dead as i64);
        self.repos.set(s.repos as i64);
        self.root_events.set(s.root_events as i64);
        let plus = [
            ("participants", s.sync_plus_participants),
            ("followed", s.sync_plus_followed),
            ("relays", s.sync_plus_relays),
        ];
        for (kind, value) in plus {
            self.sync_plus.with_label_values(&[kind]).set(value as i64);
        }
        let r = &s.rejected;
        for (event_type, t) in [("announcement", &r.announcement), ("state", &r.state)] {
            let hot = self.rejected_hot.with_label_values(&[event_type]);
            hot.set(t.hot as i64);
            let cold = self.rejected_cold.with_label_values(&[event_type]);
            cold.set(t.cold as i64);
        }
    }

    fn observe_counters(&self, s: &Stats, exported: &mut Exported) {
        exported.advance("synced".into(), &self.events_synced, s.events_saved);
        let src = &s.saved_by_source;
        let by_source = [
            ("live", src.live),
            ("startup", src.startup),
            ("reconnect", src.reconnect),
            ("daily", src.daily),
            ("poll", src.poll),
        ];
        exported.advance_all(&self.events_by_source, "source", &by_source);
        let r = &s.rejected;
        for (event_type, t) in [("announcement", &r.announcement), ("state", &r.state)] {
            let totals = [
                t.reoffered,
                t.not_hot,
                t.hot_expired,
                t.expired,
                t.invalidated,
                t.fetch_exclusions,
            ];
            for (i, (family, total)) in self.rejected_counters().into_iter().zip(totals).enumerate()
            {
                let key = format!("rejected{i}\0{event_type}");
                exported.advance(key, &family.with_label_values(&[event_type]), total);
            }
        }
        let batches = [
            ("negentropy", s.negentropy_batches),
            ("req", s.req_batches),
            ("negentropy_fallback", s.negentropy_fallbacks),
            ("confirmed", s.batches_confirmed),
            ("failed", s.batches_failed),
        ];
        exported.advance_all(&self.batches, "batches", &batches);
        let activity = [
            ("pages_requested", s.pages_requested),
            ("page_reqs_grouped", s.page_reqs_grouped),
            ("page_groups_untrusted", s.page_groups_untrusted),
            ("ids_fetched", s.ids_fetched),
            ("negentropy_timeouts", s.negentropy_timeouts),
            ("negentropy_reruns", s.negentropy_reruns),
            ("same_second_overflows", s.same_second_overflows),
            ("page_caps_hit", s.page_caps_hit),
            ("consolidations", s.consolidations),
            ("rate_limits", s.rate_limits),
            ("too_many_answers", s.too_many_answers),
            ("late_messages", s.late_messages),
            ("out_of_filter", s.events_out_of_filter),
            ("invalid_relay_urls", s.invalid_relay_urls),
            ("ignored_inputs", s.ignored_inputs),
            ("page_probes", s.page_probes),
            ("batch_retries", s.batch_retries),
            ("page_sizes_learned", s.page_sizes_learned),
        ];
        exported.advance_all(&self.engine_activity, "activity", &activity);
        let refused = s.targets_refused.by_label();
        exported.advance_all(&self.relays_refused, "refused", &refused);
        let truncated = [
            ("relays_per_repo_cap", s.relay_urls_truncated),
            ("sync_plus_relays_capped", s.sync_plus_relays_capped),
        ];
        exported.advance_all(&self.engine_activity, "activity", &truncated);
    }
}

#[cfg(test)]
mod tests;
