//! What an operator and a debugger see of a runtime syncing from real relays on 127.0.0.1:
//! Prometheus values (docs/spec.md §10) and a recorded trace that replays identically.

mod rt_support;

use nostr::{Event, Keys};
use nostr_database::NostrDatabase;
use rt_support::*;
use sync_runtime::{SyncHandle, SyncRuntime};

/// A `ws://` URL on which nothing listens (connection refused at once).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("ws://127.0.0.1:{port}")
}

/// A relay holding an announcement (listing it and us) and `patches` patches.
async fn relay_with_repo(d: &str, patches: u64) -> (TestRelay, Event, Vec<Event>) {
    let relay = TestRelay::start(None).await;
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, d, &[&relay.url, OWN_URL], t);
    let c = coord(&owner, d);
    let roots: Vec<Event> = (0..patches)
        .map(|n| root(&owner, 1617, &c, n, t + 1 + n))
        .collect();
    relay.store(&roots).await;
    relay.store(std::slice::from_ref(&ann)).await;
    (relay, ann, roots)
}

/// Every distinct status code `url` showed in the status snapshots until it was Connected (3).
async fn status_codes_until_connected(handle: &SyncHandle, url: &str) -> Vec<u8> {
    let mut codes: Vec<u8> = Vec::new();
    let (_, ok) = handle
        .wait_for_status(WAIT, |s| {
            let code = s.relay(url).map(|r| r.status_code);
            if let Some(code) = code {
                if codes.last() != Some(&code) {
                    codes.push(code);
                }
            }
            code == Some(3)
        })
        .await;
    assert!(ok, "connected: {codes:?}");
    codes
}

fn value(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_status_progress_failures_and_synced_events() {
    let (a, ann, _) = relay_with_repo("metrics", 300).await;
    let dead = closed_port_url();
    let host = host_db();
    let registry = prometheus::Registry::new();
    let handle = SyncRuntime::builder(fast_config(&[&dead]))
        .database(host.clone())
        .registry(registry.clone())
        .seed(8)
        .spawn()
        .await
        .unwrap();
    host.save_event(&ann).await.unwrap();
    handle.notify_accepted(&ann).await;

    let codes = status_codes_until_connected(&handle, &a.url).await;
    assert!(
        codes.contains(&2),
        "Syncing (2) was seen before Connected (3): {codes:?}"
    );
    let failures =
        format!("ngit_sync_connection_attempts_total{{relay=\"{dead}\",result=\"failure\"}}");
    let failed_twice = || async { metric(&handle.metrics_text(), &failures).unwrap_or(0.0) >= 2.0 };
    assert!(
        eventually(WAIT, failed_twice).await,
        "failures against the closed port are counted"
    );

    let text = handle.metrics_text();
    let (ok_label, dead_label) = (
        format!("{{relay=\"{}\"}}", a.url),
        format!("{{relay=\"{dead}\"}}"),
    );
    assert_eq!(
        value(&text, &format!("ngit_sync_relay_connected{ok_label}")),
        3.0
    );
    assert_eq!(
        value(&text, &format!("ngit_sync_relay_status{ok_label}")),
        1.0,
        "healthy"
    );
    let success = format!(
        "ngit_sync_connection_attempts_total{{relay=\"{}\",result=\"success\"}}",
        a.url
    );
    assert_eq!(value(&text, &success), 1.0);
    assert_eq!(
        value(&text, &format!("ngit_sync_relay_status{dead_label}")),
        3.0,
        "degraded"
    );
    assert!(value(&text, &format!("ngit_sync_relay_failures{dead_label}")) >= 2.0);
    assert_eq!(value(&text, "ngit_sync_events_synced_total"), 300.0);
    assert_eq!(
        value(&text, "ngit_sync_events_total{source=\"startup\"}"),
        300.0
    );
    assert_eq!(value(&text, "ngit_sync_relays_tracked_total"), 2.0);
    assert_eq!(value(&text, "ngit_sync_relays_connected_total"), 1.0);
    assert_eq!(
        value(&text, &format!("ngit_sync_gap_events_total{ok_label}")),
        0.0
    );
    // The host's registry holds the same series.
    assert!(registry
        .gather()
        .iter()
        .any(|f| f.name() == "ngit_sync_events_synced_total"));
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_trace_replays_identically() {
    let (a, ann, patches) = relay_with_repo("traced", 20).await;
    let path = std::env::temp_dir().join(format!("rt-trace-{}.jsonl", std::process::id()));
    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .trace_path(path.clone())
        .seed(9)
        .spawn()
        .await
        .unwrap();
    host.save_event(&ann).await.unwrap();
    handle.notify_accepted(&ann).await;
    status_codes_until_connected(&handle, &a.url).await;
    assert!(holds_all(host.as_ref(), &patches).await);
    handle.shutdown().await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let (header, steps) = sync_core::trace::parse(&text).unwrap();
    assert_eq!((header.seed, header.source.as_str()), (9, "sync-runtime"));
    let delivered = steps
        .iter()
        .filter(|s| matches!(s.input, sync_core::Input::Delivered { .. }))
        .count();
    assert!(
        delivered >= 20,
        "the trace holds the deliveries: {delivered}"
    );
    assert!(steps
        .iter()
        .any(|s| matches!(s.input, sync_core::Input::Connected { .. })));
    assert_eq!(
        sync_core::trace::replay(&header, &steps),
        sync_core::trace::ReplayOutcome::Identical { steps: steps.len() }
    );
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_an_invalid_signature_never_reaches_the_store_and_is_counted() {
    let (a, ann, patches) = relay_with_repo("forged", 3).await;
    // Tagged like the real patches, so the relay serves it on the same filter; carries another
    // event's signature.
    let twin = nostr::EventBuilder::new(nostr::Kind::from(1617u16), "forged")
        .tags(patches[0].tags.clone().to_vec())
        .sign_with_keys(&Keys::generate())
        .unwrap();
    let bad = grasp_sync_tests::testkit::bad_signature(&twin, &patches[0]);
    assert!(bad.verify().is_err(), "the fixture really is invalid");
    a.store(std::slice::from_ref(&bad)).await; // the relay's db does not verify

    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .seed(11)
        .spawn()
        .await
        .unwrap();
    host.save_event(&ann).await.unwrap();
    handle.notify_accepted(&ann).await;
    status_codes_until_connected(&handle, &a.url).await;
    assert!(
        holds_all(host.as_ref(), &patches).await,
        "the valid patches synced"
    );
    assert!(
        host.event_by_id(&bad.id).await.unwrap().is_none(),
        "the forged one did not"
    );

    let text = handle.metrics_text();
    let label = format!("{{relay=\"{}\"}}", a.url);
    let frames = value(&text, &format!("ngit_sync_relay_event_frames_total{label}"));
    let delivered = value(
        &text,
        &format!("ngit_sync_relay_events_delivered_total{label}"),
    );
    // The forged event is sent once per request that asks for it (id fetch and its retries),
    // and dropped by nostr-sdk every time.
    assert!(
        frames - delivered >= 1.0,
        "frames {frames}, delivered {delivered}:\n{text}"
    );
    handle.shutdown().await.unwrap();
}
