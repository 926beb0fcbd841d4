//! How the world applies a fault of the plan (`crate::faults`): disconnects and outages,
//! relay behaviour changes, publications, withdrawals, and healing everything for the liveness
//! phase.

use sync_core::{Input, Outcome, RelayUrl};

use super::{Queued, World};
use crate::faults::Fault;
use crate::invariants::Violation;

impl World {
    /// Applies one fault.
    pub(super) fn apply(&mut self, fault: Fault) -> Result<(), Violation> {
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
            Fault::Restart { down_secs } => return self.restart(down_secs),
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

    pub(super) fn heal(&mut self) {
        self.healed = true;
        self.faults.clear();
        for r in self.relays.values_mut() {
            r.heal();
        }
    }
}
