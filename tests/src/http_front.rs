//! A TCP front for a relay on 127.0.0.1 that answers its NIP-11 requests itself (a plain GET with
//! `Accept: application/nostr+json`) and pipes everything else, the WebSocket upgrade and the
//! session, to the relay: for tests that need a relay with a given NIP-11 document or a NIP-11
//! redirect.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest request head the front reads before giving up on a connection.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Starts a front for the relay on `upstream_port` that answers NIP-11 requests with `response`
/// (a whole HTTP/1.1 response); returns the front's `ws://` URL.
pub async fn start(upstream_port: u16, response: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the front");
    let port = listener.local_addr().expect("front address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(serve(client, upstream_port, response.clone()));
        }
    });
    format!("ws://127.0.0.1:{port}")
}

/// A `200` response carrying `document` as `application/nostr+json`.
#[must_use]
pub fn document(document: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/nostr+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{document}",
        document.len()
    )
}

/// A `302` response to `location`.
#[must_use]
pub fn redirect(location: &str) -> String {
    format!(
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

async fn serve(mut client: tokio::net::TcpStream, upstream_port: u16, response: String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
        if client.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if text.contains("application/nostr+json") && !text.contains("upgrade: websocket") {
        let _closed = client.write_all(response.as_bytes()).await;
        return;
    }
    let Ok(mut relay) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    if relay.write_all(&head).await.is_ok() {
        let _closed = tokio::io::copy_bidirectional(&mut client, &mut relay).await;
    }
}
