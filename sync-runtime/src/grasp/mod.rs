//! The default GRASP write policy, usable by any host ([`GraspPolicy`]), and its adapter for
//! `nostr_relay_builder::LocalRelay` ([`LocalRelayPolicy`]).
//!
//! The host's store is the accepted set: every rule is a few bounded queries against it, and
//! nothing is cached in memory. Rules, by kind:
//!
//! | kind | accepted when |
//! |---|---|
//! | 30617 announcement | it has a non-empty `d` and a `relays` value names one of our service URLs (canonicalised with [`sync_core::RelayUrl`]: case, default port, trailing slash); or archive mode; or its author is in the maintainer closure of *another* owner's stored announcement with the same `d` (the public implementation's maintainer exception) |
//! | 30618 state | its author is in the recursive maintainer closure of an owner with a stored announcement for the same `d` (owner → listed maintainers → their own stored announcements' maintainers → …) |
//! | 5 deletion (NIP-09) | it names at least one target; every `a` coordinate is the author's; no stored `e` target is someone else's; at least one target is stored |
//! | 10317 user grasp list | always (as the public implementation) |
//! | anything else | an `a`/`A`/`q` value is the coordinate of a stored event (a repository announcement, usually), or an `e`/`E`/`q` value is a stored id, or a stored event references it by id or coordinate |
//!
//! A store error rejects (fail-secure) with an `error:` reason. Hostile events with thousands
//! of tags cost at most [`MAX_REFERENCES`] look-ups per tag family.
//!
//! Not done here (host or runtime concerns): withdrawing a repository whose newer announcement
//! drops our relay (the newer one is rejected, the stored one stays), git-data purgatory
//! ([`Verdict::Defer`](crate::Verdict) is never returned), blacklists.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use nostr_database::{MemoryDatabase, MemoryDatabaseOptions, NostrDatabase};
//! use sync_runtime::grasp::{GraspPolicy, LocalRelayPolicy};
//!
//! let db: Arc<dyn NostrDatabase> = Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
//!     events: true,
//!     max_events: None,
//! }));
//! let policy = Arc::new(GraspPolicy::new(db.clone(), vec!["wss://relay.example".into()], false));
//! let relay_policy = LocalRelayPolicy::new(policy.clone(), None);
//! let builder = nostr_relay_builder::RelayBuilder::default()
//!     .database(db)
//!     .write_policy(relay_policy);
//! # let _ = builder;
//! # }
//! ```

mod deletion;
mod grasp_policy;
mod local_relay;
mod lookup;
pub mod maintainers;
pub mod references;
mod withdrawal;

pub use self::grasp_policy::{
    GraspPolicy, InvalidServiceUrl, DEFAULT_MAX_ANNOUNCEMENTS_PER_AUTHOR,
};
pub use self::local_relay::{AcceptedCallback, LocalRelayPolicy, WithdrawnCallback};
pub use self::lookup::MAX_ANNOUNCEMENTS_PER_IDENTIFIER;
pub use self::references::MAX_REFERENCES;
