//! Regression scenarios found by seed sweeps (CI's fixed block and its exploration block, and
//! the deep sweep of docs/testing.md): each seed that once failed is run again through the full
//! simulator (step invariants, convergence and settling at the end), then the test asserts the
//! seed still exercises what failed. Hand-written scenarios are in `regressions.rs`.

use sync_sim::run::run_or_panic as check;
use sync_sim::scenario::Scenario;

/// Seed 7564: a relay with a budget of one subscription polls its uncovered items every 2
/// minutes, each poll a few seconds of paced REQs; the run ended during one and the oracle
/// called the relay unsettled. A poll is routine steady-state work (`pending_batches` leaves
/// it out), not a historic sync still to finish.
#[test]
fn a_poll_in_flight_at_the_end_is_steady_state_not_unfinished_sync() {
    let w = check(&Scenario::generate(7_564));
    assert!(w.core.stats().live_polls > 0, "the seed still polls");
}

/// Seed 4828061 (found by CI's exploration block): a relay capping pages at 20 without saying
/// so; three filters holding exactly 20 events made their probes come back empty, the size 20
/// was written off, and a later filter cut at 20 ended early (10 events never fetched). A
/// short page of the largest size seen is now always probed.
#[test]
fn an_unannounced_cap_is_probed_even_after_filters_that_held_exactly_the_cap() {
    let w = check(&Scenario::generate(4_828_061));
    assert!(w.core.stats().page_probes > 0, "the seed still probes");
}

/// Seed 4829001 (found by CI's exploration block on 2026-12-06): a relay without NIP-77 that
/// caps pages at 20 without saying so holds 20 comments of one second and, behind them, a
/// patch published eight days old. The first page (20, short of the full threshold 50) was
/// probed; the probe (`until` = that second) brought the same 20 again, nothing new, and the
/// filter ended there: the patch was never fetched. A probe as large as the page it probes
/// with nothing new now steps past the second like a full page.
#[test]
fn a_backdated_root_on_a_capped_relay_without_nip77_is_fetched() {
    let w = check(&Scenario::generate(4_829_001));
    assert!(w.core.stats().page_probes > 0, "the seed still probes");
}

/// Seed 82822182 (found by CI's exploration block): two relays over their live budget poll
/// every 2 minutes at different phases, and the end-of-run drain, checking every 60 s, kept
/// landing inside one of their polls until its bound ("messages still in flight"). The drain
/// now checks every second.
#[test]
fn the_end_of_run_drain_finds_the_quiet_moment_between_polls() {
    let w = check(&Scenario::generate(82_822_182));
    assert!(w.core.stats().live_polls > 0, "the seed still polls");
}
