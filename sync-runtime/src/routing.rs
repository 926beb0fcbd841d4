//! Routing of relay traffic back to the core: which core relay a nostr-sdk URL is, which
//! connections are open (so a status change becomes exactly one `Disconnected`), and the filters
//! of every open subscription (events outside them never reach the host's policy).
//!
//! Shared by the executor (writes: connect, subscribe, close) and the ingest and monitor tasks
//! (reads). Lookups only: nothing here is iterated to decide output.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use nostr::Filter;
use sync_core::{EventMeta, Mono, RelayUrl, SubId};

use crate::clock::Clock;

/// Where an EVENT belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The relay is not one the core tracks (removed, or never added): drop silently.
    UnknownRelay,
    /// The relay is known but the subscription is not open (late traffic).
    UnknownSub(RelayUrl),
    /// The event matches none of the subscription's filters.
    OutOfFilter(RelayUrl),
    /// The event matches the subscription.
    Matched(RelayUrl),
    /// The subscription was closed a moment ago (its batch deadline passed while the event was
    /// queued behind other traffic), the core's late-event window for it (`late_until` of its
    /// `Command::Unsubscribe`) is still open and the event matches its filters: it is data we
    /// asked for, so it is still offered to the host.
    LateMatched(RelayUrl),
}

/// At most this many closed subscriptions are remembered (oldest forgotten first): a memory
/// bound of the shell, below which the core's window decides.
pub(crate) const LATE_MAX_SUBS: usize = 256;
/// At most this many late events per closed subscription are offered to the host; the rest
/// are dropped (a relay cannot stream unbounded data on a subscription we closed).
pub(crate) const LATE_MAX_EVENTS_PER_SUB: u32 = 1_000;

/// A closed subscription whose late events are still accepted.
#[derive(Debug)]
struct ClosedSub {
    /// Its filters.
    filters: Vec<Filter>,
    /// The end of its late-event window (the core's monotonic clock).
    until: Mono,
    /// Late events offered so far. Invariant: <= [`LATE_MAX_EVENTS_PER_SUB`].
    offered: u32,
}

#[derive(Debug, Default)]
struct Tables {
    /// nostr-sdk URL text → core URL, for every relay the core asked to connect.
    urls: HashMap<String, RelayUrl>,
    /// nostr-sdk URL texts of open connections. Invariant: each is a key of `urls`.
    open: HashSet<String>,
    /// `(nostr-sdk URL text, subscription id)` → filters, for every REQ sent and not closed.
    subs: HashMap<(String, String), Vec<Filter>>,
    /// Subscriptions closed by `unsubscribe` whose late-event window is open. Invariant: at
    /// most [`LATE_MAX_SUBS`] entries, each also in `closed_order`.
    recently_closed: HashMap<(String, String), ClosedSub>,
    /// Keys of `recently_closed`, oldest first (expiry order: the core's windows have one
    /// length, so they end in closing order).
    closed_order: VecDeque<(String, String)>,
}

impl Tables {
    /// Drops closed subscriptions whose window ended, and the oldest beyond the cap.
    fn expire_closed(&mut self, now: Mono) {
        while let Some(key) = self.closed_order.front() {
            let expired = self.recently_closed.get(key).is_none_or(|c| c.until < now);
            if !expired && self.closed_order.len() <= LATE_MAX_SUBS {
                break;
            }
            if let Some(key) = self.closed_order.pop_front() {
                self.recently_closed.remove(&key);
            }
        }
    }
}

/// The shared routing tables (see the module docs).
#[derive(Debug)]
pub(crate) struct Routing {
    tables: Mutex<Tables>,
    /// The core's clock (late-event windows are on its monotonic time).
    clock: Clock,
}

impl Default for Routing {
    fn default() -> Self {
        Self::new(Clock::start())
    }
}

impl Routing {
    /// Empty tables reading `clock`.
    pub(crate) fn new(clock: Clock) -> Self {
        Self {
            tables: Mutex::default(),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the maps inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers that `sdk_url` (nostr-sdk's text of the URL) is the core's `relay`.
    pub(crate) fn add_relay(&self, sdk_url: &str, relay: &RelayUrl) {
        self.lock().urls.insert(sdk_url.to_string(), relay.clone());
    }

    /// Forgets a relay entirely (its traffic is dropped from now on).
    pub(crate) fn forget(&self, sdk_url: &str) {
        let mut t = self.lock();
        t.subs.retain(|(url, _), _| url != sdk_url);
        t.recently_closed.retain(|(url, _), _| url != sdk_url);
        t.closed_order.retain(|(url, _)| url != sdk_url);
        t.open.remove(sdk_url);
        t.urls.remove(sdk_url);
    }

    /// The core URL of an SDK URL.
    pub(crate) fn relay(&self, sdk_url: &str) -> Option<RelayUrl> {
        self.lock().urls.get(sdk_url).cloned()
    }

    /// Marks a connection open.
    pub(crate) fn opened(&self, sdk_url: &str) {
        self.lock().open.insert(sdk_url.to_string());
    }

    /// Marks a connection closed and forgets its subscriptions; `true` if it was open (the
    /// caller then reports exactly one `Disconnected`).
    pub(crate) fn closed(&self, sdk_url: &str) -> bool {
        let mut t = self.lock();
        t.subs.retain(|(url, _), _| url != sdk_url);
        t.open.remove(sdk_url)
    }

    /// The open connections (for a status re-check after the monitor stream lagged).
    pub(crate) fn open_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.lock().open.iter().cloned().collect();
        urls.sort();
        urls
    }

    /// Records a subscription's filters.
    pub(crate) fn subscribe(&self, sdk_url: &str, sub: &SubId, filters: Vec<Filter>) {
        self.lock()
            .subs
            .insert((sdk_url.to_string(), sub.0.clone()), filters);
    }

    /// Forgets a subscription; its filters stay for late traffic until `late_until` (the
    /// core's decision; `None`: no late traffic is offered).
    pub(crate) fn unsubscribe(&self, sdk_url: &str, sub: &SubId, late_until: Option<Mono>) {
        let now = self.clock.mono();
        let mut t = self.lock();
        let key = (sdk_url.to_string(), sub.0.clone());
        if let (Some(filters), Some(until)) = (t.subs.remove(&key), late_until) {
            let closed = ClosedSub {
                filters,
                until,
                offered: 0,
            };
            if t.recently_closed.insert(key.clone(), closed).is_none() {
                t.closed_order.push_back(key);
            }
        }
        t.expire_closed(now);
    }

    /// Where an event that arrived on `sub` of `sdk_url` belongs.
    pub(crate) fn route(&self, sdk_url: &str, sub: &str, meta: &EventMeta) -> Route {
        let mut t = self.lock();
        let Some(relay) = t.urls.get(sdk_url).cloned() else {
            return Route::UnknownRelay;
        };
        let key = (sdk_url.to_string(), sub.to_string());
        match t.subs.get(&key) {
            None => Self::route_late(&mut t, &key, meta, relay, self.clock.mono()),
            Some(filters) if filters.iter().any(|f| sync_core::matches(f, meta)) => {
                Route::Matched(relay)
            }
            Some(_) => Route::OutOfFilter(relay),
        }
    }

    /// Routes an event on a subscription that is not open.
    fn route_late(
        t: &mut Tables,
        key: &(String, String),
        meta: &EventMeta,
        relay: RelayUrl,
        now: Mono,
    ) -> Route {
        t.expire_closed(now);
        match t.recently_closed.get_mut(key) {
            Some(c)
                if c.offered < LATE_MAX_EVENTS_PER_SUB
                    && c.filters.iter().any(|f| sync_core::matches(f, meta)) =>
            {
                c.offered += 1;
                Route::LateMatched(relay)
            }
            _ => Route::UnknownSub(relay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, Keys, Kind};

    /// A late-event window two minutes from now.
    fn window_end(routing: &Routing) -> Mono {
        routing.clock.mono().plus_ms(120_000)
    }

    #[test]
    fn the_cores_window_decides_how_long_late_traffic_is_offered() {
        let routing = Routing::default();
        let relay = RelayUrl::parse("ws://127.0.0.1:7002").unwrap();
        let keys = Keys::generate();
        let patch = EventBuilder::new(Kind::GitPatch, "p")
            .sign_with_keys(&keys)
            .unwrap();
        let patch = EventMeta::from_event(&patch);
        routing.add_relay("ws://z", &relay);
        let filters = vec![Filter::new().kind(Kind::GitPatch)];
        routing.subscribe("ws://z", &SubId::from("none"), filters.clone());
        routing.unsubscribe("ws://z", &SubId::from("none"), None);
        assert_eq!(
            routing.route("ws://z", "none", &patch),
            Route::UnknownSub(relay.clone()),
            "no window: nothing late is offered"
        );
        routing.subscribe("ws://z", &SubId::from("past"), filters.clone());
        std::thread::sleep(std::time::Duration::from_millis(3));
        routing.unsubscribe("ws://z", &SubId::from("past"), Some(Mono(1)));
        assert_eq!(
            routing.route("ws://z", "past", &patch),
            Route::UnknownSub(relay.clone()),
            "a window that ended offers nothing"
        );
        routing.subscribe("ws://z", &SubId::from("open"), filters);
        routing.unsubscribe("ws://z", &SubId::from("open"), Some(window_end(&routing)));
        assert_eq!(
            routing.route("ws://z", "open", &patch),
            Route::LateMatched(relay)
        );
    }

    #[test]
    fn events_are_routed_by_relay_subscription_and_filter() {
        let routing = Routing::default();
        let relay = RelayUrl::parse("ws://127.0.0.1:7000").unwrap();
        let keys = Keys::generate();
        let note = EventBuilder::new(Kind::GitPatch, "p")
            .sign_with_keys(&keys)
            .unwrap();
        let meta = EventMeta::from_event(&note);
        assert_eq!(routing.route("ws://x", "s", &meta), Route::UnknownRelay);
        routing.add_relay("ws://x", &relay);
        assert_eq!(
            routing.route("ws://x", "s", &meta),
            Route::UnknownSub(relay.clone())
        );
        routing.subscribe(
            "ws://x",
            &SubId::from("s"),
            vec![Filter::new().kind(Kind::GitIssue)],
        );
        assert_eq!(
            routing.route("ws://x", "s", &meta),
            Route::OutOfFilter(relay.clone())
        );
        routing.subscribe(
            "ws://x",
            &SubId::from("s"),
            vec![Filter::new().kind(Kind::GitPatch)],
        );
        assert_eq!(
            routing.route("ws://x", "s", &meta),
            Route::Matched(relay.clone())
        );
        routing.opened("ws://x");
        assert!(
            routing.closed("ws://x"),
            "first close reports the disconnect"
        );
        assert!(!routing.closed("ws://x"), "a second close does not");
        routing.subscribe(
            "ws://x",
            &SubId::from("h"),
            vec![Filter::new().kind(Kind::GitPatch)],
        );
        routing.unsubscribe("ws://x", &SubId::from("h"), Some(window_end(&routing)));
        assert_eq!(
            routing.route("ws://x", "h", &meta),
            Route::LateMatched(relay.clone()),
            "late traffic matching a just-closed subscription is still ours"
        );
        assert_eq!(
            routing.route("ws://x", "s", &meta),
            Route::UnknownSub(relay),
            "closing drops subscriptions"
        );
    }

    #[test]
    fn late_traffic_is_bounded_and_must_match() {
        let routing = Routing::default();
        let relay = RelayUrl::parse("ws://127.0.0.1:7001").unwrap();
        let keys = Keys::generate();
        let patch = EventBuilder::new(Kind::GitPatch, "p")
            .sign_with_keys(&keys)
            .unwrap();
        let issue = EventBuilder::new(Kind::GitIssue, "i")
            .sign_with_keys(&keys)
            .unwrap();
        let (patch, issue) = (EventMeta::from_event(&patch), EventMeta::from_event(&issue));
        routing.add_relay("ws://y", &relay);
        routing.subscribe(
            "ws://y",
            &SubId::from("h"),
            vec![Filter::new().kind(Kind::GitPatch)],
        );
        routing.unsubscribe("ws://y", &SubId::from("h"), Some(window_end(&routing)));
        assert_eq!(
            routing.route("ws://y", "h", &issue),
            Route::UnknownSub(relay.clone()),
            "late traffic outside the closed filters is not ours"
        );
        for _ in 0..LATE_MAX_EVENTS_PER_SUB {
            assert_eq!(
                routing.route("ws://y", "h", &patch),
                Route::LateMatched(relay.clone())
            );
        }
        assert_eq!(
            routing.route("ws://y", "h", &patch),
            Route::UnknownSub(relay.clone()),
            "a closed subscription offers a bounded number of late events"
        );
        for i in 0..(LATE_MAX_SUBS + 10) {
            let sub = SubId(format!("s{i}"));
            routing.subscribe("ws://y", &sub, vec![Filter::new().kind(Kind::GitPatch)]);
            routing.unsubscribe("ws://y", &sub, Some(window_end(&routing)));
        }
        let t = routing.lock();
        assert_eq!(t.recently_closed.len(), LATE_MAX_SUBS);
        assert_eq!(t.closed_order.len(), LATE_MAX_SUBS);
    }
}
