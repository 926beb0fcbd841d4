//! The WebSocket transport handed to nostr-sdk: the stock one with `TCP_NODELAY` set, dialing
//! through [`Dialer`] (the open-network rules, docs/spec.md §13: the host is resolved once,
//! checked, and the socket opened to the checked address) and with a bounded message size.
//!
//! async-wsocket never disables Nagle's algorithm, so every "write after an unanswered write"
//! (a REQ after a CLOSE, a second NEG-MSG) waits ~40 ms for the peer's delayed ACK
//! (measured with nostr-sdk 0.44 on loopback). tokio-tungstenite can dial with `disable_nagle`; the resulting stream is
//! wrapped in `async_wsocket::WebSocket::Tokio` exactly as the stock transport does.
//! Proxy and Tor connection modes are not supported by this transport (direct dialing only).
//!
//! The transport also counts the `EVENT` frames each relay sends ([`FrameCounts`]): nostr-sdk
//! drops events with an invalid id or signature (and oversized ones) before anything reaches
//! the runtime, so "frames on the wire" minus "events delivered" is what the SDK's checks
//! dropped. Counting is a prefix check per text frame; nothing is parsed twice.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_wsocket::futures_util::stream::SplitSink;
use async_wsocket::futures_util::{Sink, SinkExt, StreamExt, TryStreamExt};
use async_wsocket::{ConnectionMode, Message, WebSocket};
use nostr::util::BoxedFuture;
use nostr::Url;
use nostr_sdk::pool::transport::error::TransportError;
use nostr_sdk::pool::transport::websocket::{WebSocketSink, WebSocketStream, WebSocketTransport};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::Connector;

use crate::dial::{DialError, Dialer};

/// `EVENT` frames received per relay (canonical URL), over the life of the process.
#[derive(Debug, Default)]
pub(crate) struct FrameCounts {
    /// Invariant: one counter per relay ever dialled (bounded by the relays the core tracks).
    by_relay: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl FrameCounts {
    fn counter(&self, url: &Url) -> Arc<AtomicU64> {
        let key = sync_core::RelayUrl::parse(url.as_str())
            .map_or_else(|| url.to_string(), |u| u.as_str().to_string());
        let mut map = self
            .by_relay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(key).or_default().clone()
    }

    /// Forgets the counts of relays not in `tracked` (bounded memory; a relay that is dialled
    /// again starts from zero).
    pub(crate) fn retain(&self, tracked: &std::collections::BTreeSet<String>) {
        let mut map = self
            .by_relay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|url, _| tracked.contains(url));
    }

    /// `(relay, frames)` for every relay, in URL order.
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        let map = self
            .by_relay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter()
            .map(|(url, n)| (url.clone(), n.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Whether a text frame is a relay's `EVENT` message.
fn is_event_frame(text: &str) -> bool {
    let t = text.trim_start();
    t.strip_prefix('[')
        .is_some_and(|rest| rest.trim_start().starts_with("\"EVENT\""))
}

/// Dials relays directly with `TCP_NODELAY` on, counting `EVENT` frames (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct NoDelayTransport {
    /// Shared with the metrics.
    frames: Arc<FrameCounts>,
    /// Resolves, checks and connects (shared with the executor, which reports refusals).
    dialer: Arc<Dialer>,
    /// Largest WebSocket message or frame accepted; a larger one ends the connection.
    /// `None` keeps tungstenite's default.
    max_message_bytes: Option<usize>,
}

impl NoDelayTransport {
    /// A transport whose frame counts are read through `frames`, dialing through `dialer`,
    /// accepting messages up to `max_message_bytes`.
    pub(crate) fn new(
        frames: Arc<FrameCounts>,
        dialer: Arc<Dialer>,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            frames,
            dialer,
            max_message_bytes: Some(max_message_bytes),
        }
    }

    /// A transport with the open-network rules lifted (any address may be dialled): for
    /// benchmarks and tests whose relays are on loopback. [`NoDelayTransport::default`] keeps
    /// the rules (docs/spec.md §13).
    #[must_use]
    pub fn allowing_private_targets() -> Self {
        Self {
            dialer: Dialer::new(true, []),
            ..Self::default()
        }
    }

    /// Resolves, checks and connects `url`; a refusal is noted for the executor.
    async fn dial(&self, url: &Url, timeout: Duration) -> Result<TcpStream, TransportError> {
        let relay = sync_core::RelayUrl::parse(url.as_str())
            .ok_or_else(|| TransportError::backend(BadUrl(url.to_string())))?;
        self.dialer
            .connect(relay.host(), relay.port(), timeout)
            .await
            .map_err(|e| {
                if let DialError::Refused { class, .. } = &e {
                    self.dialer.note_refusal(relay.as_str(), *class);
                }
                TransportError::backend(e)
            })
    }
}

/// A URL the SDK handed us that is not a relay URL.
#[derive(Debug)]
struct BadUrl(String);

impl std::fmt::Display for BadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid relay URL {}", self.0)
    }
}

impl std::error::Error for BadUrl {}

impl WebSocketTransport for NoDelayTransport {
    fn support_ping(&self) -> bool {
        true
    }

    fn connect<'a>(
        &'a self,
        url: &'a Url,
        _mode: &'a ConnectionMode,
        timeout: Duration,
    ) -> BoxedFuture<'a, Result<(WebSocketSink, WebSocketStream), TransportError>> {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let tcp = self.dial(url, timeout).await?;
            let config = self.max_message_bytes.map(|max| {
                WebSocketConfig::default()
                    .max_message_size(Some(max))
                    .max_frame_size(Some(max))
            });
            let connector = Connector::Rustls(crate::dial::tls_config());
            let handshake = tokio_tungstenite::client_async_tls_with_config(
                url.as_str(),
                tcp,
                config,
                Some(connector),
            );
            let left = timeout.saturating_sub(started.elapsed());
            let (stream, _response) = tokio::time::timeout(left, handshake)
                .await
                .map_err(|_| TransportError::backend(TimedOut))?
                .map_err(TransportError::backend)?;
            let (tx, rx) = WebSocket::Tokio(stream).split();
            let sink: WebSocketSink = Box::new(NoDelaySink(tx));
            let frames = self.frames.counter(url);
            let counted = rx.inspect(move |m| {
                if let Ok(Message::Text(text)) = m {
                    if is_event_frame(text) {
                        frames.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            let stream: WebSocketStream = Box::pin(counted.map_err(TransportError::backend));
            Ok((sink, stream))
        })
    }
}

/// The dial did not finish within the SDK's connection timeout.
#[derive(Debug)]
struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection timeout")
    }
}

impl std::error::Error for TimedOut {}

/// Maps the socket's errors into the SDK's (not with `sink_map_err`, which can panic:
/// rust-nostr issue 984).
struct NoDelaySink(SplitSink<WebSocket, Message>);

impl Sink<Message> for NoDelaySink {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0)
            .poll_ready_unpin(cx)
            .map_err(TransportError::backend)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        Pin::new(&mut self.0)
            .start_send_unpin(item)
            .map_err(TransportError::backend)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0)
            .poll_flush_unpin(cx)
            .map_err(TransportError::backend)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0)
            .poll_close_unpin(cx)
            .map_err(TransportError::backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_frames_are_recognised_by_their_prefix() {
        assert!(is_event_frame(r#"["EVENT","sub",{"id":"x"}]"#));
        assert!(is_event_frame(r#"  [ "EVENT" ,"sub",{}]"#));
        assert!(!is_event_frame(r#"["EOSE","sub"]"#));
        assert!(!is_event_frame(r#"["NOTICE","EVENT"]"#));
        assert!(!is_event_frame("garbage"));
    }

    #[test]
    fn counts_are_kept_per_canonical_relay() {
        let counts = FrameCounts::default();
        let a = counts.counter(&Url::parse("WS://127.0.0.1:7000/").unwrap());
        a.fetch_add(2, Ordering::Relaxed);
        let again = counts.counter(&Url::parse("ws://127.0.0.1:7000").unwrap());
        again.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            counts.snapshot(),
            vec![("ws://127.0.0.1:7000".to_string(), 3)]
        );
    }
}
