//! NIP-42 against real WebSocket relays on 127.0.0.1 (docs/spec.md §14): a nostr-relay-builder
//! relay that only serves authenticated readers is synced (nostr-sdk answers its challenge with
//! the relay key we gave the runtime, the core sends the refused REQs again once), and a relay
//! that refuses us even authenticated is closed and backed off, its status saying why.

mod rt_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nostr::Keys;
use nostr_relay_builder::prelude::{
    LocalRelay, RelayBuilder, RelayBuilderNip42, RelayBuilderNip42Mode,
};
use rt_support::*;
use serde_json::{json, Value};
use sync_core::ErrorClass;
use sync_runtime::SyncRuntime;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_requiring_auth_to_read_is_synced_with_the_relay_key() {
    let db = Arc::new(nostr_database::MemoryDatabase::with_opts(
        nostr_database::MemoryDatabaseOptions {
            events: true,
            max_events: None,
        },
    ));
    let relay = LocalRelay::new(RelayBuilder::default().database(db.clone()).nip42(
        RelayBuilderNip42 {
            mode: RelayBuilderNip42Mode::Read,
        },
    ));
    relay.run().await.expect("relay runs");
    let url = relay.url().await.to_string();
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, "locked", &[&url, OWN_URL], t);
    let c = coord(&owner, "locked");
    let events = [
        state(&owner, "locked", t + 1),
        root(&owner, 1617, &c, 1, t + 2),
        root(&owner, 1621, &c, 2, t + 3),
    ];
    for e in std::iter::once(&ann).chain(&events) {
        nostr_database::NostrDatabase::save_event(db.as_ref(), e)
            .await
            .unwrap();
    }

    let key = Keys::generate();
    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .seed(7)
        .keys(key.clone())
        .spawn()
        .await
        .unwrap();
    assert_eq!(handle.status().auth_key.pubkey, key.public_key().to_hex());
    host_accepts(&handle, host.as_ref(), &ann).await;
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &events)).await,
        "everything behind the relay's AUTH wall was synced"
    );
    let status = wait_connected(&handle, &[&url]).await;
    let r = status.relay(&url).unwrap();
    assert!(r.counters.auth_required > 0, "the relay did ask for AUTH");
    assert_eq!(r.counters.auth_refused, 0);
    assert_eq!(r.last_failure, None);
    handle.shutdown().await.unwrap();
    relay.shutdown();
}

/// What the refusing relay saw on each connection: when each REQ came.
type Connections = Arc<Mutex<Vec<Vec<Instant>>>>;

/// A relay that answers every REQ (and NEG-OPEN) with an AUTH challenge and
/// `CLOSED "auth-required:"`, and accepts every AUTH (`OK true`): it authenticates us, then
/// refuses us anyway (our key is not on its list). Returns its URL and what it saw.
async fn refusing_relay() -> (String, Connections) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let seen: Connections = Arc::default();
    let conns = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let conns = conns.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let n = {
                    let mut c = conns.lock().unwrap();
                    c.push(Vec::new());
                    c.len() - 1
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(Value::Array(m)) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    let answers = match m.first().and_then(Value::as_str) {
                        Some(kind @ ("REQ" | "NEG-OPEN")) => {
                            if kind == "REQ" {
                                conns.lock().unwrap()[n].push(Instant::now());
                            }
                            let closed = if kind == "REQ" { "CLOSED" } else { "NEG-ERR" };
                            vec![
                                json!(["AUTH", "challenge"]),
                                json!([closed, m[1], "auth-required: not on our list"]),
                            ]
                        }
                        Some("AUTH") => vec![json!(["OK", m[1]["id"], true, ""])],
                        _ => Vec::new(),
                    };
                    for a in answers {
                        if ws.send(Message::Text(a.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_refusing_us_authenticated_is_closed_and_backed_off() {
    let (url, seen) = refusing_relay().await;
    let owner = Keys::generate();
    let ann = announcement(&owner, "refused", &[&url, OWN_URL], now_secs() - 60);
    let host = host_db();
    let config = sync_core::Config {
        backoff_base_ms: 1_000,
        backoff_max_ms: 2_000,
        ..fast_config(&[])
    };
    let handle = SyncRuntime::builder(config)
        .database(host.clone())
        .seed(8)
        .spawn()
        .await
        .unwrap();
    host_accepts(&handle, host.as_ref(), &ann).await;
    let (status, held) = handle
        .wait_for_status(WAIT, |s| {
            s.relay(&url).is_some_and(|r| r.counters.auth_refused >= 2)
        })
        .await;
    assert!(
        held,
        "closed after the retry, twice: {:?}",
        status.relay(&url)
    );
    let r = status.relay(&url).unwrap();
    assert_eq!(
        r.last_failure,
        Some(ErrorClass::Auth),
        "the status says why"
    );
    assert!(r.failures >= 1);
    // Each connection got the REQs once, and once more after the AUTH wait: two bursts, never
    // the repair-every-65-s loop of before (the connection is closed instead).
    let conns = seen.lock().unwrap().clone();
    assert!(conns.len() >= 2, "reconnected after the backoff");
    for (i, reqs) in conns.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
        let bursts = 1 + reqs
            .windows(2)
            .filter(|w| w[1].duration_since(w[0]) > Duration::from_secs(1))
            .count();
        assert!(
            bursts <= 2,
            "connection {i}: {} REQs in {bursts} bursts",
            reqs.len()
        );
    }
    handle.shutdown().await.unwrap();
}
