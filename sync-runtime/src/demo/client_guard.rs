//! The relay's own clients, guarded: every client WebSocket ends here, not in the
//! `LocalRelay`. Each text message is checked first (`client_message.rs`); a refused one is
//! answered with a NOTICE and the connection stays open, other clients never notice. Valid
//! messages go to the relay over an in-memory WebSocket (`tokio::io::duplex`, our side a
//! client-role stream, the relay's side handed to [`LocalRelay::take_connection`]), and the
//! relay's answers come back the same way.
//!
//! ```text
//! client ──ws──> inbound: size, parse ──duplex ws──> LocalRelay session
//!        <──ws── writer <── queue <── outbound <──duplex ws──┘
//!                              ^── NOTICEs of refused messages
//! ```
//!
//! A message over the limit is read whole before it can be refused (WebSocket has no way to
//! skip one), so tungstenite itself stops at [`ClientLimits::hard_cap`] (4x the limit): a
//! message past that closes the connection with code 1009 (message too big). A text message
//! that is not UTF-8 closes it with 1007, as RFC 6455 requires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use nostr_relay_builder::LocalRelay;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::client_limits::{ClientLimits, ClientMetrics};
use super::client_message::{self, Reason, Refusal};

/// A client connection after the front's HTTP upgrade.
pub(crate) type ClientIo = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// Read buffer of each of the guard's two WebSocket streams (tungstenite allocates it up
/// front; its default, 128 KiB, would triple the memory of an idle connection).
const READ_BUFFER_BYTES: usize = 32 * 1024;
/// Bytes buffered in each direction between the guard and the relay session.
const DUPLEX_BYTES: usize = 64 * 1024;
/// Messages queued for one client (relay answers and NOTICEs) before the producers wait.
const OUT_QUEUE: usize = 64;
/// How long the guard waits to close the relay session cleanly once the client is gone.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a connection closed for an oversized message is drained before it is dropped.
const LINGER: Duration = Duration::from_secs(2);

/// What a guarded front applies to each client connection. Cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct ClientGuard {
    /// The limits; invariant: within the bounds documented on each field.
    limits: ClientLimits,
    /// Refusal counters; `None` when the host exports no metrics.
    metrics: Option<ClientMetrics>,
    /// One permit per open client connection, `limits.max_connections` in all.
    slots: Arc<Semaphore>,
}

impl ClientGuard {
    /// A guard with these limits (give the same ones to the relay with
    /// [`ClientLimits::apply`]).
    #[must_use]
    pub fn new(limits: ClientLimits, metrics: Option<ClientMetrics>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            metrics,
        }
    }

    /// The limits.
    #[must_use]
    pub fn limits(&self) -> &ClientLimits {
        &self.limits
    }

    /// A connection slot, or `None` (counted) when `max_connections` are open.
    pub(crate) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.slots.clone().try_acquire_owned().ok();
        if permit.is_none() {
            if let Some(metrics) = &self.metrics {
                metrics.connection_refused();
            }
        }
        permit
    }

    /// Serves one upgraded client connection until either side ends it. `slot` is released
    /// only once the relay's session has ended too, so the relay never sees more sessions
    /// than the guard admitted.
    pub(crate) async fn serve(
        &self,
        relay: LocalRelay,
        stream: ClientIo,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
    ) {
        let hard_cap = Some(self.limits.hard_cap());
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(hard_cap)
            .max_frame_size(hard_cap);
        let client = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
        let (ours, theirs) = tokio::io::duplex(DUPLEX_BYTES);
        let trusted = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(None)
            .max_frame_size(None);
        let upstream = WebSocketStream::from_raw_socket(ours, Role::Client, Some(trusted)).await;
        let session = async {
            if let Err(e) = relay.take_connection(theirs, peer).await {
                tracing::debug!(%peer, error = %e, "relay session ended with an error");
            }
        };
        tokio::join!(session, self.pump(client, upstream));
        drop(slot);
    }

    /// Runs both directions until the client or the relay is gone, then closes the relay
    /// session cleanly if it still listens.
    async fn pump(
        &self,
        client: WebSocketStream<ClientIo>,
        upstream: WebSocketStream<DuplexStream>,
    ) {
        let (mut client_tx, mut client_rx) = client.split();
        let (mut relay_tx, relay_rx) = upstream.split();
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let oversized = tokio::select! {
            frame = self.inbound(&mut client_rx, &mut relay_tx, out.clone()) => frame,
            () = write_client(&mut client_tx, out_rx) => None,
            // Ends by queueing a Close, after which the writer ends.
            () = async { outbound(relay_rx, out).await; std::future::pending().await } => None,
        };
        if let Some(frame) = oversized {
            close_lingering(client_tx, client_rx, frame).await;
        }
        let _closed = tokio::time::timeout(CLOSE_GRACE, relay_tx.close()).await;
    }

    /// Client to relay: valid text goes on, everything refused is answered through `out`.
    /// Returns the Close frame to send when the client sent a message that ends the
    /// connection (past the hard cap, or text that is not UTF-8).
    async fn inbound(
        &self,
        client_rx: &mut SplitStream<WebSocketStream<ClientIo>>,
        relay_tx: &mut SplitSink<WebSocketStream<DuplexStream>, Message>,
        out: mpsc::Sender<Message>,
    ) -> Option<CloseFrame> {
        // Pings, pongs and the client's Close are answered by tungstenite; the stream ends
        // after a Close.
        while let Some(next) = client_rx.next().await {
            let refusal = match next {
                Ok(Message::Text(text)) => {
                    match client_message::check(text.as_str(), self.limits.max_message_bytes) {
                        Ok(()) if relay_tx.send(Message::Text(text)).await.is_ok() => continue,
                        Ok(()) => return None,
                        Err(refusal) => refusal,
                    }
                }
                Ok(Message::Binary(_)) => Refusal::binary(),
                Ok(_) => continue,
                Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                    self.count(Reason::TooLarge);
                    let reason = format!("message too large ({size} bytes, max {max_size})");
                    return Some(close_frame(CloseCode::Size, reason));
                }
                Err(WsError::Utf8) => {
                    // RFC 6455 §8.1: a text message that is not UTF-8 fails the connection.
                    self.count(Reason::Malformed);
                    return Some(close_frame(CloseCode::Invalid, "text is not UTF-8".into()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "client connection failed");
                    return None;
                }
            };
            self.count(refusal.reason);
            for reply in refusal.replies {
                if out.send(Message::text(reply)).await.is_err() {
                    return None;
                }
            }
        }
        None
    }

    /// Counts one refused message.
    fn count(&self, reason: Reason) {
        if let Some(metrics) = &self.metrics {
            metrics.message_refused(reason);
        }
    }
}

/// Relay to client: every text message is queued; when the session ends, a Close is.
async fn outbound(
    mut relay_rx: SplitStream<WebSocketStream<DuplexStream>>,
    out: mpsc::Sender<Message>,
) {
    while let Some(Ok(message)) = relay_rx.next().await {
        if message.is_close() {
            break;
        }
        let data = message.is_text() || message.is_binary();
        if data && out.send(message).await.is_err() {
            return;
        }
    }
    let frame = close_frame(CloseCode::Away, "relay session ended".into());
    let _queued = out.send(Message::Close(Some(frame))).await;
}

/// Writes the queue to the client, flushing once per burst; ends after writing a Close, when
/// the client cannot be written to, or when every producer is gone.
async fn write_client(
    client_tx: &mut SplitSink<WebSocketStream<ClientIo>, Message>,
    mut queue: mpsc::Receiver<Message>,
) {
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            let closing = message.is_close();
            if client_tx.feed(message).await.is_err() {
                return;
            }
            if closing {
                let _flushed = client_tx.flush().await;
                return;
            }
            next = queue.try_recv().ok();
        }
        if client_tx.flush().await.is_err() {
            return;
        }
    }
    let _closed = client_tx.close().await;
}

/// A Close frame.
fn close_frame(code: CloseCode, reason: String) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Sends `frame`, then half-closes and reads away what the client still sends (for at most
/// [`LINGER`]): closing a socket with unread input resets it, and the reset could reach the
/// client before the Close frame does.
async fn close_lingering(
    mut client_tx: SplitSink<WebSocketStream<ClientIo>, Message>,
    client_rx: SplitStream<WebSocketStream<ClientIo>>,
    frame: CloseFrame,
) {
    let _lingered = tokio::time::timeout(LINGER, async {
        if client_tx.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        let Ok(mut ws) = client_rx.reunite(client_tx) else {
            return;
        };
        let io = ws.get_mut();
        let _shut = io.shutdown().await;
        let mut discard = vec![0u8; 16 * 1024];
        while matches!(io.read(&mut discard).await, Ok(n) if n > 0) {}
    })
    .await;
}
