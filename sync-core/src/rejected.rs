//! The rejected-events memory (docs/spec.md §9): ids of announcements and state events the host
//! rejected, excluded from negentropy fetches for 7 days (cold), and re-offerable for 120 s (hot)
//! when the dependency they lacked arrives. Bounded: the oldest entries are forgotten first.

use std::collections::{BTreeMap, BTreeSet};

use nostr::{EventId, PublicKey, Timestamp};
use serde::{Deserialize, Serialize};

use crate::event_meta::{EventMeta, KIND_ANNOUNCEMENT, KIND_STATE};
use crate::time::{Mono, Now};

/// One remembered rejection (persisted across restarts with its wall-clock time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEntry {
    /// The rejected event.
    pub id: EventId,
    /// Its kind (30617 or 30618).
    pub kind: u16,
    /// Its author.
    pub author: PublicKey,
    /// Its `d` identifier.
    pub identifier: String,
    /// When it was rejected (wall clock).
    pub rejected_at: Timestamp,
}

/// What a rejected event waits for: an accepted event that may change the host's verdict.
type DepKey = (u16, PublicKey, String);

/// Counters of the memory's activity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedStats {
    /// Ids excluded from a negentropy fetch because they were remembered.
    pub hits: u64,
    /// Entries forgotten because they aged out or the memory was full.
    pub expiries: u64,
    /// Entries removed because their dependency arrived.
    pub invalidations: u64,
    /// Entries re-offered to the host.
    pub reoffered: u64,
    /// The same activity and the memory's sizes split by event type (metrics labels
    /// `event_type="announcement"` and `"state"`).
    #[serde(default)]
    pub announcement: RejectedTypeStats,
    /// See `announcement`.
    #[serde(default)]
    pub state: RejectedTypeStats,
}

/// The rejected memory's sizes (gauges) and activity (counters) for one event type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedTypeStats {
    /// Entries still re-offerable (gauge).
    pub hot: u64,
    /// Entries excluded from fetches, hot ones included (gauge).
    pub cold: u64,
    /// Ids excluded from a negentropy fetch because they were remembered.
    pub fetch_exclusions: u64,
    /// Entries re-offered (hot when their dependency arrived).
    pub reoffered: u64,
    /// Entries whose dependency arrived after their hot period: removed, not re-offered.
    pub not_hot: u64,
    /// Entries whose hot period ended.
    pub hot_expired: u64,
    /// Entries forgotten because they aged out or the memory was full.
    pub expired: u64,
    /// Entries removed because their dependency arrived.
    pub invalidated: u64,
}

impl RejectedStats {
    fn of_kind(&mut self, kind: u16) -> &mut RejectedTypeStats {
        if kind == KIND_ANNOUNCEMENT {
            &mut self.announcement
        } else {
            &mut self.state
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    key: DepKey,
    rejected_at: Timestamp,
    /// Re-offerable until then; `None` once the hot period is over (or after a restore).
    hot_until: Option<Mono>,
}

/// The memory. Invariant: `by_key`, `by_wall` and `hot` index exactly the ids in `entries`
/// (hot: those with `hot_until` set); `entries.len() <= max_entries`.
#[derive(Clone, Debug, Default)]
pub(crate) struct RejectedMemory {
    entries: BTreeMap<EventId, Entry>,
    by_key: BTreeMap<DepKey, BTreeSet<EventId>>,
    by_wall: BTreeSet<(Timestamp, EventId)>,
    hot: BTreeSet<(Mono, EventId)>,
    hot_ms: u64,
    cold_secs: u64,
    max_entries: usize,
    /// Activity counters.
    pub(crate) stats: RejectedStats,
}

impl RejectedMemory {
    pub(crate) fn new(hot_ms: u64, cold_secs: u64, max_entries: usize) -> Self {
        Self {
            hot_ms,
            cold_secs,
            max_entries: max_entries.max(1),
            ..Self::default()
        }
    }

    /// Remembers a rejected announcement or state event; other kinds are not remembered.
    pub(crate) fn insert(&mut self, meta: &EventMeta, now: Now) {
        let kind = meta.kind_u16();
        if kind != KIND_ANNOUNCEMENT && kind != KIND_STATE {
            return;
        }
        let key = (
            kind,
            meta.author,
            meta.identifier().unwrap_or_default().to_string(),
        );
        self.add(meta.id, key, now.wall, Some(now.mono.plus_ms(self.hot_ms)));
    }

    fn add(&mut self, id: EventId, key: DepKey, rejected_at: Timestamp, hot_until: Option<Mono>) {
        self.remove(&id);
        while self.entries.len() >= self.max_entries {
            let Some(&(_, oldest)) = self.by_wall.first() else {
                break;
            };
            if let Some(e) = self.remove(&oldest) {
                self.stats.of_kind(e.key.0).expired += 1;
            }
            self.stats.expiries += 1;
        }
        let t = self.stats.of_kind(key.0);
        t.cold += 1;
        t.hot += u64::from(hot_until.is_some());
        self.by_key.entry(key.clone()).or_default().insert(id);
        self.by_wall.insert((rejected_at, id));
        if let Some(t) = hot_until {
            self.hot.insert((t, id));
        }
        self.entries.insert(
            id,
            Entry {
                key,
                rejected_at,
                hot_until,
            },
        );
    }

    fn remove(&mut self, id: &EventId) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        if let Some(ids) = self.by_key.get_mut(&entry.key) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_key.remove(&entry.key);
            }
        }
        self.by_wall.remove(&(entry.rejected_at, *id));
        let sizes = self.stats.of_kind(entry.key.0);
        sizes.cold = sizes.cold.saturating_sub(1);
        if let Some(t) = entry.hot_until {
            self.hot.remove(&(t, *id));
            sizes.hot = sizes.hot.saturating_sub(1);
        }
        Some(entry)
    }

    /// Whether `id` is remembered (and so must not be fetched again).
    #[cfg(test)]
    pub(crate) fn contains(&self, id: &EventId) -> bool {
        self.entries.contains_key(id)
    }

    /// Removes remembered ids from `ids`, counting hits.
    pub(crate) fn exclude(&mut self, ids: &mut Vec<EventId>) {
        let before = ids.len();
        let (entries, stats) = (&self.entries, &mut self.stats);
        ids.retain(|id| {
            let Some(e) = entries.get(id) else {
                return true;
            };
            stats.of_kind(e.key.0).fetch_exclusions += 1;
            false
        });
        self.stats.hits += (before - ids.len()) as u64;
    }

    /// An event was accepted: forget rejections that depended on it and return the hot ones
    /// to re-offer. A 30617 by `o` listing maintainers `m` frees announcements by `m` and state
    /// events by `o` or `m` with the same `d`; a 30618 frees state events of its author and `d`.
    pub(crate) fn on_accepted(&mut self, meta: &EventMeta, now: Now) -> Vec<EventId> {
        let d = meta.identifier().unwrap_or_default().to_string();
        let mut keys: Vec<DepKey> = Vec::new();
        match meta.kind_u16() {
            KIND_ANNOUNCEMENT => {
                keys.extend(
                    meta.maintainers
                        .iter()
                        .map(|m| (KIND_ANNOUNCEMENT, *m, d.clone())),
                );
                keys.push((KIND_STATE, meta.author, d.clone()));
                keys.extend(meta.maintainers.iter().map(|m| (KIND_STATE, *m, d.clone())));
            }
            KIND_STATE => keys.push((KIND_STATE, meta.author, d)),
            _ => return Vec::new(),
        }
        let mut reoffer = Vec::new();
        for key in keys {
            let ids: Vec<EventId> = self
                .by_key
                .get(&key)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            for id in ids {
                if id == meta.id {
                    continue;
                }
                let Some(entry) = self.remove(&id) else {
                    continue;
                };
                self.stats.invalidations += 1;
                let by_type = self.stats.of_kind(entry.key.0);
                by_type.invalidated += 1;
                if entry.hot_until.is_some_and(|t| t > now.mono) {
                    by_type.reoffered += 1;
                    reoffer.push(id);
                } else {
                    by_type.not_hot += 1;
                }
            }
        }
        self.remove(&meta.id);
        reoffer.sort();
        reoffer.dedup();
        self.stats.reoffered += reoffer.len() as u64;
        reoffer
    }

    /// Ages entries out: hot ones by the monotonic clock, cold ones by the wall clock.
    pub(crate) fn expire(&mut self, now: Now) {
        while let Some(&(t, id)) = self.hot.first() {
            if t > now.mono {
                break;
            }
            self.hot.remove(&(t, id));
            if let Some(e) = self.entries.get_mut(&id) {
                e.hot_until = None;
                let sizes = self.stats.of_kind(e.key.0);
                sizes.hot = sizes.hot.saturating_sub(1);
                sizes.hot_expired += 1;
            }
        }
        let horizon = now.wall.as_secs().saturating_sub(self.cold_secs);
        while let Some(&(t, id)) = self.by_wall.first() {
            if t.as_secs() >= horizon {
                break;
            }
            if let Some(e) = self.remove(&id) {
                self.stats.of_kind(e.key.0).expired += 1;
            }
            self.stats.expiries += 1;
        }
    }

    /// When the next hot entry cools down.
    pub(crate) fn next_deadline(&self) -> Option<Mono> {
        self.hot.first().map(|(t, _)| *t)
    }

    /// Entries to persist, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<RejectedEntry> {
        self.by_wall
            .iter()
            .filter_map(|(_, id)| {
                let e = self.entries.get(id)?;
                Some(RejectedEntry {
                    id: *id,
                    kind: e.key.0,
                    author: e.key.1,
                    identifier: e.key.2.clone(),
                    rejected_at: e.rejected_at,
                })
            })
            .collect()
    }

    /// Restores persisted entries (cold only; already expired ones are skipped).
    pub(crate) fn restore(&mut self, entries: Vec<RejectedEntry>, now: Now) {
        for e in entries {
            if e.kind == KIND_ANNOUNCEMENT || e.kind == KIND_STATE {
                self.add(e.id, (e.kind, e.author, e.identifier), e.rejected_at, None);
            }
        }
        self.expire(now);
    }

    /// `(hot, cold)` sizes: hot entries are re-offerable, every entry is excluded from fetches.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.hot.len(), self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_meta::tests::{event, keys};

    fn meta(owner: u8, kind: u16, at: u64, tags: &[&[&str]]) -> EventMeta {
        EventMeta::from_event(&event(&keys(owner), kind, at, tags))
    }

    #[test]
    fn maintainer_announcement_is_reoffered_when_owner_arrives() {
        let mut mem = RejectedMemory::new(120_000, 7 * 86_400, 100);
        let t0 = Now::at(0, 1_000_000);
        let maint = meta(2, 30617, 1, &[&["d", "r"]]);
        mem.insert(&maint, t0);
        assert!(mem.contains(&maint.id));
        let hex = keys(2).public_key().to_hex();
        let owner = meta(1, 30617, 2, &[&["d", "r"], &["maintainers", &hex]]);
        assert_eq!(mem.on_accepted(&owner, t0.plus_ms(1_000)), vec![maint.id]);
        assert!(!mem.contains(&maint.id));
        assert_eq!(mem.stats.invalidations, 1);
    }

    #[test]
    fn cold_entries_are_invalidated_but_not_reoffered() {
        let mut mem = RejectedMemory::new(120_000, 7 * 86_400, 100);
        let t0 = Now::at(0, 1_000_000);
        let state = meta(1, 30618, 1, &[&["d", "r"]]);
        mem.insert(&state, t0);
        let later = t0.plus_ms(200_000);
        mem.expire(later);
        assert_eq!(mem.sizes(), (0, 1));
        let ann = meta(1, 30617, 2, &[&["d", "r"]]);
        assert_eq!(mem.on_accepted(&ann, later), Vec::<EventId>::new());
        assert!(!mem.contains(&state.id));
        let by_type = &mem.stats.state;
        assert_eq!((by_type.hot, by_type.cold), (0, 0));
        assert_eq!(
            (by_type.hot_expired, by_type.invalidated, by_type.not_hot),
            (1, 1, 1)
        );
        assert_eq!(mem.stats.announcement, RejectedTypeStats::default());
    }

    #[test]
    fn sizes_and_activity_are_split_by_event_type() {
        let mut mem = RejectedMemory::new(120_000, 7 * 86_400, 2);
        let t0 = Now::at(0, 1_000_000);
        let ann = meta(2, 30617, 1, &[&["d", "r"]]);
        let s1 = meta(3, 30618, 1, &[&["d", "r"]]);
        let s2 = meta(3, 30618, 2, &[&["d", "s"]]);
        mem.insert(&ann, t0);
        mem.insert(&s1, t0.plus_ms(1_000));
        let (a, s) = (&mem.stats.announcement, &mem.stats.state);
        assert_eq!((a.hot, a.cold, s.hot, s.cold), (1, 1, 1, 1));
        let mut ids = vec![ann.id, s1.id, s1.id, EventId::all_zeros()];
        mem.exclude(&mut ids);
        assert_eq!(ids, vec![EventId::all_zeros()]);
        let (a, s) = (&mem.stats.announcement, &mem.stats.state);
        assert_eq!((a.fetch_exclusions, s.fetch_exclusions), (1, 2));
        mem.insert(&s2, t0.plus_ms(2_000));
        let a = &mem.stats.announcement;
        assert_eq!(
            (a.hot, a.cold, a.expired),
            (0, 0, 1),
            "the oldest was evicted"
        );
        let hex = keys(3).public_key().to_hex();
        let owner = meta(1, 30617, 2, &[&["d", "r"], &["maintainers", &hex]]);
        assert_eq!(mem.on_accepted(&owner, t0.plus_ms(3_000)), vec![s1.id]);
        let s = &mem.stats.state;
        assert_eq!((s.hot, s.cold, s.reoffered, s.invalidated), (1, 1, 1, 1));
        let (hot, cold) = mem.sizes();
        assert_eq!((hot as u64, cold as u64), (s.hot, s.cold));
    }

    #[test]
    fn entries_expire_after_seven_days_and_memory_is_bounded() {
        let mut mem = RejectedMemory::new(120_000, 7 * 86_400, 2);
        let t0 = Now::at(0, 1_000_000);
        let a = meta(1, 30618, 1, &[&["d", "a"]]);
        let b = meta(1, 30618, 2, &[&["d", "b"]]);
        let c = meta(1, 30618, 3, &[&["d", "c"]]);
        mem.insert(&a, t0);
        mem.insert(&b, t0.plus_ms(1_000));
        mem.insert(&c, t0.plus_ms(2_000));
        assert!(!mem.contains(&a.id) && mem.contains(&b.id) && mem.contains(&c.id));
        mem.expire(Now::at(10, 1_000_000 + 7 * 86_400 + 3));
        assert_eq!(mem.sizes().1, 0);
        let kept = meta(1, 1617, 1, &[]);
        mem.insert(&kept, t0);
        assert!(!mem.contains(&kept.id), "only 30617/30618 are remembered");
    }

    #[test]
    fn snapshot_round_trips_and_skips_expired() {
        let mut mem = RejectedMemory::new(120_000, 100, 10);
        let t0 = Now::at(0, 1_000);
        let a = meta(1, 30617, 1, &[&["d", "a"]]);
        mem.insert(&a, t0);
        let snap = mem.snapshot();
        let mut fresh = RejectedMemory::new(120_000, 100, 10);
        fresh.restore(snap.clone(), Now::at(0, 1_050));
        assert_eq!(fresh.snapshot(), snap);
        let mut late = RejectedMemory::new(120_000, 100, 10);
        late.restore(snap, Now::at(0, 1_200));
        assert_eq!(late.sizes(), (0, 0));
    }
}
