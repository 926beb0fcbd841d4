//! A TCP front for a [`LocalRelay`]: our own listener (with `TCP_NODELAY`, which
//! nostr-relay-builder's listener does not set, costing ~40 ms per request/response round on
//! loopback), HTTP/1.1 by hyper with its upgrade API for the WebSocket handshake, then
//! [`LocalRelay::take_connection`] on the upgraded connection.
//!
//! It also makes stopping deterministic: [`RelayFront::stop`] aborts the accept loop and every
//! connection task, so every client sees its TCP connection close at once
//! (`LocalRelay::shutdown` alone can miss sessions that are busy: it wakes only the tasks
//! waiting at that instant). A plain HTTP GET with `Accept: application/nostr+json` gets the NIP-11 document.
//! The `grasp-sync` binary serves its own relay through this front too, guarded
//! ([`RelayFront::start_guarded`], `client_guard.rs`): client messages are checked before the
//! relay sees them and the number of connections is capped (HTTP 503 past it).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use nostr_relay_builder::LocalRelay;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::client_guard::ClientGuard;

/// Largest HTTP request head accepted before the upgrade.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// A client that has not finished its request head by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running front. Dropping it without [`RelayFront::stop`] also stops it.
#[derive(Debug)]
pub struct RelayFront {
    /// The address the listener is bound to.
    addr: SocketAddr,
    /// The accept loop; it owns every connection task (aborted with it). `None` once stopped.
    accept: Option<JoinHandle<()>>,
}

impl RelayFront {
    /// Serves `relay` on `listener` (already bound, so "address in use" is the caller's error).
    /// `nip11` is the JSON document answered to `Accept: application/nostr+json`.
    pub fn start(relay: LocalRelay, listener: TcpListener, nip11: Option<String>) -> Self {
        Self::spawn(relay, listener, nip11, None)
    }

    /// Like [`RelayFront::start`], but every client connection goes through `guard`: messages
    /// are checked before the relay sees them (a refused one gets a NOTICE, the connection
    /// stays), and connections past the guard's limit are answered HTTP 503.
    pub fn start_guarded(
        relay: LocalRelay,
        listener: TcpListener,
        nip11: Option<String>,
        guard: ClientGuard,
    ) -> Self {
        Self::spawn(relay, listener, nip11, Some(guard))
    }

    /// Spawns the accept loop.
    fn spawn(
        relay: LocalRelay,
        listener: TcpListener,
        nip11: Option<String>,
        guard: Option<ClientGuard>,
    ) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let front = Front {
            relay,
            nip11,
            guard,
        };
        let accept = tokio::spawn(accept_loop(front, listener));
        Self {
            addr,
            accept: Some(accept),
        }
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `ws://` URL of the bound address.
    #[must_use]
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Closes the listener and every connection now.
    pub async fn stop(mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            // The join error is the cancellation we asked for.
            let _aborted = accept.await;
        }
    }
}

impl Drop for RelayFront {
    fn drop(&mut self) {
        if let Some(accept) = &self.accept {
            accept.abort();
        }
    }
}

/// What every connection task needs.
#[derive(Clone)]
struct Front {
    /// The relay the connections are handed to.
    relay: LocalRelay,
    /// The NIP-11 document, if any.
    nip11: Option<String>,
    /// The client guard; `None` hands connections to the relay directly.
    guard: Option<ClientGuard>,
}

/// Accepts connections until aborted; reaps finished connection tasks so the set stays
/// bounded by the live connections.
async fn accept_loop(front: Front, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let front = front.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_connection(front, stream, peer).await {
                            tracing::debug!(%peer, error = %e, "relay connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// An accepted upgrade, waiting for hyper to hand over the connection.
struct Upgrade {
    /// Resolves to the connection once the `101` is written.
    on_upgrade: OnUpgrade,
    /// The guard and the slot it admitted the client with; `None` when unguarded.
    guarded: Option<(ClientGuard, OwnedSemaphorePermit)>,
}

/// The upgrade a connection's request accepted, if any (at most one request per connection).
type PendingUpgrade = Arc<Mutex<Option<Upgrade>>>;

/// Serves one connection's HTTP request (a WebSocket upgrade or a plain GET); an upgraded
/// connection is then handed to the guard or the relay, in this same task.
async fn serve_connection(
    front: Front,
    stream: TcpStream,
    peer: SocketAddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    stream.set_nodelay(true)?;
    let pending = PendingUpgrade::default();
    let service = {
        let (front, pending) = (front.clone(), pending.clone());
        hyper::service::service_fn(move |request| {
            let response = answer(&front, request, &pending);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .title_case_headers(true)
        .auto_date_header(false)
        .max_header_size(MAX_HEAD_BYTES)
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await?;
    let upgrade = pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some(upgrade) = upgrade else {
        return Ok(());
    };
    let io = TokioIo::new(upgrade.on_upgrade.await?);
    match upgrade.guarded {
        Some((guard, slot)) => guard.serve(front.relay, io, peer, slot).await,
        None => front
            .relay
            .take_connection(io, peer)
            .await
            .map_err(|e| e.to_string())?,
    }
    Ok(())
}

/// The response to one request: `101` for a WebSocket upgrade (noted in `pending`), `503`
/// past the guard's connection limit, the NIP-11 document or a short text otherwise.
fn answer<B>(
    front: &Front,
    mut request: Request<B>,
    pending: &PendingUpgrade,
) -> Response<Full<Bytes>> {
    let wants = Wants::of(request.headers());
    if let Some(key) = wants.websocket_key {
        // A guarded front admits at most `max_connections` clients.
        let guarded = match &front.guard {
            Some(guard) => match guard.admit() {
                Some(slot) => Some((guard.clone(), slot)),
                None => {
                    let busy = "Too many connections: try again later.\n";
                    return plain(StatusCode::SERVICE_UNAVAILABLE, "text/plain", busy.into());
                }
            },
            None => None,
        };
        let on_upgrade = hyper::upgrade::on(&mut request);
        *pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Upgrade {
            on_upgrade,
            guarded,
        });
        return switching_protocols(&key);
    }
    match &front.nip11 {
        Some(doc) if wants.nip11 => plain(StatusCode::OK, "application/nostr+json", doc.clone()),
        _ => {
            let text = "This is a nostr relay: connect with a WebSocket client.\n";
            plain(StatusCode::OK, "text/plain; charset=utf-8", text.into())
        }
    }
}

/// The `101` answer to a WebSocket upgrade with key `key`.
fn switching_protocols(key: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let accept = derive_accept_key(key.as_bytes());
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// A plain HTTP answer, after which the connection closes.
fn plain(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// What the front needs from a request's headers.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wants {
    /// `Sec-WebSocket-Key` when the request asks for a WebSocket upgrade.
    websocket_key: Option<String>,
    /// True when `Accept` names `application/nostr+json` (NIP-11).
    nip11: bool,
}

impl Wants {
    /// The upgrade needs `Upgrade: websocket` (any case) and a key.
    fn of(headers: &HeaderMap) -> Self {
        let value = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let upgrade =
            value(header::UPGRADE).is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
        Self {
            websocket_key: value(header::SEC_WEBSOCKET_KEY)
                .filter(|_| upgrade)
                .map(|k| k.trim().to_string()),
            nip11: value(header::ACCEPT).is_some_and(|v| v.contains("application/nostr+json")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants(headers: &[(&'static str, &'static str)]) -> Wants {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        Wants::of(&map)
    }

    #[test]
    fn upgrade_and_nip11_requests() {
        let up = wants(&[("upgrade", "WebSocket"), ("sec-websocket-key", "abc==")]);
        assert_eq!(up.websocket_key.as_deref(), Some("abc=="));
        let no_upgrade = wants(&[("sec-websocket-key", "abc")]);
        assert_eq!(no_upgrade.websocket_key, None);
        let info = wants(&[("accept", "application/nostr+json")]);
        assert!(info.nip11);
        assert_eq!(wants(&[]), Wants::default());
    }

    /// Sends `request` on a new connection and reads until the front closes it or `until`
    /// appears.
    async fn exchange(addr: SocketAddr, request: &str, until: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&out).contains(until) {
            match stream.read(&mut chunk).await.expect("read") {
                0 => break,
                n => out.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn nip11_plain_text_and_the_upgrade_on_the_wire() {
        let relay = LocalRelay::new(nostr_relay_builder::RelayBuilder::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let front = RelayFront::start(relay, listener, Some(r#"{"name":"x"}"#.into()));
        let addr = front.local_addr();
        let info = "GET / HTTP/1.1\r\nHost: x\r\nAccept: application/nostr+json\r\n\r\n";
        let nip11 = exchange(addr, info, "\u{0}").await;
        assert!(nip11.starts_with("HTTP/1.1 200 OK\r\n"), "{nip11}");
        for header in [
            "Content-Type: application/nostr+json\r\n",
            "Access-Control-Allow-Origin: *\r\n",
            "Connection: close\r\n",
            "Content-Length: 12\r\n",
        ] {
            assert!(nip11.contains(header), "{header} missing: {nip11}");
        }
        assert!(nip11.ends_with("\r\n\r\n{\"name\":\"x\"}"), "{nip11}");
        let plain = exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\u{0}").await;
        assert!(plain.contains("text/plain"), "{plain}");
        let upgrade = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let switched = exchange(addr, upgrade, "\r\n\r\n").await;
        assert!(switched.starts_with("HTTP/1.1 101 "), "{switched}");
        // RFC 6455's example key and answer.
        let lower = switched.to_ascii_lowercase();
        assert!(
            lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
            "{switched}"
        );
        assert!(lower.contains("upgrade: websocket\r\n"), "{switched}");
        front.stop().await;
    }
}
