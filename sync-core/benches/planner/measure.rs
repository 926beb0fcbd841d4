//! Measuring: thread CPU time, live heap bytes through a counting global allocator, medians.

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

/// Every allocation of the benchmark goes through this counter (requested sizes, not the
/// allocator's rounded-up ones).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes right now (allocated − freed; `stats_alloc` already books the growth and
/// shrinkage of reallocations in those two).
pub(crate) fn live_bytes() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// Allocations made so far.
pub(crate) fn allocations() -> u64 {
    GLOBAL.stats().allocations as u64
}

/// Thread CPU time in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
pub(crate) fn cpu_ns() -> u128 {
    cpu_time::ThreadTime::now().as_duration().as_nanos()
}

/// CPU time and allocations of one measured section.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cost {
    /// CPU nanoseconds.
    pub(crate) cpu_ns: u128,
    /// Allocations.
    pub(crate) allocs: u64,
}

impl Cost {
    /// CPU milliseconds.
    pub(crate) fn ms(&self) -> f64 {
        self.cpu_ns as f64 / 1e6
    }
}

/// Runs `f`, measuring its CPU time and allocations.
pub(crate) fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    let (a0, t0) = (allocations(), cpu_ns());
    let out = f();
    let cost = Cost {
        cpu_ns: cpu_ns() - t0,
        allocs: allocations() - a0,
    };
    (out, cost)
}

/// The median of some costs (by CPU time).
pub(crate) fn median(mut costs: Vec<Cost>) -> Cost {
    costs.sort_by_key(|c| c.cpu_ns);
    costs.get(costs.len() / 2).copied().unwrap_or_default()
}
