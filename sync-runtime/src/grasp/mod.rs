//! The default GRASP write policy, usable by any host ([`GraspPolicy`]), and its adapter for
//! `nostr_relay_builder::LocalRelay` ([`LocalRelayPolicy`]).
//!
//! The host's store is the accepted set: every rule is a few bounded queries against it, and
//! nothing is cached in memory. Rules, by kind:
//!
//! | kind | accepted when |
//! |---|---|
//! | 30617 announcement | it has a non-empty `d`, is not older than the stored version of its coordinate (author + `d`; NIP-01 order), and: a `relays` value names one of our service URLs (canonicalised with [`sync_core::RelayUrl`]: case, default port, trailing slash); or archive mode; or its author is in the maintainer closure of *another* owner's stored announcement with the same `d` (the public implementation's maintainer exception); or it replaces a stored announcement of its coordinate (the owner's latest word, even without us: it withdraws the repository, below) |
//! | 30618 state | its author is in the recursive maintainer closure of an owner with a stored announcement for the same `d` (owner → listed maintainers → their own stored announcements' maintainers → …) |
//! | 5 deletion (NIP-09) | it names at least one target; every `a` coordinate is the author's; no stored `e` target is someone else's; at least one target is stored |
//! | 10317 user grasp list | always (as the public implementation) |
//! | 10002 relay list | Sync+ on ([`GraspPolicy::with_relay_lists`]): its author participates in a repository held here (a stored event of theirs other than a relay list, grasp list or deletion); off: as anything else |
//! | anything else | an `a`/`A`/`q` value is the coordinate of a stored event (a repository announcement, usually, unless it withdraws its repository: see below), or an `e`/`E`/`q` value is a stored id, or a stored event references it by id or coordinate |
//!
//! A store error rejects (fail-secure) with an `error:` reason. Hostile events with thousands
//! of tags cost at most [`MAX_REFERENCES`] look-ups per tag family.
//!
//! Withdrawal (docs/spec.md §14), answered by [`WritePolicy::withdrawals`](crate::WritePolicy)
//! for an accepted event before it is stored:
//!
//! | event | withdraws |
//! |---|---|
//! | 30617 announcement | its own coordinate, when it lists none of our service URLs and neither archive mode nor the maintainer exception hosts it (reason `unlisted`) |
//! | 5 deletion (NIP-09) | every coordinate of a stored 30617 of its author that it names by `a` coordinate or `e` id and that is not newer than the request (reason `deleted`; the store deletes exactly those) |
//!
//! The runtime applies them to synced events itself and skips withdrawn announcements when it
//! replays the store at start; for events from the host's own clients,
//! [`LocalRelayPolicy::on_withdrawn`] reports them (pass them to
//! [`SyncHandle::notify_withdrawn`](crate::SyncHandle::notify_withdrawn)), and an announcement
//! that withdraws its own repository is not passed to the accepted-events callback.
//!
//! Not done here (host concerns): git-data purgatory ([`Verdict::Defer`](crate::Verdict) is
//! never returned), blacklists.
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
//! let relay_policy = LocalRelayPolicy::new(policy.clone(), None)
//!     .on_withdrawn(Arc::new(|withdrawal| tracing::info!(coord = %withdrawal.coord, "withdrawn")));
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
pub use self::lookup::{MAX_ANNOUNCEMENTS_PER_IDENTIFIER, PARTICIPATION_PROBE};
pub use self::references::MAX_REFERENCES;
