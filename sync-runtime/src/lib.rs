//! # sync-runtime: GRASP-02 proactive sync against real relays
//!
//! The imperative shell around `sync-core`: it executes the core's commands with nostr-sdk,
//! applies the host's [`WritePolicy`] to every received event, stores accepted events in the
//! host's database and exports metrics.

mod clock;
pub mod demo;
mod driver;
mod error;
mod executor;
pub mod grasp;
mod ingest;
mod metrics;
mod monitor;
mod negentropy;
mod nip11;
pub mod policy;
mod recorder;
mod rejected_store;
mod reoffer;
mod routing;
mod runtime;
mod startup;
mod status;
pub mod testkit;
mod transport;

pub use crate::error::RuntimeError;
pub use crate::ingest::OnStored;
pub use crate::policy::{AcceptAll, PolicyFuture, Verdict, WritePolicy};
pub use crate::rejected_store::REJECTED_FILE;
pub use crate::runtime::{SyncHandle, SyncRuntime, SyncRuntimeBuilder, DRIVER_INBOX_CAPACITY};
pub use crate::status::RuntimeStatus;
pub use crate::transport::NoDelayTransport;
