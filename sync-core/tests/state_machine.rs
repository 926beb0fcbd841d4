//! Property test over random input sequences: after every step the core has not panicked, never
//! opened a subscription id that is already open, sent no relay command to a relay in the wrong
//! status, kept open subscriptions within each relay's budget, reports a deadline in the future,
//! and its state stays bounded.

use std::collections::{BTreeMap, BTreeSet};

use nostr::{EventId, Keys, Kind, PublicKey, Timestamp};
use proptest::prelude::*;
use sync_core::{
    Command, Config, EventMeta, Input, NegentropyResult, Now, Outcome, RelayLimits, RelayUrl,
    Status, SyncCore,
};

// Synthetic events, keys and URLs (the core sees metadata only; nothing is signed). The
// scripted world the snapshot tests use lives in sync-sim (`sync_sim::script`); this property
// test needs no relay world, so it stays with the core and builds its inputs itself.

fn keys(n: u8) -> Keys {
    Keys::parse(&format!("{:064x}", u64::from(n) + 1)).expect("key")
}

fn url(s: &str) -> RelayUrl {
    RelayUrl::parse(s).expect("url")
}

fn ev(n: u64, author: PublicKey, kind: u16, created_at: u64, tags: &[(char, String)]) -> EventMeta {
    let mut b = [0u8; 32];
    b[24..].copy_from_slice(&n.to_be_bytes());
    b[0] = 0xee;
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    EventMeta {
        id: EventId::from_byte_array(b),
        author,
        kind: Kind::from(kind),
        created_at: Timestamp::from(created_at),
        tags,
        relays: vec![],
        clone_urls: vec![],
        maintainers: vec![],
    }
}

fn coord(owner: &Keys, d: &str) -> String {
    format!("30617:{}:{d}", owner.public_key().to_hex())
}

fn announcement(n: u64, owner: &Keys, d: &str, relays: &[&str], created_at: u64) -> EventMeta {
    let mut e = ev(
        n,
        owner.public_key(),
        30617,
        created_at,
        &[('d', d.to_string())],
    );
    e.relays = relays.iter().map(|s| s.to_string()).collect();
    e
}

const RELAYS: [&str; 3] = ["wss://r0.example", "wss://r1.example", "wss://r2.example"];

/// One symbolic step; `k` picks the k-th open subscription of a relay at run time.
#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Announce {
        repo: u8,
        relays: u8,
    },
    Root {
        repo: u8,
        n: u8,
    },
    Withdraw {
        repo: u8,
    },
    ConnectOk {
        relay: u8,
    },
    ConnectFail {
        relay: u8,
    },
    Drop {
        relay: u8,
    },
    Deliver {
        relay: u8,
        k: u8,
        n: u8,
        outcome: u8,
    },
    Eose {
        relay: u8,
        k: u8,
    },
    Closed {
        relay: u8,
        k: u8,
        rate: bool,
    },
    SendFailed {
        relay: u8,
        k: u8,
    },
    Neg {
        relay: u8,
        k: u8,
        kind: u8,
    },
    Notice {
        relay: u8,
        kind: u8,
    },
    Info {
        relay: u8,
        subs: u8,
    },
    Lagged,
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0u8..3;
    prop_oneof![
        3 => (1u64..200_000).prop_map(Op::Advance),
        2 => (0u8..6, 1u8..8).prop_map(|(repo, relays)| Op::Announce { repo, relays }),
        2 => (0u8..6, any::<u8>()).prop_map(|(repo, n)| Op::Root { repo, n }),
        1 => (0u8..6).prop_map(|repo| Op::Withdraw { repo }),
        3 => r.clone().prop_map(|relay| Op::ConnectOk { relay }),
        1 => r.clone().prop_map(|relay| Op::ConnectFail { relay }),
        1 => r.clone().prop_map(|relay| Op::Drop { relay }),
        4 => (r.clone(), any::<u8>(), any::<u8>(), 0u8..5).prop_map(|(relay, k, n, outcome)| Op::Deliver { relay, k, n, outcome }),
        4 => (r.clone(), any::<u8>()).prop_map(|(relay, k)| Op::Eose { relay, k }),
        1 => (r.clone(), any::<u8>(), any::<bool>()).prop_map(|(relay, k, rate)| Op::Closed { relay, k, rate }),
        1 => (r.clone(), any::<u8>()).prop_map(|(relay, k)| Op::SendFailed { relay, k }),
        3 => (r.clone(), any::<u8>(), 0u8..6).prop_map(|(relay, k, kind)| Op::Neg { relay, k, kind }),
        1 => (r.clone(), 0u8..3).prop_map(|(relay, kind)| Op::Notice { relay, kind }),
        1 => (r.clone(), 0u8..12).prop_map(|(relay, subs)| Op::Info { relay, subs }),
        1 => Just(Op::Lagged),
        2 => Just(Op::Tick),
    ]
}

struct Checker {
    core: SyncCore,
    now: Now,
    /// Subscription ids open per relay, as the command stream says.
    open: BTreeMap<RelayUrl, BTreeSet<String>>,
}

impl Checker {
    fn nth_sub(&self, relay: &RelayUrl, k: u8) -> Option<String> {
        let v = self.core.relay(relay)?;
        let ids: Vec<&str> = v.subscription_ids().collect();
        (!ids.is_empty()).then(|| ids[k as usize % ids.len()].to_string())
    }

    fn input(&mut self, op: &Op) -> Option<Input> {
        let relay = |i: u8| url(RELAYS[i as usize % 3]);
        let alice = keys(1);
        Some(match op {
            Op::Advance(ms) => {
                self.now = Now::at(self.now.mono.0 + ms, self.now.wall.as_secs() + ms / 1000);
                Input::Tick
            }
            Op::Announce { repo, relays } => {
                let listed: Vec<&str> = (0..3)
                    .filter(|i| relays & (1 << i) != 0)
                    .map(|i| RELAYS[i])
                    .collect();
                let mut a = announcement(
                    u64::from(*repo),
                    &alice,
                    &format!("repo{repo}"),
                    &listed,
                    self.now.wall.as_secs(),
                );
                a.id = ev(
                    10_000 + self.now.mono.0 % 1000 + u64::from(*repo) * 1000,
                    alice.public_key(),
                    30617,
                    0,
                    &[],
                )
                .id;
                Input::Accepted { event: a }
            }
            Op::Root { repo, n } => Input::Accepted {
                event: ev(
                    100 + u64::from(*n),
                    keys(2).public_key(),
                    1617,
                    5,
                    &[('a', coord(&alice, &format!("repo{repo}")))],
                ),
            },
            Op::Withdraw { repo } => Input::WithdrawRepo {
                coord: sync_core::RepoCoord {
                    owner: alice.public_key(),
                    identifier: format!("repo{repo}"),
                },
            },
            Op::ConnectOk { relay: i } => Input::Connected { relay: relay(*i) },
            Op::ConnectFail { relay: i } => Input::ConnectFailed {
                relay: relay(*i),
                error: "refused".into(),
            },
            Op::Drop { relay: i } => Input::Disconnected { relay: relay(*i) },
            Op::Deliver {
                relay: i,
                k,
                n,
                outcome,
            } => {
                let sub = self.nth_sub(&relay(*i), *k)?;
                let outcome = [
                    Outcome::Saved,
                    Outcome::Duplicate,
                    Outcome::Deferred,
                    Outcome::Rejected,
                    Outcome::NotOffered,
                ][*outcome as usize];
                let event = ev(
                    200 + u64::from(*n),
                    keys(3).public_key(),
                    1111,
                    u64::from(*n),
                    &[('a', coord(&alice, "repo0"))],
                );
                Input::Delivered {
                    relay: relay(*i),
                    sub: sync_core::SubId(sub),
                    event,
                    outcome,
                }
            }
            Op::Eose { relay: i, k } => Input::Eose {
                relay: relay(*i),
                sub: sync_core::SubId(self.nth_sub(&relay(*i), *k)?),
            },
            Op::Closed { relay: i, k, rate } => {
                let message = if *rate {
                    "rate-limited: too many REQs"
                } else {
                    "error: shutting down"
                }
                .to_string();
                Input::Closed {
                    relay: relay(*i),
                    sub: sync_core::SubId(self.nth_sub(&relay(*i), *k)?),
                    message,
                }
            }
            Op::SendFailed { relay: i, k } => Input::SendFailed {
                relay: relay(*i),
                sub: sync_core::SubId(self.nth_sub(&relay(*i), *k)?),
                error: "relay not connected".into(),
            },
            Op::Neg { relay: i, k, kind } => {
                let sub = sync_core::SubId(self.nth_sub(&relay(*i), *k)?);
                let result = match kind {
                    0 => NegentropyResult::Missing { ids: vec![] },
                    1 => NegentropyResult::Missing {
                        ids: (0..3)
                            .map(|n| ev(300 + n, keys(4).public_key(), 1, 1, &[]).id)
                            .collect(),
                    },
                    2 => NegentropyResult::Refused {
                        message: "unknown envelope".into(),
                    },
                    3 => NegentropyResult::Timeout,
                    4 => NegentropyResult::Lagged,
                    _ => NegentropyResult::Error {
                        message: "NEG-ERR: error: aborted".into(),
                    },
                };
                Input::NegentropyDiff {
                    relay: relay(*i),
                    sub,
                    result,
                }
            }
            Op::Notice { relay: i, kind } => {
                let message = [
                    "rate-limited: slow down",
                    "too many concurrent REQs",
                    "ERROR: unknown envelope label NEG-OPEN",
                ][*kind as usize]
                    .to_string();
                Input::Notice {
                    relay: relay(*i),
                    message,
                }
            }
            Op::Info { relay: i, subs } => Input::RelayInfo {
                relay: relay(*i),
                limits: RelayLimits {
                    max_subscriptions: Some(u64::from(*subs)),
                    ..RelayLimits::default()
                },
            },
            Op::Lagged => Input::Lagged { relay: None },
            Op::Tick => Input::Tick,
        })
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let Some(input) = self.input(op) else {
            return Ok(());
        };
        match &input {
            Input::Disconnected { relay } | Input::ConnectFailed { relay, .. } => {
                self.open.remove(relay);
            }
            Input::Closed { relay, sub, .. }
            | Input::SendFailed { relay, sub, .. }
            | Input::NegentropyDiff { relay, sub, .. } => {
                self.open.entry(relay.clone()).or_default().remove(&sub.0);
            }
            _ => {}
        }
        let commands = self.core.step(self.now, input.clone());
        for c in &commands {
            let status = c
                .relay()
                .and_then(|r| self.core.relay(r))
                .map(|v| v.status());
            match c {
                Command::Subscribe { relay, sub, .. }
                | Command::NegentropyDiff { relay, sub, .. } => {
                    prop_assert!(
                        status.is_some_and(Status::is_live),
                        "{c:?} to a relay in {status:?} after {input:?}"
                    );
                    let fresh = self
                        .open
                        .entry(relay.clone())
                        .or_default()
                        .insert(sub.0.clone());
                    prop_assert!(fresh, "subscription {sub} opened twice on {relay}");
                }
                Command::Unsubscribe { relay, sub, .. } => {
                    self.open.entry(relay.clone()).or_default().remove(&sub.0);
                }
                Command::Connect { .. } => prop_assert_eq!(status, Some(Status::Connecting)),
                Command::Disconnect { relay } => {
                    self.open.remove(relay);
                }
                Command::Forget { relay } => {
                    prop_assert!(status.is_none(), "Forget {relay} while still tracked");
                    prop_assert!(
                        self.open.get(relay).is_none_or(|s| s.is_empty()),
                        "Forget {relay} with subscriptions open"
                    );
                }
                Command::Reoffer { .. } => {}
            }
        }
        for v in self.core.relay_status() {
            prop_assert!(
                v.open_subscriptions() <= v.budget(),
                "{} has {} subs over budget {}",
                v.url(),
                v.open_subscriptions(),
                v.budget()
            );
            prop_assert!(
                v.pending_batches() <= 64,
                "pending batches grow without bound"
            );
        }
        prop_assert!(self.core.relay_status().count() <= RELAYS.len());
        if let Some(d) = self.core.next_deadline() {
            prop_assert!(
                d.at > self.now.mono,
                "deadline {d:?} not in the future at {:?}",
                self.now.mono
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn random_inputs_keep_every_invariant(ops in prop::collection::vec(op(), 1..120), seed in any::<u64>()) {
        let cfg = Config { own_relay_urls: vec!["wss://our.relay".into()], max_subscriptions: 6, ..Config::default() };
        let now = Now::at(0, 1_700_000_000);
        let mut checker = Checker { core: SyncCore::try_new(cfg, seed, now).expect("config"), now, open: BTreeMap::new() };
        for op in &ops {
            checker.step(op)?;
        }
    }
}
