//! # sync-runtime: GRASP-02 proactive sync against real relays
//!
//! The imperative shell around `sync-core`. A relay links this crate to keep its copy of every
//! repository it hosts complete: the runtime follows the announcements the relay accepts,
//! connects to every other relay they list, fetches what is missing (NIP-77 negentropy first,
//! REQ+EOSE with pagination as the fallback), keeps live subscriptions open, and exports how
//! complete the copy is. `sync-core` makes every decision; this crate only executes them with
//! nostr-sdk 0.44 and feeds the results back.
//!
//! ## Embedding
//!
//! Depend on this crate with `default-features = false`: that is the runtime, the
//! [`WritePolicy`] trait and the GRASP policy ([`grasp`]), without the binary's dependencies
//! (clap, toml, tracing-subscriber, nostr-lmdb) and without the demo. The features are for this
//! workspace: `cli` (default) builds the `grasp-sync` binary and implies `demo`, which adds the
//! `demo` module (the demo's data generator and source relays, `RelayFront`, the client guard,
//! the NIP-77-refusing `NegProxy`). The test kit (hostile relay, forger, raw client) and the
//! runtime's integration tests live in the workspace's `tests` crate (`grasp-sync-tests`, not
//! published).
//!
//! The host gives the runtime three things and keeps its own authority over what it stores:
//!
//! | The host provides | Through | The runtime does with it |
//! |---|---|---|
//! | its store (any `nostr_database::NostrDatabase`, e.g. LMDB) | [`SyncRuntimeBuilder::database`] (required) | reads it at startup, reconciles against it, saves accepted events into it |
//! | its write policy | [`SyncRuntimeBuilder::policy`] ([`WritePolicy`]: `Accept` / `Defer` / `Reject`) | asks it about every synced event, after signature and filter checks |
//! | the events it accepted from its own clients | [`SyncHandle::notify_accepted`] | discovery: new repositories, new root events, freed rejections |
//! | the repositories those events withdraw ([`WritePolicy::withdrawals`], reported by [`grasp::LocalRelayPolicy::on_withdrawn`]) | [`SyncHandle::notify_withdrawn`] | logged, counted, history kept or deleted ([`SyncRuntimeBuilder::on_withdrawal`]), repository dropped and its relays reaped (docs/spec.md §14) |
//!
//! ```no_run
//! # async fn host(store: std::sync::Arc<dyn nostr_database::NostrDatabase>,
//! #               event_from_a_client: nostr::Event) -> Result<(), sync_runtime::RuntimeError> {
//! use std::sync::Arc;
//! use sync_runtime::{AcceptAll, SyncRuntime};
//!
//! let config = sync_core::Config {
//!     own_relay_urls: vec!["wss://relay.example.org".into()], // never synced from
//!     ..sync_core::Config::default()
//! };
//! let handle = SyncRuntime::builder(config)
//!     .database(store)                                  // required
//!     .policy(Arc::new(AcceptAll))                      // the host's rules
//!     .registry(prometheus::Registry::new())            // or the host's registry
//!     .trace_path("sync-trace.jsonl".into())            // optional: replayable trace
//!     .state_dir("state".into())                        // optional: rejected memory persisted
//!     .on_stored(Arc::new(|event| { /* push to live subscribers */ let _ = event; }))
//!     .spawn()
//!     .await?;
//! // Whenever the host accepts an event from its own clients:
//! handle.notify_accepted(&event_from_a_client).await;
//! // A status page and /metrics:
//! let json = serde_json::to_string(&handle.status()).unwrap();
//! let text = handle.metrics_text();
//! # let _ = (json, text);
//! handle.shutdown().await // closes connections, persists, flushes
//! # }
//! ```
//!
//! A complete program (a remote relay in process, an LMDB host store, status and metrics
//! printed) is `examples/embed.rs`: `cargo run -p sync-runtime --example embed`.
//!
//! **What happens on `spawn`.** The configuration is validated (the error names the field);
//! every accepted announcement (30617) and root event (1617/1618/1621) in the store is replayed
//! into the core with no result cap (except announcements the policy says withdraw their own
//! repository, docs/spec.md §14), and the rejected-events memory of the previous run is
//! restored from the state directory, all before any connection is made. The seed (default:
//! from the clock) is logged and written into the trace header.
//!
//! **What happens to a synced event.** nostr-sdk verifies id and signature (invalid events are
//! dropped inside the SDK and never reach the host; the transport counts every `EVENT` frame,
//! so `ngit_sync_relay_event_frames_total` minus `ngit_sync_relay_events_delivered_total` is
//! what the SDK dropped, per relay); the runtime routes the event to the
//! subscription it arrived on and drops it if it matches none of that subscription's filters
//! (counted in `ngit_sync_events_dropped_total{reason}`); an event already in the store is a
//! duplicate without asking the policy; otherwise the policy decides, accepted events are saved
//! and `on_stored` is called. An accepted event the policy says withdraws repositories
//! ([`WritePolicy::withdrawals`], asked before the save) withdraws them once it is saved, as
//! [`SyncHandle::notify_withdrawn`] does; an announcement withdrawing its own repository is
//! reported to the core as a duplicate (discovering it would sync the relays it names). The outcome (`Saved`, `Duplicate`, `Deferred`, `Rejected`, or
//! `NotOffered` for an event outside the subscription's filters or on a subscription closed
//! longer ago than the core's late-event window) goes to
//! the core, which counts receipt at the transport whatever the outcome. Rejected announcements
//! and state events are remembered (ids for 7 days, persisted; bodies for 120 s) so they are not
//! downloaded again and are re-offered to the policy when their dependency arrives.
//!
//! **Host calls.** [`SyncHandle::register_repo`] / [`SyncHandle::withdraw_repo`] add or remove
//! a repository directly (e.g. `SyncLevel::StateOnly` while provisional). All handle calls
//! wait while the driver's inbox ([`DRIVER_INBOX_CAPACITY`]) is full.
//!
//! ## Inside
//!
//! One driver task owns the core: it waits for relay traffic, executor results, host calls or
//! the core's next deadline, turns each into one `Input`, calls `step`, records it, and hands the
//! commands to the executor without waiting. nostr-sdk is a dumb pipe: no auto-reconnect (the
//! core decides every retry), raw `REQ`/`CLOSE` (no SDK resubscription), connection losses from
//! its `Monitor`, `TCP_NODELAY` dialing ([`NoDelayTransport`]), and a client database that only
//! tracks ids (nothing is stored behind the policy's back). Negentropy runs against the host's
//! store in dry-run mode; the core fetches the missing ids itself. A lagging message stream
//! becomes a catch-up resync, never a "disconnected". NIP-11 limits are fetched over HTTP(S) for
//! every relay after it connects (`nip11.rs`, reqwest). Every connection to a remote relay, the
//! WebSocket and the NIP-11 request with its redirects, is resolved once, checked against the
//! open-network rules and made to the checked address (`dial.rs`, docs/spec.md §13).
//!
//! Events published on a remote relay while it was unreachable, with a `created_at` older than
//! the catch-up `since` (last known complete time minus 15 minutes), are not fetched by the
//! quick-reconnect catch-up; the daily negentropy resync (every 23–25 h per relay) catches them.
//!
//! | File | Concept |
//! |---|---|
//! | `runtime.rs` | builder, spawn, handle |
//! | `driver.rs` | the loop that owns the core |
//! | `executor.rs` | commands → nostr-sdk |
//! | `ingest.rs` | relay messages → policy → store → inputs |
//! | `ingest/pipeline.rs`, `ingest/lag_burst.rs` | concurrent decisions in stream order, lag bursts as one `Lagged` |
//! | `routing.rs` | relay/subscription lookup and filter check |
//! | `monitor.rs` | connection losses |
//! | `messages.rs` | what the driver's inbox and the executor's queue carry |
//! | `negentropy.rs`, `nip11.rs`, `transport.rs` | NIP-77 diff, NIP-11 limits, `TCP_NODELAY` |
//! | `dial.rs` | the open-network address rules: resolve once, refuse non-global, connect to the checked address |
//! | `event_limits.rs` | size and tag bounds on synced events, NIP-70 protected events |
//! | `startup.rs`, `rejected_store.rs`, `reoffer.rs` | store replay, persisted and hot rejected memory |
//! | `cursor_store.rs` | persisted per-relay sync cursors (a restart is a quick reconnect) |
//! | `withdrawal.rs` | repository withdrawal: log, count, keep or delete the history, `WithdrawRepo` |
//! | `metrics.rs`, `status.rs`, `recorder.rs` | Prometheus (docs/spec.md §10), status snapshot, JSONL trace |

mod clock;
mod cursor_store;
#[cfg(feature = "demo")]
pub mod demo;
mod dial;
mod driver;
mod error;
mod event_limits;
mod executor;
pub mod grasp;
mod ingest;
mod messages;
mod metrics;
mod monitor;
mod negentropy;
mod nip11;
pub mod policy;
mod recorder;
mod rejected_store;
pub mod relay_key;
mod reoffer;
mod routing;
mod runtime;
mod startup;
mod state_file;
mod status;
mod transport;
mod withdrawal;

pub use crate::cursor_store::CURSORS_FILE;
pub use crate::error::RuntimeError;
pub use crate::event_limits::{EventLimits, EventRefusal};
pub use crate::ingest::{OnStored, MAX_IN_FLIGHT_EVENTS, POLICY_TIMEOUT};
pub use crate::policy::{
    AcceptAll, PolicyFuture, Verdict, Withdrawal, WithdrawalReason, WithdrawalsFuture, WritePolicy,
};
pub use crate::rejected_store::REJECTED_FILE;
pub use crate::runtime::{
    SyncHandle, SyncRuntime, SyncRuntimeBuilder, DRIVER_INBOX_CAPACITY, SDK_CHANNEL_CAPACITY,
};
pub use crate::status::{RefusedRelay, RuntimeStatus};
pub use crate::transport::NoDelayTransport;
pub use crate::withdrawal::{OnWithdrawal, MAX_DELETED_PER_WITHDRAWAL};
pub use sync_core::SYNC_PLUS_REPLAYED_REPLIES;
