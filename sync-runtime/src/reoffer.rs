//! Bodies of recently rejected announcements and state events, kept so that `Command::Reoffer`
//! can run them through the host's policy again when their dependency arrives (docs/spec.md §9 hot
//! cache). Bounded by count and by age; the core decides what is re-offered.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use nostr::{Event, EventId};
use sync_core::{KIND_ANNOUNCEMENT, KIND_STATE};

/// The cache. Invariant: `order` lists exactly the ids in `bodies`, oldest first;
/// `bodies.len() <= max_entries`.
#[derive(Debug)]
pub(crate) struct ReofferCache {
    bodies: BTreeMap<EventId, Event>,
    order: VecDeque<(Instant, EventId)>,
    /// Entries older than this are dropped (the core's `rejected_hot_ms`).
    ttl: Duration,
    /// Upper bound on entries.
    max_entries: usize,
}

impl ReofferCache {
    /// An empty cache.
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            bodies: BTreeMap::new(),
            order: VecDeque::new(),
            ttl,
            max_entries: max_entries.max(1),
        }
    }

    /// Keeps `event` if it is a kind the core remembers (30617, 30618).
    pub(crate) fn insert(&mut self, event: &Event, now: Instant) {
        let kind = event.kind.as_u16();
        if kind != KIND_ANNOUNCEMENT && kind != KIND_STATE {
            return;
        }
        self.expire(now);
        if self.bodies.insert(event.id, event.clone()).is_none() {
            self.order.push_back((now, event.id));
        }
        while self.bodies.len() > self.max_entries {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            self.bodies.remove(&oldest);
        }
    }

    /// Removes and returns the bodies of `ids` that are still cached.
    pub(crate) fn take(&mut self, ids: &[EventId], now: Instant) -> Vec<Event> {
        self.expire(now);
        let taken: Vec<Event> = ids.iter().filter_map(|id| self.bodies.remove(id)).collect();
        if !taken.is_empty() {
            self.order.retain(|(_, id)| self.bodies.contains_key(id));
        }
        taken
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.bodies.len()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.order.front() {
            if now.duration_since(at) < self.ttl {
                break;
            }
            self.order.pop_front();
            self.bodies.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, Keys, Kind, Tag};

    fn announcement(keys: &Keys, d: &str) -> Event {
        EventBuilder::new(Kind::GitRepoAnnouncement, "")
            .tag(Tag::identifier(d))
            .sign_with_keys(keys)
            .unwrap()
    }

    #[test]
    fn keeps_only_remembered_kinds_bounded_by_count_and_age() {
        let keys = Keys::generate();
        let t0 = Instant::now();
        let mut cache = ReofferCache::new(Duration::from_secs(120), 2);
        let note = EventBuilder::new(Kind::TextNote, "x")
            .sign_with_keys(&keys)
            .unwrap();
        cache.insert(&note, t0);
        assert_eq!(cache.len(), 0, "kind 1 is never re-offered");
        let (a, b, c) = (
            announcement(&keys, "a"),
            announcement(&keys, "b"),
            announcement(&keys, "c"),
        );
        cache.insert(&a, t0);
        cache.insert(&b, t0);
        cache.insert(&c, t0);
        assert_eq!(cache.len(), 2, "the oldest goes when full");
        assert!(cache.take(&[a.id], t0).is_empty());
        assert_eq!(cache.take(&[b.id], t0), vec![b]);
        assert!(
            cache
                .take(&[c.id], t0 + Duration::from_secs(121))
                .is_empty(),
            "aged out"
        );
        assert_eq!(cache.len(), 0);
    }

    /// Signed once for every proptest case (signing is slow in debug builds).
    fn six_announcements() -> &'static [Event] {
        static EVENTS: std::sync::OnceLock<Vec<Event>> = std::sync::OnceLock::new();
        EVENTS.get_or_init(|| {
            let keys = Keys::generate();
            (0..6)
                .map(|i| announcement(&keys, &i.to_string()))
                .collect()
        })
    }

    proptest::proptest! {
        /// After any sequence of inserts and takes the cache holds at most its bound, and
        /// `order` indexes exactly the cached bodies.
        #[test]
        fn stays_bounded_and_consistent(ops in proptest::collection::vec((proptest::bool::ANY, 0usize..6, 0u64..300), 1..40)) {
            let events = six_announcements();
            let t0 = Instant::now();
            let mut cache = ReofferCache::new(Duration::from_secs(120), 3);
            let mut elapsed = 0;
            for (insert, index, step_secs) in ops {
                elapsed += step_secs;
                let now = t0 + Duration::from_secs(elapsed);
                if insert {
                    cache.insert(&events[index], now);
                } else {
                    let _ = cache.take(&[events[index].id], now);
                }
                proptest::prop_assert!(cache.len() <= 3);
                proptest::prop_assert_eq!(cache.order.len(), cache.bodies.len());
            }
        }
    }
}
