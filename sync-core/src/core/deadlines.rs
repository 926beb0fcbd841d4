//! When the shell must next wake the core: the earliest deadline of the engine (discovery
//! window, rejected-memory expiry) and of the relay first in the timer index.

use crate::core::SyncCore;
use crate::time::{Deadline, Earliest, TimerKind};

impl SyncCore {
    /// When the shell must next send `Input::Tick`, and why. Spurious ticks are no-ops.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Deadline> {
        let mut e = self.engine_deadlines();
        // The relay whose timer is first (ties: first URL, as a scan in URL order would pick).
        if let Some(r) = self.timers.first().and_then(|(_, u)| self.relays.get(u)) {
            r.offer_deadlines(&mut e, self.want.has_target(&r.url) || r.bootstrap);
        }
        debug_assert_eq!(e.0, self.next_deadline_by_scan(), "timer index out of date");
        e.0
    }

    /// The deadlines that belong to no relay: the discovery window and rejected-memory expiry.
    fn engine_deadlines(&self) -> Earliest {
        let mut e = Earliest::default();
        e.offer(self.discovery.deadline(), TimerKind::DiscoveryWindow, None);
        e.offer(
            self.rejected.next_deadline(),
            TimerKind::RejectedExpiry,
            None,
        );
        e
    }

    /// `next_deadline` by scanning every relay: what the timer index must agree with (checked
    /// in debug builds, so every test exercises it).
    fn next_deadline_by_scan(&self) -> Option<Deadline> {
        let mut e = self.engine_deadlines();
        for r in self.relays.values() {
            r.offer_deadlines(&mut e, self.want.has_target(&r.url) || r.bootstrap);
        }
        e.0
    }
}
