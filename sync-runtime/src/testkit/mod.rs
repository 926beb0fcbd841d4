//! In-process relays with controlled behaviour (a NIP-77-refusing proxy, a hostile relay), for tests, the demo and benchmarks. Work in progress.
