//! The runtime against real relays on 127.0.0.1 (nostr-relay-builder `LocalRelay`), with real
//! nostr-sdk connections, a host store, and tiny timings so each test runs in seconds.

mod rt_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr::{Event, EventId, Keys};
use nostr_database::NostrDatabase;
use rt_support::*;
use sync_core::{NegSupport, Status};
use sync_runtime::{PolicyFuture, RuntimeStatus, SyncHandle, SyncRuntime, Verdict, WritePolicy};

const WAIT: Duration = Duration::from_secs(20);

fn status_of(s: &RuntimeStatus, url: &str) -> Option<Status> {
    s.relay(url).map(|r| r.status)
}

async fn wait_connected(handle: &SyncHandle, urls: &[&str]) -> RuntimeStatus {
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
async fn host_accepts(handle: &SyncHandle, host: &dyn NostrDatabase, event: &Event) {
    host.save_event(event).await.unwrap();
    handle.notify_accepted(event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_of_all_layers_from_two_relays_with_negentropy() {
    let (a, b) = (TestRelay::start(None).await, TestRelay::start(None).await);
    let (owner, other) = (Keys::generate(), Keys::generate());
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, "repo", &[&a.url, &b.url, OWN_URL], t);
    let c = coord(&owner, "repo");
    let repo_state = state(&owner, "repo", t + 1);
    let patch_a = root(&owner, 1617, &c, 1, t + 2);
    let patch_b = root(&other, 1617, &c, 2, t + 3);
    let issue_b = root(&other, 1621, &c, 3, t + 4);
    let reply_a = reply(&other, "e", &patch_a, t + 5);
    let quote_b = reply(&owner, "q", &issue_b, t + 6);
    a.store(&[
        ann.clone(),
        repo_state.clone(),
        patch_a.clone(),
        reply_a.clone(),
    ])
    .await;
    b.store(&[
        ann.clone(),
        patch_b.clone(),
        issue_b.clone(),
        quote_b.clone(),
    ])
    .await;

    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .seed(1)
        .spawn()
        .await
        .unwrap();
    host_accepts(&handle, host.as_ref(), &ann).await;
    let all = [repo_state, patch_a, patch_b, issue_b, reply_a, quote_b];
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &all)).await,
        "state, L2 (patches, issue) and L3 (e- and q-tagged replies) from both relays"
    );
    let status = wait_connected(&handle, &[&a.url, &b.url]).await;
    for url in [&a.url, &b.url] {
        assert_eq!(
            status.relay(url).unwrap().negentropy,
            NegSupport::Supported,
            "{url}"
        );
    }
    assert!(status.totals.negentropy_batches > 0);
    assert_eq!(status.totals.negentropy_fallbacks, 0);
    assert_eq!(status.totals.req_batches, 0, "NIP-77 served every batch");
    assert_eq!(status.totals.events_saved, 6);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_relay_is_discovered_from_a_synced_announcement() {
    let (a, c) = (TestRelay::start(None).await, TestRelay::start(None).await);
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    // Only `a` is configured; the announcement on it names `c`, which holds the repo's events.
    let ann = announcement(&owner, "found", &[&c.url, OWN_URL], t);
    a.store(std::slice::from_ref(&ann)).await;
    let coordinate = coord(&owner, "found");
    let patches: Vec<Event> = (0..5)
        .map(|n| root(&owner, 1617, &coordinate, n, t + n))
        .collect();
    c.store(&patches).await;

    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[&a.url]))
        .database(host.clone())
        .seed(2)
        .spawn()
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &patches)).await,
        "the patches on the discovered relay are synced"
    );
    assert!(holds_all(host.as_ref(), &[ann]).await);
    wait_connected(&handle, &[&a.url, &c.url]).await;
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_capping_results_at_100_is_paginated_without_nip77() {
    let capped = TestRelay::start(Some(100)).await;
    let owner = Keys::generate();
    let t = now_secs() - 86_400;
    let ann = announcement(&owner, "big", &[&capped.url, OWN_URL], t);
    let c = coord(&owner, "big");
    // 350 patches; pairs share a second so page boundaries fall inside same-second groups.
    let patches: Vec<Event> = (0..350)
        .map(|n| root(&owner, 1617, &c, n, t + 1 + n / 2))
        .collect();
    capped.store(&patches).await;
    capped.store(std::slice::from_ref(&ann)).await;

    let host = host_db();
    let config = sync_core::Config {
        disable_negentropy: true,
        ..fast_config(&[])
    };
    let handle = SyncRuntime::builder(config)
        .database(host.clone())
        .seed(3)
        .spawn()
        .await
        .unwrap();
    host_accepts(&handle, host.as_ref(), &ann).await;
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &patches)).await,
        "all 350 patches despite 100 per page; have {}",
        count(host.as_ref(), &[1617]).await
    );
    let status = wait_connected(&handle, &[&capped.url]).await;
    assert!(
        status.totals.pages_requested >= 4,
        "pages: {}",
        status.totals.pages_requested
    );
    assert!(status.totals.req_batches > 0);
    assert_eq!(status.totals.negentropy_batches, 0);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_a_relay_was_down_are_fetched_after_it_returns() {
    let mut a = TestRelay::start(None).await;
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, "gap", &[&a.url, OWN_URL], t);
    let c = coord(&owner, "gap");
    let before = root(&owner, 1617, &c, 0, t + 1);
    a.store(&[ann.clone(), before.clone()]).await;

    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .seed(4)
        .spawn()
        .await
        .unwrap();
    host_accepts(&handle, host.as_ref(), &ann).await;
    wait_connected(&handle, &[&a.url]).await;
    assert!(holds_all(host.as_ref(), &[before]).await);

    a.stop();
    let (_, down) = handle
        .wait_for_status(WAIT, |s| status_of(s, &a.url) != Some(Status::Connected))
        .await;
    assert!(down, "the runtime noticed the relay going away");
    // Written while the relay is down: no live subscription can deliver these.
    let now = now_secs();
    let missed = vec![
        root(&owner, 1617, &c, 1, now),
        root(&owner, 1621, &c, 2, now),
    ];
    a.store(&missed).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.restart().await;

    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &missed)).await,
        "the quick-reconnect catch-up fetched the events written during the outage"
    );
    let status = wait_connected(&handle, &[&a.url]).await;
    assert!(
        status.relay(&a.url).unwrap().counters.connects_ok >= 2,
        "reconnected"
    );
    let text = handle.metrics_text();
    assert!(
        metric(&text, "ngit_sync_events_total{source=\"reconnect\"}").unwrap_or(0.0) >= 2.0,
        "{text}"
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_arrive_on_open_subscriptions() {
    let a = TestRelay::start(None).await;
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, "live", &[&a.url, OWN_URL], t);
    let c = coord(&owner, "live");
    let first = root(&owner, 1617, &c, 0, t + 1);
    a.store(&[ann.clone(), first.clone()]).await;

    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .seed(5)
        .spawn()
        .await
        .unwrap();
    host_accepts(&handle, host.as_ref(), &ann).await;
    wait_connected(&handle, &[&a.url]).await;

    let now = now_secs();
    let new_patch = root(&owner, 1617, &c, 1, now);
    let new_reply = reply(&owner, "e", &first, now);
    a.publish(&new_patch).await;
    a.publish(&new_reply).await;
    let fresh = [new_patch, new_reply];
    assert!(
        eventually(Duration::from_secs(5), || holds_all(host.as_ref(), &fresh)).await,
        "L2 and L3 live subscriptions deliver new events"
    );
    let text = handle.metrics_text();
    let live = metric(&text, "ngit_sync_events_total{source=\"live\"}").unwrap_or(0.0);
    assert!(live >= 2.0, "both counted as live: {live}");
    handle.shutdown().await.unwrap();
}

/// Rejects announcements that do not list our relay; counts how often each event was checked.
#[derive(Default)]
struct ListsUs {
    checks: Mutex<BTreeMap<EventId, usize>>,
}

impl ListsUs {
    fn checks_of(&self, id: &EventId) -> usize {
        self.checks.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

impl WritePolicy for ListsUs {
    fn check<'a>(&'a self, event: &'a Event) -> PolicyFuture<'a> {
        *self.checks.lock().unwrap().entry(event.id).or_default() += 1;
        let foreign = event.kind.as_u16() == 30617
            && !event
                .tags
                .iter()
                .any(|t| t.as_slice().iter().any(|v| v == OWN_URL));
        Box::pin(async move {
            if foreign {
                Verdict::reject("blocked: announcement does not list this relay")
            } else {
                Verdict::Accept
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_announcements_are_not_downloaded_again() {
    let a = TestRelay::start(None).await;
    let t = now_secs() - 3_600;
    let ours = announcement(&Keys::generate(), "ours", &[&a.url, OWN_URL], t);
    let foreign = announcement(&Keys::generate(), "theirs", &[&a.url], t);
    a.store(&[ours.clone(), foreign.clone()]).await;
    let policy = Arc::new(ListsUs::default());
    let host = host_db();
    let state_dir = std::env::temp_dir().join(format!("rt-rejected-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let config = sync_core::Config {
        // A daily resync every 1.5 s: a full negentropy pass over L1 again.
        daily_resync_min_ms: 1_500,
        daily_resync_max_ms: 1_500,
        ..fast_config(&[&a.url])
    };

    let handle = SyncRuntime::builder(config.clone())
        .database(host.clone())
        .policy(policy.clone())
        .state_dir(state_dir.clone())
        .seed(6)
        .spawn()
        .await
        .unwrap();
    let first = wait_connected(&handle, &[&a.url]).await;
    assert!(holds_all(host.as_ref(), std::slice::from_ref(&ours)).await);
    assert_eq!(policy.checks_of(&foreign.id), 1, "offered once");
    let (after, resynced) = handle
        .wait_for_status(WAIT, |s| {
            s.totals.negentropy_batches >= 2 * first.totals.negentropy_batches.max(1)
                && status_of(s, &a.url) == Some(Status::Connected)
        })
        .await;
    assert!(resynced, "a daily resync ran: {:?}", after.totals);
    assert_eq!(
        policy.checks_of(&foreign.id),
        1,
        "not downloaded again on the resync"
    );
    assert!(
        after.totals.rejected.hits >= 1,
        "excluded from the negentropy fetch"
    );
    handle.shutdown().await.unwrap();
    assert!(state_dir.join(sync_runtime::REJECTED_FILE).exists());

    // A new process with the same store and state directory: the memory was persisted.
    let handle = SyncRuntime::builder(config)
        .database(host.clone())
        .policy(policy.clone())
        .state_dir(state_dir.clone())
        .seed(7)
        .spawn()
        .await
        .unwrap();
    let status = wait_connected(&handle, &[&a.url]).await;
    assert!(status.totals.negentropy_batches > 0);
    assert_eq!(
        policy.checks_of(&foreign.id),
        1,
        "not downloaded again after a restart"
    );
    assert!(status.totals.rejected.hits >= 1);
    handle.shutdown().await.unwrap();
    std::fs::remove_dir_all(&state_dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_state_event_is_reoffered_when_its_maintainer_is_announced() {
    let a = TestRelay::start(None).await;
    let (owner, maintainer) = (Keys::generate(), Keys::generate());
    let t = now_secs() - 3_600;
    let v1 = announcement(&owner, "shared", &[&a.url, OWN_URL], t);
    // A state event by someone the owner has not (yet) named a maintainer: the GRASP policy
    // rejects it, the core remembers it, the runtime keeps its body for re-offering.
    let maintainer_state = state(&maintainer, "shared", t + 1);
    a.store(&[v1.clone(), maintainer_state.clone()]).await;

    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .seed(10)
        .spawn()
        .await
        .unwrap();
    host_accepts(&handle, host.as_ref(), &v1).await;
    let (status, rejected) = handle
        .wait_for_status(WAIT, |s| s.totals.rejected_hot >= 1)
        .await;
    assert!(
        rejected,
        "the state event was rejected and remembered: {:?}",
        status.totals
    );
    assert!(!holds_all(host.as_ref(), std::slice::from_ref(&maintainer_state)).await);

    // The owner names the maintainer in a newer announcement, published live on the relay.
    let v2 =
        announcement_with_maintainers(&owner, "shared", &[&a.url, OWN_URL], &[&maintainer], t + 10);
    a.publish(&v2).await;
    assert!(
        eventually(WAIT, || holds_all(
            host.as_ref(),
            std::slice::from_ref(&maintainer_state)
        ))
        .await,
        "re-offered to the policy and stored once its dependency arrived"
    );
    let status = handle.status();
    assert!(status.totals.reoffers >= 1, "{:?}", status.totals);
    let text = handle.metrics_text();
    assert_eq!(
        metric(
            &text,
            "ngit_sync_rejected_events_total{event_type=\"state\"}"
        ),
        Some(1.0),
        "{text}"
    );
    handle.shutdown().await.unwrap();
}
