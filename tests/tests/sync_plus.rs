//! Sync+ (docs/spec.md §15) against real relays on 127.0.0.1: a repository is announced on
//! relay A; a participant's relay list (kind 10002, on A) names relay B, which no announcement
//! lists; the participant's comment on an issue and a new issue exist only on B, and a live
//! comment arrives on B later. With Sync+ on all three reach our store; with it off none do
//! and B is never contacted.

mod rt_support;

use std::time::Duration;

use nostr::{Event, EventBuilder, Keys, Kind, Tag, Timestamp};
use nostr_database::NostrDatabase;
use rt_support::*;
use sync_core::RelaySource;
use sync_runtime::{SyncHandle, SyncRuntime};

/// Everything one run needs: relays A and B holding the world, and its events.
struct World {
    a: TestRelay,
    b: TestRelay,
    /// The participant's issue on A (what makes them a participant).
    issue_on_a: Event,
    /// Their relay list on A, naming B.
    list: Event,
    /// Their comment on the issue and their new issue, only on B.
    only_on_b: Vec<Event>,
    participant: Keys,
}

/// A participant's kind 10002 naming `write` as write relays.
fn relay_list(keys: &Keys, write: &[&str], at: u64) -> Event {
    let tags = write.iter().map(|u| Tag::parse(["r", u]).expect("r tag"));
    EventBuilder::new(Kind::RelayList, "")
        .tags(tags)
        .custom_created_at(Timestamp::from(at))
        .sign_with_keys(keys)
        .expect("sign")
}

async fn world(owner: &Keys) -> World {
    let (a, b) = (TestRelay::start(None).await, TestRelay::start(None).await);
    let participant = Keys::generate();
    let t = now_secs() - 3_600;
    let c = coord(owner, "plus");
    let ann = announcement(owner, "plus", &[&a.url, OWN_URL], t);
    let issue_on_a = root(&participant, 1621, &c, 1, t + 1);
    let list = relay_list(&participant, &[&b.url], t + 2);
    a.store(&[ann, issue_on_a.clone(), list.clone()]).await;
    let comment = reply(&participant, "e", &issue_on_a, t + 3);
    let new_issue = root(&participant, 1621, &c, 2, t + 4);
    let only_on_b = vec![comment, new_issue];
    b.store(&only_on_b).await;
    World {
        a,
        b,
        issue_on_a,
        list,
        only_on_b,
        participant,
    }
}

async fn spawn(host: std::sync::Arc<dyn NostrDatabase>, on: bool) -> SyncHandle {
    let config = sync_core::Config {
        sync_plus: on,
        ..fast_config(&[])
    };
    SyncRuntime::builder(config)
        .database(host)
        .seed(151)
        .spawn()
        .await
        .expect("spawn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_plus_fetches_a_participants_conversation_from_their_outbox_relay() {
    let owner = Keys::generate();
    let w = world(&owner).await;
    let host = host_db();
    let handle = spawn(host.clone(), true).await;
    let ann = announcement(&owner, "plus", &[&w.a.url, OWN_URL], now_secs() - 3_600);
    host_accepts(&handle, host.as_ref(), &ann).await;
    let mut wanted = vec![w.issue_on_a.clone(), w.list.clone()];
    wanted.extend(w.only_on_b.iter().cloned());
    let held = eventually(WAIT, || holds_all(host.as_ref(), &wanted)).await;
    assert!(
        held,
        "the outbox-only events reach our store: {:#?}",
        handle.status().relays
    );
    let status = wait_connected(&handle, &[&w.a.url, &w.b.url]).await;
    let b = status.relay(&w.b.url).expect("B tracked");
    assert_eq!(b.source, RelaySource::SyncPlus);
    assert_eq!(
        status.relay(&w.a.url).unwrap().source,
        RelaySource::Announced
    );

    // A live comment on B only.
    let live = reply(&w.participant, "e", &w.only_on_b[1], now_secs());
    w.b.publish(&live).await;
    let held = eventually(WAIT, || {
        holds_all(host.as_ref(), std::slice::from_ref(&live))
    })
    .await;
    assert!(held, "the live comment on B reaches our store");
    let text = handle.metrics_text();
    let series = format!(
        "ngit_sync_relay_source{{relay=\"{}\",source=\"sync_plus\"}}",
        w.b.url.trim_end_matches('/')
    );
    assert_eq!(metric(&text, &series), Some(1.0), "{text}");
    handle.shutdown().await.unwrap();

    // After a restart the stored relay list routes to B again at once.
    let handle = spawn(host.clone(), true).await;
    wait_connected(&handle, &[&w.a.url, &w.b.url]).await;
    handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_plus_off_never_contacts_the_outbox_relay() {
    let owner = Keys::generate();
    let w = world(&owner).await;
    let host = host_db();
    let handle = spawn(host.clone(), false).await;
    let ann = announcement(&owner, "plus", &[&w.a.url, OWN_URL], now_secs() - 3_600);
    host_accepts(&handle, host.as_ref(), &ann).await;
    let issue = std::slice::from_ref(&w.issue_on_a);
    assert!(eventually(WAIT, || holds_all(host.as_ref(), issue)).await);
    wait_connected(&handle, &[&w.a.url]).await;
    let live = reply(&w.participant, "e", &w.only_on_b[1], now_secs());
    w.b.publish(&live).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            handle.status().relay(&w.b.url).is_none(),
            "B is never tracked"
        );
    }
    for e in w.only_on_b.iter().chain([&live, &w.list]) {
        assert!(
            host.event_by_id(&e.id).await.unwrap().is_none(),
            "kind {} stays on B (or is not accepted)",
            e.kind
        );
    }
    let text = handle.metrics_text();
    assert!(
        !text.contains(w.b.url.trim_end_matches('/')),
        "B was never contacted"
    );
    handle.shutdown().await.unwrap();
}
