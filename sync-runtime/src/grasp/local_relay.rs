//! [`LocalRelayPolicy`]: applies a [`WritePolicy`](crate::WritePolicy) to the events a
//! `nostr_relay_builder::LocalRelay`'s own clients publish, so a host built on LocalRelay
//! enforces one policy for synced and pushed events alike.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use nostr::util::BoxedFuture;
use nostr::Event;
use nostr_relay_builder::builder::{PolicyResult, WritePolicy as RelayWritePolicy};

use crate::policy::{Verdict, WritePolicy};

/// Called with every event the wrapped policy accepted (the `grasp-sync` binary passes one that
/// calls `SyncHandle::notify_accepted`).
pub type AcceptedCallback = Arc<dyn Fn(&Event) + Send + Sync>;

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
}

impl fmt::Debug for LocalRelayPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRelayPolicy")
            .field("on_accepted", &self.on_accepted.is_some())
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
        }
    }
}

impl RelayWritePolicy for LocalRelayPolicy {
    fn admit_event<'a>(
        &'a self,
        event: &'a Event,
        _addr: &'a SocketAddr,
    ) -> BoxedFuture<'a, PolicyResult> {
        Box::pin(async move {
            match self.policy.check(event).await {
                Verdict::Accept => {
                    if let Some(callback) = &self.on_accepted {
                        callback(event);
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
