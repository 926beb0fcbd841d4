//! # sync-core: the pure decision engine of GRASP-02 proactive sync
//!
//! Every decision of the sync system — what to ask which relay for, when, and whether the answer
//! is complete — is made here, as a deterministic state machine with no IO, no clock, no threads
//! and no global randomness. The shell (`sync-runtime` against real relays, `sync-sim` against
//! fake ones) only translates.
//!
//! ## The contract
//!
//! 1. Feed every [`Input`] to [`SyncCore::step`] with the current [`Now`]; execute the returned
//!    [`Command`]s in order (none of them may block the loop).
//! 2. Sleep until [`SyncCore::next_deadline`], then send [`Input::Tick`]. Spurious ticks are
//!    no-ops; work that is due is done inside whatever step comes first.
//! 3. Time never goes backwards on the monotonic clock (the core clamps it); the wall clock is
//!    only written into `since`/`until` and may jump.
//! 4. Read metrics from [`SyncCore::stats`] and [`SyncCore::relay_status`]; they are
//!    observations, not commands.
//!
//! The same seed, configuration and inputs always give the same commands.
//!
//! ```
//! use sync_core::{Command, Config, Input, Now, SyncCore, SubKind};
//!
//! let config = Config {
//!     own_relay_urls: vec!["wss://our.relay".into()],
//!     bootstrap_relays: vec!["wss://other.relay".into()],
//!     ..Config::default()
//! };
//! let mut now = Now::at(0, 1_700_000_000);
//! let mut core = SyncCore::try_new(config, 42, now).expect("valid config");
//! let mut connected = false;
//! // The driving loop: sleep until the deadline, tick, execute commands, feed results back.
//! for _ in 0..10 {
//!     if let Some(deadline) = core.next_deadline() {
//!         now = Now::at(deadline.at.0, 1_700_000_000 + deadline.at.0 / 1000);
//!     }
//!     let mut inputs = vec![Input::Tick];
//!     while let Some(input) = inputs.pop() {
//!         for command in core.step(now, input) {
//!             match command {
//!                 // A real shell dials the relay; here it answers at once.
//!                 Command::Connect { relay } => {
//!                     connected = true;
//!                     inputs.push(Input::Connected { relay });
//!                 }
//!                 // A real shell sends REQ and later feeds Delivered/Eose inputs.
//!                 Command::Subscribe { relay, sub, kind: SubKind::Historic, .. } => {
//!                     inputs.push(Input::Eose { relay, sub });
//!                 }
//!                 Command::NegentropyDiff { relay, sub, .. } => {
//!                     inputs.push(Input::NegentropyDiff {
//!                         relay,
//!                         sub,
//!                         result: sync_core::NegentropyResult::Missing { ids: vec![] },
//!                     });
//!                 }
//!                 _ => {}
//!             }
//!         }
//!     }
//! }
//! assert!(connected);
//! let relay = core.relay_status().next().expect("the bootstrap relay");
//! assert_eq!(relay.status(), sync_core::Status::Connected);
//! ```
//!
//! ## Where each concept lives
//!
//! | Concept (docs/spec.md) | File |
//! |---|---|
//! | time, deadlines | `time.rs` |
//! | configuration | `config.rs` |
//! | relay URL canonicalisation | `url.rs` |
//! | event metadata, repo coordinates | `event_meta.rs` |
//! | filter matching | `matches.rs` |
//! | items, sync level | `item.rs` |
//! | filters (three layers, chunking) | `filters/mod.rs` |
//! | discovery (window, flush) | `discovery.rs`, `core/discovery_flush.rs` |
//! | which relay URLs become targets (open network) | `targets.rs`, `address.rs` |
//! | the engine, one step | `core/mod.rs`, `ctx.rs` |
//! | want / pending / confirmed indexes | `index/want.rs`, `index/pending.rs`, `index/confirmed.rs` |
//! | the diff (`compute_actions`) | `plan.rs` |
//! | relay lifecycle | `relay/lifecycle.rs` |
//! | health, backoff, rate limits | `relay/health.rs` |
//! | subscription budget, packing | `budget.rs` |
//! | live coverage, consolidation | `live.rs` |
//! | batches, historic engine | `historic/batch.rs`, `historic/engine.rs` |
//! | negentropy id fetch | `historic/negentropy.rs` |
//! | pagination | `historic/pagination/mod.rs` |
//! | pages on the wire, first pages sharing a REQ | `historic/pages.rs` |
//! | rejected-events memory | `rejected.rs` |
//! | seeded randomness | `rng.rs` |
//! | traces (record, parse, replay) | `trace.rs` |
//! | inputs, commands, stats, views | `input.rs`, `command.rs`, `stats.rs`, `view.rs` |

mod address;
mod budget;
mod command;
mod config;
mod core;
mod ctx;
mod decision_log;
mod discovery;
mod event_meta;
pub mod filters;
pub mod historic;
mod index;
mod input;
mod item;
mod live;
mod matches;
pub mod plan;
mod rejected;
pub mod relay;
mod rng;
mod stats;
mod sync_plus;
mod targets;
mod time;
pub mod trace;
mod url;
mod view;
mod wanted;
mod wire_filter;

pub use crate::address::{classify_host, classify_ip, embedded_v4, HostClass, NonGlobal};
pub use crate::command::{Command, SubId, SubKind};
pub use crate::config::{Config, ConfigError, STARTUP_JITTER_SLOT_MS};
pub use crate::core::SyncCore;
pub use crate::event_meta::{
    EventMeta, RepoCoord, INDEXED_TAG_LETTERS, KIND_ANNOUNCEMENT, KIND_GRASP_LIST, KIND_RELAY_LIST,
    KIND_STATE, MAX_INDEXED_TAGS, MAX_LIST_URLS, REPLY_KINDS, ROOT_KINDS,
    SYNC_PLUS_REPLAYED_REPLIES,
};
pub use crate::historic::batch::{BatchFailure, Origin};
pub use crate::historic::negentropy_stage::{NEG_LAG_ATTEMPTS, NEG_TIMEOUTS_UNSUPPORTED};
pub use crate::input::{Input, NegentropyResult, Outcome, RelayLimits};
pub use crate::item::{Item, SyncLevel};
pub use crate::matches::matches;
pub use crate::rejected::{RejectedEntry, RejectedStats, RejectedTypeStats};
pub use crate::relay::cursor::{Cursors, LearnedLimits, RelayCursor, MAX_CURSOR_ITEMS};
pub use crate::relay::health::{ErrorClass, HealthState, AUTH_RETRY_MS};
pub use crate::relay::{NegSupport, RelayCounters, Status};
pub use crate::stats::{SourceCounts, Stats};
pub use crate::sync_plus::participants::MAX_CANDIDATES_PER_REPO;
pub use crate::sync_plus::ROTATION_MS as SYNC_PLUS_ROTATION_MS;
pub use crate::targets::{Refusal, RefusalCounts, RECENT_REFUSALS};
pub use crate::time::{Deadline, Mono, Now, TimerKind};
pub use crate::url::RelayUrl;
pub use crate::view::{RelaySnapshot, RelaySource, RelayView};
pub use crate::wire_filter::{FilterView, TagValues, WireFilter};
