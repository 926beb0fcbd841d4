//! How the world carries out the core's commands: connects, subscriptions, negentropy
//! reconciliations and re-offers, answered by the fake relays and the host model the way the
//! runtime would report them.

use nostr::EventId;
use sync_core::{Command, Input, Outcome, RelayUrl, SubId, SubKind};

use super::{Queued, SubRoute, World, SLOW_CONNECT_MS};
use crate::bench_wire::neg_model;
use crate::invariants::Violation;
use crate::relay::RelayMsg;

impl World {
    pub(super) fn execute(&mut self, c: Command) -> Result<(), Violation> {
        match c {
            Command::Connect { relay } => self.exec_connect(relay),
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
                let filters = filters.iter().map(|f| f.to_filter()).collect();
                self.exec_subscribe(relay, sub, kind, filters)
            }
            Command::Unsubscribe {
                relay,
                sub,
                late_until,
            } => self.exec_unsubscribe(relay, sub, late_until),
            Command::NegentropyDiff { relay, sub, filter } => {
                self.exec_negentropy(&relay, &sub, &filter);
            }
            Command::Reoffer { ids } => return self.reoffer(ids),
            // The fake relay keeps its store; the world holds nothing else for it.
            Command::Forget { .. } => {}
        }
        Ok(())
    }

    /// `Connect`: an unknown relay fails like a name that does not resolve; a known one
    /// answers after its connect latency (or a slow connect).
    fn exec_connect(&mut self, relay: RelayUrl) {
        let Some(r) = self.relays.get_mut(&relay) else {
            let error = format!(
                "failed to lookup address information: Name or service not known ({relay})"
            );
            self.later(50, Queued::ConnectFailed { relay, error });
            return;
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

    /// `Subscribe`: routed like the runtime routes it, answered by the relay if connected; a
    /// relay whose connection is gone reports a send failure.
    fn exec_subscribe(
        &mut self,
        relay: RelayUrl,
        sub: SubId,
        kind: SubKind,
        filters: Vec<nostr::Filter>,
    ) {
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
                let msgs = r.on_req(self.mono_ms, &sub, kind, &filters);
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

    /// `Unsubscribe`: the route stays for the late-event window the core set, then goes.
    fn exec_unsubscribe(
        &mut self,
        relay: RelayUrl,
        sub: SubId,
        late_until: Option<sync_core::Mono>,
    ) {
        self.routes
            .retain(|_, r| r.late_until.is_none_or(|t| t >= self.mono_ms));
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

    /// `NegentropyDiff`: the relay's answer (a timeout comes after the shell's timeout).
    fn exec_negentropy(&mut self, relay: &RelayUrl, sub: &SubId, filter: &nostr::Filter) {
        let host = &self.host.store;
        if let Some(r) = self.relays.get_mut(relay).filter(|r| r.conn.is_some()) {
            if let Some(w) = &mut self.wire {
                let (local, remote, missing, extra) = r.neg_counts(filter, host);
                w.neg_open(relay, sub, filter, neg_model(local, remote, missing, extra));
            }
            if let Some((delay, msg)) = r.on_negentropy(self.mono_ms, sub, filter, host) {
                // A timeout is the shell's answer, after its timeout.
                let delay = if matches!(msg, RelayMsg::Neg(_, sync_core::NegentropyResult::Timeout))
                {
                    let cfg = self.core.config();
                    cfg.negentropy_timeout_ms.min(cfg.batch_deadline_ms)
                } else {
                    delay
                };
                self.send(relay, vec![(delay, msg)]);
            }
        }
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
}
