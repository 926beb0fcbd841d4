//! `sync-sim bench`, scenario 5: how late new events arrive when relays' subscription budgets
//! cannot cover every wanted item live (issue 12, deliverable 3).
//!
//! The world has the planner benchmark's shape: every repository lists one of 4 big "GRASP"
//! relays and two of the other relays; each relay advertises 20 subscriptions and 10 filters
//! per REQ. The host starts in sync; then comments on root events are published over an
//! hour, each to its repository's big relay only. The figure is
//! the delay from each comment's publication on its relays to its storage by the host, at the
//! 99th percentile, run twice in the same process: with the default poll of uncovered items,
//! and with polls pushed past the run (what the engine did before: uncovered items waited for
//! the daily resync).

use sync_core::Config;

use crate::builder::{relay, Builder};
use crate::scenario::{OUR_URL, WALL0};
use crate::world::World;

const MIN_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

/// The p99 delay target (issue 12): 5 minutes.
pub const LIVE_P99_TARGET_MS: u64 = 5 * MIN_MS;

/// How big the world is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveScale {
    /// Repositories.
    pub repos: usize,
    /// Root events per repository.
    pub roots_per_repo: usize,
    /// Relays (4 big ones included).
    pub relays: usize,
    /// Comments published during the measured hour.
    pub comments: usize,
    /// Subscriptions each relay allows (advertised in NIP-11).
    pub subs: usize,
}

impl LiveScale {
    /// The planner's scale: 10k repositories, 100k roots, 100 relays.
    pub const FULL: Self = Self {
        repos: 10_000,
        roots_per_repo: 10,
        relays: 100,
        comments: 2_000,
        subs: 20,
    };
    /// CI's smoke run (3 subscriptions, so relays are still over budget).
    pub const TINY: Self = Self {
        repos: 400,
        roots_per_repo: 10,
        relays: 12,
        comments: 100,
        subs: 3,
    };
}

/// The delays of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delays {
    /// Publication-to-storage delays of the comments stored, sorted (ms).
    pub stored_ms: Vec<u64>,
    /// Comments not stored by the end of the run.
    pub missing: usize,
    /// Poll batches the engine started.
    pub polls: u64,
}

impl Delays {
    /// The `q`-quantile (0..=1) of the delays, counting a missing comment as infinitely late
    /// (`None` when the quantile falls on one).
    #[must_use]
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let n = self.stored_ms.len() + self.missing;
        if n == 0 {
            return Some(0);
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.stored_ms.get(rank).copied()
    }
}

fn relay_url(i: usize) -> String {
    if i < 4 {
        format!("wss://grasp{i}.sim")
    } else {
        format!("wss://x{i}.sim")
    }
}

/// The world, and the comments to watch (publication ms, id).
fn build(s: LiveScale, poll_ms: u64) -> (Builder, Vec<(u64, nostr::EventId)>) {
    let mut b = Builder::new(505);
    // Faults (the publications) apply during the safety phase only: it spans the run.
    b.phases(2 * HOUR_MS, HOUR_MS);
    b.scenario.config = Config {
        live_poll_interval_ms: poll_ms,
        ..b.scenario.config.clone()
    };
    for i in 0..s.relays {
        let mut spec = relay(&relay_url(i));
        spec.max_subs = s.subs;
        // Ten filters per REQ, as the engine assumes of a relay that says nothing.
        spec.max_filters = 10;
        spec.advertise_limits = true;
        b.relay(spec);
    }
    let mut roots = Vec::new();
    let others = s.relays.saturating_sub(4).max(1);
    for r in 0..s.repos {
        let d = format!("repo-{r}");
        let on = [
            relay_url(r % 4),
            relay_url(4 + (r * 7) % others),
            relay_url(4 + (r * 13 + 5) % others),
        ];
        let on: Vec<&str> = on.iter().map(String::as_str).collect();
        let mut listed = vec![OUR_URL];
        listed.extend(&on);
        b.announce(&d, &listed, &on, true);
        for _ in 0..s.roots_per_repo {
            let root = b.root(&d, 'a', &on);
            roots.push((
                root,
                on.iter().map(|u| (*u).to_string()).collect::<Vec<_>>(),
            ));
        }
    }
    b.scenario.local = b.scenario.initial.iter().map(|p| p.event.clone()).collect();
    let mut watched = Vec::new();
    for c in 0..s.comments {
        // Spread over 30..90 min, on roots all over the world (a fixed stride, not a hash).
        let at_ms = 30 * MIN_MS + (c as u64 * HOUR_MS) / s.comments as u64;
        let (root, on) = &roots[(c * 7_919) % roots.len()];
        let secs = WALL0 + at_ms / 1_000;
        let e = b.event(11, 1111, secs, &[('E', root.id.to_hex())]);
        watched.push((at_ms, e.id));
        // Only to the repository's big relay (where a client pushing to it publishes): the
        // other two relays would otherwise deliver it live and hide the big relay's gap.
        b.publish(at_ms, &[on[0].as_str()], e);
    }
    (b, watched)
}

/// Runs the world for 2 h with polls every `poll_ms` and measures the watched comments.
#[must_use]
pub fn run(s: LiveScale, poll_ms: u64) -> Delays {
    let (b, watched) = build(s, poll_ms);
    let scenario = b.build();
    let mut world = World::new(&scenario, false);
    world.stored_at_ms = Some(Default::default());
    let ok = world
        .start(&scenario.local)
        .and_then(|()| world.run_until(2 * HOUR_MS));
    let stored = world.stored_at_ms.take().unwrap_or_default();
    let mut delays = Delays {
        stored_ms: Vec::new(),
        missing: usize::from(ok.is_err()) * watched.len(),
        polls: world.core.stats().live_polls,
    };
    if ok.is_ok() {
        for (at, id) in watched {
            match stored.get(&id) {
                Some(t) => delays.stored_ms.push(t.saturating_sub(at)),
                None => delays.missing += 1,
            }
        }
    }
    delays.stored_ms.sort_unstable();
    delays
}

/// Scenario 5's report: both runs, the p99 against the target. Returns the text, whether
/// the target holds, and a correctness failure (a comment never stored although polls ran).
#[must_use]
pub fn report(s: LiveScale) -> (String, bool, Option<String>) {
    let with = run(s, Config::default().live_poll_interval_ms);
    let without = run(s, 48 * HOUR_MS);
    let show = |d: &Delays| {
        let p = |q| {
            d.quantile_ms(q)
                .map_or("never".into(), |v| format!("{:.2} s", v as f64 / 1e3))
        };
        format!(
            "p50 {}, p99 {}, max {}, not stored {}, polls {}",
            p(0.5),
            p(0.99),
            p(1.0),
            d.missing,
            d.polls
        )
    };
    let holds = with
        .quantile_ms(0.99)
        .is_some_and(|p| p <= LIVE_P99_TARGET_MS);
    let text = format!(
        "5 live beyond the budget ({} repos, {} roots, {} relays of {} subscriptions, {} comments): publication to storage\n  with polls (every {} s): {}\n  polls off (before):     {}\n  target p99 <= 5 min: {}\n",
        s.repos,
        s.repos * s.roots_per_repo,
        s.relays,
        s.subs,
        s.comments,
        Config::default().live_poll_interval_ms / 1_000,
        show(&with),
        show(&without),
        if holds { "holds" } else { "DOES NOT HOLD" }
    );
    let failure =
        (with.missing > 0).then(|| format!("{} comments never stored with polls on", with.missing));
    (text, holds, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_count_missing_comments_as_never() {
        let d = Delays {
            stored_ms: vec![1, 2, 3],
            missing: 1,
            polls: 0,
        };
        assert_eq!(d.quantile_ms(0.5), Some(2));
        assert_eq!(d.quantile_ms(0.75), Some(3));
        assert_eq!(d.quantile_ms(0.99), None);
    }

    #[test]
    fn tiny_world_stores_every_comment_with_polls_and_not_without() {
        let with = run(LiveScale::TINY, Config::default().live_poll_interval_ms);
        assert_eq!(with.missing, 0, "{with:?}");
        assert!(with.polls > 0);
        assert!(with
            .quantile_ms(0.99)
            .is_some_and(|p| p <= LIVE_P99_TARGET_MS));
        let without = run(LiveScale::TINY, 48 * HOUR_MS);
        assert!(
            without.missing > 0,
            "the big relays are over budget: {without:?}"
        );
    }
}
