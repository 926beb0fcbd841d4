//! Invariants. Step invariants are checked after every `step` (commands respect the relay's
//! status, no duplicate or reused subscription ids, the subscription and filter budgets hold,
//! deadlines lie in the future, spurious ticks are no-ops, reconnects respect the backoff, a
//! relay in a live status is never exported as `Dead` and `relays_dead` counts exactly the
//! relays exported as `Dead`, a bootstrap relay never waits longer than the backoff cap plus
//! jitter for its next attempt);
//! final invariants at the end of the liveness phase (convergence against an oracle kept
//! independent of the core's indexes, every healthy target relay `Connected` with nothing
//! pending, nothing in flight, nothing invented).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sync_core::{
    Command, Config, HealthState, Input, Now, RelayLimits, RelayUrl, Status, SubId, SyncCore,
};

/// A broken invariant: which one, where, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// A stable tag (shrinking keeps candidates that fail with the same tag).
    pub invariant: String,
    /// The 1-based step after which it was found (0: the final check).
    pub step: u64,
    /// Virtual ms.
    pub at_ms: u64,
    /// Details.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariant `{}` broken at step {} (t={} ms): {}",
            self.invariant, self.step, self.at_ms, self.message
        )
    }
}

/// Pending batches per relay beyond which state counts as unbounded (a batch per discovery
/// window per relay; the scenarios are small).
const MAX_PENDING_BATCHES: usize = 200;

/// Statuses of every tracked relay before a step.
pub type Before = BTreeMap<RelayUrl, Status>;

/// Step-invariant state: what the simulator observed of the core's subscriptions.
#[derive(Debug)]
pub struct Checker {
    cfg: Config,
    own: BTreeSet<RelayUrl>,
    /// Subscriptions (and reconciliations) the core has open per relay, as observed:
    /// added by `Subscribe`/`NegentropyDiff`, removed by `Unsubscribe`, CLOSED, the
    /// negentropy answer, and any connection change.
    open: BTreeMap<RelayUrl, BTreeSet<SubId>>,
    /// Every subscription id ever used per relay (ids are unique for the life of the core).
    used: BTreeSet<(RelayUrl, SubId)>,
    /// NIP-11 limits the core was given.
    advertised: BTreeMap<RelayUrl, RelayLimits>,
    /// When each relay's last connection attempt failed.
    failed_at: BTreeMap<RelayUrl, u64>,
}

impl Checker {
    /// A checker for a core with `cfg`.
    #[must_use]
    pub fn new(cfg: &Config) -> Self {
        Self {
            cfg: cfg.clone(),
            own: cfg
                .own_relay_urls
                .iter()
                .filter_map(|u| RelayUrl::parse(u))
                .collect(),
            open: BTreeMap::new(),
            used: BTreeSet::new(),
            advertised: BTreeMap::new(),
            failed_at: BTreeMap::new(),
        }
    }

    /// A violation value (for checks made elsewhere).
    #[must_use]
    pub fn violation(&self, tag: &str, step: u64, at_ms: u64, message: String) -> Violation {
        Violation {
            invariant: tag.to_string(),
            step,
            at_ms,
            message,
        }
    }

    /// Statuses before a step.
    #[must_use]
    pub fn before(&self, core: &SyncCore) -> Before {
        core.relay_status()
            .map(|v| (v.url().clone(), v.status()))
            .collect()
    }

    /// Updates the observed subscriptions for an input about to be fed at `at_ms`.
    pub fn observe_input(&mut self, input: &Input, at_ms: u64) {
        match input {
            Input::ConnectFailed { relay, .. } | Input::ConnectRefused { relay, .. } => {
                self.open.remove(relay);
                self.failed_at.insert(relay.clone(), at_ms);
            }
            Input::Closed { relay, sub, .. }
            | Input::SendFailed { relay, sub, .. }
            | Input::NegentropyDiff { relay, sub, .. } => {
                if let Some(s) = self.open.get_mut(relay) {
                    s.remove(sub);
                }
            }
            Input::Connected { relay } => {
                self.open.remove(relay);
                self.failed_at.remove(relay);
            }
            Input::Disconnected { relay } => {
                self.open.remove(relay);
            }
            Input::RelayInfo { relay, limits } => {
                self.advertised.insert(relay.clone(), *limits);
            }
            _ => {}
        }
    }

    /// Checks one step's commands and the core's state after it.
    pub fn after_step(
        &mut self,
        core: &SyncCore,
        now: Now,
        step: u64,
        spurious_tick: bool,
        before: &Before,
        commands: &[Command],
    ) -> Result<(), Violation> {
        let at = now.mono.0;
        let fail = |tag: &str, message: String| Violation {
            invariant: tag.to_string(),
            step,
            at_ms: at,
            message,
        };
        if let Some(d) = core.next_deadline() {
            if d.at.0 <= at {
                return Err(fail(
                    "deadline-not-in-future",
                    format!(
                        "next_deadline {:?} at {} ms is not after now",
                        d.why, d.at.0
                    ),
                ));
            }
        }
        if spurious_tick && !commands.is_empty() {
            return Err(fail(
                "spurious-tick-not-noop",
                format!(
                    "a Tick with nothing due returned {} commands",
                    commands.len()
                ),
            ));
        }
        for c in commands {
            self.check_command(core, at, before, c)
                .map_err(|(tag, m)| fail(tag, m))?;
        }
        self.check_health(core, now)
            .map_err(|(tag, m)| fail(tag, m))?;
        self.check_bounded(core).map_err(|(tag, m)| fail(tag, m))
    }

    /// Health matches reality (docs/spec.md §14): a live relay is never exported as `Dead`, and
    /// `relays_dead` counts the relays exported as `Dead`. Operator-named (bootstrap) relays
    /// never wait longer than the capped backoff with jitter, naughty or dead (a new relay's
    /// first attempt may wait the startup jitter).
    fn check_health(&self, core: &SyncCore, now: Now) -> Result<(), (&'static str, String)> {
        let cap = (self.cfg.backoff_max_ms * (100 + self.cfg.backoff_jitter_percent) / 100)
            .max(self.cfg.startup_jitter_ms);
        let mut dead = 0;
        for v in core.relay_status() {
            let health = v.health();
            if health == HealthState::Dead {
                if is_live(v.status()) {
                    return Err((
                        "live-relay-dead",
                        format!("{} is {:?} but exported as Dead", v.url(), v.status()),
                    ));
                }
                dead += 1;
            }
            if let Some(at) = v.next_attempt_at().filter(|_| v.is_bootstrap()) {
                let wait = at.since_ms(now.mono);
                if wait > cap {
                    return Err((
                        "bootstrap-wait-over-cap",
                        format!(
                            "bootstrap relay {} waits {wait} ms for its next attempt (cap {cap} ms, naughty {:?})",
                            v.url(),
                            v.naughty()
                        ),
                    ));
                }
            }
        }
        if core.stats().relays_dead != dead {
            return Err((
                "relays-dead-count",
                format!(
                    "relays_dead is {} but {dead} relays are exported as Dead",
                    core.stats().relays_dead
                ),
            ));
        }
        Ok(())
    }

    /// Bounded state: pending batches per relay, open subscriptions within the relay's budget
    /// as the core reports it, the rejected memory within its configured size.
    fn check_bounded(&self, core: &SyncCore) -> Result<(), (&'static str, String)> {
        for v in core.relay_status() {
            if v.pending_batches() > MAX_PENDING_BATCHES {
                return Err((
                    "unbounded-state",
                    format!("{} pending batches on {}", v.pending_batches(), v.url()),
                ));
            }
            if v.open_subscriptions() > self.cfg.max_subscriptions {
                return Err((
                    "subscription-budget",
                    format!(
                        "the core reports {} open subscriptions on {} (cap {})",
                        v.open_subscriptions(),
                        v.url(),
                        self.cfg.max_subscriptions
                    ),
                ));
            }
        }
        let s = core.stats();
        if s.rejected_hot + s.rejected_cold > 2 * self.cfg.rejected_max_entries as u64 {
            return Err(("unbounded-state", "rejected memory above its cap".into()));
        }
        Ok(())
    }

    fn check_command(
        &mut self,
        core: &SyncCore,
        at: u64,
        before: &Before,
        c: &Command,
    ) -> Result<(), (&'static str, String)> {
        let Some(relay) = c.relay() else {
            return Ok(());
        };
        if self.own.contains(relay) {
            return Err(("own-url-target", format!("{c:?} is for our own relay")));
        }
        let after = core.relay(relay).map(|v| v.status());
        let live_after = after.is_some_and(is_live);
        match c {
            Command::Connect { .. } => self.check_connect(at, before, relay)?,
            Command::Subscribe { sub, .. } | Command::NegentropyDiff { sub, .. } => {
                if !live_after {
                    return Err((
                        "command-in-wrong-status",
                        format!("{} to {relay} while {after:?}", short(c)),
                    ));
                }
                if !self.used.insert((relay.clone(), sub.clone())) {
                    let open = self.open.get(relay).is_some_and(|s| s.contains(sub));
                    let tag = if open {
                        "duplicate-subscription"
                    } else {
                        "sub-id-reused"
                    };
                    return Err((tag, format!("{} reuses id {sub} on {relay}", short(c))));
                }
                self.check_filters(relay, c)?;
                let cap = self.sub_cap(relay);
                let open = self.open.entry(relay.clone()).or_default();
                open.insert(sub.clone());
                if open.len() > cap {
                    return Err((
                        "subscription-budget",
                        format!("{} open on {relay}, budget {cap}", open.len()),
                    ));
                }
            }
            Command::Unsubscribe { sub, .. } => {
                if let Some(s) = self.open.get_mut(relay) {
                    s.remove(sub);
                }
            }
            Command::Forget { .. } => {
                if after.is_some() {
                    return Err((
                        "forget-tracked",
                        format!("Forget {relay} which the core still tracks ({after:?})"),
                    ));
                }
                self.open.remove(relay);
            }
            Command::Disconnect { .. } | Command::Reoffer { .. } => {}
        }
        Ok(())
    }

    /// `Connect` only from `Disconnected` (or a new relay), and not sooner than the minimum
    /// backoff after a failed attempt.
    fn check_connect(
        &self,
        at: u64,
        before: &Before,
        relay: &RelayUrl,
    ) -> Result<(), (&'static str, String)> {
        if !matches!(before.get(relay), None | Some(Status::Disconnected)) {
            return Err((
                "connect-in-wrong-status",
                format!("Connect {relay} while {:?}", before.get(relay)),
            ));
        }
        if let Some(t) = self.failed_at.get(relay) {
            let min = self.cfg.backoff_base_ms * (100 - self.cfg.backoff_jitter_percent) / 100;
            if at < t + min {
                return Err((
                    "backoff-too-short",
                    format!(
                        "Connect {relay} {} ms after a failure (minimum {min})",
                        at - t
                    ),
                ));
            }
        }
        Ok(())
    }

    fn sub_cap(&self, relay: &RelayUrl) -> usize {
        let nip11 = self
            .advertised
            .get(relay)
            .and_then(|l| l.max_subscriptions)
            .map_or(usize::MAX, |m| m as usize);
        self.cfg.max_subscriptions.min(nip11)
    }

    fn check_filters(&self, relay: &RelayUrl, c: &Command) -> Result<(), (&'static str, String)> {
        let Command::Subscribe { filters, .. } = c else {
            return Ok(());
        };
        let nip11 = self
            .advertised
            .get(relay)
            .and_then(|l| l.max_filters)
            .map_or(usize::MAX, |m| m as usize);
        let cap = self.cfg.max_filters_per_req.min(nip11);
        if filters.is_empty() || filters.len() > cap {
            return Err((
                "filters-per-req",
                format!("REQ with {} filters to {relay} (cap {cap})", filters.len()),
            ));
        }
        Ok(())
    }
}

fn is_live(s: Status) -> bool {
    matches!(
        s,
        Status::Syncing | Status::Connected | Status::ConnectedHistoricSyncFailures
    )
}

fn short(c: &Command) -> &'static str {
    match c {
        Command::Connect { .. } => "Connect",
        Command::Disconnect { .. } => "Disconnect",
        Command::Subscribe { .. } => "Subscribe",
        Command::Unsubscribe { .. } => "Unsubscribe",
        Command::NegentropyDiff { .. } => "NegentropyDiff",
        Command::Reoffer { .. } => "Reoffer",
        Command::Forget { .. } => "Forget",
    }
}
