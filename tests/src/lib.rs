//! # grasp-sync-tests: the workspace's integration tests and test kit
//!
//! Not published. Holds what no embedder should compile:
//!
//! - [`testkit`]: in-process relays that misbehave on purpose (the [`testkit::HostileRelay`]),
//!   a forger of invalid signatures and a bare WebSocket client, all on `127.0.0.1`;
//! - [`workspace_bin`]: builds another package's binary or an example, for tests that run it;
//! - [`json_ws`]: a bare WebSocket client reading answers as JSON;
//! - [`http_front`]: a relay front answering NIP-11 itself (a document or a redirect);
//! - `tests/`: the runtime's integration tests against real nostr-relay-builder relays
//!   (`relay_sync`, `recovery`, `grasp_policy`, `withdrawal`, `hostile`, `negentropy_fallback`,
//!   `observability`, `neg_proxy`) with their support module `tests/rt_support/`, and the
//!   cross-crate test `trace_replay` (a trace recorded by `sync-runtime`, replayed by the
//!   `sync-sim` binary), and `embed_example` (runs `sync-runtime`'s embedding example).
//!
//! The black-box tests of the `grasp-sync` binary (`run_binary`, `cli`, `demo`, `open_network`,
//! `run_clients`) are here too: [`workspace_bin::grasp_sync`] builds the binary with the cargo
//! running the tests.

pub mod http_front;
pub mod json_ws;
pub mod testkit;
pub mod workspace_bin;
