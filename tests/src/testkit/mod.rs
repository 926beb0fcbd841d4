//! In-process relays with controlled behaviour, for the integration tests:
//!
//! - [`HostileRelay`]: a raw relay that serves a set of valid events plus configurable
//!   [`Misbehaviour`] (invalid signatures, events outside the filter, endless pages, no EOSE,
//!   garbage frames, oversize messages);
//! - [`bad_signature`]: a copy of an event with a broken signature;
//! - [`RawClient`]: a bare WebSocket client to look at frames exactly as sent;
//! - [`NegProxy`] (re-exported from `sync_runtime::demo`, whose "no NIP-77" source relay uses
//!   it): forwards everything to a real relay except NIP-77, which it refuses like a relay
//!   without negentropy ([`NegMode`]: strfry's NOTICE, a NEG-ERR, or silence).
//!
//! All listen on `127.0.0.1` with `TCP_NODELAY`; stopping or dropping one closes its
//! connections at once (a deterministic disconnect).

mod forge;
mod hostile_relay;
mod raw_client;

pub use self::forge::bad_signature;
pub use self::hostile_relay::{Forged, HostileRelay, HostileStats, Misbehaviour};
pub use self::raw_client::RawClient;
pub use sync_runtime::demo::{NegMode, NegProxy, NEG_DISABLED_REASON, UNKNOWN_CMD_NOTICE};
