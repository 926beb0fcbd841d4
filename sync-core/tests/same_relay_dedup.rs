//! An id two batches of the same relay both find missing (a comment matches its repository's
//! filters and its root's) is fetched once: the second batch waits for the first's fetch
//! (docs/spec.md §7.1), and fetches it itself only if that fetch ends without it.

use nostr::{EventId, Keys, Kind, Timestamp};
use sync_core::{
    Command, Config, EventMeta, Input, NegentropyResult, Now, Outcome, RelayUrl, SubId, SyncCore,
};

const WALL: u64 = 1_700_000_000;
const RELAY: &str = "wss://r.relay";

fn at(ms: u64) -> Now {
    Now::at(ms, WALL + ms / 1000)
}

fn event(n: u8, kind: u16, relays: &[&str], tags: &[(char, String)]) -> EventMeta {
    EventMeta {
        id: EventId::from_byte_array([n; 32]),
        author: Keys::parse(&format!("{:064x}", 7))
            .expect("key")
            .public_key(),
        kind: Kind::from(kind),
        created_at: Timestamp::from(WALL - 100),
        tags: tags.to_vec(),
        relays: relays.iter().map(|r| (*r).to_string()).collect(),
        clone_urls: vec![],
        maintainers: vec![],
    }
}

/// The core, its relay and the clock (ms), stepping by 1 ms.
struct Run {
    core: SyncCore,
    relay: RelayUrl,
    t: u64,
}

impl Run {
    fn step(&mut self, input: Input) -> Vec<Command> {
        self.t += 1;
        self.core.step(at(self.t), input)
    }

    /// Answers every diff in `out`: `ids` missing for the first, nothing for the rest.
    fn answer_diffs(&mut self, out: &[Command], ids: Vec<EventId>) -> Vec<Command> {
        let mut ids = Some(ids);
        let mut next = Vec::new();
        for c in out {
            if let Command::NegentropyDiff { sub, .. } = c {
                let result = NegentropyResult::Missing {
                    ids: ids.take().unwrap_or_default(),
                };
                let relay = self.relay.clone();
                let sub = sub.clone();
                next.extend(self.step(Input::NegentropyDiff { relay, sub, result }));
            }
        }
        next
    }
}

/// The `ids` REQs in `out` asking for `id`.
fn fetches_of(out: &[Command], id: EventId) -> Vec<SubId> {
    out.iter()
        .filter_map(|c| match c {
            Command::Subscribe { sub, filters, .. } => filters
                .iter()
                .any(|f| f.to_filter().ids.is_some_and(|ids| ids.contains(&id)))
                .then(|| sub.clone()),
            _ => None,
        })
        .collect()
}

/// A connected core whose first batch (announcement discovery) found a comment missing and is
/// fetching it, and whose second batch (the repository an announcement then named) found it
/// missing too and did not fetch it. Returns the run, the comment and the first fetch's
/// subscription.
fn second_batch_deferring() -> (Run, EventMeta, SubId) {
    let comment = event(9, 1111, &[], &[]);
    let config = Config {
        own_relay_urls: vec!["wss://our.relay".into()],
        bootstrap_relays: vec![RELAY.into()],
        startup_jitter_ms: 0,
        ..Config::default()
    };
    let relay = RelayUrl::parse(RELAY).expect("url");
    let mut run = Run {
        core: SyncCore::new(config, 1, at(0)),
        relay: relay.clone(),
        t: 0,
    };
    run.step(Input::Tick);
    let out = run.step(Input::Connected { relay });
    let out = run.answer_diffs(&out, vec![comment.id]);
    let first = fetches_of(&out, comment.id);
    assert_eq!(first.len(), 1, "the first batch fetches it: {out:?}");
    let ann = event(
        1,
        30617,
        &["wss://our.relay", RELAY],
        &[('d', "repo".into())],
    );
    run.step(Input::Accepted { event: ann });
    run.t += 10_000;
    let out = run.step(Input::Tick);
    assert!(
        out.iter()
            .any(|c| matches!(c, Command::NegentropyDiff { .. })),
        "the repository's batch reconciles: {out:?}"
    );
    let after = run.answer_diffs(&out, vec![comment.id]);
    assert!(
        fetches_of(&after, comment.id).is_empty(),
        "deferred: {after:?}"
    );
    (run, comment, first[0].clone())
}

#[test]
fn an_id_another_batch_of_the_relay_is_fetching_is_not_fetched_again() {
    let (mut run, comment, first) = second_batch_deferring();
    let relay = run.relay.clone();
    run.step(Input::Delivered {
        relay: relay.clone(),
        sub: first.clone(),
        event: comment.clone(),
        outcome: Outcome::Saved,
    });
    let out = run.step(Input::Eose { relay, sub: first });
    assert!(fetches_of(&out, comment.id).is_empty(), "settled: {out:?}");
    assert_eq!(run.core.stats().ids_fetched, 1);
}

#[test]
fn an_id_the_other_batch_does_not_get_is_fetched_by_the_waiting_one() {
    let (mut run, comment, first) = second_batch_deferring();
    let relay = run.relay.clone();
    let batch = |sub: &SubId| sub.0.split('.').next().map(str::to_owned);
    let first_batch = batch(&first);
    let out = run.step(Input::Eose { relay, sub: first });
    let again = fetches_of(&out, comment.id);
    assert_eq!(again.len(), 1, "fetched once more: {out:?}");
    assert_ne!(
        batch(&again[0]),
        first_batch,
        "by the waiting batch: {again:?}"
    );
}
