//! NIP-42 refusals (docs/spec.md §14). The shell answers a relay's AUTH challenge with the
//! relay's own key; the core only sees what follows: CLOSED messages with the `auth-required:`
//! prefix. The first one on a connection starts a short hold ([`AUTH_RETRY_MS`]) after which
//! every refused request is sent again, once; a refusal from then on means the relay refuses
//! us even authenticated. The core then closes the connection and records a failure of class
//! [`ErrorClass::Auth`]: ordinary exponential backoff (capped at `backoff_max_ms`), shown in
//! the relay's status as `last_failure`, never a retry loop.

use crate::command::Command;
use crate::ctx::Ctx;
use crate::relay::health::{ErrorClass, AUTH_RETRY_MS};
use crate::relay::{RelayState, Status};

/// What the core does with one `auth-required:` CLOSED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthVerdict {
    /// Re-queue the request: it goes out again when the hold ends.
    Retry,
    /// The relay refuses us authenticated: the connection was closed (its state dropped).
    Refused,
}

impl RelayState {
    /// Decides about an `auth-required:` CLOSED (see the module documentation). On `Retry`
    /// the relay's subscriptions are held until `auth_retry_at`.
    pub(crate) fn on_auth_required(&mut self, ctx: &mut Ctx<'_>) -> AuthVerdict {
        self.counters.auth_required += 1;
        let now = ctx.now.mono;
        match self.auth_retry_at {
            Some(at) if now >= at => {
                self.refuse_auth(ctx);
                AuthVerdict::Refused
            }
            Some(_) => AuthVerdict::Retry,
            None => {
                let at = now.plus_ms(AUTH_RETRY_MS);
                self.auth_retry_at = Some(at);
                let hold = self.health.rate_limited_until.map_or(at, |t| t.max(at));
                self.health.rate_limited_until = Some(hold);
                AuthVerdict::Retry
            }
        }
    }

    /// Closes the connection of a relay that refused us authenticated and backs it off.
    fn refuse_auth(&mut self, ctx: &mut Ctx<'_>) {
        self.counters.auth_refused += 1;
        ctx.out.push(Command::Disconnect {
            relay: self.url.clone(),
        });
        if !self.catchup_pending && self.live_gap_since.is_none() {
            self.synced_through = Some(ctx.now.wall);
        }
        self.drop_connection_state();
        self.health.rate_limited_until = None;
        self.status = Status::Disconnecting;
        self.status_deadline = Some(ctx.now.mono.plus_ms(ctx.cfg.disconnect_timeout_ms));
        self.health.record_failure(
            ctx.now.mono,
            ErrorClass::Auth,
            self.bootstrap,
            ctx.cfg,
            &mut self.rng,
        );
    }
}
