//! # sync-sim: deterministic simulation of the sync engine
//!
//! Drives [`sync_core::SyncCore`] against fake relays ([`relay`]) and a GRASP host model
//! ([`host`]) on a virtual clock that jumps from event to event ([`world`]), injects faults
//! drawn from a seed ([`faults`]) during a safety phase, heals them for a liveness phase,
//! checks invariants after every step ([`invariants`]) and convergence at the end
//! ([`oracle`]), records traces in the shared JSONL format ([`sync_core::trace`]) and shrinks
//! failing scenarios ([`shrink`]).
//!
//! ```
//! let scenario = sync_sim::scenario::Scenario::generate(7);
//! let report = sync_sim::run::run(&scenario, false);
//! assert!(report.violation.is_none(), "{}", report.summary());
//! ```
//!
//! | Concept | File |
//! |---|---|
//! | synthetic events and keys | `events.rs` |
//! | hand-written scenarios | `builder.rs` |
//! | scripted scenarios: pinned answers, action tables (snapshots) | `script.rs` |
//! | simulation accounting (`sync-sim bench`) | `bench.rs`, `bench_wire.rs` |
//! | the sim's seeded randomness | `rng.rs` |
//! | seed → world parameters (serde) | `scenario.rs` |
//! | fault kinds and the seeded fault plan | `faults.rs` |
//! | fake relay | `relay.rs` |
//! | host policy and store | `host.rs` |
//! | virtual clock, queue, command execution | `world.rs` |
//! | step invariants | `invariants.rs` |
//! | end-of-run invariants (oracle) | `oracle.rs` |
//! | one run, traces | `run.rs` |
//! | shrinking | `shrink.rs` |
//! | Sync+ worlds and what the oracle demands of them | `sync_plus.rs` |

pub mod bench;
pub mod bench_live;
pub mod bench_wire;
pub mod builder;
pub mod events;
pub mod faults;
pub mod gen;
pub mod host;
pub mod invariants;
pub mod oracle;
pub mod relay;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod script;
pub mod shrink;
pub mod sync_plus;
pub mod world;
