//! [`Ctx`]: what a relay's handlers need besides the relay itself, as disjoint borrows of the
//! core's other parts (so a handler can change its relay and, say, the statistics at once).

use crate::command::{Command, SubId};
use crate::config::Config;
use crate::historic::claims::IdClaims;
use crate::index::want::WantIndex;
use crate::rejected::RejectedMemory;
use crate::stats::Stats;
use crate::time::Now;
use crate::url::RelayUrl;

/// What a relay handler needs besides the relay itself (disjoint borrows of the core).
pub(crate) struct Ctx<'a> {
    /// The engine's configuration.
    pub(crate) cfg: &'a Config,
    /// The reading of the current step.
    pub(crate) now: Now,
    /// The step's commands, in order; handlers only append.
    pub(crate) out: &'a mut Vec<Command>,
    /// Engine-wide statistics.
    pub(crate) stats: &'a mut Stats,
    /// The rejected-events memory.
    pub(crate) rejected: &'a mut RejectedMemory,
    /// What is wanted from which relay (read-only for relay handlers).
    pub(crate) want: &'a WantIndex,
    /// Which relay fetches which id (so that each id is fetched from one relay at a time).
    pub(crate) claims: &'a mut IdClaims,
    /// No discovery update is waiting in the batch window.
    pub(crate) discovery_idle: bool,
}

impl Ctx<'_> {
    /// Queues `CLOSE sub` on `relay`, with the late-event window the shell keeps for it.
    pub(crate) fn unsubscribe(&mut self, relay: &RelayUrl, sub: SubId) {
        let window = self.cfg.late_event_window_ms;
        let late_until = (window > 0).then(|| self.now.mono.plus_ms(window));
        self.out.push(Command::Unsubscribe {
            relay: relay.clone(),
            sub,
            late_until,
        });
    }
}
