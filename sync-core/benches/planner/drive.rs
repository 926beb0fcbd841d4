//! Driving a [`SyncCore`] like a shell whose relays answer at once: every `Connect` is
//! answered `Connected`, every negentropy diff finds nothing missing (the host already holds
//! everything), every historic REQ gets its EOSE. This reaches the steady state the cases start
//! from and lets a case's follow-up work run to completion.

use std::collections::VecDeque;

use sync_core::{Command, Config, Input, NegentropyResult, Now, SubKind, SyncCore, TimerKind};

use crate::workload::WALL0;

/// What the core asked for, counted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    /// Inputs stepped.
    pub(crate) inputs: u64,
    /// Live REQs sent.
    pub(crate) live_reqs: u64,
    /// Historic REQs sent.
    pub(crate) historic_reqs: u64,
    /// Filters in all REQs.
    pub(crate) filters: u64,
    /// Negentropy reconciliations asked for.
    pub(crate) diffs: u64,
    /// Tag values in the filters of REQs and reconciliations (each an owned string once a
    /// shell builds the nostr filter; the core shares them per chunk).
    pub(crate) values: u64,
    /// CLOSEs sent.
    pub(crate) closes: u64,
    /// Connects asked for.
    pub(crate) connects: u64,
}

/// Tag values in a filter (counted without building its nostr `Filter`).
fn tag_values(f: &sync_core::WireFilter) -> u64 {
    f.tag_value_count() as u64
}

impl Counts {
    /// Counts one command.
    pub(crate) fn add(&mut self, c: &Command) {
        match c {
            Command::Subscribe { kind, filters, .. } => {
                self.filters += filters.len() as u64;
                self.values += filters.iter().map(tag_values).sum::<u64>();
                match kind {
                    SubKind::Live => self.live_reqs += 1,
                    SubKind::Historic => self.historic_reqs += 1,
                }
            }
            Command::NegentropyDiff { filter, .. } => {
                self.diffs += 1;
                self.values += tag_values(filter);
            }
            Command::Unsubscribe { .. } => self.closes += 1,
            Command::Connect { .. } => self.connects += 1,
            Command::Disconnect { .. } | Command::Reoffer { .. } | Command::Forget { .. } => {}
        }
    }
}

/// The engine with a virtual clock.
#[derive(Debug)]
pub(crate) struct Driver {
    /// The engine under test.
    pub(crate) core: SyncCore,
    /// The current time.
    pub(crate) now: Now,
}

/// The configuration of every run: our own relay, defaults otherwise.
pub(crate) fn config() -> Config {
    Config {
        own_relay_urls: vec!["wss://our.relay.example".into()],
        ..Config::default()
    }
}

impl Driver {
    /// A fresh engine at time 0.
    pub(crate) fn new(seed: u64) -> Self {
        let now = Now::at(0, WALL0);
        Self {
            core: SyncCore::new(config(), seed, now),
            now,
        }
    }

    /// Moves the clock forward.
    pub(crate) fn advance_ms(&mut self, ms: u64) {
        self.now = self.now.plus_ms(ms);
    }

    /// One step at the current time.
    pub(crate) fn step(&mut self, input: Input) -> Vec<Command> {
        self.core.step(self.now, input)
    }

    /// Answers `commands` (and everything they cause) until the core asks for nothing more.
    pub(crate) fn settle(&mut self, commands: Vec<Command>) -> Counts {
        let mut counts = Counts::default();
        let mut queue: VecDeque<Input> = VecDeque::new();
        let answer = |c: Command, q: &mut VecDeque<Input>, counts: &mut Counts| {
            counts.add(&c);
            match c {
                Command::Connect { relay } => q.push_back(Input::Connected { relay }),
                Command::Disconnect { relay } => q.push_back(Input::Disconnected { relay }),
                Command::Subscribe {
                    relay,
                    sub,
                    kind: SubKind::Historic,
                    ..
                } => q.push_back(Input::Eose { relay, sub }),
                Command::NegentropyDiff { relay, sub, .. } => q.push_back(Input::NegentropyDiff {
                    relay,
                    sub,
                    result: NegentropyResult::Missing { ids: Vec::new() },
                }),
                _ => {}
            }
        };
        for c in commands {
            answer(c, &mut queue, &mut counts);
        }
        while let Some(input) = queue.pop_front() {
            counts.inputs += 1;
            for c in self.core.step(self.now, input) {
                answer(c, &mut queue, &mut counts);
            }
        }
        counts
    }

    /// Jumps to the next deadline (if it is not later than `limit_ms` from now), ticks, and
    /// settles what that causes. Returns the deadline's kind.
    pub(crate) fn tick_next(&mut self, limit_ms: u64) -> Option<TimerKind> {
        let d = self.core.next_deadline()?;
        if d.at.0 > self.now.mono.0 + limit_ms {
            return None;
        }
        let wait = d.at.0.saturating_sub(self.now.mono.0);
        self.advance_ms(wait);
        let out = self.step(Input::Tick);
        self.settle(out);
        Some(d.why)
    }

    /// Runs every timer due within `window_ms` (connects, discovery, batches) and settles.
    pub(crate) fn run_for(&mut self, window_ms: u64) {
        let end = self.now.mono.0 + window_ms;
        while self
            .tick_next(end.saturating_sub(self.now.mono.0))
            .is_some()
        {}
        if self.now.mono.0 < end {
            self.advance_ms(end - self.now.mono.0);
        }
    }
}
