//! The limits on a relay's own clients ([`ClientLimits`]) and the counters of what the
//! guard refused ([`ClientMetrics`]). The relay enforces the subscription and event limits
//! itself ([`ClientLimits::apply`]); the guard (`client_guard.rs`) enforces the message size
//! and the connection count.

use nostr_relay_builder::builder::RateLimit;
use nostr_relay_builder::RelayBuilder;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::client_message::Reason;

/// Largest accepted `max_message_bytes`, so the hard cap stays at tungstenite's own 64 MiB.
pub const MAX_MESSAGE_BYTES_LIMIT: usize = 16 << 20;

/// Limits on each client of a relay served through a guarded front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Open subscriptions per connection; a REQ for one more gets `CLOSED` `rate-limited:`.
    /// At least 1.
    pub max_subscriptions: usize,
    /// Events one connection may publish per minute; more get `OK` false `rate-limited:`.
    /// At least 1.
    pub events_per_minute: u32,
    /// Largest client message in bytes; a larger one is refused with a NOTICE.
    /// 1..=[`MAX_MESSAGE_BYTES_LIMIT`].
    pub max_message_bytes: usize,
    /// Simultaneous client connections; one more is answered HTTP 503. At least 1.
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            max_subscriptions: 500,
            events_per_minute: 600,
            max_message_bytes: 512 * 1024,
            max_connections: 1024,
        }
    }
}

impl ClientLimits {
    /// Gives the relay the limits it enforces itself: subscriptions and events per
    /// connection, and (as a second line behind the front's) the connection count.
    #[must_use]
    pub fn apply(&self, builder: RelayBuilder) -> RelayBuilder {
        builder
            .rate_limit(RateLimit {
                max_reqs: self.max_subscriptions,
                notes_per_minute: self.events_per_minute,
            })
            .max_connections(self.max_connections)
    }

    /// The size at which tungstenite stops reading a message (and the connection ends).
    #[must_use]
    pub fn hard_cap(&self) -> usize {
        self.max_message_bytes.saturating_mul(4)
    }
}

/// Counters of what the guard refused, registered in the host's registry.
#[derive(Clone, Debug)]
pub struct ClientMetrics {
    /// `ngit_sync_client_messages_refused_total{reason}`: `malformed`, `too_large`, `binary`.
    refused: IntCounterVec,
    /// `ngit_sync_client_connections_refused_total`: connections over `max_connections`.
    connections_refused: IntCounter,
}

impl ClientMetrics {
    /// Registers both counters in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let refused = IntCounterVec::new(
            Opts::new(
                "ngit_sync_client_messages_refused_total",
                "Client messages our relay refused with a NOTICE, by reason",
            ),
            &["reason"],
        )?;
        let connections_refused = IntCounter::new(
            "ngit_sync_client_connections_refused_total",
            "Client connections refused because --client-max-connections were open",
        )?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        Ok(Self {
            refused,
            connections_refused,
        })
    }

    /// Counts one refused message.
    pub(crate) fn message_refused(&self, reason: Reason) {
        self.refused.with_label_values(&[reason.label()]).inc();
    }

    /// Counts one refused connection.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }
}
