//! Shared set-up of the runtime's integration tests: real nostr-relay-builder relays on
//! 127.0.0.1, NIP-34 fixtures, a fast configuration, and polling helpers.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]
#![allow(
    unreachable_pub,
    reason = "test support module shared by test binaries"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use nostr::{Event, EventBuilder, Filter, Keys, Kind, Tag, Timestamp};
use nostr_database::{MemoryDatabase, MemoryDatabaseOptions, NostrDatabase};
use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
use sync_core::{Config, Status};
use sync_runtime::{RuntimeStatus, SyncHandle};

/// A relay under test with its database (shared with the test, so fixtures can be written
/// directly while it is down).
pub struct TestRelay {
    pub relay: LocalRelay,
    pub db: Arc<MemoryDatabase>,
    pub url: String,
    pub port: u16,
    /// `max_filter_limit` it was started with (for restarts).
    cap: Option<usize>,
}

fn memory_db() -> Arc<MemoryDatabase> {
    Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
        events: true,
        max_events: None,
    }))
}

fn builder(db: Arc<MemoryDatabase>, cap: Option<usize>) -> RelayBuilder {
    let mut b = RelayBuilder::default().database(db).rate_limit(RateLimit {
        max_reqs: 500,
        notes_per_minute: 1_000_000,
    });
    if let Some(cap) = cap {
        b = b.default_filter_limit(cap).max_filter_limit(cap);
    }
    b
}

impl TestRelay {
    /// A running relay; `cap` limits results per filter (LocalRelay's default is 500).
    pub async fn start(cap: Option<usize>) -> Self {
        let db = memory_db();
        let relay = LocalRelay::new(builder(db.clone(), cap));
        relay.run().await.expect("relay runs");
        let url = relay.url().await.to_string();
        let port = url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap();
        // A shutdown issued right after run() can be lost: LocalRelay's shutdown
        // wakes only the tasks waiting at that instant.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Self {
            relay,
            db,
            url,
            port,
            cap,
        }
    }

    /// Stores events directly (no live notification).
    pub async fn store(&self, events: &[Event]) {
        for e in events {
            self.db.save_event(e).await.expect("relay db save");
        }
    }

    /// Stores an event and pushes it to live subscribers, as a publish would.
    pub async fn publish(&self, event: &Event) {
        self.db.save_event(event).await.expect("relay db save");
        self.relay.notify_event(event.clone());
    }

    /// Stops the relay (sessions closed without a close frame).
    pub fn stop(&self) {
        self.relay.shutdown();
        // `shutdown` wakes only the tasks waiting at that instant: a session busy with a
        // message misses it and keeps its connection open. Repeat it a few
        // times so every session sees one.
        let relay = self.relay.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                relay.shutdown();
            }
        });
    }

    /// Starts a new relay on the same port with the same database (retrying while the port is
    /// still being released).
    pub async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let relay = LocalRelay::new(builder(self.db.clone(), self.cap).port(self.port));
            match relay.run().await {
                Ok(()) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    self.relay = relay;
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    drop(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("relay restart on port {}: {e}", self.port),
            }
        }
    }
}

/// The host's store.
pub fn host_db() -> Arc<MemoryDatabase> {
    memory_db()
}

/// Our own relay URL in tests (never dialled: nothing listens there).
pub const OWN_URL: &str = "ws://127.0.0.1:9";

/// A configuration with timings small enough for tests that finish in seconds.
pub fn fast_config(bootstrap: &[&str]) -> Config {
    Config {
        own_relay_urls: vec![OWN_URL.into()],
        bootstrap_relays: bootstrap.iter().map(|s| s.to_string()).collect(),
        discovery_window_ms: 50,
        startup_jitter_ms: 0,
        backoff_base_ms: 100,
        backoff_max_ms: 400,
        connect_timeout_ms: 2_000,
        batch_deadline_ms: 5_000,
        // Every test relay is on loopback, so the open-network rules are lifted (a lab).
        allow_private_targets: true,
        ..Config::default()
    }
}

/// `30617:<owner>:<d>`.
pub fn coord(keys: &Keys, d: &str) -> String {
    format!("30617:{}:{d}", keys.public_key().to_hex())
}

fn tag(values: &[&str]) -> Tag {
    Tag::parse(values.iter().copied()).expect("valid tag")
}

/// A repository announcement listing `relays`.
pub fn announcement(keys: &Keys, d: &str, relays: &[&str], at: u64) -> Event {
    announcement_with_maintainers(keys, d, relays, &[], at)
}

/// A repository announcement listing `relays` and naming `maintainers`.
pub fn announcement_with_maintainers(
    keys: &Keys,
    d: &str,
    relays: &[&str],
    maintainers: &[&Keys],
    at: u64,
) -> Event {
    let mut relays_tag = vec!["relays"];
    relays_tag.extend_from_slice(relays);
    let mut builder = EventBuilder::new(Kind::from(30617u16), "")
        .tag(Tag::identifier(d))
        .tag(tag(&relays_tag))
        .custom_created_at(Timestamp::from(at));
    if !maintainers.is_empty() {
        let hex: Vec<String> = maintainers
            .iter()
            .map(|k| k.public_key().to_hex())
            .collect();
        let mut values = vec!["maintainers"];
        values.extend(hex.iter().map(String::as_str));
        builder = builder.tag(tag(&values));
    }
    builder.sign_with_keys(keys).unwrap()
}

/// A repository state event.
pub fn state(keys: &Keys, d: &str, at: u64) -> Event {
    EventBuilder::new(Kind::from(30618u16), "")
        .tag(Tag::identifier(d))
        .tag(tag(&[
            "refs/heads/main",
            "0123456789abcdef0123456789abcdef01234567",
        ]))
        .custom_created_at(Timestamp::from(at))
        .sign_with_keys(keys)
        .unwrap()
}

/// A root event (patch 1617 or issue 1621) of repository `coord`.
pub fn root(keys: &Keys, kind: u16, coord: &str, n: u64, at: u64) -> Event {
    EventBuilder::new(Kind::from(kind), format!("root {n}"))
        .tag(tag(&["a", coord]))
        .custom_created_at(Timestamp::from(at))
        .sign_with_keys(keys)
        .unwrap()
}

/// A reply (kind 1111) to root event `root_id`, tagged with `letter` (`e` or `q`).
pub fn reply(keys: &Keys, letter: &str, root: &Event, at: u64) -> Event {
    EventBuilder::new(Kind::from(1111u16), "reply")
        .tag(tag(&[letter, &root.id.to_hex()]))
        .custom_created_at(Timestamp::from(at))
        .sign_with_keys(keys)
        .unwrap()
}

/// The current wall clock in seconds.
pub fn now_secs() -> u64 {
    Timestamp::now().as_secs()
}

/// Whether the store holds every one of `events`.
pub async fn holds_all(db: &dyn NostrDatabase, events: &[Event]) -> bool {
    for e in events {
        match db.event_by_id(&e.id).await {
            Ok(Some(_)) => {}
            _ => return false,
        }
    }
    true
}

/// How many events of `kinds` the store holds.
pub async fn count(db: &dyn NostrDatabase, kinds: &[u16]) -> usize {
    db.count(Filter::new().kinds(kinds.iter().map(|k| Kind::from(*k))))
        .await
        .unwrap()
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one metric line (`name{labels} value`) in a text exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A front for the relay on `upstream_port` that answers NIP-11 requests with `document` and
/// pipes the rest to the relay ([`grasp_sync_tests::http_front`]). Returns its `ws://` URL.
pub async fn nip11_front(upstream_port: u16, document: &'static str) -> String {
    grasp_sync_tests::http_front::start(
        upstream_port,
        grasp_sync_tests::http_front::document(document),
    )
    .await
}

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(20);

/// The lifecycle status of `url` in a snapshot.
pub fn status_of(s: &RuntimeStatus, url: &str) -> Option<Status> {
    s.relay(url).map(|r| r.status)
}

/// Waits until every relay of `urls` is `Connected`; panics with the snapshot if not.
pub async fn wait_connected(handle: &SyncHandle, urls: &[&str]) -> RuntimeStatus {
    let (status, ok) = handle
        .wait_for_status(WAIT, |s| {
            urls.iter()
                .all(|u| status_of(s, u) == Some(Status::Connected))
        })
        .await;
    assert!(
        ok,
        "relays {urls:?} did not reach Connected: {:#?}",
        status.relays
    );
    status
}

/// Stores the announcement as the host would (from its own client) and tells the runtime.
pub async fn host_accepts(handle: &SyncHandle, host: &dyn NostrDatabase, event: &Event) {
    host.save_event(event).await.unwrap();
    handle.notify_accepted(event).await;
}
