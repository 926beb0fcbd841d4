//! The simulated world: a virtual clock that jumps from event to event, the in-flight message
//! queue (ordered by time, then by a sequence number), the fake relays, the host, and the core.
//! Every input goes through [`World::feed`], which checks the step invariants.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use nostr::EventId;
use sync_core::trace::TraceStep;
use sync_core::{Command, Input, Now, Outcome, RelayUrl, SyncCore};

use crate::bench_wire::{neg_model, WireLog};
use crate::faults::{Fault, Timed};
use crate::host::Host;
use crate::invariants::{Checker, Violation};
use crate::relay::{FakeRelay, RelayMsg};
use crate::rng::SimRng;
use crate::scenario::{Scenario, WALL0};

/// A run that takes more steps than this is a livelock.
pub const MAX_STEPS: u64 = 3_000_000;
/// How long work in progress at the end of the liveness phase may take to finish.
pub const DRAIN_MS: u64 = 2 * 3_600_000;
/// How long a hung connection attempt takes.
const SLOW_CONNECT_MS: u64 = 15_000;

/// Something in flight.
#[derive(Clone, Debug)]
enum Queued {
    /// A relay message on connection `epoch` (dropped if that connection is gone).
    Msg {
        relay: RelayUrl,
        epoch: u64,
        msg: RelayMsg,
    },
    /// Connection attempt `attempt` completes (succeeds if the relay accepts connections
    /// then; dropped if the core gave up on that attempt).
    ConnectDone { relay: RelayUrl, attempt: u64 },
    /// A connection attempt fails.
    ConnectFailed { relay: RelayUrl, error: String },
    /// A connection closed.
    Disconnected { relay: RelayUrl },
    /// A host-side input.
    Input(Input),
}

/// The filters of a subscription the world sent, as the runtime's routing table keeps them:
/// events on it are offered to the host while it is open and match, or after its close until
/// the core's `late_until` if they match; otherwise they are `Outcome::NotOffered`.
#[derive(Clone, Debug)]
struct SubRoute {
    filters: Vec<nostr::Filter>,
    /// `None` while open; the end of the late-event window once closed.
    late_until: Option<u64>,
}

/// What a run did, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Inputs fed to the core.
    pub steps: u64,
    /// Faults applied.
    pub faults: u64,
    /// Relay messages dropped because their connection was gone.
    pub dropped_messages: u64,
}

/// The world.
pub struct World {
    /// The engine under test.
    pub core: SyncCore,
    /// Virtual monotonic ms.
    pub mono_ms: u64,
    /// Wall-clock offset from `WALL0 + mono/1000` (wall-clock jump faults).
    wall_offset_secs: i64,
    /// The fake relays by canonical URL.
    pub relays: BTreeMap<RelayUrl, FakeRelay>,
    /// The host.
    pub host: Host,
    /// In flight, by (time, sequence).
    queue: BTreeMap<(u64, u64), Queued>,
    seq: u64,
    /// Faults still to apply (safety phase only).
    faults: VecDeque<Timed>,
    /// When the safety phase ends and every fault heals.
    pub safety_ms: u64,
    /// When the run ends.
    pub end_ms: u64,
    /// Whether the liveness phase has begun.
    pub healed: bool,
    /// Recorded steps, if recording.
    pub trace: Option<Vec<TraceStep>>,
    /// Step invariants.
    pub checker: Checker,
    /// Counters.
    pub counts: Counts,
    /// Ids published directly to the host (and the host's store at start).
    pub published_local: BTreeSet<EventId>,
    /// Connection-latency draws.
    rng: SimRng,
    /// Wire accounting (`sync-sim bench` only; `None` costs nothing).
    pub wire: Option<WireLog>,
    /// Open and recently closed subscriptions (see [`SubRoute`]).
    routes: BTreeMap<(RelayUrl, sync_core::SubId), SubRoute>,
}

impl World {
    /// Builds the world of `scenario` (nothing has happened yet).
    #[must_use]
    pub fn new(scenario: &Scenario, record: bool) -> Self {
        let start = Now::at(0, WALL0);
        let core = SyncCore::new(scenario.config.clone(), scenario.seed, start);
        let mut relays = BTreeMap::new();
        for (i, spec) in scenario.relays.iter().enumerate() {
            let r = FakeRelay::new(spec.clone(), scenario.seed, i as u64);
            relays.insert(r.url.clone(), r);
        }
        for placed in &scenario.initial {
            for url in &placed.relays {
                if let Some(r) = RelayUrl::parse(url).and_then(|u| relays.get_mut(&u)) {
                    r.store(&placed.event);
                }
            }
        }
        Self {
            core,
            mono_ms: 0,
            wall_offset_secs: 0,
            relays,
            host: Host::new(
                &scenario.config.own_relay_urls,
                &scenario.blacklist,
                scenario.config.derive_relays_from_clone_urls,
            ),
            queue: BTreeMap::new(),
            seq: 0,
            faults: scenario.faults.iter().cloned().collect(),
            safety_ms: scenario.safety_ms,
            end_ms: scenario.safety_ms + scenario.liveness_ms,
            healed: false,
            trace: record.then(Vec::new),
            checker: Checker::new(&scenario.config),
            counts: Counts::default(),
            published_local: BTreeSet::new(),
            rng: SimRng::new(scenario.seed, 2),
            wire: None,
            routes: BTreeMap::new(),
        }
    }

    /// The clocks now.
    #[must_use]
    pub fn now(&self) -> Now {
        let wall = WALL0 as i64 + (self.mono_ms / 1000) as i64 + self.wall_offset_secs;
        Now::at(self.mono_ms, wall.max(0) as u64)
    }

    fn later(&mut self, delay_ms: u64, q: Queued) {
        self.seq += 1;
        self.queue.insert((self.mono_ms + delay_ms, self.seq), q);
    }

    fn send(&mut self, relay: &RelayUrl, msgs: Vec<(u64, RelayMsg)>) {
        let Some(epoch) = self.relays.get(relay).and_then(|r| r.conn) else {
            return;
        };
        for (delay, msg) in msgs {
            self.later(
                delay,
                Queued::Msg {
                    relay: relay.clone(),
                    epoch,
                    msg,
                },
            );
        }
    }

    /// A lagging shell stream: the oldest half (rounded up) of the queued EVENT, EOSE, CLOSED
    /// and NOTICE messages of `relay` (or of every relay) is lost, as when nostr-sdk's
    /// broadcast receiver falls behind: the oldest messages are overwritten, newer ones still
    /// arrive. Negentropy answers do not travel on that stream (the runtime's executor
    /// returns them) and stay, but a reconciliation still in flight reports `Lagged`.
    fn lose_stream_messages(&mut self, relay: Option<&RelayUrl>) {
        let on_stream = |q: &Queued| match q {
            Queued::Msg { relay: r, msg, .. } => {
                !matches!(msg, RelayMsg::Neg(..)) && relay.is_none_or(|want| want == r)
            }
            _ => false,
        };
        // The runtime watches the relay's notification channel while a reconciliation runs; a
        // lag there makes it report the (possibly partial) result as `Lagged`.
        for q in self.queue.values_mut() {
            if let Queued::Msg {
                relay: r,
                msg: RelayMsg::Neg(_, result @ sync_core::NegentropyResult::Missing { .. }),
                ..
            } = q
            {
                if relay.is_none_or(|want| want == r) {
                    *result = sync_core::NegentropyResult::Lagged;
                }
            }
        }
        let total = self.queue.values().filter(|q| on_stream(q)).count();
        let mut lose = total.div_ceil(2);
        self.queue.retain(|_, q| {
            if lose == 0 || !on_stream(q) {
                return true;
            }
            lose -= 1;
            false
        });
        self.counts.dropped_messages += total.div_ceil(2) as u64;
    }

    /// Whether anything is in flight for a relay the convergence check counts.
    #[must_use]
    pub fn in_flight_for_healthy(&self) -> usize {
        self.queue
            .values()
            .filter(|q| match q {
                Queued::Msg { relay, .. }
                | Queued::ConnectDone { relay, .. }
                | Queued::ConnectFailed { relay, .. }
                | Queued::Disconnected { relay } => {
                    self.relays.get(relay).is_some_and(|r| !r.spec.dead_forever)
                }
                Queued::Input(_) => true,
            })
            .count()
    }

    /// Feeds one input, checks the step invariants, records it and executes its commands.
    pub fn feed(&mut self, input: Input) -> Result<(), Violation> {
        self.feed_checked(input, false)
    }

    fn feed_checked(&mut self, input: Input, spurious_tick: bool) -> Result<(), Violation> {
        let now = self.now();
        let before = self.checker.before(&self.core);
        self.checker.observe_input(&input, now.mono.0);
        let recorded = self.trace.is_some().then(|| input.clone());
        let commands = self.core.step(now, input);
        self.counts.steps += 1;
        let step = self.counts.steps;
        if let (Some(trace), Some(input)) = (&mut self.trace, recorded) {
            trace.push(TraceStep {
                now,
                input,
                commands: commands.clone(),
            });
        }
        self.checker
            .after_step(&self.core, now, step, spurious_tick, &before, &commands)?;
        for c in commands {
            self.execute(c)?;
        }
        Ok(())
    }

    fn execute(&mut self, c: Command) -> Result<(), Violation> {
        let now_ms = self.mono_ms;
        match c {
            Command::Connect { relay } => {
                let Some(r) = self.relays.get_mut(&relay) else {
                    let error = format!(
                        "failed to lookup address information: Name or service not known ({relay})"
                    );
                    self.later(50, Queued::ConnectFailed { relay, error });
                    return Ok(());
                };
                r.close();
                r.attempt += 1;
                let attempt = r.attempt;
                let slow = r.spec.slow_connect_percent;
                let delay = if self.rng.chance(slow) {
                    SLOW_CONNECT_MS
                } else {
                    r.spec.connect_latency_ms
                };
                self.later(delay, Queued::ConnectDone { relay, attempt });
            }
            Command::Disconnect { relay } => {
                if let Some(r) = self.relays.get_mut(&relay) {
                    r.close();
                    r.attempt += 1;
                }
                self.later(5, Queued::Disconnected { relay });
            }
            Command::Subscribe {
                relay,
                sub,
                kind,
                filters,
            } => {
                self.routes.insert(
                    (relay.clone(), sub.clone()),
                    SubRoute {
                        filters: filters.clone(),
                        late_until: None,
                    },
                );
                match self.relays.get_mut(&relay) {
                    Some(r) if r.conn.is_some() => {
                        if let Some(w) = &mut self.wire {
                            w.req(&relay, &sub, kind, &filters);
                        }
                        let msgs = r.on_req(now_ms, &sub, kind, &filters);
                        self.send(&relay, msgs);
                    }
                    // The connection is gone (its `Disconnected` is still in flight): the
                    // runtime's `send_msg` fails and reports it.
                    Some(_) => {
                        let error = "relay not connected".to_string();
                        let failed = Input::SendFailed { relay, sub, error };
                        self.later(0, Queued::Input(failed));
                    }
                    None => {}
                }
            }
            Command::Unsubscribe {
                relay,
                sub,
                late_until,
            } => {
                self.routes
                    .retain(|_, r| r.late_until.is_none_or(|t| t >= now_ms));
                let key = (relay.clone(), sub.clone());
                match (late_until, self.routes.get_mut(&key)) {
                    (Some(t), Some(route)) => route.late_until = Some(t.0),
                    _ => {
                        self.routes.remove(&key);
                    }
                }
                if let Some(r) = self.relays.get_mut(&relay) {
                    if let (Some(w), Some(_)) = (&mut self.wire, r.conn) {
                        w.close(&sub);
                    }
                    r.on_close(&sub);
                }
            }
            Command::NegentropyDiff { relay, sub, filter } => {
                let host = &self.host.store;
                if let Some(r) = self.relays.get_mut(&relay).filter(|r| r.conn.is_some()) {
                    if let Some(w) = &mut self.wire {
                        let (local, remote, missing, extra) = r.neg_counts(&filter, host);
                        w.neg_open(
                            &relay,
                            &sub,
                            &filter,
                            neg_model(local, remote, missing, extra),
                        );
                    }
                    if let Some((delay, msg)) = r.on_negentropy(&sub, &filter, host) {
                        // A timeout is the shell's answer, after its timeout.
                        let delay = if matches!(
                            msg,
                            RelayMsg::Neg(_, sync_core::NegentropyResult::Timeout)
                        ) {
                            let cfg = self.core.config();
                            cfg.negentropy_timeout_ms.min(cfg.batch_deadline_ms)
                        } else {
                            delay
                        };
                        self.send(&relay, vec![(delay, msg)]);
                    }
                }
            }
            Command::Reoffer { ids } => return self.reoffer(ids),
            // The fake relay keeps its store; the world holds nothing else for it.
            Command::Forget { .. } => {}
        }
        Ok(())
    }

    /// `Reoffer`: the host re-runs its policy on events it rejected; only such ids may come.
    fn reoffer(&mut self, ids: Vec<EventId>) -> Result<(), Violation> {
        for id in ids {
            let Some(event) = self.host.rejected.get(&id).cloned() else {
                if self.host.store.contains_key(&id) {
                    continue;
                }
                return Err(self.checker.violation(
                    "reoffer-unknown-id",
                    self.counts.steps,
                    self.mono_ms,
                    format!("Reoffer of {id} which the host never rejected"),
                ));
            };
            if self.host.offer(&event).outcome == Outcome::Saved {
                self.later(0, Queued::Input(Input::Accepted { event }));
            }
        }
        Ok(())
    }

    /// Delivers one queued item.
    fn deliver(&mut self, q: Queued) -> Result<(), Violation> {
        match q {
            Queued::Msg { relay, epoch, msg } => {
                if self.relays.get(&relay).and_then(|r| r.conn) != Some(epoch) {
                    self.counts.dropped_messages += 1;
                    return Ok(());
                }
                self.deliver_msg(relay, msg)
            }
            Queued::ConnectDone { relay, attempt } => {
                let now_ms = self.mono_ms;
                let Some(r) = self.relays.get_mut(&relay).filter(|r| r.attempt == attempt) else {
                    return Ok(());
                };
                if !r.accepts_connections(now_ms) {
                    let error = "Connection refused (os error 111)".to_string();
                    return self.feed(Input::ConnectFailed { relay, error });
                }
                r.open();
                if let Some(limits) = r.limits() {
                    self.feed(Input::RelayInfo {
                        relay: relay.clone(),
                        limits,
                    })?;
                }
                self.feed(Input::Connected { relay })
            }
            Queued::ConnectFailed { relay, error } => {
                self.feed(Input::ConnectFailed { relay, error })
            }
            Queued::Disconnected { relay } => {
                // The routing table forgets the connection's open subscriptions.
                self.routes
                    .retain(|(r, _), route| *r != relay || route.late_until.is_some());
                self.feed(Input::Disconnected { relay })
            }
            Queued::Input(input) => self.feed(input),
        }
    }

    fn deliver_msg(&mut self, relay: RelayUrl, msg: RelayMsg) -> Result<(), Violation> {
        if let Some(w) = &mut self.wire {
            account_inbound(w, &msg);
        }
        match msg {
            RelayMsg::Event(sub, event) => {
                let offered = self
                    .routes
                    .get(&(relay.clone(), sub.clone()))
                    .is_some_and(|r| {
                        r.late_until.is_none_or(|t| t >= self.mono_ms)
                            && r.filters.iter().any(|f| sync_core::matches(f, &event))
                    });
                if !offered {
                    return self.feed(Input::Delivered {
                        relay,
                        sub,
                        event,
                        outcome: Outcome::NotOffered,
                    });
                }
                let decision = self.host.offer(&event);
                self.feed(Input::Delivered {
                    relay,
                    sub,
                    event,
                    outcome: decision.outcome,
                })?;
                if let Some(coord) = decision.withdrew {
                    self.feed(Input::WithdrawRepo { coord })?;
                }
                Ok(())
            }
            RelayMsg::Eose(sub) => {
                if let Some(r) = self.relays.get_mut(&relay).filter(|r| r.break_after_eose) {
                    // Read, then the connection breaks before the core's answer is written.
                    r.break_after_eose = false;
                    if r.close() {
                        self.later(
                            1,
                            Queued::Disconnected {
                                relay: relay.clone(),
                            },
                        );
                    }
                }
                self.feed(Input::Eose { relay, sub })
            }
            RelayMsg::Closed(sub, message) => self.feed(Input::Closed {
                relay,
                sub,
                message,
            }),
            RelayMsg::Notice(message) => self.feed(Input::Notice { relay, message }),
            RelayMsg::Neg(sub, result) => self.feed(Input::NegentropyDiff { relay, sub, result }),
        }
    }

    /// Applies one fault.
    fn apply(&mut self, fault: Fault) -> Result<(), Violation> {
        self.counts.faults += 1;
        if matches!(
            fault,
            Fault::StallEose { .. }
                | Fault::DropEose { .. }
                | Fault::NegError { .. }
                | Fault::BreakAfterEose { .. }
        ) {
            self.set_relay_knob(&fault);
            return Ok(());
        }
        let now_ms = self.mono_ms;
        let url = |s: &str| RelayUrl::parse(s);
        match fault {
            Fault::Disconnect { relay } => self.drop_connection(url(&relay), None),
            Fault::Down { relay, for_ms } => self.drop_connection(url(&relay), Some(for_ms)),
            Fault::StallEose { .. }
            | Fault::DropEose { .. }
            | Fault::NegError { .. }
            | Fault::BreakAfterEose { .. } => {}
            Fault::CloseSubs {
                relay,
                live,
                message,
            } => {
                if let Some(u) = url(&relay) {
                    if let Some(r) = self.relays.get_mut(&u) {
                        let msgs = r.close_subs(live, &message);
                        self.send(&u, msgs);
                    }
                }
            }
            Fault::LateTraffic { relay } => {
                if let Some(u) = url(&relay) {
                    if let Some(r) = self.relays.get_mut(&u).filter(|r| r.conn.is_some()) {
                        let msgs = r.late_traffic();
                        self.send(&u, msgs);
                    }
                }
            }
            Fault::Publish { relays, event } => {
                for relay in relays {
                    if let Some(u) = url(&relay) {
                        if let Some(r) = self.relays.get_mut(&u) {
                            let msgs = r.on_publish(&event);
                            self.send(&u, msgs);
                        }
                    }
                }
            }
            Fault::LocalPublish { event } => return self.local_publish(event),
            Fault::HostWithdraw { coord } => {
                self.host.withdraw(&coord);
                return self.feed(Input::WithdrawRepo { coord });
            }
            Fault::WallJump { delta_secs } => self.wall_offset_secs += delta_secs,
            Fault::Lagged { relay } => {
                let relay = relay.as_deref().and_then(url);
                self.lose_stream_messages(relay.as_ref());
                return self.feed(Input::Lagged { relay });
            }
            Fault::SpuriousTick => {
                let due = self.core.next_deadline().is_some_and(|d| d.at.0 <= now_ms);
                if !due {
                    return self.feed_checked(Input::Tick, true);
                }
            }
        }
        Ok(())
    }

    /// Faults that only change how a relay behaves from now on.
    fn set_relay_knob(&mut self, fault: &Fault) {
        let now_ms = self.mono_ms;
        let (Fault::StallEose { relay, .. }
        | Fault::DropEose { relay, .. }
        | Fault::NegError { relay, .. }
        | Fault::BreakAfterEose { relay }) = fault
        else {
            return;
        };
        let Some(r) = RelayUrl::parse(relay).and_then(|u| self.relays.get_mut(&u)) else {
            return;
        };
        match *fault {
            Fault::StallEose { for_ms, .. } => {
                r.stall_until_ms = now_ms + for_ms;
                r.stall_ms = for_ms;
            }
            Fault::DropEose { count, .. } => r.drop_eose += count,
            Fault::NegError { count, .. } => r.neg_errors += count,
            Fault::BreakAfterEose { .. } => r.break_after_eose = true,
            _ => {}
        }
    }

    fn drop_connection(&mut self, relay: Option<RelayUrl>, down_for_ms: Option<u64>) {
        let now_ms = self.mono_ms;
        let Some(u) = relay else { return };
        let Some(r) = self.relays.get_mut(&u) else {
            return;
        };
        if let Some(ms) = down_for_ms {
            r.down_until_ms = r.down_until_ms.max(now_ms + ms);
        }
        if r.close() {
            self.later(1, Queued::Disconnected { relay: u });
        }
    }

    fn local_publish(&mut self, event: sync_core::EventMeta) -> Result<(), Violation> {
        self.published_local.insert(event.id);
        let decision = self.host.offer(&event);
        match decision.outcome {
            Outcome::Saved => self.feed(Input::Accepted { event })?,
            Outcome::Rejected => self.feed(Input::Rejected { event })?,
            Outcome::Duplicate | Outcome::Deferred | Outcome::NotOffered => {}
        }
        if let Some(coord) = decision.withdrew {
            self.feed(Input::WithdrawRepo { coord })?;
        }
        Ok(())
    }

    /// Accepts the host's initial store (replayed as `Accepted`, as a host does at start).
    pub fn start(&mut self, local: &[sync_core::EventMeta]) -> Result<(), Violation> {
        for e in local {
            self.published_local.insert(e.id);
            if self.host.offer(e).outcome == Outcome::Saved {
                self.feed(Input::Accepted { event: e.clone() })?;
            }
        }
        Ok(())
    }

    /// Runs to the end: faults in the safety phase, healing, then the liveness phase; then, if
    /// work is still in progress at the end (e.g. a daily resync that just began), lets it
    /// finish for at most [`DRAIN_MS`] so the final checks see a settled world.
    pub fn run(&mut self) -> Result<(), Violation> {
        self.run_until(self.end_ms)?;
        let end = self.end_ms + DRAIN_MS;
        while !self.settled() && self.mono_ms < end {
            self.run_until(self.mono_ms + 60_000)?;
        }
        Ok(())
    }

    /// Whether nothing is in flight for healthy relays and every healthy relay the core
    /// tracks has no pending batch.
    #[must_use]
    pub fn settled(&self) -> bool {
        self.in_flight_for_healthy() == 0
            && self.core.relay_status().all(|v| {
                v.pending_batches() == 0
                    || self.relays.get(v.url()).is_none_or(|r| r.spec.dead_forever)
            })
    }

    /// Runs until virtual time `until_ms` (faults, healing and deadlines included).
    pub fn run_until(&mut self, until_ms: u64) -> Result<(), Violation> {
        loop {
            if self.counts.steps > MAX_STEPS {
                let (step, at) = (self.counts.steps, self.mono_ms);
                return Err(self.checker.violation(
                    "runaway",
                    step,
                    at,
                    format!("more than {MAX_STEPS} steps: a livelock"),
                ));
            }
            let t_queue = self.queue.keys().next().map(|(t, _)| *t);
            let t_fault = (!self.healed)
                .then(|| self.faults.front().map(|f| f.at_ms))
                .flatten();
            let t_heal = (!self.healed).then_some(self.safety_ms);
            let t_deadline = self.core.next_deadline().map(|d| d.at.0);
            let Some(t) = [t_queue, t_heal, t_fault, t_deadline]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            if t > until_ms {
                break;
            }
            self.mono_ms = self.mono_ms.max(t);
            if t_queue == Some(t) {
                let (_, q) = self.queue.pop_first().expect("a first entry");
                self.deliver(q)?;
            } else if t_heal == Some(t) {
                self.heal();
            } else if t_fault == Some(t) {
                let f = self.faults.pop_front().expect("a fault");
                self.apply(f.fault)?;
            } else {
                self.feed(Input::Tick)?;
            }
        }
        self.mono_ms = self.mono_ms.max(until_ms);
        Ok(())
    }

    fn heal(&mut self) {
        self.healed = true;
        self.faults.clear();
        for r in self.relays.values_mut() {
            r.heal();
        }
    }
}

/// Records one delivered relay message in the wire log.
fn account_inbound(w: &mut WireLog, msg: &RelayMsg) {
    match msg {
        RelayMsg::Event(sub, event) => w.event(sub, event),
        RelayMsg::Eose(sub) => w.eose(sub),
        RelayMsg::Closed(sub, message) => w.closed(sub, message),
        RelayMsg::Notice(message) => w.notice(message),
        RelayMsg::Neg(sub, result) => match result {
            // A lagged reconciliation was answered; the shell discarded what it saw.
            sync_core::NegentropyResult::Missing { .. } | sync_core::NegentropyResult::Lagged => {
                w.neg_answer(sub, None);
            }
            // Nothing came from the relay.
            sync_core::NegentropyResult::Timeout => {}
            sync_core::NegentropyResult::Refused { message }
            | sync_core::NegentropyResult::Error { message } => {
                w.neg_answer(sub, Some(message));
            }
        },
    }
}
