//! Hostile relays next to a healthy one: the engine stays up, stores nothing invalid or outside
//! the filters, bounds endless pagination, ends batches that never see EOSE, and the healthy
//! relay's events all arrive.

mod rt_support;

use std::sync::Arc;
use std::time::Duration;

use grasp_sync_tests::testkit::{Forged, HostileRelay, Misbehaviour};
use nostr::filter::MatchEventOptions;
use nostr::{Event, Filter, Keys, Kind};
use nostr_database::{MemoryDatabase, NostrDatabase};
use rt_support::*;
use sync_core::{Config, Status};
use sync_runtime::grasp::GraspPolicy;
use sync_runtime::{RuntimeStatus, SyncHandle, SyncRuntime, Verdict, WritePolicy};

const WAIT: Duration = Duration::from_secs(20);
const PAGE_LIMIT: usize = 10;
const MAX_PAGES: u32 = 3;

/// The two tests flood a 2-core machine differently; run them one at a time so neither's
/// timings depend on the other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn status_of(s: &RuntimeStatus, url: &str) -> Option<Status> {
    s.relay(url).map(|r| r.status)
}

/// A healthy relay holding a repository whose announcement also lists `hostile_urls`, and the
/// events it holds (announcement, state, 10 patches, an issue, a reply).
async fn healthy_repo(owner: &Keys, hostile_urls: &[String]) -> (TestRelay, Vec<Event>) {
    let healthy = TestRelay::start(None).await;
    let other = Keys::generate();
    let t = now_secs() - 3_600;
    let mut relays: Vec<&str> = vec![&healthy.url, OWN_URL];
    relays.extend(hostile_urls.iter().map(String::as_str));
    let c = coord(owner, "repo");
    let mut good = vec![
        announcement(owner, "repo", &relays, t + 1),
        state(owner, "repo", t + 2),
    ];
    good.extend((0..10).map(|n| root(owner, 1617, &c, n, t + 3 + n)));
    let issue = root(&other, 1621, &c, 50, t + 20);
    good.push(reply(&other, "e", &issue, t + 21));
    good.push(issue);
    healthy.store(&good).await;
    (healthy, good)
}

/// An older announcement of the same repository (not listing us): what the hostile relays
/// serve as their valid set, and what their forged events refer to.
fn bait(owner: &Keys) -> Vec<Event> {
    vec![announcement(
        owner,
        "repo",
        &["wss://elsewhere.example"],
        now_secs() - 7_200,
    )]
}

async fn spawn(
    host: &std::sync::Arc<nostr_database::MemoryDatabase>,
    config: Config,
) -> SyncHandle {
    SyncRuntime::builder(config)
        .database(host.clone())
        .seed(31)
        .spawn()
        .await
        .expect("spawn")
}

/// Waits until the healthy relay is `Connected` and every other relay has left `Syncing`.
async fn wait_settled(handle: &SyncHandle, healthy: &str, others: &[String]) -> RuntimeStatus {
    let (status, ok) = handle
        .wait_for_status(WAIT, |s| {
            status_of(s, healthy) == Some(Status::Connected)
                && others.iter().all(|u| {
                    matches!(
                        status_of(s, u),
                        Some(Status::Connected | Status::ConnectedHistoricSyncFailures)
                    )
                })
        })
        .await;
    assert!(ok, "every relay's historic sync ends: {:#?}", status.relays);
    assert!(status.running, "the engine is up");
    status
}

async fn stored(host: &dyn NostrDatabase) -> Vec<Event> {
    host.query(Filter::new())
        .await
        .expect("query")
        .into_iter()
        .collect()
}

/// Invalid signatures, events outside the filter and garbage frames from one relay, endless
/// pages from another: nothing invalid or outside the filters is stored, pagination stops at
/// the page cap, and the healthy relay's events all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_endless_answers_are_dropped_or_bounded() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let owner = Keys::generate();
    let forger = Misbehaviour {
        invalid_signatures: true,
        outside_filter: true,
        garbage_frames: true,
        ..Misbehaviour::default()
    };
    let pager = Misbehaviour {
        endless_pages: true,
        page_size: PAGE_LIMIT,
        ..Misbehaviour::default()
    };
    let h_forger = HostileRelay::start(forger, bait(&owner))
        .await
        .expect("forger");
    let h_pager = HostileRelay::start(pager, bait(&owner))
        .await
        .expect("pager");
    let hostile = [h_forger.url(), h_pager.url()];
    let (healthy, good) = healthy_repo(&owner, &hostile).await;

    let host = host_db();
    // Every relay here sends EOSE: a generous deadline keeps a loaded machine from failing
    // the healthy relay's batches.
    let config = Config {
        page_limit: PAGE_LIMIT,
        max_pages_per_filter: MAX_PAGES,
        batch_deadline_ms: 15_000,
        ..fast_config(&[&healthy.url])
    };
    let handle = spawn(&host, config).await;
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &good)).await,
        "the healthy relay's events all arrive"
    );
    wait_settled(&handle, &healthy.url, &hostile).await;

    let stored = stored(host.as_ref()).await;
    assert_forged_kept_out(&h_forger, &host, &stored, &handle).await;
    assert_pagination_bounded(&h_pager, &handle, &stored, &good, &coord(&owner, "repo")).await;
    handle.shutdown().await.expect("shutdown");
}

/// A relay that never sends EOSE and sends 6 MB frames: its batches fail at the deadline, it
/// settles in `ConnectedHistoricSyncFailures`, and the healthy relay is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_eose_and_with_oversize_frames_does_not_block_the_others() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let owner = Keys::generate();
    let mute = Misbehaviour {
        no_eose: true,
        oversize_bytes: Some(6 * 1024 * 1024),
        garbage_frames: true,
        ..Misbehaviour::default()
    };
    let h_mute = HostileRelay::start(mute, bait(&owner)).await.expect("mute");
    let hostile = [h_mute.url()];
    let (healthy, good) = healthy_repo(&owner, &hostile).await;

    let host = host_db();
    let config = Config {
        batch_deadline_ms: 2_000,
        ..fast_config(&[&healthy.url])
    };
    let handle = spawn(&host, config).await;
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &good)).await,
        "the healthy relay's events all arrive"
    );
    let status = wait_settled(&handle, &healthy.url, &hostile).await;
    let mute_status = status.relay(&h_mute.url()).expect("tracked");
    assert_eq!(mute_status.status, Status::ConnectedHistoricSyncFailures);
    assert!(mute_status.counters.batches_failed > 0, "{mute_status:?}");
    let m = h_mute.stats();
    assert!(
        m.reqs > 0 && m.oversize_sent > 0 && m.garbage_sent > 0,
        "{m:?}"
    );
    // Nothing but the healthy set: the mute relay's only valid event is a stale announcement
    // that does not list us.
    assert_eq!(stored(host.as_ref()).await.len(), good.len());
    handle.shutdown().await.expect("shutdown");
}

/// Nothing the forger sent is stored, although the policy alone would have taken some of each
/// kind: signature verification and the filter check kept them out (and were counted).
async fn assert_forged_kept_out(
    h_forger: &HostileRelay,
    host: &Arc<MemoryDatabase>,
    stored: &[Event],
    handle: &SyncHandle,
) {
    let f = h_forger.stats();
    assert!(
        f.invalid_sent > 0 && f.outside_sent > 0 && f.garbage_sent > 0,
        "{f:?}"
    );
    let status = handle.status();
    let forged = h_forger.forged();
    assert!(
        stored
            .iter()
            .all(|e| forged.iter().all(|f| f.event().id != e.id)),
        "an invalid or out-of-filter event was stored"
    );
    // The policy alone would have let some of each kind in: signature verification and the
    // filter check are what kept them out.
    let policy = GraspPolicy::new(host.clone(), vec![OWN_URL.to_string()], false);
    for wanted in ["invalid", "outside"] {
        let mut accepted = 0;
        for f in &forged {
            let kind = match f {
                Forged::Invalid(_) => "invalid",
                Forged::Outside(_) => "outside",
            };
            if kind == wanted && policy.check(f.event()).await == Verdict::Accept {
                accepted += 1;
            }
        }
        assert!(
            accepted > 0,
            "no {wanted} event the policy would accept was sent"
        );
    }
    assert!(stored.iter().all(|e| e.verify().is_ok()));
    assert!(
        status.totals.events_out_of_filter > 0,
        "{:?}",
        status.totals
    );
    let out_of_filter = r#"ngit_sync_events_dropped_total{reason="out_of_filter"}"#;
    let text = handle.metrics_text();
    assert!(metric(&text, out_of_filter).unwrap_or(0.0) >= 1.0, "{text}");
}

/// The pager's fresh events are valid and match the filters they answer, so the policy takes
/// those that tag the repository or its events; but every capped filter got exactly its
/// `MAX_PAGES` pages and the pager is asked nothing more once settled.
async fn assert_pagination_bounded(
    h_pager: &HostileRelay,
    handle: &SyncHandle,
    stored: &[Event],
    good: &[Event],
    coord: &str,
) {
    let p = h_pager.stats();
    assert!(p.reqs_with_until > 0 && p.endless_sent > 0, "{p:?}");
    let status = handle.status();
    // The pager's fresh events are valid and match the filters they answer, so the policy takes
    // those that tag the repository or its events; pagination stops at the cap.
    assert!(status.totals.page_caps_hit > 0, "{:?}", status.totals);
    let extra: Vec<&Event> = stored.iter().filter(|e| !good.contains(e)).collect();
    assert!(
        extra.iter().all(|e| e.content.starts_with("forged")),
        "only the pager's events are extra"
    );
    // Every capped filter got exactly its MAX_PAGES pages, and once settled the pager is asked
    // nothing more: pagination terminated. Its first page is without `until`; a first page that
    // shared a REQ with other filters' and came back full is asked again alone, also without
    // `until` (docs/spec.md §7.4), so a capped filter sent MAX_PAGES − 1 or MAX_PAGES − 2 REQs
    // with `until`.
    let caps = status.totals.page_caps_hit as usize;
    let with_until = caps * (MAX_PAGES as usize - 2)..=caps * (MAX_PAGES as usize - 1);
    assert!(with_until.contains(&p.reqs_with_until), "{p:?}");
    assert!(extra.len() <= p.endless_sent);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h_pager.stats().reqs_with_until,
        p.reqs_with_until,
        "no page after the cap"
    );
    let l1 = Filter::new().kinds([Kind::from(30617), Kind::from(10317)]);
    let refers_to_repo = |e: &Event| {
        e.tags.iter().any(|t| {
            t.as_slice()
                .get(1)
                .is_some_and(|v| *v == coord || good.iter().any(|g| g.id.to_hex() == *v))
        })
    };
    assert!(
        extra
            .iter()
            .all(|e| l1.match_event(e, MatchEventOptions::new()) || refers_to_repo(e)),
        "every extra event matched a filter the engine asked for"
    );
}
