//! In-process relays with controlled behaviour, for tests, the demo and benchmarks:
//!
//! - [`NegProxy`]: forwards everything to a real relay except NIP-77, which it refuses like a
//!   relay without negentropy ([`NegMode`]: strfry's NOTICE, a NEG-ERR, or silence);
//! - [`HostileRelay`]: a raw relay that serves a set of valid events plus configurable
//!   [`Misbehaviour`] (invalid signatures, events outside the filter, endless pages, no EOSE,
//!   garbage frames, oversize messages);
//! - [`RawClient`]: a bare WebSocket client to look at frames exactly as sent.
//!
//! All listen on `127.0.0.1` with `TCP_NODELAY`; stopping or dropping one closes its
//! connections at once (a deterministic disconnect).

mod forge;
mod hostile_relay;
mod neg_proxy;
mod raw_client;
mod server;

pub use self::forge::bad_signature;
pub use self::hostile_relay::{Forged, HostileRelay, HostileStats, Misbehaviour};
pub use self::neg_proxy::{NegMode, NegProxy, NEG_DISABLED_REASON, UNKNOWN_CMD_NOTICE};
pub use self::raw_client::RawClient;
