//! # sync-runtime: GRASP-02 proactive sync against real relays
//!
//! The imperative shell around `sync-core`: it executes the core's commands with nostr-sdk,
//! applies the host's [`WritePolicy`] to every received event, stores accepted events in the
//! host's database and exports metrics. (Work in progress: see the README.)

pub mod demo;
pub mod grasp;
pub mod policy;
pub mod testkit;

pub use crate::policy::{AcceptAll, PolicyFuture, Verdict, WritePolicy};
