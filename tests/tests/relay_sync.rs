//! The runtime against real relays on 127.0.0.1 (nostr-relay-builder `LocalRelay`), with real
//! nostr-sdk connections, a host store, and tiny timings so each test runs in seconds: what a
//! healthy sync does (initial sync, discovery, pagination, live events, NIP-11, withdrawal).
//! Recovery from outages, lag, restarts and rejections is in `recovery.rs`.

mod rt_support;

use std::time::Duration;

use nostr::{Event, Keys};
use rt_support::*;
use sync_core::NegSupport;
use sync_runtime::SyncRuntime;

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
    // The store sees an event before the core hears of it (the ingest reports after saving).
    let live = || {
        metric(
            &handle.metrics_text(),
            "ngit_sync_events_total{source=\"live\"}",
        )
    };
    let counted = eventually(Duration::from_secs(5), || async {
        live().unwrap_or(0.0) >= 2.0
    })
    .await;
    assert!(counted, "both counted as live: {:?}", live());
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nip11_limits_are_fetched_and_bound_the_subscription_budget() {
    let backend = TestRelay::start(None).await;
    let url = nip11_front(
        backend.port,
        r#"{"name":"front","limitation":{"max_subscriptions":6,"max_filters":4}}"#,
    )
    .await;
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, "limited", &[&url, OWN_URL], t);
    let c = coord(&owner, "limited");
    let patches: Vec<Event> = (0..30)
        .map(|n| root(&owner, 1617, &c, n, t + 1 + n))
        .collect();
    backend.store(&patches).await;

    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .seed(13)
        .spawn()
        .await
        .unwrap();
    host_accepts(&handle, host.as_ref(), &ann).await;
    let (status, limited) = handle
        .wait_for_status(WAIT, |s| s.relay(&url).is_some_and(|r| r.budget == 6))
        .await;
    assert!(limited, "budget from NIP-11: {:?}", status.relay(&url));
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &patches)).await,
        "syncing works within the advertised limits"
    );
    let status = wait_connected(&handle, &[&url]).await;
    assert!(status.relay(&url).unwrap().open_subscriptions <= 6);
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawing_a_repository_closes_and_forgets_its_relay() {
    let a = TestRelay::start(None).await;
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, "withdrawn", &[&a.url, OWN_URL], t);
    let c = coord(&owner, "withdrawn");
    a.store(std::slice::from_ref(&ann)).await;
    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .seed(16)
        .spawn()
        .await
        .unwrap();
    host_accepts(&handle, host.as_ref(), &ann).await;
    wait_connected(&handle, &[&a.url]).await;

    handle
        .withdraw_repo(sync_core::RepoCoord::parse(&c).unwrap())
        .await;
    let (status, gone) = handle
        .wait_for_status(WAIT, |s| s.relay(&a.url).is_none())
        .await;
    assert!(gone, "the relay is no longer tracked: {:?}", status.relays);
    let text = handle.metrics_text();
    assert!(!text.contains(&a.url), "its series are gone:\n{text}");
    // Nothing listens any more: a new patch on the relay is not synced.
    let late = root(&owner, 1617, &c, 1, now_secs());
    a.publish(&late).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!holds_all(host.as_ref(), std::slice::from_ref(&late)).await);
    handle.shutdown().await.unwrap();
}
