//! `sync-sim bench`: simulation accounting. Four deterministic scenarios on virtual time, each
//! measured over a window with [`crate::bench_wire::WireLog`]: wire bytes and messages both
//! ways, round trips per filter, events transferred, "too many" answers, against the floor
//! (the JSON size of the events the host was missing; one round trip per filter in sync).
//!
//! A missed target is reported, never fatal; a run whose events do not all arrive (the
//! oracle's convergence check, or a named event missing) is a correctness failure.

use std::collections::BTreeSet;

use nostr::EventId;
use sync_core::EventMeta;

use crate::bench_wire::{event_json_bytes, WireLog};
use crate::builder::{relay, Builder};
use crate::faults::Fault;
use crate::oracle::check_final;
use crate::scenario::{NegMode, RelaySpec, Scenario, OUR_URL, WALL0};
use crate::world::World;

const MIN_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
const R0: &str = "wss://r0.sim";
const R1: &str = "wss://r1.sim";
const R2: &str = "wss://r2.sim";

/// How big the bench worlds are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    /// Repositories in scenarios 1–3.
    pub repos: usize,
    /// Root events per repository.
    pub roots: usize,
    /// Comments per root.
    pub comments: usize,
    /// Repositories in the strict-relay scenario.
    pub strict_repos: usize,
}

impl Scale {
    /// The full bench.
    pub const FULL: Self = Self {
        repos: 50,
        roots: 6,
        comments: 3,
        strict_repos: 400,
    };
    /// CI's smoke run.
    pub const TINY: Self = Self {
        repos: 4,
        roots: 2,
        comments: 1,
        strict_repos: 40,
    };
}

/// One measured scenario.
#[derive(Clone, Debug)]
pub struct Row {
    /// Scenario name.
    pub name: &'static str,
    /// What was measured.
    pub wire: WireLog,
    /// JSON bytes of the events the host newly stored in the window (the floor).
    pub floor_bytes: u64,
    /// Events the host newly stored in the window.
    pub new_events: usize,
    /// The events the scenario expects to be transferred (the gap), if it names them.
    pub gap_events: Option<usize>,
    /// The target, in words.
    pub target: String,
    /// Whether the target holds, and if not, by how much.
    pub verdict: Result<(), String>,
    /// A correctness failure (missing events), if any.
    pub failure: Option<String>,
}

/// A world measured from `from_ms` to `to_ms` (then let settle for up to 2 h, still measured).
struct Measured {
    world: World,
    wire: WireLog,
    before: BTreeSet<EventId>,
    failure: Option<String>,
}

fn measure(scenario: &Scenario, strict: bool, from_ms: u64, to_ms: u64) -> Measured {
    let mut world = World::new(scenario, false);
    if strict {
        for r in world.relays.values_mut() {
            r.max_message_bytes = Some(16 * 1024);
        }
    }
    let mut result = world
        .start(&scenario.local)
        .and_then(|()| world.run_until(from_ms));
    let before: BTreeSet<EventId> = world.host.store.keys().copied().collect();
    world.wire = Some(WireLog::default());
    result = result.and_then(|()| world.run_until(to_ms));
    while result.is_ok() && !world.settled() && world.mono_ms < to_ms + 2 * HOUR_MS {
        let next = world.mono_ms + MIN_MS;
        result = world.run_until(next);
    }
    let result = result.and_then(|()| check_final(&world));
    let wire = world.wire.take().unwrap_or_default();
    Measured {
        world,
        wire,
        before,
        failure: result.err().map(|v| v.to_string()),
    }
}

impl Measured {
    fn row(self, name: &'static str, gap: Option<&[EventId]>) -> Row {
        let new: Vec<&EventMeta> = self
            .world
            .host
            .store
            .values()
            .filter(|e| !self.before.contains(&e.id))
            .collect();
        let mut failure = self.failure;
        if let Some(gap) = gap {
            let lost = gap
                .iter()
                .filter(|id| !self.world.host.store.contains_key(id))
                .count();
            if lost > 0 && failure.is_none() {
                failure = Some(format!("{lost} gap events not stored"));
            }
        }
        Row {
            name,
            floor_bytes: new.iter().map(|e| event_json_bytes(e) as u64).sum(),
            new_events: new.len(),
            gap_events: gap.map(<[EventId]>::len),
            wire: self.wire,
            target: String::new(),
            verdict: Ok(()),
            failure,
        }
    }
}

/// A world of `repos` repositories listed on `relays` (all stored there), with `roots` roots
/// each and `comments` comments per root; if `in_sync`, the host already has everything.
fn world(seed: u64, specs: Vec<RelaySpec>, repos: usize, s: Scale, in_sync: bool) -> Builder {
    let mut b = Builder::new(seed);
    let urls: Vec<String> = specs.iter().map(|r| r.url.clone()).collect();
    let on: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut listed = vec![OUR_URL];
    listed.extend(&on);
    for spec in specs {
        b.relay(spec);
    }
    for i in 0..repos {
        let d = format!("repo-{i}");
        b.announce(&d, &listed, &on, true);
        for _ in 0..s.roots {
            let root = b.root(&d, 'a', &on);
            b.comments(&root, s.comments, &on);
        }
    }
    if in_sync {
        b.scenario.local = b.scenario.initial.iter().map(|p| p.event.clone()).collect();
    }
    b
}

/// Scenario 1: everything already stored; the daily resync forced to every 2 h; the window holds one.
#[must_use]
pub fn in_sync_resync(s: Scale) -> Row {
    let mut b = world(101, vec![relay(R0), relay(R1)], s.repos, s, true);
    b.scenario.config.daily_resync_min_ms = 2 * HOUR_MS;
    b.scenario.config.daily_resync_max_ms = 2 * HOUR_MS;
    b.phases(10 * MIN_MS, 4 * HOUR_MS);
    let mut row = measure(&b.build(), false, HOUR_MS, HOUR_MS + 150 * MIN_MS)
        .row("1 in-sync daily resync", None);
    let w = &row.wire;
    let filters = w.filters().max(1) as u64;
    let per_filter_bytes = w.total_bytes() / filters;
    row.target = "<= 2 RT and <= 2048 B per filter".into();
    let max_rt = w.max_round_trips_per_filter();
    row.verdict = if w.filters() == 0 {
        Err("no resync happened in the window".into())
    } else if max_rt <= 2 && per_filter_bytes <= 2048 {
        Ok(())
    } else {
        Err(format!(
            "max {max_rt} RT/filter, {per_filter_bytes} B/filter ({} B/filter are the filters' own JSON)",
            w.filter_bytes / filters
        ))
    };
    row
}

/// Scenario 2: a 2-minute outage of one relay during which three events are published there; one
/// event was published (and received live) two minutes before the outage.
#[must_use]
pub fn quick_reconnect(s: Scale) -> Row {
    let mut b = world(102, vec![relay(R0), relay(R1)], s.repos, s, true);
    let coord = Builder::coord("repo-0").to_string();
    let before_secs = WALL0 + (HOUR_MS - 2 * MIN_MS) / 1000;
    let recent = b.event(10, 1617, before_secs, &[('a', coord.clone())]);
    b.publish(HOUR_MS - 2 * MIN_MS, &[R0, R1], recent);
    b.fault(
        HOUR_MS,
        Fault::Down {
            relay: R0.into(),
            for_ms: 2 * MIN_MS,
        },
    );
    let during = WALL0 + HOUR_MS / 1000 + 30;
    let gap: Vec<EventMeta> = (0..3)
        .map(|i| b.event(10 + i, 1617, during + u64::from(i), &[('a', coord.clone())]))
        .collect();
    for e in &gap {
        b.publish(HOUR_MS + 30_000, &[R0], e.clone());
    }
    b.phases(2 * HOUR_MS, HOUR_MS);
    let ids: Vec<EventId> = gap.iter().map(|e| e.id).collect();
    let mut row = measure(&b.build(), false, HOUR_MS - 1, HOUR_MS + 30 * MIN_MS)
        .row("2 quick reconnect (2 min)", Some(&ids));
    row.target = "events transferred == gap".into();
    let got = row.wire.events_in;
    row.verdict = if got == ids.len() as u64 {
        Ok(())
    } else {
        Err(format!("{got} transferred for a gap of {}", ids.len()))
    };
    row
}

/// Issue 12's bound on scenario 3's wire bytes (out + in) over the floor.
pub const INITIAL_SYNC_MAX_BYTES_PER_FLOOR: f64 = 1.5;

/// Scenario 3: initial sync from three relays (one without NIP-77); the host has the announcements.
#[must_use]
pub fn initial_sync(s: Scale) -> Row {
    let mut no_neg = relay(R2);
    no_neg.neg = NegMode::UnsupportedNotice;
    let mut b = world(103, vec![relay(R0), relay(R1), no_neg], s.repos, s, false);
    b.phases(10 * MIN_MS, 2 * HOUR_MS);
    let mut row = measure(&b.build(), false, 0, 2 * HOUR_MS).row("3 initial sync (3 relays)", None);
    let max = INITIAL_SYNC_MAX_BYTES_PER_FLOOR;
    row.target = format!("bytes/floor <= {max} (issue 12)");
    let ratio = row.wire.total_bytes() as f64 / row.floor_bytes.max(1) as f64;
    row.verdict = if ratio <= max {
        Ok(())
    } else {
        Err(format!("{ratio:.2}x > {max}x"))
    };
    row
}

/// A relay with strict limits, announced through NIP-11.
fn strict(url: &str, neg: NegMode) -> RelaySpec {
    let mut r = relay(url);
    r.max_subs = 10;
    r.max_filters = 10;
    r.advertise_limits = true;
    r.neg = neg;
    r
}

/// Scenario 4: many repositories on three strict relays (10 subscriptions, 10 filters per REQ,
/// 16 KiB messages; one without NIP-77).
#[must_use]
pub fn strict_relays(s: Scale) -> Row {
    let specs = vec![
        strict(R0, NegMode::On),
        strict(R1, NegMode::On),
        strict(R2, NegMode::UnsupportedNegErr),
    ];
    let mut b = world(
        104,
        specs,
        s.strict_repos,
        Scale {
            roots: 1,
            comments: 1,
            ..s
        },
        false,
    );
    b.phases(10 * MIN_MS, 2 * HOUR_MS);
    let mut row = measure(&b.build(), true, 0, 2 * HOUR_MS).row("4 strict relays", None);
    row.target = "0 \"too many\", all synced".into();
    let n = row.wire.too_many;
    row.verdict = if n == 0 {
        Ok(())
    } else {
        Err(format!("{n} answers: {:?}", row.wire.too_many_by_message))
    };
    row
}

/// All four scenarios.
#[must_use]
pub fn all(s: Scale) -> Vec<Row> {
    vec![
        in_sync_resync(s),
        quick_reconnect(s),
        initial_sync(s),
        strict_relays(s),
    ]
}

/// The table (markdown), one line per scenario, then the verdicts.
#[must_use]
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | filters | round trips (max/filter) | msgs out/in | bytes out/in | bytes/filter | events in (distinct) | gap | floor bytes | bytes/floor | too many | target | holds |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let w = &r.wire;
        let ratio = if r.floor_bytes == 0 {
            "∞ (floor 0)".to_string()
        } else {
            format!("{:.2}", w.total_bytes() as f64 / r.floor_bytes as f64)
        };
        out.push_str(&format!(
            "| {} | {} | {} ({}) | {}/{} | {}/{} | {} | {} ({}) | {} | {} ({} ev) | {} | {} | {} | {} |\n",
            r.name,
            w.filters(),
            w.round_trips,
            w.max_round_trips_per_filter(),
            w.out.msgs,
            w.inbound.msgs,
            w.out.bytes,
            w.inbound.bytes,
            w.total_bytes() / w.filters().max(1) as u64,
            w.events_in,
            w.event_ids.len(),
            r.gap_events.map_or("-".into(), |g| g.to_string()),
            r.floor_bytes,
            r.new_events,
            ratio,
            w.too_many,
            r.target,
            match (&r.failure, &r.verdict) {
                (Some(_), _) => "FAILED (correctness)".to_string(),
                (None, Ok(())) => "holds".to_string(),
                (None, Err(by)) => format!("DOES NOT HOLD: {by}"),
            }
        ));
    }
    out
}

/// Where `row`'s bytes went, relay by relay (what limits its bytes/floor): the filters we sent,
/// events received first from that relay, and copies of events already received. The last
/// lines give the ratio without the copies, and without the copies and the filters, and the
/// same for the bytes received alone (out of the wire total).
#[must_use]
pub fn breakdown(row: &Row) -> String {
    let mut out = format!(
        "{}: where the bytes went\n| relay | filter bytes | first events (bytes) | copies (bytes) |\n|---|---|---|---|\n",
        row.name
    );
    let (mut copies, mut filters) = (0u64, 0u64);
    for (relay, c) in &row.wire.per_relay {
        out.push_str(&format!(
            "| {relay} | {} | {} ({}) | {} ({}) |\n",
            c.filter_bytes, c.first_events, c.first_bytes, c.copy_events, c.copy_bytes
        ));
        copies += c.copy_bytes;
        filters += c.filter_bytes;
    }
    let w = &row.wire;
    out.push_str(&format!(
        "the rest: {} B out besides filters (CLOSE, NEG-OPEN/NEG-MSG payloads, REQ framing), {} B in besides event JSON (EVENT framing, NEG-MSG answers, EOSE, CLOSED)\n",
        w.out.bytes.saturating_sub(w.filter_bytes),
        w.inbound.bytes.saturating_sub(w.event_bytes),
    ));
    let floor = row.floor_bytes.max(1) as f64;
    let total = w.total_bytes();
    out.push_str(&format!(
        "bytes/floor {:.2}; without the copies {:.2}; without the copies and the filters {:.2}\n",
        total as f64 / floor,
        total.saturating_sub(copies) as f64 / floor,
        total.saturating_sub(copies + filters) as f64 / floor,
    ));
    // The issue's own wording counts bytes received; the verdict above counts both directions.
    let inbound = w.inbound.bytes;
    out.push_str(&format!(
        "bytes received/floor {:.2}; without the copies {:.2}\n",
        inbound as f64 / floor,
        inbound.saturating_sub(copies) as f64 / floor,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_bench_is_correct_and_counts_traffic() {
        for row in all(Scale::TINY) {
            assert!(row.failure.is_none(), "{}: {:?}", row.name, row.failure);
            assert!(row.wire.total_msgs() > 0, "{} saw no traffic", row.name);
        }
    }

    #[test]
    fn the_breakdown_accounts_for_every_event_and_filter_byte() {
        let row = initial_sync(Scale::TINY);
        let costs = row.wire.per_relay.values();
        let events: u64 = costs.clone().map(|c| c.first_events + c.copy_events).sum();
        let firsts: u64 = costs.clone().map(|c| c.first_events).sum();
        let filters: u64 = costs.map(|c| c.filter_bytes).sum();
        assert_eq!(events, row.wire.events_in);
        assert_eq!(firsts, row.wire.event_ids.len() as u64);
        assert_eq!(filters, row.wire.filter_bytes);
        let text = breakdown(&row);
        assert!(text.contains("without the copies"));
        let received = row.wire.inbound.bytes as f64 / row.floor_bytes.max(1) as f64;
        assert!(
            text.contains(&format!("bytes received/floor {received:.2}")),
            "{text}"
        );
    }
}
