//! A TCP front for a [`LocalRelay`]: our own listener (with `TCP_NODELAY`, which
//! nostr-relay-builder's listener does not set, costing ~40 ms per request/response round on
//! loopback), a hand-made WebSocket upgrade, then [`LocalRelay::take_connection`].
//!
//! It also makes stopping deterministic: [`RelayFront::stop`] aborts the accept loop and every
//! connection task, so every client sees its TCP connection close at once
//! (`LocalRelay::shutdown` alone can miss sessions that are busy, see the nostr-sdk findings,
//! G9). A plain HTTP GET with `Accept: application/nostr+json` gets the NIP-11 document.
//! The `grasp-sync` binary serves its own relay through this front too, guarded
//! ([`RelayFront::start_guarded`], `client_guard.rs`): client messages are checked before the
//! relay sees them and the number of connections is capped (HTTP 503 past it).

use std::net::SocketAddr;
use std::time::Duration;

use nostr_relay_builder::LocalRelay;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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

/// Upgrades one connection (or answers its plain HTTP request) and hands it to the relay.
async fn serve_connection(
    front: Front,
    mut stream: TcpStream,
    peer: SocketAddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    stream.set_nodelay(true)?;
    let head = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_head(&mut stream)).await??;
    let request = Request::parse(&head);
    if let Some(key) = request.websocket_key {
        // A guarded front admits at most `max_connections` clients.
        let guarded = match &front.guard {
            Some(guard) => match guard.admit() {
                Some(slot) => Some((guard.clone(), slot)),
                None => {
                    let busy = "Too many connections: try again later.\n";
                    return respond(stream, "503 Service Unavailable", "text/plain", busy).await;
                }
            },
            None => None,
        };
        let accept = derive_accept_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        stream.write_all(response.as_bytes()).await?;
        match guarded {
            Some((guard, slot)) => guard.serve(front.relay, stream, peer, slot).await,
            None => front
                .relay
                .take_connection(stream, peer)
                .await
                .map_err(|e| e.to_string())?,
        }
        return Ok(());
    }
    match front.nip11 {
        Some(doc) if request.wants_nip11 => {
            respond(stream, "200 OK", "application/nostr+json", &doc).await
        }
        _ => {
            let text = "This is a nostr relay: connect with a WebSocket client.\n";
            respond(stream, "200 OK", "text/plain; charset=utf-8", text).await
        }
    }
}

/// Answers a plain HTTP request and closes the connection.
async fn respond(
    mut stream: TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Reads the request head byte by byte (so no WebSocket byte after it is consumed), at most
/// [`MAX_HEAD_BYTES`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD_BYTES {
            return Err(std::io::Error::other("request head too large"));
        }
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::Error::other(
                "connection closed during the handshake",
            ));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// What the front needs from a request head.
#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    /// `Sec-WebSocket-Key` when the request asks for a WebSocket upgrade.
    websocket_key: Option<String>,
    /// True when `Accept` names `application/nostr+json` (NIP-11).
    wants_nip11: bool,
}

impl Request {
    /// Header names are case-insensitive; the upgrade needs `Upgrade: websocket` and a key.
    fn parse(head: &str) -> Self {
        let mut upgrade = false;
        let mut key = None;
        let mut wants_nip11 = false;
        for line in head.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "upgrade" => upgrade = value.eq_ignore_ascii_case("websocket"),
                "sec-websocket-key" => key = Some(value.to_string()),
                "accept" => wants_nip11 = value.contains("application/nostr+json"),
                _ => {}
            }
        }
        Self {
            websocket_key: key.filter(|_| upgrade),
            wants_nip11,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upgrade_and_nip11_requests() {
        let up = Request::parse(
            "GET / HTTP/1.1\r\nHost: x\r\nUPGRADE: WebSocket\r\nsec-websocket-key: abc==\r\n\r\n",
        );
        assert_eq!(up.websocket_key.as_deref(), Some("abc=="));
        let no_upgrade = Request::parse("GET / HTTP/1.1\r\nSec-WebSocket-Key: abc\r\n\r\n");
        assert_eq!(no_upgrade.websocket_key, None);
        let info = Request::parse("GET / HTTP/1.1\r\nAccept: application/nostr+json\r\n\r\n");
        assert!(info.wants_nip11);
    }

    proptest::proptest! {
        /// Any bytes a client sends parse without panicking, and a key is only ever taken
        /// from a head that asks for the upgrade.
        #[test]
        fn any_head_parses_and_keys_need_an_upgrade(head in "(?s).{0,400}") {
            let request = Request::parse(&head);
            if request.websocket_key.is_some() {
                proptest::prop_assert!(head.to_ascii_lowercase().contains("websocket"));
            }
        }
    }
}
