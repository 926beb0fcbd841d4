//! A restart within the quick-reconnect window is a catch-up (docs/spec.md §16), against real
//! relays on 127.0.0.1: one with NIP-77, one behind a `NegProxy` that refuses it. The first run
//! leaves its sync cursors in the state directory; events published while no runtime runs are
//! fetched by the restarted runtime's catch-up (counted as `reconnect`, not `startup`), with
//! `since`-bounded filters (fewer pages than a fresh start) and without trying NIP-77 again on
//! the relay that refused it. Without the cursors file the same restart is a fresh start.

mod rt_support;

use std::path::Path;
use std::sync::Arc;

use nostr::{Event, Keys};
use nostr_database::MemoryDatabase;
use rt_support::*;
use sync_core::{NegSupport, Status};
use sync_runtime::demo::{NegMode, NegProxy};
use sync_runtime::{RuntimeStatus, SyncHandle, SyncRuntime, CURSORS_FILE};

/// Pages small enough that the relay without NIP-77 takes several per filter from scratch.
const PAGE: usize = 5;

async fn spawn(host: &Arc<MemoryDatabase>, state: &Path, seed: u64) -> SyncHandle {
    let config = sync_core::Config {
        page_limit: PAGE,
        page_full_threshold: PAGE,
        batch_deadline_ms: 3_000,
        ..fast_config(&[])
    };
    SyncRuntime::builder(config)
        .database(host.clone())
        .state_dir(state.to_path_buf())
        .seed(seed)
        .spawn()
        .await
        .expect("spawn")
}

/// Waits until both relays are `Connected` with nothing pending.
async fn settled(handle: &SyncHandle, urls: &[&str]) -> RuntimeStatus {
    let (status, ok) = handle
        .wait_for_status(WAIT, |s| {
            urls.iter().all(|u| {
                s.relay(u)
                    .is_some_and(|r| r.status == Status::Connected && r.pending_batches == 0)
            })
        })
        .await;
    assert!(ok, "{:#?}", status.relays);
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_within_the_window_catches_up_with_and_without_nip77() {
    let a = TestRelay::start(None).await;
    let b = TestRelay::start(None).await;
    let proxy = NegProxy::start(&b.url, NegMode::NegErr)
        .await
        .expect("proxy");
    let b_url = proxy.url();
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, "cur", &[&a.url, &b_url, OWN_URL], t);
    let c = coord(&owner, "cur");
    let old: Vec<Event> = (0..4 * PAGE as u64)
        .map(|n| root(&owner, 1617, &c, n, t + 1 + n))
        .collect();
    a.store(std::slice::from_ref(&ann)).await;
    a.store(&old).await;
    b.store(std::slice::from_ref(&ann)).await;
    b.store(&old).await;

    let host = host_db();
    let state = tempfile::tempdir().unwrap();
    let urls = [a.url.as_str(), b_url.as_str()];
    let first = spawn(&host, state.path(), 31).await;
    host_accepts(&first, host.as_ref(), &ann).await;
    assert!(eventually(WAIT, || holds_all(host.as_ref(), &old)).await);
    let fresh = settled(&first, &urls).await;
    assert_eq!(
        fresh.relay(&b_url).unwrap().negentropy,
        NegSupport::Unsupported
    );
    first.shutdown().await.unwrap();
    assert!(state.path().join(CURSORS_FILE).exists(), "cursors saved");
    let neg_opens = proxy.neg_opens();

    // Published while no runtime runs: one event on each relay only.
    let now = now_secs();
    let on_a = root(&owner, 1621, &c, 1_000, now);
    let on_b = root(&owner, 1621, &c, 1_001, now);
    a.store(std::slice::from_ref(&on_a)).await;
    b.store(std::slice::from_ref(&on_b)).await;

    let second = spawn(&host, state.path(), 32).await;
    let missed = [on_a.clone(), on_b.clone()];
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &missed)).await,
        "the events published while down were fetched"
    );
    let quick = settled(&second, &urls).await;
    second.shutdown().await.unwrap();
    let src = &quick.totals.saved_by_source;
    assert_eq!(src.reconnect, 2, "both found by a catch-up: {src:?}");
    assert_eq!(src.startup, 0, "no fresh start: {src:?}");
    assert_eq!(
        proxy.neg_opens(),
        neg_opens,
        "NIP-77 support was remembered: not tried again"
    );
    let (quick_pages, fresh_pages) = (quick.totals.pages_requested, fresh.totals.pages_requested);
    assert!(
        quick_pages < fresh_pages,
        "since-bounded catch-up: {quick_pages} pages, fresh start {fresh_pages}"
    );

    // The same restart without the cursors file is a fresh start.
    std::fs::remove_file(state.path().join(CURSORS_FILE)).unwrap();
    let late = root(&owner, 1621, &c, 1_002, now_secs());
    b.store(std::slice::from_ref(&late)).await;
    let third = spawn(&host, state.path(), 33).await;
    assert!(
        eventually(WAIT, || holds_all(
            host.as_ref(),
            std::slice::from_ref(&late)
        ))
        .await
    );
    let again = settled(&third, &urls).await;
    third.shutdown().await.unwrap();
    let src = &again.totals.saved_by_source;
    assert_eq!((src.startup, src.reconnect), (1, 0), "{src:?}");
    assert!(proxy.neg_opens() > neg_opens, "NIP-77 tried again");
}
