//! The building blocks of `grasp-sync demo` (and of benchmarks that want the same world):
//!
//! | Concept | File |
//! |---|---|
//! | deterministic NIP-34 data (announcements, state, patches, PRs, issues, comments) | `generator.rs` |
//! | in-process source relays with behaviours (capped, restarted, no NIP-77, discover-only) | `sources.rs` |
//! | a `TCP_NODELAY` WebSocket front for a `LocalRelay`, stoppable at once | `relay_front.rs` |
//! | a proxy that refuses NIP-77 like a relay without it (the "no NIP-77" source) | `neg_proxy.rs` |
//! | the loopback WebSocket server under the proxy (and the test kit's hostile relay) | `server.rs` |
//! | the relay's own clients: refused messages answered, not fatal; connection cap | `client_guard.rs` |
//! | the limits on the relay's clients and the counters of refusals | `client_limits.rs` |
//! | what a client may send (size, parse, negentropy payload) and the NOTICE if not | `client_message.rs` |
//! | live events published during the run | `live.rs` |
//! | verification of the local store against the sources | `verify.rs` |
//! | the live status line, the final table and the summary line | `progress.rs` |
//!
//! The orchestration (start the syncing relay, drive the scenario, print) lives in the binary
//! (`src/bin/grasp-sync/demo_cmd.rs`).

pub mod client_guard;
pub mod client_limits;
mod client_message;
pub mod generator;
pub mod live;
pub mod neg_proxy;
pub mod progress;
pub mod relay_front;
pub mod server;
pub mod sources;
pub mod verify;

pub use client_guard::ClientGuard;
pub use client_limits::{ClientLimits, ClientMetrics, MAX_MESSAGE_BYTES_LIMIT};
pub use generator::{generate, Corpus, GeneratorSpec, Placed, Repo, Scope};
pub use live::LivePublisher;
pub use neg_proxy::{NegMode, NegProxy, NEG_DISABLED_REASON, UNKNOWN_CMD_NOTICE};
pub use progress::{final_table, status_line, summary_line, RelayProgress};
pub use relay_front::RelayFront;
pub use sources::{Behaviour, SourceRelay, CAPPED_FILTER_LIMIT};
pub use verify::{verify, Holdings, RelayReport, Report};
