//! Each misbehaviour of [`HostileRelay`] as seen by a raw client.

use std::time::Duration;

use nostr::{Alphabet, EventBuilder, Kind, SingleLetterTag};

use super::*;
use crate::testkit::RawClient;

const QUIET: Duration = Duration::from_millis(300);

fn fixtures() -> (Event, Vec<Event>) {
    let keys = Keys::generate();
    let announcement = EventBuilder::new(Kind::from(30617), "")
        .tag(Tag::identifier("repo"))
        .custom_created_at(Timestamp::from(1_700_000_000))
        .sign_with_keys(&keys)
        .expect("sign");
    let coord = format!("30617:{}:repo", keys.public_key().to_hex());
    let issues = (0..5)
        .map(|i| {
            EventBuilder::new(Kind::from(1621), format!("issue {i}"))
                .tag(Tag::parse(["a", coord.as_str()]).expect("tag"))
                .custom_created_at(Timestamp::from(1_700_000_100 + i))
                .sign_with_keys(&keys)
                .expect("sign")
        })
        .collect();
    (announcement, issues)
}

fn issues_filter(announcement: &Event) -> Filter {
    let coord = format!("30617:{}:repo", announcement.pubkey.to_hex());
    Filter::new().custom_tag(SingleLetterTag::lowercase(Alphabet::A), coord)
}

/// Sends `["REQ", sub, filter]` and collects the frames up to EOSE (or quiet).
async fn req(client: &mut RawClient, sub: &str, filter: &Filter) -> (Vec<Message>, bool) {
    let frame = ClientMessage::req(SubscriptionId::new(sub), vec![filter.clone()]).as_json();
    client.send(&frame).await.expect("send REQ");
    client.until_eose(sub, QUIET).await
}

/// The events among `frames` (parsed, not verified).
fn events(frames: &[Message]) -> Vec<Event> {
    frames
        .iter()
        .filter_map(|m| match m {
            Message::Text(t) => match RelayMessage::from_json(t.as_str()) {
                Ok(RelayMessage::Event { event, .. }) => Some(event.into_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

async fn start(m: Misbehaviour) -> (HostileRelay, RawClient, Event, Vec<Event>) {
    let (announcement, issues) = fixtures();
    let mut valid = issues.clone();
    valid.push(announcement.clone());
    let relay = HostileRelay::start(m, valid).await.expect("relay");
    let client = RawClient::connect(&relay.url()).await.expect("connect");
    (relay, client, announcement, issues)
}

#[tokio::test]
async fn well_behaved_by_default() {
    let (relay, mut client, announcement, issues) = start(Misbehaviour::default()).await;
    let (frames, eose) = req(&mut client, "s1", &issues_filter(&announcement)).await;
    assert!(eose);
    let got = events(&frames);
    assert_eq!(got.len(), issues.len());
    assert!(got.iter().all(|e| e.verify().is_ok() && issues.contains(e)));
    // limit is honoured; limit 0 returns nothing stored.
    let (frames, _) = req(&mut client, "s2", &issues_filter(&announcement).limit(2)).await;
    assert_eq!(events(&frames).len(), 2);
    let (frames, eose) = req(&mut client, "s3", &Filter::new().limit(0)).await;
    assert!(eose && events(&frames).is_empty());
    // No NIP-77.
    client
        .send(r#"["NEG-OPEN","n",{},"6100"]"#)
        .await
        .expect("send");
    let notice = client.next_text(QUIET).await;
    assert_eq!(
        notice.as_deref(),
        Some(r#"["NOTICE","ERROR: bad msg: unknown cmd"]"#)
    );
    let stats = relay.stats();
    assert_eq!((stats.reqs, stats.neg_opens, stats.valid_sent), (3, 1, 7));
    assert!(relay.forged_ids().is_empty());
}

#[tokio::test]
async fn invalid_signatures_match_the_filter_but_do_not_verify() {
    let m = Misbehaviour {
        invalid_signatures: true,
        forged_per_req: 4,
        ..Misbehaviour::default()
    };
    let (relay, mut client, announcement, issues) = start(m).await;
    let filter = issues_filter(&announcement);
    let (frames, eose) = req(&mut client, "s", &filter).await;
    assert!(eose);
    let (good, bad): (Vec<Event>, Vec<Event>) = events(&frames)
        .into_iter()
        .partition(|e| e.verify().is_ok());
    assert_eq!(good.len(), issues.len());
    assert_eq!(bad.len(), 4);
    assert!(bad
        .iter()
        .all(|e| filter.match_event(e, MatchEventOptions::new())));
    let forged = relay.forged();
    assert!(forged.iter().all(|f| matches!(f, Forged::Invalid(_))));
    let forged: Vec<&Event> = forged.iter().map(Forged::event).collect();
    assert!(bad.iter().all(|e| forged.contains(&e)));
    assert_eq!(relay.stats().invalid_sent, 4);
}

#[tokio::test]
async fn outside_events_are_valid_but_miss_the_filter() {
    let m = Misbehaviour {
        outside_filter: true,
        ..Misbehaviour::default()
    };
    let (relay, mut client, _announcement, _issues) = start(m).await;
    let announcements = Filter::new().kinds([Kind::from(30617), Kind::from(10317)]);
    let (frames, eose) = req(&mut client, "l1", &announcements).await;
    assert!(eose);
    let got = events(&frames);
    let outsiders: Vec<&Event> = got
        .iter()
        .filter(|e| !announcements.match_event(e, MatchEventOptions::new()))
        .collect();
    assert_eq!(outsiders.len(), 3);
    for e in &outsiders {
        assert!(e.verify().is_ok());
        // They carry the bait: a reference to the served announcement.
        assert!(e
            .tags
            .iter()
            .any(|t| t.as_slice().first().is_some_and(|n| n == "a")));
    }
    let forged = relay.forged();
    assert_eq!(forged.len(), 3);
    for f in &forged {
        assert!(matches!(f, Forged::Outside(e) if outsiders.contains(&e)));
    }
}

#[tokio::test]
async fn endless_pages_never_run_dry() {
    let m = Misbehaviour {
        endless_pages: true,
        ..Misbehaviour::default()
    };
    let (relay, mut client, announcement, _issues) = start(m).await;
    let mut until = Timestamp::from(1_800_000_000);
    let mut seen = BTreeSet::new();
    for page in 0..3 {
        let filter = issues_filter(&announcement).until(until).limit(10);
        let (frames, eose) = req(&mut client, &format!("p{page}"), &filter).await;
        assert!(eose);
        let fresh: Vec<Event> = events(&frames)
            .into_iter()
            .filter(|e| e.content.starts_with("forged"))
            .collect();
        assert_eq!(fresh.len(), 10, "a full page every time");
        for e in &fresh {
            assert!(e.verify().is_ok() && e.created_at <= until);
            assert!(filter.match_event(e, MatchEventOptions::new()));
            assert!(seen.insert(e.id), "every page is new");
        }
        until = fresh.iter().map(|e| e.created_at).min().expect("a page");
    }
    assert_eq!(relay.stats().reqs_with_until, 3);
    assert_eq!(relay.stats().endless_sent, 30);
}

#[tokio::test]
async fn no_eose_withholds_the_end_of_stored_events() {
    let m = Misbehaviour {
        no_eose: true,
        ..Misbehaviour::default()
    };
    let (_relay, mut client, announcement, issues) = start(m).await;
    let (frames, eose) = req(&mut client, "s", &issues_filter(&announcement)).await;
    assert!(!eose);
    assert_eq!(events(&frames).len(), issues.len());
}

#[tokio::test]
async fn garbage_and_oversize_frames_come_before_the_real_answer() {
    let m = Misbehaviour {
        garbage_frames: true,
        oversize_bytes: Some(6 * 1024 * 1024),
        ..Misbehaviour::default()
    };
    let (relay, mut client, announcement, issues) = start(m).await;
    let (frames, eose) = req(&mut client, "s", &issues_filter(&announcement)).await;
    assert!(eose, "the real answer still ends with EOSE");
    let unparsable = frames
        .iter()
        .filter(|m| match m {
            Message::Text(t) => RelayMessage::from_json(t.as_str()).is_err(),
            _ => true,
        })
        .count();
    let stats = relay.stats();
    assert_eq!(stats.garbage_sent, 13);
    assert!(unparsable >= 10, "{unparsable} unparsable frames");
    assert!(frames.iter().any(|m| m.len() >= 6 * 1024 * 1024));
    let valid: Vec<Event> = events(&frames)
        .into_iter()
        .filter(|e| e.verify().is_ok())
        .collect();
    assert_eq!(valid.len(), issues.len());
}
