//! A relay that accepts fewer filters per REQ than the core sends and does not announce it
//! (docs/spec.md §8): its "too many filters" answers lower the filters per REQ, live and
//! historic, instead of the subscription budget, and everything is synced.

use std::collections::BTreeMap;

use sync_core::trace::TraceStep;
use sync_core::{Command, Input};
use sync_sim::builder::{relay, Builder};
use sync_sim::run::run_or_panic;
use sync_sim::scenario::{NegMode, RelaySpec, OUR_URL};

const R0: &str = "wss://r0.sim";
const HOUR: u64 = 3_600_000;

/// A world on one relay without NIP-77 that accepts `max_filters` filters per REQ.
fn capped(max_filters: usize) -> Builder {
    let mut b = Builder::new(21);
    b.scenario.config.chunk_size = 1;
    b.relay(RelaySpec {
        neg: NegMode::UnsupportedNotice,
        max_filters,
        ..relay(R0)
    });
    b.phases(HOUR, HOUR);
    b
}

/// The refusals of a run: (step of the answer, step the refused REQ was sent, its id).
fn refusals(steps: &[&TraceStep]) -> Vec<(usize, usize, String)> {
    let mut sent = BTreeMap::new();
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        for c in &s.commands {
            if let Command::Subscribe { sub, .. } = c {
                sent.insert(sub.clone(), i);
            }
        }
        if let Input::Closed { sub, message, .. } = &s.input {
            if message.contains("too many filters") {
                out.push((i, sent[sub], sub.0.clone()));
            }
        }
    }
    out
}

#[test]
fn too_many_filters_lowers_the_filters_per_req_and_everything_syncs() {
    let mut b = capped(2);
    let ids = b.repos_with_events("repo", 12, 15, &[R0]);
    let w = run_or_panic(&b.build());
    let stored = ids
        .iter()
        .filter(|id| w.host.store.contains_key(id))
        .count();
    assert_eq!(stored, ids.len());
    let steps: Vec<_> = w.trace.iter().flatten().collect();
    let refusals = refusals(&steps);
    let widest = |from: usize| {
        (steps[from..].iter())
            .flat_map(|s| s.commands.iter())
            .filter_map(|c| match c {
                Command::Subscribe { filters, .. } => Some(filters.len()),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    };
    assert!(widest(0) > 2, "the core started above the relay's limit");
    let first = refusals.first().expect("the relay refused some REQ").0;
    let last = refusals.last().expect("some refusal").0;
    // REQs sent before the first refusal were all refused; after it, each refusal halves
    // the filters per REQ: 10 → 5 → 2.
    let later = refusals
        .iter()
        .filter(|(_, sent_at, _)| *sent_at > first)
        .count();
    assert!(later <= 2, "{later} REQs refused after the first refusal");
    assert!(
        widest(last + 1) <= 2,
        "within the limit after the last refusal"
    );
    let stats = w.core.stats();
    // Refusals of a live group's other REQs arrive after the group was closed: late, not
    // counted again.
    assert!((1..=refusals.len() as u64).contains(&stats.too_many_answers));
    assert_eq!(stats.batches_failed, 0, "{stats:?}");
}

/// Here the live REQs fit and the first pages' groups (10 filters) do not: refused groups go
/// again in groups the relay accepts, and no batch fails.
#[test]
fn a_refused_group_of_first_pages_goes_again_in_smaller_groups() {
    let mut b = capped(5);
    b.announce("repo", &[OUR_URL, R0], &[R0], true);
    let mut roots = Vec::new();
    for _ in 0..30 {
        let root = b.root("repo", 'a', &[R0]);
        b.comments(&root, 2, &[R0]);
        roots.push(root.id);
    }
    let w = run_or_panic(&b.build());
    assert_eq!(
        roots
            .iter()
            .filter(|id| w.host.store.contains_key(id))
            .count(),
        30
    );
    let steps: Vec<_> = w.trace.iter().flatten().collect();
    let historic = refusals(&steps)
        .into_iter()
        .filter(|(_, _, sub)| sub.starts_with('b'))
        .count();
    assert!(historic > 0, "some group of first pages was refused");
    let stats = w.core.stats();
    assert_eq!(
        (stats.batches_failed, stats.batch_retries),
        (0, 0),
        "{stats:?}"
    );
}
