//! The shell reports what happened to a reconciliation; the core decides what follows
//! (issue 16): a lagged diff is run again a bounded number of times, a timeout sends only its
//! batch to REQ, and only repeated timeouts turn NIP-77 off for the relay.

use sync_core::{
    Command, Config, Input, NegSupport, NegentropyResult, Now, RelayUrl, SubId, SyncCore,
    NEG_LAG_ATTEMPTS,
};

const WALL: u64 = 1_700_000_000;

fn at(ms: u64) -> Now {
    Now::at(ms, WALL + ms / 1000)
}

/// A core with one bootstrap relay, connected, its first batch's diffs in flight.
fn connected() -> (SyncCore, RelayUrl, Vec<Command>, u64) {
    let config = Config {
        own_relay_urls: vec!["wss://our.relay".into()],
        bootstrap_relays: vec!["wss://r.relay".into()],
        startup_jitter_ms: 0,
        ..Config::default()
    };
    let mut core = SyncCore::new(config, 1, at(0));
    let relay = RelayUrl::parse("wss://r.relay").unwrap();
    let out = core.step(at(1), Input::Tick);
    assert!(out.contains(&Command::Connect {
        relay: relay.clone()
    }));
    let out = core.step(
        at(2),
        Input::Connected {
            relay: relay.clone(),
        },
    );
    (core, relay, out, 2)
}

fn diffs(out: &[Command]) -> Vec<SubId> {
    out.iter()
        .filter_map(|c| match c {
            Command::NegentropyDiff { sub, .. } => Some(sub.clone()),
            _ => None,
        })
        .collect()
}

fn historic_reqs(out: &[Command]) -> usize {
    out.iter()
        .filter(|c| matches!(c, Command::Subscribe { .. }))
        .count()
}

#[test]
fn a_lagged_diff_is_run_again_then_its_batch_falls_back() {
    let (mut core, relay, out, mut t) = connected();
    let mut sub = diffs(&out).into_iter().next().expect("a diff");
    for attempt in 1..NEG_LAG_ATTEMPTS {
        t += 1;
        let result = NegentropyResult::Lagged;
        let out = core.step(
            at(t),
            Input::NegentropyDiff {
                relay: relay.clone(),
                sub,
                result,
            },
        );
        let again = diffs(&out);
        assert_eq!(again.len(), 1, "attempt {attempt}: one re-run, {out:?}");
        assert_eq!(historic_reqs(&out), 0, "no fallback yet");
        sub = again[0].clone();
    }
    t += 1;
    let out = core.step(
        at(t),
        Input::NegentropyDiff {
            relay: relay.clone(),
            sub,
            result: NegentropyResult::Lagged,
        },
    );
    assert!(diffs(&out).is_empty(), "no more re-runs: {out:?}");
    assert!(historic_reqs(&out) > 0, "the batch falls back to REQ");
    assert_eq!(
        core.stats().negentropy_reruns,
        u64::from(NEG_LAG_ATTEMPTS - 1)
    );
    assert_ne!(
        core.relay(&relay).unwrap().negentropy(),
        NegSupport::Unsupported
    );
}

#[test]
fn one_timeout_sends_its_batch_to_req_and_keeps_nip77() {
    let (mut core, relay, out, t) = connected();
    let sub = diffs(&out).into_iter().next().expect("a diff");
    let out = core.step(
        at(t + 1),
        Input::NegentropyDiff {
            relay: relay.clone(),
            sub,
            result: NegentropyResult::Timeout,
        },
    );
    assert!(
        historic_reqs(&out) > 0,
        "the batch falls back to REQ: {out:?}"
    );
    assert_eq!(core.stats().negentropy_timeouts, 1);
    assert_ne!(
        core.relay(&relay).unwrap().negentropy(),
        NegSupport::Unsupported
    );
}

#[test]
fn a_refusal_turns_nip77_off_at_once() {
    let (mut core, relay, out, t) = connected();
    let sub = diffs(&out).into_iter().next().expect("a diff");
    let result = NegentropyResult::Refused {
        message: "ERROR: unknown envelope label: NEG-OPEN".into(),
    };
    let out = core.step(
        at(t + 1),
        Input::NegentropyDiff {
            relay: relay.clone(),
            sub,
            result,
        },
    );
    assert!(historic_reqs(&out) > 0);
    assert_eq!(
        core.relay(&relay).unwrap().negentropy(),
        NegSupport::Unsupported
    );
}

#[test]
fn a_req_that_could_not_be_sent_is_handled_like_a_closed() {
    let (mut core, relay, out, t) = connected();
    let sub = diffs(&out).into_iter().next().expect("a diff");
    let out = core.step(
        at(t + 1),
        Input::SendFailed {
            relay: relay.clone(),
            sub,
            error: "relay not connected".into(),
        },
    );
    assert!(
        historic_reqs(&out) > 0,
        "falls back like a CLOSED on a diff"
    );
    assert_eq!(core.stats().rate_limits, 0, "not a rate limit");
}
