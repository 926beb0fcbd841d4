//! Routing of relay traffic back to the core: which core relay a nostr-sdk URL is, which
//! connections are open (so a status change becomes exactly one `Disconnected`), and the filters
//! of every open subscription (events outside them never reach the host's policy).
//!
//! Shared by the executor (writes: connect, subscribe, close) and the ingest and monitor tasks
//! (reads). Lookups only: nothing here is iterated to decide output.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use nostr::Filter;
use sync_core::{EventMeta, RelayUrl, SubId};

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
}

#[derive(Debug, Default)]
struct Tables {
    /// nostr-sdk URL text → core URL, for every relay the core asked to connect.
    urls: HashMap<String, RelayUrl>,
    /// nostr-sdk URL texts of open connections. Invariant: each is a key of `urls`.
    open: HashSet<String>,
    /// `(nostr-sdk URL text, subscription id)` → filters, for every REQ sent and not closed.
    subs: HashMap<(String, String), Vec<Filter>>,
}

/// The shared routing tables (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Routing {
    tables: Mutex<Tables>,
}

impl Routing {
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

    /// Forgets a subscription.
    pub(crate) fn unsubscribe(&self, sdk_url: &str, sub: &SubId) {
        self.lock()
            .subs
            .remove(&(sdk_url.to_string(), sub.0.clone()));
    }

    /// Where an event that arrived on `sub` of `sdk_url` belongs.
    pub(crate) fn route(&self, sdk_url: &str, sub: &str, meta: &EventMeta) -> Route {
        let t = self.lock();
        let Some(relay) = t.urls.get(sdk_url).cloned() else {
            return Route::UnknownRelay;
        };
        match t.subs.get(&(sdk_url.to_string(), sub.to_string())) {
            None => Route::UnknownSub(relay),
            Some(filters) if filters.iter().any(|f| sync_core::matches(f, meta)) => {
                Route::Matched(relay)
            }
            Some(_) => Route::OutOfFilter(relay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, Keys, Kind};

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
        assert_eq!(
            routing.route("ws://x", "s", &meta),
            Route::UnknownSub(relay),
            "closing drops subscriptions"
        );
    }
}
