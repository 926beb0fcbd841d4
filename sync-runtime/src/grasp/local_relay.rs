//! [`LocalRelayPolicy`]: applies a [`WritePolicy`](crate::WritePolicy) to the events a
//! `nostr_relay_builder::LocalRelay`'s own clients publish, so a host built on LocalRelay
//! enforces one policy for synced and pushed events alike.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use nostr::util::BoxedFuture;
use nostr::Event;
use nostr_relay_builder::builder::{PolicyResult, WritePolicy as RelayWritePolicy};

use crate::event_limits::EventLimits;
use crate::policy::{Verdict, Withdrawal, WritePolicy};
use crate::withdrawal::withdraws_itself;

/// Called with every event the wrapped policy accepted (the `grasp-sync` binary passes one that
/// calls `SyncHandle::notify_accepted`), except an announcement that withdraws its own
/// repository.
pub type AcceptedCallback = Arc<dyn Fn(&Event) + Send + Sync>;

/// Called with every repository an accepted event withdraws (the `grasp-sync` binary passes
/// one that calls `SyncHandle::notify_withdrawn`), after the [`AcceptedCallback`] of the event.
pub type WithdrawnCallback = Arc<dyn Fn(Withdrawal) + Send + Sync>;

/// A nostr-relay-builder 0.44 write policy wrapping one of ours.
///
/// Timing: LocalRelay asks its write policies *before* it stores the event, so the callback runs
/// when the policy accepted and the relay is about to store; the store may still answer
/// "duplicate" or "deleted". Whatever the callback feeds must tolerate that (the sync core's
/// discovery is idempotent and only widens what is asked for).
#[derive(Clone)]
pub struct LocalRelayPolicy {
    /// The policy deciding every published event.
    policy: Arc<dyn WritePolicy>,
    /// Told about accepted events; `None` = nobody is.
    on_accepted: Option<AcceptedCallback>,
    /// Told about withdrawals; `None` = nobody is (and the policy is not asked).
    on_withdrawn: Option<WithdrawnCallback>,
    /// Size and tag bounds checked before the policy (the same the runtime applies to synced
    /// events); NIP-70 is LocalRelay's own business (it requires AUTH as the author).
    limits: EventLimits,
}

impl fmt::Debug for LocalRelayPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRelayPolicy")
            .field("on_accepted", &self.on_accepted.is_some())
            .field("on_withdrawn", &self.on_withdrawn.is_some())
            .finish_non_exhaustive()
    }
}

impl LocalRelayPolicy {
    /// Wraps `policy`; `on_accepted` (if any) is called for every accepted event.
    #[must_use]
    pub fn new(policy: Arc<dyn WritePolicy>, on_accepted: Option<AcceptedCallback>) -> Self {
        Self {
            policy,
            on_accepted,
            on_withdrawn: None,
            limits: EventLimits::default(),
        }
    }

    /// Reports the repositories accepted events withdraw (docs/spec.md §14): the wrapped
    /// policy's [`WritePolicy::withdrawals`] is asked before the relay stores the event (a
    /// deletion's target is still there), and an announcement that withdraws its own
    /// repository is then not passed to the [`AcceptedCallback`].
    #[must_use]
    pub fn on_withdrawn(mut self, callback: WithdrawnCallback) -> Self {
        self.on_withdrawn = Some(callback);
        self
    }

    /// Applies `limits` (default [`EventLimits::default`]) to client events before the policy;
    /// give it the limits the sync runtime uses, so clients and sync agree.
    #[must_use]
    pub fn with_limits(mut self, limits: EventLimits) -> Self {
        self.limits = limits;
        self
    }
}

impl RelayWritePolicy for LocalRelayPolicy {
    fn admit_event<'a>(
        &'a self,
        event: &'a Event,
        _addr: &'a SocketAddr,
    ) -> BoxedFuture<'a, PolicyResult> {
        Box::pin(async move {
            if let Some(refusal) = self.limits.refusal(event, false) {
                return PolicyResult::Reject(format!(
                    "invalid: event {}",
                    refusal.label().replace('_', " ")
                ));
            }
            match self.policy.check(event).await {
                Verdict::Accept => {
                    let withdrawals = match &self.on_withdrawn {
                        Some(_) => self.policy.withdrawals(event).await,
                        None => Vec::new(),
                    };
                    if let Some(callback) = &self.on_accepted {
                        if !withdraws_itself(event, &withdrawals) {
                            callback(event);
                        }
                    }
                    if let Some(callback) = &self.on_withdrawn {
                        withdrawals.into_iter().for_each(|w| callback(w));
                    }
                    PolicyResult::Accept
                }
                Verdict::Defer => {
                    PolicyResult::Reject("not stored yet: held by the write policy".to_string())
                }
                Verdict::Reject { reason } => PolicyResult::Reject(relay_reason(reason)),
            }
        })
    }
}

/// LocalRelay prefixes every rejection with `blocked: `; drop ours so it is not doubled.
fn relay_reason(reason: String) -> String {
    match reason.strip_prefix("blocked: ") {
        Some(rest) => rest.to_string(),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_prefix_is_not_doubled() {
        assert_eq!(relay_reason("blocked: no".into()), "no");
        assert_eq!(relay_reason("invalid: no d".into()), "invalid: no d");
    }
}
