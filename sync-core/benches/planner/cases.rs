//! The measured cases, each run on our engine and on the anchor model with the same data.

use nostr::EventId;
use sync_core::{Input, Outcome, RelayUrl, Status, SubId, TimerKind};

use crate::anchor::Anchor;
use crate::drive::{Counts, Driver};
use crate::measure::{live_bytes, measure, median, Cost};
use crate::workload::{announcement, comment, pick_relays, root, Rng, Workload, WALL0};

/// One figure for us and, where the anchor has the same operation, for the anchor.
#[derive(Clone, Debug)]
pub(crate) struct Figure {
    /// What was measured.
    pub(crate) name: String,
    /// Our cost.
    pub(crate) ours: Cost,
    /// The anchor model's cost.
    pub(crate) anchor: Option<Cost>,
    /// A note (e.g. commands sent).
    pub(crate) note: String,
}

/// Everything measured at one scale.
#[derive(Clone, Debug, Default)]
pub(crate) struct Report {
    /// The figures, in order.
    pub(crate) figures: Vec<Figure>,
    /// Bytes per (relay, item) pair held by our engine at steady state.
    pub(crate) ours_bytes_per_pair: f64,
    /// Bytes per pair held by the anchor model (index + confirmed sets).
    pub(crate) anchor_bytes_per_pair: f64,
    /// (relay, item) pairs in the target.
    pub(crate) pairs: usize,
    /// Relays the engine tracks.
    pub(crate) relays: usize,
    /// Relays connected at steady state.
    pub(crate) connected: usize,
    /// Live filters that did not fit the subscription budget (summed over relays).
    pub(crate) live_over_budget: u64,
}

/// The state both engines start every case from.
pub(crate) struct Setup {
    /// The workload.
    pub(crate) w: Workload,
    /// Our engine, in steady state.
    pub(crate) d: Driver,
    /// The anchor model, in steady state.
    pub(crate) a: Anchor,
    /// Random stream for the cases' new items.
    pub(crate) rng: Rng,
}

/// Loads the workload into both engines and runs them to steady state; measures memory.
pub(crate) fn setup(w: Workload, seed: u64, report: &mut Report) -> Setup {
    let before = live_bytes();
    let mut d = Driver::new(seed);
    let (_, load) = measure(|| {
        for repo in &w.repos {
            let out = d.step(Input::Accepted {
                event: repo.announcement.clone(),
            });
            d.settle(out);
        }
        for (meta, _) in &w.roots {
            let out = d.step(Input::Accepted {
                event: meta.clone(),
            });
            d.settle(out);
        }
        d.run_for(60_000);
    });
    let ours_bytes = live_bytes() - before;
    let before = live_bytes();
    // `PLANNER_NO_ANCHOR=1` leaves the anchor model empty (to profile our engine alone).
    let mut a = if std::env::var("PLANNER_NO_ANCHOR").is_ok_and(|v| v == "1") {
        Anchor::default()
    } else {
        Anchor::from_workload(&w)
    };
    a.confirm_everything();
    let anchor_bytes = live_bytes() - before;
    report.pairs = w.pairs();
    report.ours_bytes_per_pair = ours_bytes as f64 / report.pairs as f64;
    report.anchor_bytes_per_pair = anchor_bytes as f64 / report.pairs as f64;
    report.relays = d.core.relay_status().count();
    report.connected = d
        .core
        .relay_status()
        .filter(|r| r.status() == Status::Connected)
        .count();
    report.live_over_budget = d
        .core
        .relay_status()
        .map(|r| r.counters().live_filters_over_budget)
        .sum();
    report.figures.push(Figure {
        name: "initial load + sync to steady state".into(),
        ours: load,
        anchor: None,
        note: format!("{} relays Connected", report.connected),
    });
    Setup {
        w,
        d,
        a,
        rng: Rng::new(seed ^ 0xD15C),
    }
}

fn note(c: &Counts) -> String {
    format!(
        "{} live REQ, {} hist REQ, {} diffs, {} CLOSE, {} tag values",
        c.live_reqs, c.historic_reqs, c.diffs, c.closes, c.values
    )
}

/// A discovery batch of `n_repos` new repositories and `n_roots` new roots (half on the new
/// repositories, half on existing ones): inputs plus the window flush, repeated `reps` times.
pub(crate) fn discovery_batch(
    s: &mut Setup,
    n_repos: usize,
    n_roots: usize,
    reps: usize,
) -> Figure {
    let (mut ours, mut anchor, mut counts) = (Vec::new(), Vec::new(), Counts::default());
    let mut anchor_filters = 0;
    for rep in 0..reps {
        let base = s.w.repos.len() + 1_000_000 + rep * n_repos;
        let mut inputs = Vec::new();
        let mut a_repos = Vec::new();
        let mut a_roots = Vec::new();
        let mut coords = Vec::new();
        for i in 0..n_repos {
            let ks = pick_relays(&mut s.rng, &s.w.shape);
            let urls: Vec<String> = ks.iter().map(|k| s.w.relay_urls[*k].clone()).collect();
            let ann = announcement(&mut s.rng, base + i, &urls, WALL0);
            let coord = format!("30617:{}:repo-{}", ann.author.to_hex(), base + i);
            a_repos.push((coord.clone(), urls));
            coords.push(coord);
            inputs.push(Input::Accepted { event: ann });
        }
        for i in 0..n_roots {
            let coord = if i % 2 == 0 && !coords.is_empty() {
                coords[i % coords.len()].clone()
            } else {
                s.w.repos[s.rng.skewed(s.w.repos.len())].coord.clone()
            };
            let meta = root(&mut s.rng, &coord, WALL0 + 10);
            a_roots.push((meta.id, coord));
            inputs.push(Input::Accepted { event: meta });
        }
        let window = s.d.core.config().discovery_window_ms;
        let (out, cost) = measure(|| {
            let mut out = Vec::new();
            for input in inputs {
                out.extend(s.d.step(input));
            }
            s.d.advance_ms(window);
            out.extend(s.d.step(Input::Tick));
            out
        });
        ours.push(cost);
        counts = s.d.settle(out);
        let (actions, cost) = measure(|| s.a.process_batch(&a_repos, &a_roots));
        anchor.push(cost);
        anchor_filters = actions.iter().map(|a| a.filters.len()).sum();
        for action in actions {
            s.a.confirm(action);
        }
    }
    Figure {
        name: format!("discovery batch (+{n_repos} repos, +{n_roots} roots)"),
        ours: median(ours),
        anchor: Some(median(anchor)),
        note: format!(
            "{}; anchor rebuilds {anchor_filters} filters",
            note(&counts)
        ),
    }
}

/// One accepted root event in steady state (the step plus its window flush) against the
/// anchor's next self-subscriber batch, which carries that one root.
pub(crate) fn one_root(s: &mut Setup, reps: usize) -> Figure {
    let (mut ours, mut anchor) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let coord = s.w.repos[s.rng.skewed(s.w.repos.len())].coord.clone();
        let meta = root(&mut s.rng, &coord, WALL0 + 20);
        let id = meta.id;
        let window = s.d.core.config().discovery_window_ms;
        let (out, cost) = measure(|| {
            let mut out = s.d.step(Input::Accepted { event: meta });
            s.d.advance_ms(window);
            out.extend(s.d.step(Input::Tick));
            out
        });
        ours.push(cost);
        s.d.settle(out);
        let (actions, cost) = measure(|| s.a.process_batch(&[], &[(id, coord)]));
        anchor.push(cost);
        actions.into_iter().for_each(|a| s.a.confirm(a));
    }
    Figure {
        name: "one accepted root event (+ its window flush)".into(),
        ours: median(ours),
        anchor: Some(median(anchor)),
        note: String::new(),
    }
}

/// One event delivered on a live subscription and saved (the per-event hot path), averaged
/// over `n` events. The anchor's per-event cost is DB and policy work, not planning: no baseline.
pub(crate) fn one_delivery(s: &mut Setup, n: usize) -> Figure {
    let target =
        s.d.core
            .relay_status()
            .max_by_key(|r| r.live_items())
            .map(|r| {
                let sub = r.subscription_ids().find(|id| id.starts_with("live"));
                (r.url().clone(), sub.map(SubId::from))
            });
    let Some((relay, Some(sub))) = target else {
        return Figure {
            name: "one delivered event (live)".into(),
            ours: Cost::default(),
            anchor: None,
            note: "no live subscription".into(),
        };
    };
    let root_id: EventId = s.w.roots[0].0.id;
    let events: Vec<_> = (0..n)
        .map(|i| comment(&mut s.rng, &root_id, WALL0 + 30 + i as u64))
        .collect();
    let (_, cost) = measure(|| {
        for event in events {
            let out = s.d.step(Input::Delivered {
                relay: relay.clone(),
                sub: sub.clone(),
                event,
                outcome: Outcome::Saved,
            });
            std::hint::black_box(out);
        }
    });
    Figure {
        name: "one delivered + saved event (live sub)".into(),
        ours: crate::measure::Cost {
            cpu_ns: cost.cpu_ns / n as u128,
            allocs: cost.allocs / n as u64,
        },
        anchor: None,
        note: format!("mean of {n}"),
    }
}

/// The daily resync of the relay whose timer fires first: the tick, and the answers until the
/// relay is complete again. The anchor's is a fresh start + recompute of that relay.
pub(crate) fn daily_resync(s: &mut Setup) -> Vec<Figure> {
    // Drain the discovery windows of earlier cases, then find the first daily resync.
    s.d.run_for(60_000);
    let mut found = None;
    for _ in 0..10 {
        let Some(dl) = s.d.core.next_deadline() else {
            break;
        };
        if dl.why == TimerKind::DailyResync {
            found = Some(dl);
            break;
        }
        s.d.tick_next(u64::MAX);
    }
    let Some(dl) = found else {
        return Vec::new();
    };
    let relay = dl.relay.clone().expect("a relay timer");
    s.d.advance_ms(dl.at.0 - s.d.now.mono.0);
    let (out, tick) = measure(|| s.d.step(Input::Tick));
    let (counts, answers) = measure(|| s.d.settle(out));
    let items = s.d.core.relay(&relay).map_or(0, |r| r.confirmed_items());
    let (action, anchor) = measure(|| s.a.recompute_relay(relay.as_str()));
    if let Some(a) = action {
        s.a.confirm(a);
    }
    vec![
        Figure {
            name: format!("daily resync of one relay ({items} items): plan"),
            ours: tick,
            anchor: Some(anchor),
            note: note(&counts),
        },
        Figure {
            name: "daily resync of one relay: + processing the answers".into(),
            ours: Cost {
                cpu_ns: tick.cpu_ns + answers.cpu_ns,
                allocs: tick.allocs + answers.allocs,
            },
            anchor: Some(anchor),
            note: format!("{} inputs", counts.inputs),
        },
    ]
}

/// Every relay drops its connection and reconnects a few seconds later (quick reconnect): the
/// planning on `Connected`, and the total including the disconnects and every answer. The
/// anchor recomputes each relay in turn (whole-index derive per relay).
pub(crate) fn reconnect_storm(s: &mut Setup) -> Vec<Figure> {
    s.d.run_for(60_000);
    let relays: Vec<RelayUrl> =
        s.d.core
            .relay_status()
            .filter(|r| r.status().is_live())
            .map(|r| r.url().clone())
            .collect();
    let n = relays.len();
    let (_, drop_cost) = measure(|| {
        for r in &relays {
            let out = s.d.step(Input::Disconnected { relay: r.clone() });
            std::hint::black_box(out);
        }
    });
    // Backoff after one failure is 5 s ± 20 %: every relay is due within 7 s.
    s.d.advance_ms(7_000);
    let (out, tick_cost) = measure(|| s.d.step(Input::Tick));
    let connects = out.len();
    let (outs, connect_cost) = measure(|| {
        relays
            .iter()
            .map(|r| s.d.step(Input::Connected { relay: r.clone() }))
            .collect::<Vec<_>>()
    });
    let (counts, answer_cost) = measure(|| s.d.settle(outs.into_iter().flatten().collect()));
    let (actions, anchor) = measure(|| {
        relays
            .iter()
            .filter_map(|r| s.a.recompute_relay(r.as_str()))
            .collect::<Vec<_>>()
    });
    actions.into_iter().for_each(|a| s.a.confirm(a));
    let total = Cost {
        cpu_ns: drop_cost.cpu_ns + tick_cost.cpu_ns + connect_cost.cpu_ns + answer_cost.cpu_ns,
        allocs: drop_cost.allocs + tick_cost.allocs + connect_cost.allocs + answer_cost.allocs,
    };
    vec![
        Figure {
            name: format!("reconnect of all {n} relays: plan on Connected"),
            ours: connect_cost,
            anchor: Some(anchor),
            note: format!("{connects} connects; {}", note(&counts)),
        },
        Figure {
            name: format!("reconnect of all {n} relays: total CPU"),
            ours: total,
            anchor: Some(anchor),
            note: format!("disconnect+connect+{} answers", counts.inputs),
        },
    ]
}
