//! The relay lifecycle (docs/spec.md §5): connect when wanted and backoff allows; fresh start, quick
//! reconnect with a real catch-up `since`, daily resync; cooldowns; reaping by empty target.
//! Connect and disconnect decisions read the target, never what the relay has confirmed.

use nostr::Timestamp;

use crate::command::Command;
use crate::core::SyncCore;
use crate::ctx::Ctx;
use crate::decision_log;
use crate::event_meta::EventMeta;
use crate::historic::batch::Origin;
use crate::item::Key;
use crate::plan::{all_candidates, all_candidates_with};
use crate::relay::health::{is_negentropy_unsupported, is_rate_limited, is_too_many, ErrorClass};
use crate::relay::{NegSupport, RelayState, Status};
use crate::time::{Earliest, TimerKind};
use crate::url::RelayUrl;
use crate::wanted::Wanted;

/// Startup jitter applies to relays first seen within this long of the core's start.
const STARTUP_PERIOD_MS: u64 = 60_000;

impl SyncCore {
    /// Tracks every relay of `urls` not tracked yet. During startup their first attempts are
    /// spread over `Config::startup_spread_ms` of their number (docs/spec.md §5): the spread
    /// scales with the relays tracked together, so a few relays (bootstrap relays, or the ones
    /// one announcement names) connect at once and thousands still do not all dial together.
    pub(crate) fn ensure_relays(&mut self, urls: &[RelayUrl]) {
        let new: Vec<&RelayUrl> = urls
            .iter()
            .filter(|u| !self.relays.contains_key(*u))
            .collect();
        let spread = self.cfg.startup_spread_ms(new.len());
        for url in new {
            self.track_relay(url, spread);
        }
    }

    /// Tracks `url` (not tracked yet); during startup its first attempt waits a seeded draw
    /// from `0..=spread_ms`.
    fn track_relay(&mut self, url: &RelayUrl, spread_ms: u64) {
        let mut state = RelayState::new(url.clone(), self.seed, &self.cfg, self.now.mono);
        if self.now.mono.since_ms(self.started_at) < STARTUP_PERIOD_MS {
            let jitter = state.rng.uniform(0, spread_ms);
            state.health.next_attempt_at = self.now.mono.plus_ms(jitter);
        }
        state.bootstrap = self.bootstrap.contains(url);
        state.source = self.source_of(url);
        // Ids stay unique for the life of the core even for a relay reaped and re-added.
        state.seq = self.retired_seq;
        self.relays.insert(url.clone(), state);
        self.touched.insert(url.clone());
    }

    /// Stops tracking a relay, keeping its id counter (see `retired_seq`), and tells the shell
    /// to drop what it holds for it if it was ever dialled.
    fn forget_relay(&mut self, url: &RelayUrl, out: &mut Vec<Command>) {
        if let Some(r) = self.relays.remove(url) {
            self.retired_seq = self.retired_seq.max(r.seq);
            if r.dialled {
                out.push(Command::Forget { relay: url.clone() });
            }
        }
    }

    /// The relay's target became empty: disconnect it (or forget it if not connected).
    pub(crate) fn reap(&mut self, url: &RelayUrl, out: &mut Vec<Command>) {
        let Some(r) = self.relays.get_mut(url) else {
            return;
        };
        self.touched.insert(url.clone());
        match r.status {
            Status::Disconnected => {
                decision_log::reaped(url);
                self.forget_relay(url, out);
            }
            Status::Disconnecting => {}
            _ => {
                decision_log::reaped(url);
                out.push(Command::Disconnect { relay: url.clone() });
                r.drop_connection_state();
                r.status = Status::Disconnecting;
                r.status_deadline = Some(self.now.mono.plus_ms(self.cfg.disconnect_timeout_ms));
            }
        }
    }

    /// Why `url` is tracked: bootstrap, announced, Sync+ or index, first that applies.
    pub(crate) fn source_of(&self, url: &RelayUrl) -> crate::view::RelaySource {
        use crate::view::RelaySource;
        if self.bootstrap.contains(url) {
            RelaySource::Bootstrap
        } else if self.want.is_announced(url) {
            RelaySource::Announced
        } else if self.want.plus.relay_repos.contains_key(url) {
            RelaySource::SyncPlus
        } else if self.want.plus.index.contains(url) {
            RelaySource::Index
        } else {
            RelaySource::Announced
        }
    }

    fn is_wanted(&self, url: &RelayUrl) -> bool {
        self.want.has_target(url) || self.bootstrap.contains(url)
    }

    pub(crate) fn on_connected(&mut self, url: &RelayUrl, out: &mut Vec<Command>) {
        self.apply_restored_cursor(url);
        let Some((r, mut ctx)) = self.relay_ctx(url, out) else {
            return;
        };
        if r.status != Status::Connecting {
            ctx.stats.ignored_inputs += 1;
            return;
        }
        r.counters.connects_ok += 1;
        r.health.connected();
        r.status = Status::Syncing;
        r.status_deadline = None;
        r.connected_at = Some(ctx.now.mono);
        let quick = r
            .disconnected_at
            .is_some_and(|d| ctx.now.mono.since_ms(d) < ctx.cfg.quick_reconnect_window_ms)
            && r.synced_through.is_some()
            && r.confirmed.len() > 0;
        r.schedule_daily(&mut ctx);
        // Every item of the relay is tested against its target below: collected once.
        let wanted = Wanted::new(ctx.want, &r.url, usize::MAX);
        if quick {
            let since = r.catchup_since(&ctx, r.synced_through);
            let items = r
                .confirmed
                .iter()
                .filter(|i| wanted.wants(i))
                .copied()
                .collect();
            r.start_batch(&mut ctx, items, Origin::Reconnect, Some(since));
        } else {
            r.confirmed.clear();
            r.had_failures = false;
            r.batch_failure = None;
            r.catchup_pending = false;
        }
        let candidates = all_candidates_with(r, &wanted);
        r.plan_with(&mut ctx, &candidates, Origin::Initial, &wanted);
    }

    pub(crate) fn on_connect_failed(
        &mut self,
        url: &RelayUrl,
        class: ErrorClass,
        detail: &str,
        out: &mut Vec<Command>,
    ) {
        let wanted = self.is_wanted(url);
        let Some((r, mut ctx)) = self.relay_ctx(url, out) else {
            return;
        };
        match r.status {
            Status::Connecting => r.connect_failed(&mut ctx, class, detail),
            Status::Disconnecting => r.status = Status::Disconnected,
            _ => ctx.stats.ignored_inputs += 1,
        }
        if !wanted && r.status == Status::Disconnected {
            self.forget_relay(url, out);
        }
    }

    pub(crate) fn on_disconnected(&mut self, url: &RelayUrl, out: &mut Vec<Command>) {
        let wanted = self.is_wanted(url);
        let Some((r, mut ctx)) = self.relay_ctx(url, out) else {
            return;
        };
        match r.status {
            Status::Disconnected => ctx.stats.ignored_inputs += 1,
            Status::Connecting => {
                r.connect_failed(&mut ctx, ErrorClass::Other, "disconnected while connecting")
            }
            Status::Disconnecting => {
                r.status = Status::Disconnected;
                r.disconnected_at = Some(ctx.now.mono);
                r.status_deadline = None;
            }
            Status::Syncing | Status::Connected | Status::ConnectedHistoricSyncFailures => {
                r.connection_lost(&mut ctx)
            }
        }
        if !wanted && r.status == Status::Disconnected {
            self.forget_relay(url, out);
        }
    }

    /// The shell lost messages of one relay (or of all): see [`RelayState::recover_from_lag`].
    pub(crate) fn on_lagged(&mut self, relay: Option<&RelayUrl>, out: &mut Vec<Command>) {
        let urls: Vec<RelayUrl> = match relay {
            Some(u) => vec![u.clone()],
            None => self.relays.keys().cloned().collect(),
        };
        for url in urls {
            if let Some((r, mut ctx)) = self.relay_ctx(&url, out) {
                r.recover_from_lag(&mut ctx);
            }
        }
    }

    /// Runs the relay's due timers: connect, timeouts, batch deadlines, daily resync, cooldown
    /// end, live repair.
    pub(crate) fn run_relay_timers(&mut self, url: &RelayUrl, out: &mut Vec<Command>) {
        let wanted = self.is_wanted(url);
        let Some((r, mut ctx)) = self.relay_ctx(url, out) else {
            return;
        };
        // A timer may change the status (e.g. a disconnect timeout) so that another is due.
        for _ in 0..3 {
            let before = r.status;
            r.run_status_timer(&mut ctx, wanted);
            if r.status == before {
                break;
            }
        }
        if !wanted && r.status == Status::Disconnected {
            self.forget_relay(url, out);
        }
    }
}

impl RelayState {
    fn run_status_timer(&mut self, ctx: &mut Ctx<'_>, wanted: bool) {
        let now = ctx.now.mono;
        match self.status {
            Status::Disconnected if wanted && self.health.next_attempt_at <= now => {
                ctx.stats.connect_attempts += 1;
                ctx.out.push(Command::Connect {
                    relay: self.url.clone(),
                });
                self.dialled = true;
                self.status = Status::Connecting;
                self.status_deadline = Some(now.plus_ms(ctx.cfg.connect_timeout_ms));
            }
            Status::Connecting if self.status_deadline.is_some_and(|d| d <= now) => {
                ctx.out.push(Command::Disconnect {
                    relay: self.url.clone(),
                });
                self.connect_failed(ctx, ErrorClass::Other, "connect timeout");
            }
            Status::Disconnecting if self.status_deadline.is_some_and(|d| d <= now) => {
                self.status = Status::Disconnected;
                self.status_deadline = None;
                self.disconnected_at = Some(now);
            }
            s if s.is_live() => self.run_live_timers(ctx),
            _ => {}
        }
    }

    fn schedule_daily(&mut self, ctx: &mut Ctx<'_>) {
        let wait = self
            .rng
            .uniform(ctx.cfg.daily_resync_min_ms, ctx.cfg.daily_resync_max_ms);
        self.daily_at = Some(ctx.now.mono.plus_ms(wait));
    }

    fn catchup_since(&self, ctx: &Ctx<'_>, through: Option<Timestamp>) -> Timestamp {
        let through = through.unwrap_or(ctx.now.wall).as_secs();
        Timestamp::from(through.saturating_sub(ctx.cfg.since_margin_secs))
    }

    fn connect_failed(&mut self, ctx: &mut Ctx<'_>, class: ErrorClass, detail: &str) {
        self.counters.connects_failed += 1;
        self.status = Status::Disconnected;
        self.status_deadline = None;
        self.health
            .record_failure(ctx.now.mono, class, self.bootstrap, ctx.cfg, &mut self.rng);
        let retry_in_ms = self.health.next_attempt_at.since_ms(ctx.now.mono);
        let naughty = self.health.naughty.is_some();
        decision_log::connect_failed(&self.url, class, detail, retry_in_ms, naughty);
    }

    /// An unexpected disconnect from a live status.
    fn connection_lost(&mut self, ctx: &mut Ctx<'_>) {
        self.counters.disconnects += 1;
        let stable = self
            .connected_at
            .is_some_and(|c| ctx.now.mono.since_ms(c) >= ctx.cfg.stable_connection_ms);
        if !self.catchup_pending && self.live_gap_since.is_none() {
            self.synced_through = Some(ctx.now.wall);
        }
        self.drop_connection_state();
        self.status = Status::Disconnected;
        self.disconnected_at = Some(ctx.now.mono);
        if stable {
            self.health.reset();
        }
        self.health.record_loss(ctx.now.mono);
        self.health.record_failure(
            ctx.now.mono,
            ErrorClass::Other,
            self.bootstrap,
            ctx.cfg,
            &mut self.rng,
        );
        let retry_in_ms = self.health.next_attempt_at.since_ms(ctx.now.mono);
        let flapping = self.health.is_flapping(ctx.now.mono, ctx.cfg);
        decision_log::connection_lost(&self.url, retry_in_ms, flapping);
    }

    /// The daily full reconciliation on the open connection: pending and confirmed are cleared, live
    /// subscriptions are kept (they already cover the target), NIP-77 support is re-tried.
    pub(crate) fn resync(&mut self, ctx: &mut Ctx<'_>) {
        if !self.status.is_live() {
            return;
        }
        let ids: Vec<u64> = self.pending.batches.keys().copied().collect();
        for id in ids {
            self.close_batch_requests(ctx, id);
        }
        self.pending.clear();
        self.confirmed.clear();
        self.had_failures = false;
        self.batch_failure = None;
        self.catchup_pending = false;
        self.lag_followup_since = None;
        self.neg = NegSupport::Unknown;
        self.neg_timeouts = 0;
        self.status = Status::Syncing;
        let candidates = all_candidates(self, ctx);
        self.plan(ctx, &candidates, Origin::Daily);
    }

    /// The shell lost some of this relay's messages (its stream overflowed). What can be lost
    /// is what was on the wire: events and EOSEs of historic REQs, and live events. Historic
    /// REQs on the wire are marked lagged and sent again at their EOSE (negentropy
    /// reconciliations do not use the stream); live-covered confirmed items get a catch-up
    /// from now minus the margin. Completed batches lost nothing (their EOSE came after their
    /// events), so nothing is cleared. One lag catch-up runs at a time: a lag during one is
    /// remembered and followed up by one more catch-up when it resolves, so a lag storm costs
    /// at most two catch-ups per relay, not one per lag.
    pub(crate) fn recover_from_lag(&mut self, ctx: &mut Ctx<'_>) {
        if !self.status.is_live() {
            return;
        }
        self.mark_historic_reqs_lagged(ctx);
        let wall = ctx.now.wall;
        if self
            .pending
            .batches
            .values()
            .any(|b| b.origin == Origin::Lag)
        {
            self.lag_followup_since = Some(self.lag_followup_since.map_or(wall, |t| t.min(wall)));
            return;
        }
        self.start_lag_catchup(ctx, wall);
        self.pump(ctx);
        self.check_complete(ctx);
    }

    /// Starts a catch-up of the live-covered confirmed items from `lag_wall` minus the margin.
    pub(crate) fn start_lag_catchup(&mut self, ctx: &mut Ctx<'_>, lag_wall: Timestamp) {
        let items: Vec<Key> = self
            .live_items()
            .filter(|i| self.confirmed.contains(i))
            .copied()
            .collect();
        if self.start_catchup(ctx, items, Origin::Lag, lag_wall) {
            self.status = Status::Syncing;
        }
    }

    /// Starts a catch-up batch of `origin` for those of `items` no batch is fetching yet, from
    /// `from_wall` minus the margin; whether there was anything to catch up.
    fn start_catchup(
        &mut self,
        ctx: &mut Ctx<'_>,
        items: impl IntoIterator<Item = Key>,
        origin: Origin,
        from_wall: Timestamp,
    ) -> bool {
        let items: std::collections::BTreeSet<Key> = items
            .into_iter()
            .filter(|i| !self.pending.contains(i))
            .collect();
        if items.is_empty() {
            return false;
        }
        let since = self.catchup_since(ctx, Some(from_wall));
        self.start_batch(ctx, items, origin, Some(since));
        true
    }

    fn run_live_timers(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now.mono;
        if self.health.rate_limited_until.is_some_and(|t| t <= now) {
            self.health.rate_limited_until = None;
            if std::mem::take(&mut self.live_dirty) {
                let candidates = all_candidates(self, ctx);
                self.reconcile_live(ctx, &candidates);
            }
            self.pump(ctx);
        }
        if self.live_repair_at.is_some_and(|t| t <= now) {
            // A cooldown that started after the repair was scheduled postpones it to the
            // cooldown's end (else the due deadline would stay in the past: a busy loop).
            match self.health.rate_limited_until.filter(|t| *t > now) {
                Some(until) => self.live_repair_at = Some(until),
                None => self.repair_live(ctx),
            }
        }
        self.on_batch_deadlines(ctx);
        self.release_retries(ctx);
        if self.next_paced_send_at().is_some_and(|t| t <= now) {
            self.pump(ctx);
        }
        if self.poll_at.is_some_and(|t| t <= now) {
            self.poll_uncovered(ctx);
        }
        if self.daily_at.is_some_and(|t| t <= now) {
            self.schedule_daily(ctx);
            if self.status != Status::Syncing {
                self.resync(ctx);
            }
        }
    }

    /// Re-opens live coverage lost to a CLOSED and catches up the gap for confirmed items.
    fn repair_live(&mut self, ctx: &mut Ctx<'_>) {
        self.live_repair_at = None;
        let candidates = all_candidates(self, ctx);
        let uncovered: Vec<Key> = self
            .confirmed
            .iter()
            .filter(|i| self.live_group_of(i).is_none() && ctx.want.wants(&self.url, i))
            .copied()
            .collect();
        self.reconcile_live(ctx, &candidates);
        if let Some(gap) = self.live_gap_since.take() {
            self.start_catchup(ctx, uncovered, Origin::Reconnect, gap);
        }
        self.pump(ctx);
    }

    /// Starts (or extends) a rate-limit cooldown: no new subscription until it ends. A rate
    /// limit outside a cooldown also slows the relay's REQ pace (`Pace::rate_limited`); one
    /// during a cooldown answers a request sent before it and teaches nothing new.
    pub(crate) fn start_cooldown(&mut self, ctx: &mut Ctx<'_>) {
        if !self.health.is_rate_limited(ctx.now.mono) {
            ctx.stats.rate_limits += 1;
            self.health.pace.rate_limited(ctx.now.mono);
            let pace_ms = self.health.pace.interval_ms;
            decision_log::rate_limited(&self.url, ctx.cfg.rate_limit_cooldown_ms, pace_ms);
        }
        self.health.rate_limited_until = Some(ctx.now.mono.plus_ms(ctx.cfg.rate_limit_cooldown_ms));
    }

    /// The relay answered "too many" to a request of `filters_sent` filters while
    /// `open_before` subscriptions were open. "Too many filters" (`names_filters`) to a REQ of
    /// several lowers the filters per REQ (`Budget::shrink_filters`); anything else lowers
    /// the subscription budget and closes what is over it.
    pub(crate) fn on_too_many(
        &mut self,
        ctx: &mut Ctx<'_>,
        names_filters: bool,
        filters_sent: usize,
        open_before: usize,
    ) {
        ctx.stats.too_many_answers += 1;
        if names_filters && self.budget.shrink_filters(filters_sent) {
            decision_log::filters_shrunk(&self.url, self.budget.max_filters);
            return;
        }
        self.budget.shrink(open_before);
        decision_log::budget_shrunk(&self.url, self.budget.total());
        self.enforce_budget(ctx);
    }

    pub(crate) fn on_notice(&mut self, ctx: &mut Ctx<'_>, message: &str) {
        if is_negentropy_unsupported(message) && !is_rate_limited(message) {
            self.mark_negentropy_unsupported("notice");
            let diffs: Vec<u64> = self
                .pending
                .batches
                .values()
                .filter(|b| matches!(b.stage, crate::historic::batch::Stage::Diff { .. }))
                .map(|b| b.id)
                .collect();
            for id in diffs {
                self.fallback(ctx, id);
            }
            self.pump(ctx);
        } else if is_rate_limited(message) {
            if is_too_many(message) {
                // A NOTICE names no REQ: the subscription budget shrinks.
                let open = self.subs.len();
                self.on_too_many(ctx, false, 1, open);
            }
            self.start_cooldown(ctx);
        }
    }

    /// Whether a newly saved event found by a batch of `origin` reveals a live-sync gap: found
    /// by a daily or lag resync, or by a catch-up although it predates the disconnect.
    pub(crate) fn is_gap_event(&self, origin: Option<Origin>, event: &EventMeta) -> bool {
        match origin {
            Some(Origin::Daily | Origin::Lag) => true,
            Some(Origin::Reconnect) => self.synced_through.is_some_and(|t| event.created_at < t),
            _ => false,
        }
    }

    /// Offers this relay's timers to `e`.
    pub(crate) fn offer_deadlines(&self, e: &mut Earliest, wanted: bool) {
        let url = Some(&self.url);
        match self.status {
            Status::Disconnected if wanted => {
                e.offer(Some(self.health.next_attempt_at), TimerKind::Reconnect, url)
            }
            Status::Connecting => e.offer(self.status_deadline, TimerKind::ConnectTimeout, url),
            Status::Disconnecting => {
                e.offer(self.status_deadline, TimerKind::DisconnectTimeout, url)
            }
            s if s.is_live() => {
                e.offer(
                    self.health.rate_limited_until,
                    TimerKind::RateLimitCooldown,
                    url,
                );
                e.offer(self.live_repair_at, TimerKind::RateLimitCooldown, url);
                e.offer(self.daily_at, TimerKind::DailyResync, url);
                e.offer(self.poll_at, TimerKind::LivePoll, url);
                e.offer(
                    self.pending
                        .batches
                        .values()
                        .filter_map(|b| b.due_at())
                        .min(),
                    TimerKind::BatchDeadline,
                    url,
                );
                e.offer(self.next_retry_at(), TimerKind::BatchRetry, url);
                e.offer(self.next_paced_send_at(), TimerKind::RequestPace, url);
            }
            _ => {}
        }
    }
}
