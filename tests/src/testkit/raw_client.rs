//! [`RawClient`]: a bare WebSocket client for tests that must see frames exactly as a relay
//! sends them (nostr-sdk would parse, verify and drop what the test wants to look at).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// One raw connection.
#[derive(Debug)]
pub struct RawClient {
    /// The connection; invariant: opened by [`RawClient::connect`].
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl RawClient {
    /// Connects to `url`.
    ///
    /// # Errors
    /// The WebSocket handshake's error.
    pub async fn connect(url: &str) -> Result<Self, tungstenite::Error> {
        let (ws, _response) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self { ws })
    }

    /// Sends one text frame.
    ///
    /// # Errors
    /// The connection's error.
    pub async fn send(&mut self, text: &str) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::text(text)).await
    }

    /// The next data frame, or `None` if none arrives within `timeout` or the connection ends.
    pub async fn next_message(&mut self, timeout: Duration) -> Option<Message> {
        loop {
            match tokio::time::timeout(timeout, self.ws.next()).await {
                Ok(Some(Ok(message @ (Message::Text(_) | Message::Binary(_))))) => {
                    return Some(message)
                }
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return None,
                Ok(Some(Ok(_control))) => {}
            }
        }
    }

    /// The next text frame (binary frames are skipped), or `None` as [`RawClient::next_message`].
    pub async fn next_text(&mut self, timeout: Duration) -> Option<String> {
        loop {
            match self.next_message(timeout).await? {
                Message::Text(text) => return Some(text.as_str().to_string()),
                _binary => {}
            }
        }
    }

    /// Every data frame until one equals `["EOSE","<sub>"]` (included) or `quiet` passes with
    /// nothing; returns the frames and whether the EOSE came.
    pub async fn until_eose(&mut self, sub: &str, quiet: Duration) -> (Vec<Message>, bool) {
        let eose = serde_json::json!(["EOSE", sub]).to_string();
        let mut frames = Vec::new();
        while let Some(message) = self.next_message(quiet).await {
            let done = matches!(&message, Message::Text(t) if t.as_str() == eose);
            frames.push(message);
            if done {
                return (frames, true);
            }
        }
        (frames, false)
    }

    /// Whether the server closes the connection within `timeout` (data frames are discarded).
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_elapsed) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}
