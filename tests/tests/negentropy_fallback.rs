//! Initial sync from one relay without NIP-77: a `NegProxy` in front of a real LocalRelay
//! refuses negentropy with strfry's NOTICE, with a NEG-ERR, or by silence. Every layer
//! (announcements, state, repo events, replies) must still arrive, through REQ+EOSE.

mod rt_support;

use std::time::Duration;

use nostr::{Event, Keys};
use rt_support::*;
use sync_core::{NegSupport, Status};
use sync_runtime::demo::{NegMode, NegProxy};
use sync_runtime::SyncRuntime;

const WAIT: Duration = Duration::from_secs(20);

/// A repository on one relay: announcement, state, 20 patches, an issue and two replies.
fn repository(relay_url: &str) -> (Event, Vec<Event>) {
    let (owner, other) = (Keys::generate(), Keys::generate());
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, "repo", &[relay_url, OWN_URL], t);
    let c = coord(&owner, "repo");
    let mut events = vec![state(&owner, "repo", t + 1)];
    events.extend((0..20).map(|n| root(&owner, 1617, &c, n, t + 2 + n)));
    let issue = root(&other, 1621, &c, 100, t + 40);
    events.push(reply(&other, "e", &issue, t + 41));
    events.push(reply(&owner, "q", &issue, t + 42));
    events.push(issue);
    (ann, events)
}

async fn initial_sync_without_nip77(mode: NegMode, seed: u64) {
    let relay = TestRelay::start(None).await;
    let proxy = NegProxy::start(&relay.url, mode).await.expect("proxy");
    let url = proxy.url();
    let (ann, events) = repository(&url);
    relay.store(std::slice::from_ref(&ann)).await;
    relay.store(&events).await;

    let host = host_db();
    // The proxy is the only relay we know: the announcement itself is synced from it (L1).
    let config = sync_core::Config {
        batch_deadline_ms: 2_000,
        ..fast_config(&[&url])
    };
    let handle = SyncRuntime::builder(config)
        .database(host.clone())
        .seed(seed)
        .spawn()
        .await
        .expect("spawn");
    let mut all = events.clone();
    all.push(ann);
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &all)).await,
        "{mode:?}: every layer arrives; have {} of {}",
        count(host.as_ref(), &[30617, 30618, 1617, 1621, 1111]).await,
        all.len()
    );
    let (status, connected) = handle
        .wait_for_status(WAIT, |s| {
            s.relay(&url).map(|r| r.status) == Some(Status::Connected)
        })
        .await;
    assert!(connected, "{mode:?}: {:#?}", status.relays);
    let snapshot = status.relay(&url).expect("tracked");
    assert_eq!(snapshot.negentropy, NegSupport::Unsupported, "{mode:?}");
    assert!(proxy.neg_opens() >= 1, "{mode:?}: NIP-77 was tried");
    assert!(status.totals.negentropy_fallbacks >= 1, "{mode:?}");
    // A silent relay is only treated as without NIP-77 after
    // `sync_core::NEG_TIMEOUTS_UNSUPPORTED` timeouts in a row, so every batch of this short
    // sync may have started with NIP-77 and fallen back; a refusal turns it off at once.
    if !matches!(mode, NegMode::Silent) {
        assert!(status.totals.req_batches >= 1, "{mode:?}");
    }
    assert_eq!(
        count(host.as_ref(), &[30617, 30618, 1617, 1621, 1111]).await,
        all.len(),
        "{mode:?}: nothing else stored"
    );
    handle.shutdown().await.expect("shutdown");
    proxy.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notice_unknown_cmd_falls_back_to_req() {
    initial_sync_without_nip77(NegMode::Notice, 21).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neg_err_falls_back_to_req() {
    initial_sync_without_nip77(NegMode::NegErr, 22).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_falls_back_to_req() {
    initial_sync_without_nip77(NegMode::Silent, 23).await;
}
