//! The simulated world: a virtual clock that jumps from event to event, the in-flight message
//! queue (ordered by time, then by a sequence number), the fake relays, the host, and the core.
//! Every input goes through [`World::feed`], which checks the step invariants.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use nostr::EventId;
use sync_core::trace::TraceStep;
use sync_core::{Input, Now, Outcome, RelayUrl, SyncCore};

use crate::bench_wire::WireLog;
use crate::faults::Timed;
use crate::host::Host;
use crate::invariants::{Checker, Violation};
use crate::relay::{FakeRelay, RelayMsg};
use crate::rng::SimRng;
use crate::scenario::{Scenario, WALL0};

mod commands;
mod fault_injection;
mod restart;

pub use restart::{Persisted, PERSIST_EVERY_MS};

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
    /// When each event delivered by a relay was stored (virtual ms; `sync-sim bench` only,
    /// `None` costs nothing).
    pub stored_at_ms: Option<BTreeMap<EventId, u64>>,
    /// Open and recently closed subscriptions (see [`SubRoute`]).
    routes: BTreeMap<(RelayUrl, sync_core::SubId), SubRoute>,
    /// The core's configuration and seed (a restarted core is built from them).
    config: sync_core::Config,
    /// See `config`.
    seed: u64,
    /// What the process last wrote to its data directory; `None` unless the plan restarts
    /// the process (so runs without restarts do exactly what they did before).
    pub persisted: Option<Persisted>,
    /// Process restarts so far.
    pub restarts: u64,
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
            stored_at_ms: None,
            routes: BTreeMap::new(),
            config: scenario.config.clone(),
            seed: scenario.seed,
            persisted: scenario
                .faults
                .iter()
                .any(|t| matches!(t.fault, crate::faults::Fault::Restart { .. }))
                .then(Persisted::default),
            restarts: 0,
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
                | Queued::Disconnected { relay } => self
                    .relays
                    .get(relay)
                    .is_some_and(|r| !r.spec.never_serves()),
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
            account_inbound(w, &relay, &msg);
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
                if let Some(at) = self.stored_at_ms.as_mut() {
                    if decision.outcome == Outcome::Saved {
                        at.insert(event.id, self.mono_ms);
                    }
                }
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
    /// finish for at most [`DRAIN_MS`] so the final checks see a settled world. Checked every
    /// second: a relay over its live budget polls every 2 minutes for a few seconds, and a
    /// coarser check can keep landing inside those polls.
    pub fn run(&mut self) -> Result<(), Violation> {
        self.run_until(self.end_ms)?;
        let end = self.end_ms + DRAIN_MS;
        while !self.settled() && self.mono_ms < end {
            self.run_until(self.mono_ms + 1_000)?;
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
                    || self
                        .relays
                        .get(v.url())
                        .is_none_or(|r| r.spec.never_serves())
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
            let t_persist = self.next_persist_at();
            let Some(t) = [t_queue, t_heal, t_fault, t_deadline, t_persist]
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
            self.persist_if_due();
            if t_queue == Some(t) {
                let (_, q) = self.queue.pop_first().expect("a first entry");
                self.deliver(q)?;
            } else if t_heal == Some(t) {
                self.heal();
            } else if t_fault == Some(t) {
                let f = self.faults.pop_front().expect("a fault");
                self.apply(f.fault)?;
            } else if t_persist == Some(t) && t_deadline != Some(t) {
                // Written by `persist_if_due` above: a periodic write, not an input.
            } else {
                self.feed(Input::Tick)?;
            }
        }
        self.mono_ms = self.mono_ms.max(until_ms);
        Ok(())
    }
}

/// Records one delivered relay message in the wire log.
fn account_inbound(w: &mut WireLog, relay: &RelayUrl, msg: &RelayMsg) {
    match msg {
        RelayMsg::Event(sub, event) => w.event(relay, sub, event),
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
