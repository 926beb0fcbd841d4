//! Faults: what goes wrong in the safety phase, drawn from the seed. Which kinds are enabled
//! and how heavily each is weighted differs per seed (swarm testing), so that runs where one
//! fault kind dominates happen too.

use serde::{Deserialize, Serialize};
use sync_core::{EventMeta, RepoCoord};

use crate::gen::{Gen, RepoDraw, OUR_URL, WALL0};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;

/// One thing that goes wrong (or simply happens) in the world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The connection drops.
    Disconnect {
        /// The relay.
        relay: String,
    },
    /// The connection drops and connects fail for `for_ms`.
    Down {
        /// The relay.
        relay: String,
        /// How long.
        for_ms: u64,
    },
    /// EOSEs are held back by `for_ms` while the stall lasts.
    StallEose {
        /// The relay.
        relay: String,
        /// How long (and by how much).
        for_ms: u64,
    },
    /// The next `count` EOSEs are never sent.
    DropEose {
        /// The relay.
        relay: String,
        /// How many.
        count: u32,
    },
    /// The relay sends CLOSED for its open live (or historic) subscriptions.
    CloseSubs {
        /// The relay.
        relay: String,
        /// Live subscriptions (else historic ones).
        live: bool,
        /// The CLOSED message.
        message: String,
    },
    /// The next `count` negentropy reconciliations fail.
    NegError {
        /// The relay.
        relay: String,
        /// How many.
        count: u32,
    },
    /// Someone publishes `event` to `relays` (live if we are subscribed; else found later).
    Publish {
        /// Canonical URLs.
        relays: Vec<String>,
        /// The event.
        event: EventMeta,
    },
    /// A client publishes `event` directly to our relay (the host's policy decides).
    LocalPublish {
        /// The event.
        event: EventMeta,
    },
    /// The host withdraws a repository (blacklisted by the operator).
    HostWithdraw {
        /// The repository.
        coord: RepoCoord,
    },
    /// The relay sends an EVENT, EOSE and CLOSED on a subscription we already closed.
    LateTraffic {
        /// The relay.
        relay: String,
    },
    /// Our wall clock jumps (NTP); the monotonic clock does not.
    WallJump {
        /// Seconds, either direction.
        delta_secs: i64,
    },
    /// The shell dropped messages of one relay (or all).
    Lagged {
        /// The relay, `None` for all.
        relay: Option<String>,
    },
    /// A `Tick` although nothing is due: must be a no-op.
    SpuriousTick,
    /// The process is killed (`kill -9`) and started again: every connection and everything
    /// in flight is lost; the new core gets the host's store (replayed) and the sync cursors
    /// and rejected memory as last written (the world writes them every
    /// [`crate::world::PERSIST_EVERY_MS`]). The wall clock moves on by `down_secs` (the
    /// downtime as the new core sees it: beyond the quick-reconnect window it is a fresh start).
    Restart {
        /// Seconds the process was down.
        down_secs: u64,
    },
    /// The connection breaks right after the shell reads the relay's next EOSE: the REQ the
    /// core sends in answer cannot be written (`Input::SendFailed`), then the drop is noticed.
    BreakAfterEose {
        /// The relay.
        relay: String,
    },
}

/// A fault at a moment of the safety phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timed {
    /// Virtual ms since the start.
    pub at_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// The kinds of fault a seed can enable, each with its own weight.
const KINDS: usize = 22;

fn wall_at(at_ms: u64) -> u64 {
    WALL0 + at_ms / 1000
}

/// Draws the fault plan of a scenario whose world was drawn with `g`, over a safety phase of
/// `safety_ms`.
pub(crate) fn draw_plan(g: &mut Gen, safety_ms: u64) -> Vec<Timed> {
    let weights: Vec<u64> = (0..KINDS)
        .map(|_| {
            if g.rng.chance(30) {
                0
            } else {
                g.rng.range(1, 10)
            }
        })
        .collect();
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let hours = safety_ms / HOUR_MS;
    let count = hours * g.rng.range(1, 6);
    let mut times: Vec<u64> = (0..count).map(|_| g.rng.below(safety_ms)).collect();
    times.sort_unstable();
    let mut plan = Vec::new();
    for at_ms in times {
        let mut roll = g.rng.below(total);
        let kind = weights
            .iter()
            .position(|w| {
                if roll < *w {
                    true
                } else {
                    roll -= w;
                    false
                }
            })
            .unwrap_or(0);
        for fault in draw_one(g, kind, at_ms) {
            plan.push(Timed { at_ms, fault });
        }
    }
    plan
}

/// Adds process restarts to `plan` (sorted by time) from the seed's own random stream, so
/// adding them changed no other draw: a quarter of the seeds get one to three restarts in the
/// safety phase, most within the quick-reconnect window, some beyond it.
pub(crate) fn add_restarts(seed: u64, plan: &mut Vec<Timed>, safety_ms: u64) {
    let mut rng = crate::rng::SimRng::new(seed, 4);
    if !rng.chance(25) {
        return;
    }
    for _ in 0..rng.range(1, 3) {
        let at_ms = rng.below(safety_ms);
        let down_secs = if rng.chance(80) {
            rng.range(0, 10 * 60)
        } else {
            rng.range(20 * 60, 3 * 3_600)
        };
        let fault = Fault::Restart { down_secs };
        let i = plan.partition_point(|t| t.at_ms <= at_ms);
        plan.insert(i, Timed { at_ms, fault });
    }
}

fn relay(g: &mut Gen) -> String {
    g.rng.pick(&g.relay_urls.clone())
}

fn draw_one(g: &mut Gen, kind: usize, at_ms: u64) -> Vec<Fault> {
    let r = relay(g);
    let one = |f: Fault| vec![f];
    match kind {
        0 => one(Fault::Disconnect { relay: r }),
        1 => one(Fault::Down {
            relay: r,
            for_ms: g.rng.range(30_000, 10 * MINUTE_MS),
        }),
        2 => one(Fault::Down {
            relay: r,
            for_ms: g.rng.range(20 * MINUTE_MS, 6 * HOUR_MS),
        }),
        3 => one(Fault::Down {
            relay: r,
            for_ms: g.rng.range(25 * HOUR_MS, 30 * HOUR_MS),
        }),
        4 => one(Fault::StallEose {
            relay: r,
            for_ms: g.rng.range(5_000, 10 * MINUTE_MS),
        }),
        5 => one(Fault::DropEose {
            relay: r,
            count: g.rng.range(1, 3) as u32,
        }),
        6 | 7 => {
            let message = g.rng.pick(&[
                "error: shutting down idle subscription".to_string(),
                "rate-limited: too many REQs".to_string(),
                "error: internal error".to_string(),
            ]);
            one(Fault::CloseSubs {
                relay: r,
                live: kind == 6,
                message,
            })
        }
        8 => one(Fault::NegError {
            relay: r,
            count: g.rng.range(1, 3) as u32,
        }),
        9 => publish_new(g, at_ms, 0),
        10 => {
            let skew_secs = g.rng.range(3_600, 20 * 86_400);
            publish_new(g, at_ms, skew_secs)
        }
        11 => burst(g, at_ms),
        12 => one(Fault::LateTraffic { relay: r }),
        13 => one(Fault::WallJump {
            delta_secs: g.rng.pick(&[-7_200i64, -600, -5, 5, 600, 7_200]),
        }),
        14 => replace_announcement(g, at_ms, false),
        15 => replace_announcement(g, at_ms, true),
        16 => new_repo(g, at_ms),
        17 => spam(g, at_ms),
        18 => host_withdraw(g),
        19 => one(Fault::Lagged {
            relay: if g.rng.chance(50) { Some(r) } else { None },
        }),
        20 => one(Fault::SpuriousTick),
        _ => one(Fault::BreakAfterEose { relay: r }),
    }
}

/// A new root event, comment or state event on an existing repo, published live.
fn publish_new(g: &mut Gen, at_ms: u64, skew_secs: u64) -> Vec<Fault> {
    if g.repos.is_empty() {
        return Vec::new();
    }
    let i = g.rng.below(g.repos.len() as u64) as usize;
    let secs = g.live_secs(wall_at(at_ms), skew_secs);
    let event = match g.rng.below(4) {
        0 => g.root_of(i, secs),
        1 if !g.roots.is_empty() => {
            let r = g.rng.below(g.roots.len() as u64) as usize;
            let i = g.roots[r].1;
            let relays = g.placement(i);
            let event = g.comment_on_root(r, secs);
            return publish_or_local(g, relays, event);
        }
        2 => {
            let owner = g.repos[i].coord.owner;
            g.state_of(i, owner, secs)
        }
        _ => {
            let author = g.pick_contributor();
            g.repo_event(i, author, secs)
        }
    };
    let relays = g.placement(i);
    publish_or_local(g, relays, event)
}

fn publish_or_local(g: &mut Gen, relays: Vec<String>, event: EventMeta) -> Vec<Fault> {
    if g.rng.chance(10) {
        vec![Fault::LocalPublish { event }]
    } else {
        vec![Fault::Publish { relays, event }]
    }
}

/// More same-second events than a page holds, spread over `a`/`A`/`q`.
fn burst(g: &mut Gen, at_ms: u64) -> Vec<Fault> {
    if g.repos.is_empty() {
        return Vec::new();
    }
    let i = g.rng.below(g.repos.len() as u64) as usize;
    let secs = g.live_secs(wall_at(at_ms), 0);
    let relays = g.placement(i);
    let cap = g.page_size(&relays) as u64;
    if cap < 2 {
        return Vec::new();
    }
    let n = g.rng.range(cap + 1, 3 * cap).min(150);
    (0..n)
        .map(|k| {
            let letter = ['a', 'A', 'q'][(k % 3) as usize];
            let author = g.pick_contributor();
            let num = g.n();
            let tags = [(letter, g.repos[i].coord.to_string())];
            Fault::Publish {
                relays: relays.clone(),
                event: crate::events::meta(num, author, 1111, secs, &tags),
            }
        })
        .collect()
}

/// The owner replaces an announcement: without our relay (withdrawn) or with a new relay set
/// (possibly a relay never listed before).
fn replace_announcement(g: &mut Gen, at_ms: u64, keep_us: bool) -> Vec<Fault> {
    if g.repos.is_empty() {
        return Vec::new();
    }
    let i = g.rng.below(g.repos.len() as u64) as usize;
    let old = g.repos[i].relays.clone();
    let mut new: Vec<String> = g
        .relay_urls
        .clone()
        .into_iter()
        .filter(|_| g.rng.chance(50))
        .collect();
    if new.is_empty() {
        new.push(relay(g));
    }
    if keep_us {
        g.repos[i].relays = new.clone();
    }
    g.repos[i].lists_us = keep_us;
    let secs = g.live_secs(wall_at(at_ms), 0);
    let event = g.announcement_of(i, &new, keep_us, secs);
    let mut at: Vec<String> = old;
    at.extend(new);
    at.sort();
    at.dedup();
    vec![Fault::Publish { relays: at, event }]
}

/// A repository discovered mid-run; sometimes its first root event arrives with it (or first).
fn new_repo(g: &mut Gen, at_ms: u64) -> Vec<Fault> {
    let i = g.repos.len();
    let owner = g.contributors[i % g.contributors.len()];
    let relays: Vec<String> = g
        .relay_urls
        .clone()
        .into_iter()
        .filter(|_| g.rng.chance(50))
        .collect();
    let relays = if relays.is_empty() {
        vec![relay(g)]
    } else {
        relays
    };
    g.repos.push(RepoDraw {
        coord: RepoCoord {
            owner,
            identifier: format!("late{i}"),
        },
        relays: relays.clone(),
        lists_us: true,
    });
    let secs = g.live_secs(wall_at(at_ms), 0);
    let ann = g.announcement_of(i, &relays, true, secs);
    let mut out = Vec::new();
    if g.rng.chance(50) {
        let secs = g.live_secs(wall_at(at_ms), 0);
        let root = g.root_of(i, secs);
        out.push(Fault::Publish {
            relays: relays.clone(),
            event: root,
        });
    }
    let ann_fault = if g.rng.chance(25) {
        Fault::LocalPublish { event: ann }
    } else {
        Fault::Publish { relays, event: ann }
    };
    out.insert(g.rng.below(out.len() as u64 + 1) as usize, ann_fault);
    out
}

/// Events the host rejects: by a blacklisted author, or an announcement not listing us.
fn spam(g: &mut Gen, at_ms: u64) -> Vec<Fault> {
    if g.repos.is_empty() {
        return Vec::new();
    }
    let i = g.rng.below(g.repos.len() as u64) as usize;
    let secs = g.live_secs(wall_at(at_ms), 0);
    let relays = g.placement(i);
    let event = if g.rng.chance(50) {
        let spammer = g.spammer;
        g.repo_event(i, spammer, secs)
    } else {
        let n = g.n();
        let coord = RepoCoord {
            owner: g.spammer,
            identifier: format!("spam{n}"),
        };
        let listed = vec![relays[0].clone(), "wss://elsewhere.sim".to_string()];
        let _ = OUR_URL;
        crate::events::announcement(n, &coord, &listed, secs)
    };
    vec![Fault::Publish { relays, event }]
}

fn host_withdraw(g: &mut Gen) -> Vec<Fault> {
    let listed: Vec<usize> = (0..g.repos.len())
        .filter(|i| g.repos[*i].lists_us)
        .collect();
    if listed.is_empty() {
        return Vec::new();
    }
    let i = g.rng.pick(&listed);
    g.repos[i].lists_us = false;
    vec![Fault::HostWithdraw {
        coord: g.repos[i].coord.clone(),
    }]
}
