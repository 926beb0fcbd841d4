//! Repository withdrawal (docs/spec.md §14) against real relays on 127.0.0.1: a newer
//! announcement that no longer lists us, synced from a source relay, withdraws the repository
//! (its relay is reaped, the withdrawal survives a restart, re-listing brings it back); a NIP-09
//! deletion published by a client to our LocalRelay (GRASP policy, `LocalRelayPolicy`, an LMDB
//! store as the binary's) withdraws it too and, with `OnWithdrawal::Delete`, removes its stored
//! history.

mod rt_support;

use std::sync::Arc;
use std::time::Duration;

use nostr::{Event, EventBuilder, Keys, Kind, Tag, Timestamp};
use nostr_database::NostrDatabase;
use nostr_relay_builder::prelude::{LocalRelay, RelayBuilder};
use rt_support::*;
use sync_runtime::grasp::{GraspPolicy, LocalRelayPolicy};
use sync_runtime::{OnWithdrawal, SyncHandle, SyncRuntime, Withdrawal};

/// A runtime over `host` with the default GRASP policy (service URL [`OWN_URL`]).
async fn spawn(host: Arc<dyn NostrDatabase>, seed: u64, mode: OnWithdrawal) -> SyncHandle {
    SyncRuntime::builder(fast_config(&[]))
        .database(host)
        .seed(seed)
        .on_withdrawal(mode)
        .spawn()
        .await
        .expect("spawn")
}

/// Waits until `url` is no longer tracked; panics with the relays if it still is.
async fn wait_untracked(handle: &SyncHandle, url: &str, why: &str) {
    let (status, gone) = handle
        .wait_for_status(WAIT, |s| s.relay(url).is_none())
        .await;
    assert!(gone, "{why}: {:#?}", status.relays);
}

/// Lets the runtime run for a while, then asserts `url` was never tracked again.
async fn stays_untracked(handle: &SyncHandle, url: &str, why: &str) {
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = handle.status();
    assert!(status.relay(url).is_none(), "{why}: {:#?}", status.relays);
}

fn withdrawn_total(handle: &SyncHandle, reason: &str) -> Option<f64> {
    let series = format!("ngit_sync_repos_withdrawn_total{{reason=\"{reason}\"}}");
    metric(&handle.metrics_text(), &series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_announcement_that_drops_us_withdraws_until_we_are_listed_again() {
    let a = TestRelay::start(None).await;
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let c = coord(&owner, "moved");
    let listed = announcement(&owner, "moved", &[&a.url, OWN_URL], t);
    let first = root(&owner, 1617, &c, 1, t + 1);
    a.store(&[listed.clone(), first.clone()]).await;
    let host = host_db();
    let handle = spawn(host.clone(), 61, OnWithdrawal::Keep).await;
    host_accepts(&handle, host.as_ref(), &listed).await;
    assert!(
        eventually(WAIT, || holds_all(
            host.as_ref(),
            std::slice::from_ref(&first)
        ))
        .await
    );
    wait_connected(&handle, &[&a.url]).await;

    // The owner moves the repository elsewhere: the newer announcement still names `a` but no
    // longer us. It arrives by sync, is stored (the owner's latest word) and withdraws.
    let unlisted = announcement(&owner, "moved", &[&a.url], t + 10);
    a.publish(&unlisted).await;
    wait_untracked(
        &handle,
        &a.url,
        "the withdrawn repository's relay is reaped",
    )
    .await;
    assert!(holds_all(host.as_ref(), std::slice::from_ref(&unlisted)).await);
    assert!(
        !holds_all(host.as_ref(), std::slice::from_ref(&listed)).await,
        "replaced"
    );
    assert!(
        holds_all(host.as_ref(), std::slice::from_ref(&first)).await,
        "history kept"
    );
    assert_eq!(withdrawn_total(&handle, "unlisted"), Some(1.0));
    let late = root(&owner, 1617, &c, 2, now_secs());
    a.publish(&late).await;
    handle.shutdown().await.unwrap();

    // After a restart the stored (unlisting) announcement is not a sync target.
    let handle = spawn(host.clone(), 62, OnWithdrawal::Keep).await;
    stays_untracked(&handle, &a.url, "still withdrawn after a restart").await;
    assert!(!holds_all(host.as_ref(), std::slice::from_ref(&late)).await);

    // Listed again by an even newer announcement: synced again, the missed patch included.
    let relisted = announcement(&owner, "moved", &[&a.url, OWN_URL], t + 20);
    host_accepts(&handle, host.as_ref(), &relisted).await;
    assert!(
        eventually(WAIT, || holds_all(
            host.as_ref(),
            std::slice::from_ref(&late)
        ))
        .await,
        "re-listing brings the repository back"
    );
    handle.shutdown().await.unwrap();
}

/// Our relay as the binary wires it: the GRASP policy over `host`, accepted events and
/// withdrawals forwarded to `handle`.
async fn our_relay(host: Arc<dyn NostrDatabase>, handle: &SyncHandle) -> (LocalRelay, String) {
    let (notify, withdraw) = (handle.clone(), handle.clone());
    let policy = LocalRelayPolicy::new(
        Arc::new(GraspPolicy::new(host.clone(), vec![OWN_URL.into()], false)),
        Some(Arc::new(move |event: &Event| {
            let (notify, event) = (notify.clone(), event.clone());
            tokio::spawn(async move { notify.notify_accepted(&event).await });
        })),
    )
    .on_withdrawn(Arc::new(move |withdrawal: Withdrawal| {
        let withdraw = withdraw.clone();
        tokio::spawn(async move { withdraw.notify_withdrawn(&withdrawal).await });
    }));
    let relay = LocalRelay::new(RelayBuilder::default().database(host).write_policy(policy));
    relay.run().await.expect("our relay");
    let url = relay.url().await.to_string();
    (relay, url)
}

async fn publish(url: &str, event: &Event) {
    let client = nostr_sdk::Client::default();
    client.add_relay(url).await.expect("add relay");
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    let out = client.send_event(event).await.expect("publish");
    assert!(!out.success.is_empty(), "accepted: {out:?}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_announcement_withdraws_and_delete_mode_removes_the_history() {
    let a = TestRelay::start(None).await;
    let (owner, stranger) = (Keys::generate(), Keys::generate());
    let t = now_secs() - 3_600;
    let c = coord(&owner, "gone");
    let kept_coord = coord(&owner, "kept");
    let ann = announcement(&owner, "gone", &[&a.url, OWN_URL], t);
    let kept = announcement(&owner, "kept", &[OWN_URL], t);
    let patch = root(&owner, 1617, &c, 1, t + 1);
    let issue = root(&stranger, 1621, &c, 2, t + 2);
    let other_repo = root(&owner, 1617, &kept_coord, 3, t + 3);
    a.store(&[ann.clone(), patch.clone(), issue.clone()]).await;
    // LMDB, as the binary: its `delete` removes events without tombstoning their ids (the
    // in-memory store's does), so a re-listed repository's history can be synced again.
    let dir = tempfile::TempDir::new().expect("temp dir");
    let host: Arc<dyn NostrDatabase> = Arc::new(
        nostr_lmdb::NostrLMDB::builder(dir.path())
            .map_size(64 * 1024 * 1024)
            .build()
            .expect("open lmdb"),
    );
    let handle = spawn(host.clone(), 63, OnWithdrawal::Delete).await;
    let (ours, our_url) = our_relay(host.clone(), &handle).await;
    publish(&our_url, &ann).await;
    publish(&our_url, &kept).await;
    publish(&our_url, &other_repo).await;
    let synced = [patch.clone(), issue.clone()];
    assert!(eventually(WAIT, || holds_all(host.as_ref(), &synced)).await);
    wait_connected(&handle, &[&a.url]).await;

    let deletion = EventBuilder::new(Kind::EventDeletion, "moving on")
        .tag(Tag::coordinate(
            nostr::nips::nip01::Coordinate::parse(&c).unwrap(),
            None,
        ))
        .custom_created_at(Timestamp::from(t + 10))
        .sign_with_keys(&owner)
        .unwrap();
    publish(&our_url, &deletion).await;
    wait_untracked(&handle, &a.url, "the deleted repository's relay is reaped").await;
    assert_eq!(withdrawn_total(&handle, "deleted"), Some(1.0));
    assert!(
        eventually(WAIT, || async {
            let mut none = true;
            for e in [&ann, &patch, &issue] {
                none &= host.event_by_id(&e.id).await.unwrap().is_none();
            }
            none
        })
        .await,
        "the announcement (by the store) and its history (delete mode) are gone"
    );
    let others = [kept.clone(), other_repo.clone(), deletion.clone()];
    for e in &others {
        let held = host.event_by_id(&e.id).await.unwrap().is_some();
        assert!(
            held,
            "kind {} stays (another repository's, or the request)",
            e.kind
        );
    }
    handle.shutdown().await.unwrap();
    ours.shutdown();

    // A restart does not bring it back; a newer announcement listing us does.
    let handle = spawn(host.clone(), 64, OnWithdrawal::Delete).await;
    let (ours, our_url) = our_relay(host.clone(), &handle).await;
    stays_untracked(&handle, &a.url, "still withdrawn after a restart").await;
    let relisted = announcement(&owner, "gone", &[&a.url, OWN_URL], t + 20);
    publish(&our_url, &relisted).await;
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &synced)).await,
        "re-listed: the history is synced again"
    );
    handle.shutdown().await.unwrap();
    ours.shutdown();
}
