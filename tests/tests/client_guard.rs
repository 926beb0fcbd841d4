//! The relay's own clients through a guarded `RelayFront`: a real `LocalRelay` on loopback,
//! real WebSocket clients (tokio-tungstenite). A malformed, binary or oversized message is
//! answered with a NOTICE and the connection stays usable; other clients never notice; the
//! subscription and connection limits hold; refusals are counted.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nostr::{ClientMessage, EventBuilder, JsonUtil, Keys};
use nostr_database::{MemoryDatabase, MemoryDatabaseOptions};
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use serde_json::Value;
use sync_runtime::demo::{ClientGuard, ClientLimits, ClientMetrics, RelayFront};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use grasp_sync_tests::json_ws::{connect, next_json, Ws};

/// A guarded relay on loopback with its metrics registry.
struct Guarded {
    front: RelayFront,
    registry: prometheus::Registry,
    _relay: LocalRelay,
}

async fn guarded(limits: ClientLimits) -> Guarded {
    let db = Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
        events: true,
        max_events: None,
    }));
    let relay = LocalRelay::new(limits.apply(RelayBuilder::default().database(db)));
    let registry = prometheus::Registry::new();
    let metrics = ClientMetrics::register(&registry).expect("register");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let guard = ClientGuard::new(limits, Some(metrics));
    let front = RelayFront::start_guarded(relay.clone(), listener, None, guard);
    Guarded {
        front,
        registry,
        _relay: relay,
    }
}

fn small_limits() -> ClientLimits {
    ClientLimits {
        max_subscriptions: 2,
        events_per_minute: 100,
        max_message_bytes: 4096,
        max_connections: 8,
    }
}

async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

/// Sends a REQ for kind-1 events and returns every message up to its EOSE (excluded).
async fn req_until_eose(ws: &mut Ws, sub: &str) -> Vec<Value> {
    send(ws, &format!(r#"["REQ","{sub}",{{"kinds":[1]}}]"#)).await;
    let mut before = Vec::new();
    loop {
        let message = next_json(ws).await;
        if message[0] == "EOSE" && message[1] == sub {
            return before;
        }
        before.push(message);
    }
}

fn refused(registry: &prometheus::Registry, reason: &str) -> u64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encode");
    let series = format!("ngit_sync_client_messages_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.parse().expect("a number"))
}

fn assert_notice(message: &Value, needle: &str) {
    assert_eq!(message[0], "NOTICE", "{message}");
    let text = message[1].as_str().expect("text");
    assert!(text.starts_with("invalid: "), "{message}");
    assert!(text.contains(needle), "{needle:?} not in {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_get_notices_and_the_connection_keeps_working() {
    let node = guarded(small_limits()).await;
    let url = node.front.url();
    let mut other = connect(&url).await;
    assert!(req_until_eose(&mut other, "live").await.is_empty());
    let mut ws = connect(&url).await;

    send(&mut ws, "this is not JSON").await;
    assert_notice(&next_json(&mut ws).await, "malformed message");
    send(&mut ws, r#"["NEG-OPEN","n",{},"zz"]"#).await;
    assert_notice(&next_json(&mut ws).await, "negentropy");
    assert_eq!(next_json(&mut ws).await[0], "NEG-ERR");
    ws.send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    assert_notice(&next_json(&mut ws).await, "binary");
    let padding = "x".repeat(5000);
    send(
        &mut ws,
        &format!(r#"["REQ","big",{{"search":"{padding}"}}]"#),
    )
    .await;
    assert_notice(&next_json(&mut ws).await, "message too large");
    let closed = next_json(&mut ws).await;
    assert_eq!(closed[0], "CLOSED", "{closed}");
    assert_eq!(closed[1], "big");

    // The same connection still works: a valid REQ gets its EOSE, an event is stored.
    assert!(req_until_eose(&mut ws, "after").await.is_empty());
    let event = EventBuilder::text_note("still here")
        .sign_with_keys(&Keys::generate())
        .expect("sign");
    send(&mut ws, &ClientMessage::event(event.clone()).as_json()).await;
    let ok = next_json(&mut ws).await;
    assert_eq!(ok[0], "OK", "{ok}");
    assert_eq!(ok[2], true, "{ok}");

    // The other client was not disturbed and sees the event live.
    let live = next_json(&mut other).await;
    assert_eq!(live[0], "EVENT", "{live}");
    assert_eq!(live[2]["id"], event.id.to_hex());

    assert_eq!(refused(&node.registry, "malformed"), 2);
    assert_eq!(refused(&node.registry, "binary"), 1);
    assert_eq!(refused(&node.registry, "too_large"), 1);
}

/// The code of the Close frame the relay sends next (`None` if the connection ends without
/// one); panics after 5 s.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("closed within 5 s")
}

/// Sends a message past the hard cap on a fresh connection; returns the close code the
/// client reads.
async fn close_code_for_huge_message(url: &str, size: usize) -> Option<u16> {
    let mut ws = connect(url).await;
    // The relay may close before the whole message is written; that is the point.
    let _sent = ws.send(Message::text("y".repeat(size))).await;
    close_code(&mut ws).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_past_the_hard_cap_closes_only_its_connection_with_1009() {
    // Small, and the default (the client is still sending megabytes when the guard closes).
    for limits in [small_limits(), ClientLimits::default()] {
        let node = guarded(limits).await;
        let url = node.front.url();
        let mut other = connect(&url).await;
        let code = close_code_for_huge_message(&url, 2 * limits.hard_cap()).await;
        assert_eq!(code, Some(1009), "{limits:?}");
        assert!(req_until_eose(&mut other, "fine").await.is_empty());
        assert_eq!(refused(&node.registry, "too_large"), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_is_not_utf8_closes_only_its_connection_with_1007() {
    let node = guarded(small_limits()).await;
    let url = node.front.url();
    let mut other = connect(&url).await;
    let mut ws = connect(&url).await;
    let text = OpCode::Data(Data::Text);
    let frame = Frame::message(vec![b'[', 0xff, 0xfe, b']'], text, true);
    ws.send(Message::Frame(frame)).await.expect("send");
    assert_eq!(close_code(&mut ws).await, Some(1007));
    assert!(req_until_eose(&mut other, "fine").await.is_empty());
    assert_eq!(refused(&node.registry, "malformed"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_past_the_limit_is_closed_rate_limited() {
    let node = guarded(small_limits()).await;
    let mut ws = connect(&node.front.url()).await;
    for sub in ["one", "two"] {
        assert!(req_until_eose(&mut ws, sub).await.is_empty());
    }
    send(&mut ws, r#"["REQ","three",{"kinds":[1]}]"#).await;
    let closed = next_json(&mut ws).await;
    assert_eq!(closed[0], "CLOSED", "{closed}");
    assert_eq!(closed[1], "three");
    assert!(
        closed[2]
            .as_str()
            .unwrap_or("")
            .starts_with("rate-limited:"),
        "{closed}"
    );
    // Closing one frees a slot.
    send(&mut ws, r#"["CLOSE","one"]"#).await;
    assert!(req_until_eose(&mut ws, "three").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_http_503() {
    let limits = ClientLimits {
        max_connections: 1,
        ..small_limits()
    };
    let node = guarded(limits).await;
    let url = node.front.url();
    let mut first = connect(&url).await;
    let err = tokio_tungstenite::connect_async(&url)
        .await
        .expect_err("second connection refused");
    assert!(err.to_string().contains("503"), "{err}");
    assert!(req_until_eose(&mut first, "ok").await.is_empty());
    // Once the first leaves, a new client gets in.
    first.close(None).await.expect("close");
    drop(first);
    let mut admitted = None;
    for _ in 0..50 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await {
            admitted = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut again = admitted.expect("admitted after the first left");
    assert!(req_until_eose(&mut again, "ok").await.is_empty());
}
