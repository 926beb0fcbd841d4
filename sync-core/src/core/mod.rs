//! [`SyncCore`]: the one state machine. `step` is a `match` that dispatches each input to an
//! `on_*` handler; timers that are due run in the same step; gauges are derived at the end.

use std::collections::{BTreeMap, BTreeSet};

use crate::command::{Command, SubId};
use crate::config::{Config, ConfigError};
use crate::ctx::Ctx;
use crate::decision_log;
use crate::discovery::Discovery;
use crate::event_meta::EventMeta;
use crate::historic::claims::IdClaims;
use crate::index::want::WantIndex;
use crate::input::{Input, Outcome};
use crate::rejected::{RejectedEntry, RejectedMemory};
use crate::relay::auth::AuthVerdict;
use crate::relay::health::CloseReason;
use crate::relay::health::{classify, ErrorClass, HealthState};
use crate::relay::{RelayState, Status, SubRole};
use crate::stats::Stats;
use crate::targets::{Refusal, Refusals};
use crate::time::{Earliest, Mono, Now};
use crate::url::RelayUrl;
use crate::view::RelayView;

mod deadlines;
mod dedup;
mod discovery_flush;

/// The pure decision engine. See the crate docs for the contract.
#[derive(Debug)]
pub struct SyncCore {
    pub(crate) cfg: Config,
    pub(crate) seed: u64,
    /// Canonical own URLs: never targets.
    pub(crate) own: BTreeSet<RelayUrl>,
    /// Canonical bootstrap relays: always targets, never reaped.
    pub(crate) bootstrap: BTreeSet<RelayUrl>,
    /// When the core was created (startup jitter applies in the first minute).
    pub(crate) started_at: Mono,
    /// The latest reading seen; `step` never lets `mono` go backwards.
    pub(crate) now: Now,
    pub(crate) want: WantIndex,
    /// Every tracked relay. Invariant: a relay is here iff it is wanted, bootstrap, or still
    /// Disconnecting.
    pub(crate) relays: BTreeMap<RelayUrl, RelayState>,
    /// The highest id counter of any relay no longer tracked; a relay (re-)added starts from
    /// it, so subscription ids stay unique per relay for the life of the core.
    pub(crate) retired_seq: u64,
    pub(crate) discovery: Discovery,
    pub(crate) rejected: RejectedMemory,
    /// Relay URLs from events that the open-network rules refused (bounded, recent first out).
    pub(crate) refusals: Refusals,
    pub(crate) stats: Stats,
    /// Relay timer index: `(due, url)` of every tracked relay that has a timer. Invariant: as
    /// of the end of each step it holds exactly one entry per relay with a deadline, equal to
    /// what `RelayState::offer_deadlines` offers, and `timer_at` mirrors it by URL. A step runs
    /// the timers of the relays due here plus those it touched, so its cost does not grow with
    /// the number of idle relays.
    pub(crate) timers: BTreeSet<(Mono, RelayUrl)>,
    /// The entry each relay has in `timers`.
    pub(crate) timer_at: BTreeMap<RelayUrl, Mono>,
    /// Relays handed to a handler (or created or removed) during the current step; emptied at
    /// the end of every step.
    pub(crate) touched: BTreeSet<RelayUrl>,
    /// Which relay fetches which id by id, and which ids were stored (bounded).
    pub(crate) claims: IdClaims,
    /// Sync+ participants and relay lists (docs/spec.md §15); empty when Sync+ is off.
    pub(crate) plus: crate::sync_plus::SyncPlus,
    /// Cursors restored from a previous run, until their relay first connects
    /// (`relay/cursor.rs`). Invariant: each entry's `through ≤ seen_at`.
    pub(crate) restored_cursors: BTreeMap<RelayUrl, crate::relay::cursor::Restored>,
}

impl SyncCore {
    /// A core with `config` (validated), randomness from `seed`, starting at `now`.
    pub fn try_new(config: Config, seed: u64, now: Now) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::new(config, seed, now))
    }

    /// A core with `config`, randomness from `seed`, starting at `now`. Invalid relay URLs in
    /// the config are ignored and counted; use [`SyncCore::try_new`] to reject them instead.
    #[must_use]
    pub fn new(config: Config, seed: u64, now: Now) -> Self {
        let own: BTreeSet<RelayUrl> = config.own_urls().into_iter().collect();
        let mut stats = Stats::default();
        let bootstrap: BTreeSet<RelayUrl> = config
            .bootstrap_relays
            .iter()
            .filter_map(|u| {
                RelayUrl::parse(u).or_else(|| {
                    stats.invalid_relay_urls += 1;
                    None
                })
            })
            .filter(|u| !own.contains(u))
            .collect();
        let rejected = RejectedMemory::new(
            config.rejected_hot_ms,
            config.rejected_cold_secs,
            config.rejected_max_entries,
        );
        let mut core = Self {
            cfg: config,
            seed,
            own,
            bootstrap: bootstrap.clone(),
            started_at: now.mono,
            now,
            want: WantIndex::default(),
            relays: BTreeMap::new(),
            retired_seq: 0,
            discovery: Discovery::default(),
            rejected,
            refusals: Refusals::default(),
            stats,
            timers: BTreeSet::new(),
            timer_at: BTreeMap::new(),
            touched: BTreeSet::new(),
            claims: IdClaims::default(),
            plus: crate::sync_plus::SyncPlus::default(),
            restored_cursors: BTreeMap::new(),
        };
        if core.cfg.sync_plus {
            let index = core
                .cfg
                .index_relays
                .iter()
                .filter_map(|u| RelayUrl::parse(u));
            core.want.plus.index = index.filter(|u| !core.own.contains(u)).collect();
            core.want.plus.anchored = core.bootstrap.clone();
        }
        core.ensure_relays(&bootstrap.into_iter().collect::<Vec<_>>());
        core.reindex_touched();
        core.update_gauges();
        core
    }

    /// Feeds one input; returns, in order, the commands it caused. The only mutator.
    #[must_use]
    pub fn step(&mut self, now: Now, input: Input) -> Vec<Command> {
        self.now = Now {
            mono: now.mono.max(self.now.mono),
            wall: now.wall,
        };
        self.stats.steps += 1;
        let mut out = Vec::new();
        self.dispatch(input, &mut out);
        self.run_due(&mut out);
        self.resume_deferred(&mut out);
        self.drop_subscriptions_to_disconnected(&mut out);
        self.update_gauges();
        out
    }

    /// A relay this step disconnects (a `Disconnect` is in `out` and the relay ends the step
    /// outside the live statuses) gets no new subscription from the same step. A handler can
    /// queue work before the step decides to disconnect: an EOSE sends the next page, then the
    /// discovery window closing in the same step reaps the relay (sync-sim seed 3772). The
    /// disconnect already forgot that work (`drop_connection_state` clears subscriptions and
    /// pending batches), so only its commands are left to drop: the `Subscribe`s and
    /// `NegentropyDiff`s, and an `Unsubscribe` of one of them. Closes of subscriptions opened
    /// by earlier steps stay (they are valid on the connection until it closes).
    fn drop_subscriptions_to_disconnected(&self, out: &mut Vec<Command>) {
        let closing: BTreeSet<RelayUrl> = out
            .iter()
            .filter_map(|c| match c {
                Command::Disconnect { relay }
                    if !self.relays.get(relay).is_some_and(|r| r.status.is_live()) =>
                {
                    Some(relay.clone())
                }
                _ => None,
            })
            .collect();
        if closing.is_empty() {
            return;
        }
        let mut dropped: BTreeSet<(RelayUrl, SubId)> = BTreeSet::new();
        out.retain(|c| match c {
            Command::Subscribe { relay, sub, .. } | Command::NegentropyDiff { relay, sub, .. }
                if closing.contains(relay) =>
            {
                dropped.insert((relay.clone(), sub.clone()));
                false
            }
            Command::Unsubscribe { relay, sub, .. } if closing.contains(relay) => {
                !dropped.contains(&(relay.clone(), sub.clone()))
            }
            _ => true,
        });
    }

    fn dispatch(&mut self, input: Input, out: &mut Vec<Command>) {
        match input {
            Input::Accepted { event } => self.on_accepted(event, out),
            Input::Rejected { event } => self.rejected.insert(&event, self.now),
            Input::RegisterRepo {
                coord,
                relays,
                level,
            } => self
                .discovery
                .register(coord, relays, level, self.now.mono, &self.cfg),
            Input::WithdrawRepo { coord } => {
                decision_log::repo_withdrawn(&coord.to_string());
                self.discovery.withdraw(coord, self.now.mono, &self.cfg)
            }
            Input::Connected { relay } => self.on_connected(&relay, out),
            Input::ConnectFailed { relay, error } => {
                self.on_connect_failed(&relay, classify(&error), &error, out)
            }
            Input::ConnectRefused { relay, address } => {
                let refusal = Refusal::ResolvesNonGlobal(address);
                self.refusals
                    .record(relay.to_string(), refusal, &mut self.stats.targets_refused);
                let detail = format!("resolves to a non-global address ({address:?})");
                self.on_connect_failed(&relay, ErrorClass::Address, &detail, out);
            }
            Input::Disconnected { relay } => self.on_disconnected(&relay, out),
            Input::Delivered {
                relay,
                sub,
                event,
                outcome,
            } => self.on_delivered(&relay, &sub, event, outcome, out),
            Input::Eose { relay, sub } => self.on_eose(&relay, &sub, out),
            Input::Closed {
                relay,
                sub,
                message,
            } => {
                decision_log::closed(&relay, &sub.0, &message);
                self.on_closed(&relay, &sub, CloseReason::of(&message), out)
            }
            Input::SendFailed { relay, sub, .. } => {
                self.on_closed(&relay, &sub, CloseReason::NOT_SENT, out)
            }
            Input::Notice { relay, message } => {
                decision_log::notice(&relay, &message);
                self.on_notice(&relay, &message, out)
            }
            Input::RelayInfo { relay, limits } => {
                if let Some((r, mut ctx)) = self.relay_ctx(&relay, out) {
                    r.budget.apply_limits(&limits, ctx.cfg);
                    r.enforce_budget(&mut ctx);
                }
            }
            Input::NegentropyDiff { relay, sub, result } => {
                if let Some((r, mut ctx)) = self.relay_ctx(&relay, out) {
                    r.on_negentropy_result(&mut ctx, &sub, result);
                }
            }
            Input::Lagged { relay } => self.on_lagged(relay.as_ref(), out),
            Input::RestoreRejected { entries } => self.rejected.restore(entries, self.now),
            Input::RestoreCursors { cursors } => self.restore_cursors(cursors, out),
            Input::Tick => {}
        }
    }

    /// A relay and the context its handlers need.
    pub(crate) fn relay_ctx<'s>(
        &'s mut self,
        url: &RelayUrl,
        out: &'s mut Vec<Command>,
    ) -> Option<(&'s mut RelayState, Ctx<'s>)> {
        let Self {
            relays,
            cfg,
            want,
            stats,
            rejected,
            discovery,
            now,
            touched,
            claims,
            ..
        } = self;
        let relay = relays.get_mut(url)?;
        if !touched.contains(url) {
            touched.insert(url.clone());
        }
        Some((
            relay,
            Ctx {
                cfg,
                now: *now,
                out,
                stats,
                rejected,
                want,
                discovery_idle: discovery.is_idle(),
                claims,
            },
        ))
    }

    fn on_accepted(&mut self, event: EventMeta, out: &mut Vec<Command>) {
        let reoffer = self.rejected.on_accepted(&event, self.now);
        if !reoffer.is_empty() {
            self.stats.reoffers += reoffer.len() as u64;
            out.push(Command::Reoffer { ids: reoffer });
        }
        self.discovery.accepted(event, self.now.mono, &self.cfg);
    }

    fn on_delivered(
        &mut self,
        relay: &RelayUrl,
        sub: &crate::command::SubId,
        event: EventMeta,
        outcome: Outcome,
        out: &mut Vec<Command>,
    ) {
        self.stats.events_delivered += 1;
        if matches!(outcome, Outcome::Saved | Outcome::Duplicate) {
            self.claims.mark_stored(&event.id);
        }
        let Some((r, mut ctx)) = self.relay_ctx(relay, out) else {
            self.stats.late_messages += 1;
            return;
        };
        r.counters.events_delivered += 1;
        let role = r.subs.get(sub).map(|s| {
            let matched = match s.role {
                SubRole::Live { group } => r.live_matches(group, &event, ctx.want),
                SubRole::Negentropy { batch } => r.negentropy_matches(batch, sub, &event),
                _ => s.filters.iter().any(|f| crate::matches::matches(f, &event)),
            };
            (s.role.clone(), matched)
        });
        let origin = match &role {
            Some((SubRole::Historic { batch }, true)) => {
                r.pending.batches.get(batch).map(|b| b.origin)
            }
            _ => None,
        };
        match role {
            None => ctx.stats.late_messages += 1,
            Some((_, false)) => {
                ctx.stats.events_out_of_filter += 1;
                r.counters.out_of_filter += 1;
            }
            Some((SubRole::Historic { .. }, true)) => r.on_historic_delivery(&mut ctx, sub, &event),
            Some(_) => {}
        }
        match outcome {
            Outcome::Saved => {
                ctx.stats.events_saved += 1;
                r.counters.events_saved += 1;
                ctx.stats.saved_by_source.add(origin);
                if r.is_gap_event(origin, &event) {
                    ctx.stats.gap_events += 1;
                    r.counters.gap_events += 1;
                }
                self.on_accepted(event, out);
            }
            Outcome::Rejected => self.rejected.insert(&event, self.now),
            Outcome::Duplicate | Outcome::Deferred | Outcome::NotOffered => {}
        }
    }

    fn on_eose(&mut self, relay: &RelayUrl, sub: &crate::command::SubId, out: &mut Vec<Command>) {
        let Some((r, mut ctx)) = self.relay_ctx(relay, out) else {
            return;
        };
        match r.subs.get(sub).map(|s| s.role.clone()) {
            Some(SubRole::Historic { .. }) => r.on_historic_eose(&mut ctx, sub),
            Some(SubRole::Live { .. } | SubRole::Negentropy { .. }) => {}
            None => ctx.stats.late_messages += 1,
        }
    }

    /// A subscription ended without EOSE: a CLOSED from the relay, or a REQ the shell could
    /// not send.
    fn on_closed(
        &mut self,
        relay: &RelayUrl,
        sub: &crate::command::SubId,
        reason: CloseReason,
        out: &mut Vec<Command>,
    ) {
        let Some((r, mut ctx)) = self.relay_ctx(relay, out) else {
            return;
        };
        let role = r.subs.get(sub).map(|s| s.role.clone());
        let filters_sent = r.subs.get(sub).map_or(1, |s| s.filters_sent);
        if reason.auth_required
            && role.is_some()
            && r.on_auth_required(&mut ctx) == AuthVerdict::Refused
        {
            return;
        }
        match role {
            Some(SubRole::Historic { .. } | SubRole::Negentropy { .. }) => {
                r.on_historic_closed(&mut ctx, sub, reason)
            }
            Some(SubRole::Live { group }) => {
                if reason.rate_limited {
                    if reason.too_many {
                        let open = r.subs.len();
                        r.on_too_many(&mut ctx, reason.too_many_filters, filters_sent, open);
                    }
                    r.start_cooldown(&mut ctx);
                }
                r.on_live_closed(&mut ctx, sub, group, reason.auth_required);
            }
            None => ctx.stats.late_messages += 1,
        }
    }

    fn on_notice(&mut self, relay: &RelayUrl, message: &str, out: &mut Vec<Command>) {
        let Some((r, mut ctx)) = self.relay_ctx(relay, out) else {
            return;
        };
        r.on_notice(&mut ctx, message);
    }

    /// Runs every timer that is due: discovery window, relay timers, rejected-memory expiry.
    /// Relay timers run, in URL order, for every relay that is due or was touched this step
    /// (a relay neither due nor touched has nothing to do), then their index entries are
    /// refreshed.
    fn run_due(&mut self, out: &mut Vec<Command>) {
        self.rejected.expire(self.now);
        if self.discovery.is_due(self.now.mono) || self.discovery_can_close_early() {
            self.flush_discovery(out);
        }
        let now = self.now.mono;
        let mut urls = std::mem::take(&mut self.touched);
        urls.extend(
            self.timers
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|(_, u)| u.clone()),
        );
        for url in &urls {
            self.run_relay_timers(url, out);
        }
        self.touched.extend(urls);
        self.reindex_touched();
    }

    /// The discovery window (docs/spec.md §4) coalesces bursts; it closes before its fixed end when
    /// nothing could add to the burst: some relay is `Syncing` only because of the window
    /// (its historic work is done) and no relay has a batch in flight, i.e. every update the
    /// historic sync was going to produce is in. A relay still connecting (or waiting to) has
    /// no batch in flight: its historic sync opens a window of its own, so a slow or dead relay
    /// (up to `connect_timeout_ms`) does not hold every hop of the cascade. In steady state (no
    /// relay `Syncing`) live events keep the full window. It also closes once it holds
    /// [`crate::discovery::FLUSH_AT_UPDATES`] updates.
    fn discovery_can_close_early(&self) -> bool {
        if self.discovery.is_idle() {
            return false;
        }
        if self.discovery.is_full() {
            return true;
        }
        let mut waiting = false;
        for r in self.relays.values() {
            if !r.pending.is_empty() {
                return false;
            }
            waiting |= r.status == Status::Syncing;
        }
        waiting
    }

    /// Refreshes the timer index entries of the relays touched this step.
    pub(crate) fn reindex_touched(&mut self) {
        for url in std::mem::take(&mut self.touched) {
            let at = self.relays.get(&url).and_then(|r| {
                let mut e = Earliest::default();
                r.offer_deadlines(&mut e, self.want.has_target(&url) || r.bootstrap);
                e.0.map(|d| d.at)
            });
            let old = self.timer_at.get(&url).copied();
            if old == at {
                continue;
            }
            if let Some(old) = old {
                self.timers.remove(&(old, url.clone()));
            }
            match at {
                Some(at) => {
                    self.timers.insert((at, url.clone()));
                    self.timer_at.insert(url, at);
                }
                None => {
                    self.timer_at.remove(&url);
                }
            }
        }
    }

    fn update_gauges(&mut self) {
        let (hot, cold) = self.rejected.sizes();
        let (repos, roots) = self.want.sizes();
        let s = &mut self.stats;
        s.rejected = self.rejected.stats.clone();
        (s.rejected_hot, s.rejected_cold) = (hot as u64, cold as u64);
        (s.repos, s.root_events) = (repos as u64, roots as u64);
        s.relays_tracked = self.relays.len() as u64;
        s.relays_connected = self.relays.values().filter(|r| r.status.is_live()).count() as u64;
        for r in self.relays.values_mut() {
            if r.logged_status != r.status {
                decision_log::status_changed(&r.url, r.logged_status, r.status);
                r.logged_status = r.status;
            }
        }
        // Exactly the relays exported as `Dead`, so never one in a live status (tested first:
        // this runs every step, and most relays are live).
        s.relays_dead = (self.relays.values())
            .filter(|r| {
                !r.status.is_live()
                    && RelayView::new(r, self.now, &self.cfg).health() == HealthState::Dead
            })
            .count() as u64;
    }

    /// Engine-wide statistics (gauges as of the end of the last step).
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Read-only views of every tracked relay, in URL order.
    pub fn relay_status(&self) -> impl Iterator<Item = RelayView<'_>> {
        self.relays
            .values()
            .map(|r| RelayView::new(r, self.now, &self.cfg))
    }

    /// The view of one relay.
    #[must_use]
    pub fn relay(&self, url: &RelayUrl) -> Option<RelayView<'_>> {
        self.relays
            .get(url)
            .map(|r| RelayView::new(r, self.now, &self.cfg))
    }

    /// The most recently refused relay URLs from events (at most [`crate::RECENT_REFUSALS`]),
    /// in URL order, with the reason; counts by reason are in [`Stats::targets_refused`].
    pub fn refused_targets(&self) -> impl Iterator<Item = (&str, Refusal)> {
        self.refusals.iter()
    }

    /// The rejected-events memory to persist (wall-clock times; restore with
    /// `Input::RestoreRejected`).
    #[must_use]
    pub fn rejected_snapshot(&self) -> Vec<RejectedEntry> {
        self.rejected.snapshot()
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The seed all randomness derives from.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }
}
