//! The default GRASP policy against real stores (in-memory and LMDB in a temp dir): each rule
//! accepts what it should and rejects what it should; and the LocalRelay adapter applies it to
//! events published by a real nostr-sdk client, and (wired to the runtime) starts a sync.

mod rt_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr::{Event, EventBuilder, EventId, Keys, Kind, PublicKey, Tag, Timestamp};
use nostr_database::{MemoryDatabase, MemoryDatabaseOptions, NostrDatabase};
use nostr_lmdb::NostrLMDB;
use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};
use sync_core::RepoCoord;
use sync_runtime::grasp::{GraspPolicy, LocalRelayPolicy};
use sync_runtime::{Verdict, Withdrawal, WithdrawalReason, WritePolicy};
use tempfile::TempDir;

const OURS: &str = "wss://our.relay.example";

/// A store under test; the temp dir (LMDB) lives as long as the store.
struct Store {
    db: Arc<dyn NostrDatabase>,
    _dir: Option<TempDir>,
}

fn memory() -> Store {
    let db = MemoryDatabase::with_opts(MemoryDatabaseOptions {
        events: true,
        max_events: None,
    });
    Store {
        db: Arc::new(db),
        _dir: None,
    }
}

fn lmdb() -> Store {
    let dir = TempDir::new().expect("temp dir");
    let db = NostrLMDB::builder(dir.path())
        .map_size(64 * 1024 * 1024)
        .build()
        .expect("open lmdb");
    Store {
        db: Arc::new(db),
        _dir: Some(dir),
    }
}

/// Runs `scenario` against both backends.
async fn on_every_store<F, Fut>(scenario: F)
where
    F: Fn(Arc<dyn NostrDatabase>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for store in [memory(), lmdb()] {
        scenario(store.db.clone()).await;
    }
}

fn key(n: u8) -> Keys {
    Keys::parse(&format!("{:064x}", u64::from(n) + 1)).expect("key")
}

fn sign(keys: &Keys, kind: u16, created_at: u64, tags: &[&[&str]]) -> Event {
    let tags = tags
        .iter()
        .map(|t| Tag::parse(t.iter().copied()).expect("tag"));
    EventBuilder::new(Kind::from(kind), "")
        .tags(tags)
        .custom_created_at(Timestamp::from(1_700_000_000 + created_at))
        .sign_with_keys(keys)
        .expect("sign")
}

/// A repository announcement for `d` listing `relays` and `maintainers`.
fn announcement(keys: &Keys, d: &str, relays: &[&str], maintainers: &[PublicKey]) -> Event {
    let mut relays_tag = vec!["relays"];
    relays_tag.extend_from_slice(relays);
    let hex: Vec<String> = maintainers.iter().map(PublicKey::to_hex).collect();
    let mut maintainers_tag = vec!["maintainers"];
    maintainers_tag.extend(hex.iter().map(String::as_str));
    sign(keys, 30617, 0, &[&["d", d], &relays_tag, &maintainers_tag])
}

fn coord(keys: &Keys, d: &str) -> String {
    format!("30617:{}:{d}", keys.public_key().to_hex())
}

fn policy(db: &Arc<dyn NostrDatabase>, archive_all: bool) -> GraspPolicy {
    GraspPolicy::try_new(db.clone(), vec![OURS.to_string()], archive_all).expect("policy")
}

async fn store(db: &Arc<dyn NostrDatabase>, event: &Event) {
    let status = db.save_event(event).await.expect("save");
    assert!(status.is_success(), "{status:?}");
}

fn accepted(verdict: &Verdict) -> bool {
    *verdict == Verdict::Accept
}

fn reason(verdict: Verdict) -> String {
    match verdict {
        Verdict::Reject { reason } => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn announcement_must_list_our_url_in_any_spelling() {
    on_every_store(|db| async move {
        let p = policy(&db, false);
        let owner = key(0);
        for spelling in [
            "wss://our.relay.example",
            "wss://our.relay.example/",
            "wss://OUR.Relay.Example",
            "WSS://our.relay.example:443/",
            "our.relay.example",
        ] {
            let event = announcement(&owner, "repo", &["wss://elsewhere", spelling], &[]);
            assert!(accepted(&p.check(&event).await), "{spelling}");
        }
        for other in [
            "wss://our.relay.example/other",
            "ws://our.relay.example",
            "wss://x",
        ] {
            let event = announcement(&owner, "repo", &[other], &[]);
            let why = reason(p.check(&event).await);
            assert_eq!(
                why, "blocked: announcement does not list this relay",
                "{other}"
            );
        }
        // A `clone` URL on our host is not enough: the brief's rule is the `relays` tag.
        let clone_only = sign(
            &owner,
            30617,
            0,
            &[
                &["d", "repo"],
                &["clone", "https://our.relay.example/npub/repo.git"],
            ],
        );
        assert!(!accepted(&p.check(&clone_only).await));
        let no_d = sign(&owner, 30617, 0, &[&["relays", OURS]]);
        assert!(reason(p.check(&no_d).await).starts_with("invalid:"));
    })
    .await;
}

#[tokio::test]
async fn one_author_can_announce_at_most_the_cap_but_may_replace_what_is_stored() {
    on_every_store(|db| async move {
        let p = policy(&db, false).with_max_announcements_per_author(3);
        let owner = key(0);
        for d in ["a", "b", "c"] {
            let event = announcement(&owner, d, &[OURS], &[]);
            assert!(accepted(&p.check(&event).await), "{d}");
            store(&db, &event).await;
        }
        let fourth = announcement(&owner, "d", &[OURS], &[]);
        let why = reason(p.check(&fourth).await);
        assert!(why.starts_with("rate-limited:"), "{why}");
        // A newer version of a stored repository is a replacement, not a new one.
        let replacement = sign(&owner, 30617, 10, &[&["d", "b"], &["relays", OURS]]);
        assert!(accepted(&p.check(&replacement).await));
        // Another author is not affected.
        assert!(accepted(
            &p.check(&announcement(&key(1), "d", &[OURS], &[])).await
        ));
    })
    .await;
}

#[tokio::test]
async fn archive_mode_accepts_announcements_that_do_not_list_us() {
    on_every_store(|db| async move {
        let event = announcement(&key(0), "repo", &["wss://elsewhere"], &[]);
        assert!(!accepted(&policy(&db, false).check(&event).await));
        assert!(accepted(&policy(&db, true).check(&event).await));
        let no_d = sign(&key(0), 30617, 0, &[&["relays", "wss://elsewhere"]]);
        assert!(!accepted(&policy(&db, true).check(&no_d).await));
    })
    .await;
}

#[tokio::test]
async fn a_maintainer_announcement_is_let_in_by_the_owner_announcement() {
    on_every_store(|db| async move {
        let p = policy(&db, false);
        let (owner, maintainer) = (key(0), key(1));
        let theirs = announcement(&maintainer, "repo", &["wss://elsewhere"], &[]);
        assert!(
            !accepted(&p.check(&theirs).await),
            "no owner announcement yet"
        );
        store(
            &db,
            &announcement(&owner, "repo", &[OURS], &[maintainer.public_key()]),
        )
        .await;
        assert!(accepted(&p.check(&theirs).await));
        // Not for another identifier; and the maintainer's repository is hosted, not withdrawn.
        let other_repo = announcement(&maintainer, "other", &["wss://elsewhere"], &[]);
        assert!(!accepted(&p.check(&other_repo).await));
        assert!(p.withdrawals(&theirs).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_newer_announcement_dropping_us_or_a_deletion_withdraws_the_repository() {
    on_every_store(|db| async move {
        let p = policy(&db, false);
        let (owner, stranger) = (key(0), key(3));
        let repo = RepoCoord::parse(&coord(&owner, "repo")).unwrap();
        let listed = announcement(&owner, "repo", &[OURS], &[]);
        assert!(p.withdrawals(&listed).await.is_empty(), "listing us");
        store(&db, &listed).await;
        // The owner's newer word is accepted (stored, replacing) and withdraws the repository.
        let unlisted = sign(&owner, 30617, 5, &[&["d", "repo"], &["relays", "wss://x"]]);
        assert!(accepted(&p.check(&unlisted).await));
        let unlisted_reason = WithdrawalReason::Unlisted;
        assert_eq!(
            p.withdrawals(&unlisted).await,
            vec![Withdrawal {
                coord: repo.clone(),
                reason: unlisted_reason
            }]
        );
        // Nobody else's announcement dropping us is let in for a repository they do not have.
        let theirs = sign(
            &stranger,
            30617,
            5,
            &[&["d", "repo"], &["relays", "wss://x"]],
        );
        assert!(!accepted(&p.check(&theirs).await));
        store(&db, &unlisted).await;
        // A patch for the withdrawn repository is not let in through its coordinate.
        let patch = sign(&stranger, 1617, 6, &[&["a", &repo.to_string()]]);
        let why = reason(p.check(&patch).await);
        assert!(why.contains("references no repository"), "{why}");
        // An older version (the one that listed us) cannot come back and re-register it.
        let why = reason(p.check(&listed).await);
        assert!(why.starts_with("duplicate:"), "{why}");
        // Listed again by a newer one: hosted, nothing withdrawn.
        let relisted = sign(&owner, 30617, 9, &[&["d", "repo"], &["relays", OURS]]);
        assert!(accepted(&p.check(&relisted).await));
        assert!(p.withdrawals(&relisted).await.is_empty());
        store(&db, &relisted).await;
        assert!(accepted(&p.check(&patch).await), "hosted again");
        // A deletion, by coordinate or by id, withdraws; one older than the stored version
        // (the store deletes nothing newer) does not.
        let deleted = vec![Withdrawal {
            coord: repo.clone(),
            reason: WithdrawalReason::Deleted,
        }];
        let by_coord = sign(&owner, 5, 10, &[&["a", &repo.to_string()]]);
        let by_id = sign(&owner, 5, 10, &[&["e", &relisted.id.to_hex()]]);
        let stale = sign(&owner, 5, 8, &[&["a", &repo.to_string()]]);
        for request in [&by_coord, &by_id] {
            assert!(accepted(&p.check(request).await));
            assert_eq!(p.withdrawals(request).await, deleted);
        }
        assert!(p.withdrawals(&stale).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn state_events_come_from_the_recursive_maintainer_closure() {
    on_every_store(|db| async move {
        let p = policy(&db, false);
        let (owner, m1, m2, stranger) = (key(0), key(1), key(2), key(3));
        let state = |k: &Keys, d: &str| sign(k, 30618, 1, &[&["d", d], &["HEAD", "ref: x"]]);

        let why = reason(p.check(&state(&owner, "repo")).await);
        assert_eq!(why, "blocked: no announcement of this repository is stored");

        store(
            &db,
            &announcement(&owner, "repo", &[OURS], &[m1.public_key()]),
        )
        .await;
        assert!(accepted(&p.check(&state(&owner, "repo")).await));
        assert!(accepted(&p.check(&state(&m1, "repo")).await));
        // m2 is listed only by m1's announcement, which is not stored yet.
        assert!(!accepted(&p.check(&state(&m2, "repo")).await));
        store(
            &db,
            &announcement(&m1, "repo", &["wss://x"], &[m2.public_key()]),
        )
        .await;
        assert!(
            accepted(&p.check(&state(&m2, "repo")).await),
            "maintainer of a maintainer"
        );
        let why = reason(p.check(&state(&stranger, "repo")).await);
        assert_eq!(
            why,
            "blocked: author is not a maintainer of this repository"
        );
        // The closure is per identifier.
        assert!(!accepted(&p.check(&state(&m1, "other")).await));
    })
    .await;
}

#[tokio::test]
async fn other_kinds_need_a_stored_repository_or_event() {
    on_every_store(|db| async move {
        let p = policy(&db, false);
        let (owner, user) = (key(0), key(4));
        let repo = coord(&owner, "repo");
        let unknown_repo = coord(&owner, "unknown");
        let patch_a = sign(&user, 1617, 1, &[&["a", &repo]]);
        let issue_big_a = sign(&user, 1621, 2, &[&["A", &repo]]);
        let quote_q = sign(&user, 1, 3, &[&["q", &repo]]);
        let orphan = sign(&user, 1617, 4, &[&["a", &unknown_repo]]);
        for event in [&patch_a, &issue_big_a, &quote_q, &orphan] {
            assert!(!accepted(&p.check(event).await), "nothing stored yet");
        }
        store(&db, &announcement(&owner, "repo", &[OURS], &[])).await;
        assert!(accepted(&p.check(&patch_a).await), "`a` tag");
        assert!(accepted(&p.check(&issue_big_a).await), "`A` tag");
        assert!(
            accepted(&p.check(&quote_q).await),
            "`q` tag with a coordinate"
        );
        let why = reason(p.check(&orphan).await);
        assert_eq!(
            why,
            "blocked: event references no repository or event held here"
        );

        // Replies to an accepted issue, by `e`, `E` and `q` id.
        let issue = sign(&user, 1621, 5, &[&["a", &repo]]);
        store(&db, &issue).await;
        let id = issue.id.to_hex();
        for letter in ["e", "E", "q"] {
            let reply = sign(&key(5), 1111, 6, &[&[letter, &id]]);
            assert!(accepted(&p.check(&reply).await), "`{letter}` reply");
        }
        let stray = sign(&key(5), 1111, 7, &[&["e", &EventId::all_zeros().to_hex()]]);
        assert!(!accepted(&p.check(&stray).await));
    })
    .await;
}

#[tokio::test]
async fn an_event_referenced_by_a_stored_event_is_accepted() {
    on_every_store(|db| async move {
        let p = policy(&db, false);
        let (owner, user) = (key(0), key(4));
        store(&db, &announcement(&owner, "repo", &[OURS], &[])).await;
        // The parent comment arrives after its reply, which tags the issue and the parent.
        let issue = sign(&user, 1621, 1, &[&["a", &coord(&owner, "repo")]]);
        store(&db, &issue).await;
        let parent = sign(&key(6), 1111, 2, &[&["t", "no references"]]);
        assert!(!accepted(&p.check(&parent).await));
        let reply = sign(
            &key(5),
            1111,
            3,
            &[&["E", &issue.id.to_hex()], &["e", &parent.id.to_hex()]],
        );
        store(&db, &reply).await;
        assert!(accepted(&p.check(&parent).await));
    })
    .await;
}

#[tokio::test]
async fn deletions_only_for_the_authors_own_stored_events() {
    on_every_store(|db| async move {
        let p = policy(&db, false);
        let (owner, user, other) = (key(0), key(4), key(5));
        let repo = coord(&owner, "repo");
        store(&db, &announcement(&owner, "repo", &[OURS], &[])).await;
        let mine = sign(&user, 1621, 1, &[&["a", &repo]]);
        let theirs = sign(&other, 1621, 2, &[&["a", &repo]]);
        store(&db, &mine).await;
        store(&db, &theirs).await;
        let delete = |k: &Keys, tags: &[&[&str]]| sign(k, 5, 10, tags);

        assert!(accepted(
            &p.check(&delete(&user, &[&["e", &mine.id.to_hex()]])).await
        ));
        // An id we do not hold next to an own stored one is tolerated.
        let unknown = EventId::all_zeros().to_hex();
        let mixed = delete(&user, &[&["e", &unknown], &["e", &mine.id.to_hex()]]);
        assert!(accepted(&p.check(&mixed).await));
        let foreign = delete(&user, &[&["e", &theirs.id.to_hex()]]);
        let why = reason(p.check(&foreign).await);
        assert_eq!(why, "blocked: deletion request names someone else's event");
        let own_and_foreign = delete(
            &user,
            &[&["e", &mine.id.to_hex()], &["e", &theirs.id.to_hex()]],
        );
        assert!(!accepted(&p.check(&own_and_foreign).await));
        // Coordinates: the owner may delete its announcement; nobody else may.
        assert!(accepted(&p.check(&delete(&owner, &[&["a", &repo]])).await));
        assert!(!accepted(&p.check(&delete(&user, &[&["a", &repo]])).await));
        // Nothing held, or nothing named.
        let nothing = reason(p.check(&delete(&user, &[&["e", &unknown]])).await);
        assert_eq!(nothing, "blocked: deletion request names no event we hold");
        assert!(!accepted(
            &p.check(&delete(&user, &[&["a", &coord(&user, "none")]]))
                .await
        ));
        assert!(!accepted(&p.check(&delete(&user, &[])).await));
    })
    .await;
}

#[tokio::test]
async fn user_grasp_lists_are_accepted() {
    on_every_store(|db| async move {
        let list = sign(&key(7), 10317, 0, &[&["g", OURS]]);
        assert!(accepted(&policy(&db, false).check(&list).await));
    })
    .await;
}

#[test]
fn invalid_service_urls_are_refused_by_try_new() {
    let db: Arc<dyn NostrDatabase> = memory().db;
    let err = GraspPolicy::try_new(db.clone(), vec!["https://x".into()], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a ws:// or wss:// relay URL: \"https://x\""
    );
    let lenient = GraspPolicy::new(
        db,
        vec!["https://x".into(), "wss://A.example/".into()],
        false,
    );
    let urls: Vec<&str> = lenient.service_urls().iter().map(|u| u.as_str()).collect();
    assert_eq!(urls, vec!["wss://a.example"]);
}

/// The adapter on a real LocalRelay: a real client's accepted event is stored and reported to
/// the callback; a rejected one gets `OK false` with the policy's reason and is not stored.
#[tokio::test]
async fn local_relay_applies_the_policy_to_published_events() {
    let db = memory().db;
    let seen: Arc<Mutex<Vec<EventId>>> = Arc::default();
    let seen_by_callback = seen.clone();
    let callback: sync_runtime::grasp::AcceptedCallback =
        Arc::new(move |event: &Event| seen_by_callback.lock().expect("lock").push(event.id));
    let grasp = Arc::new(policy(&db, false));
    let relay = LocalRelay::new(
        RelayBuilder::default()
            .database(db.clone())
            .rate_limit(RateLimit {
                max_reqs: 100,
                notes_per_minute: 10_000,
            })
            .write_policy(LocalRelayPolicy::new(grasp, Some(callback))),
    );
    relay.run().await.expect("run relay");
    let url = relay.url().await;

    let client = nostr_sdk::Client::default();
    client.add_relay(url.clone()).await.expect("add relay");
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;

    let good = announcement(&key(0), "repo", &[OURS], &[]);
    let bad = announcement(&key(1), "repo", &["wss://elsewhere"], &[]);
    let out = client.send_event(&good).await.expect("send good");
    assert!(out.success.contains(&url), "{out:?}");
    let out = client.send_event(&bad).await.expect("send bad");
    assert!(out.success.is_empty());
    let failed: Vec<&String> = out.failed.values().collect();
    assert_eq!(
        failed,
        vec!["blocked: announcement does not list this relay"]
    );

    assert_eq!(*seen.lock().expect("lock"), vec![good.id]);
    assert!(db.event_by_id(&good.id).await.expect("query").is_some());
    assert!(db.event_by_id(&bad.id).await.expect("query").is_none());
    client.shutdown().await;
    relay.shutdown();
}

/// The adapter as the `grasp-sync` binary wires it: our own LocalRelay applies the GRASP
/// policy to what its clients publish, and the accepted-callback tells the runtime, which then
/// syncs the announced repository's events from the relay the announcement lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_published_to_our_relay_starts_its_sync() {
    // Our relay's port is chosen first: the policy and the runtime must know our URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let our_url = format!("ws://127.0.0.1:{port}");
    let source = rt_support::TestRelay::start(None).await;
    let owner = key(20);
    let t = rt_support::now_secs() - 600;
    let ann = rt_support::announcement(&owner, "pushed", &[&source.url, &our_url], t);
    let repo = rt_support::coord(&owner, "pushed");
    let patches: Vec<Event> = (0..5)
        .map(|n| rt_support::root(&owner, 1617, &repo, n, t + 1 + n))
        .collect();
    source.store(&patches).await;

    let host = memory().db;
    let config = sync_core::Config {
        own_relay_urls: vec![our_url.clone()],
        ..rt_support::fast_config(&[])
    };
    let handle = sync_runtime::SyncRuntime::builder(config)
        .database(host.clone())
        .seed(41)
        .spawn()
        .await
        .expect("spawn");
    let notify = handle.clone();
    let callback: sync_runtime::grasp::AcceptedCallback = Arc::new(move |event: &Event| {
        let (notify, event) = (notify.clone(), event.clone());
        tokio::spawn(async move { notify.notify_accepted(&event).await });
    });
    let grasp = Arc::new(GraspPolicy::new(host.clone(), vec![our_url.clone()], false));
    let ours = LocalRelay::new(
        RelayBuilder::default()
            .port(port)
            .database(host.clone())
            .write_policy(LocalRelayPolicy::new(grasp, Some(callback))),
    );
    ours.run().await.expect("our relay");

    let client = nostr_sdk::Client::default();
    client.add_relay(&our_url).await.expect("add relay");
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    let out = client.send_event(&ann).await.expect("publish");
    assert!(!out.success.is_empty(), "{out:?}");
    assert!(
        rt_support::eventually(Duration::from_secs(20), || rt_support::holds_all(
            host.as_ref(),
            &patches
        ))
        .await,
        "the patches on the listed relay were synced"
    );
    client.shutdown().await;
    handle.shutdown().await.expect("shutdown");
    ours.shutdown();
}
