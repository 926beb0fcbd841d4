//! The WebSocket transport handed to nostr-sdk: the stock one with `TCP_NODELAY` set.
//!
//! async-wsocket never disables Nagle's algorithm, so every "write after an unanswered write"
//! (a REQ after a CLOSE, a second NEG-MSG) waits ~40 ms for the peer's delayed ACK
//! (findings note G2). tokio-tungstenite can dial with `disable_nagle`; the resulting stream is
//! wrapped in `async_wsocket::WebSocket::Tokio` exactly as the stock transport does.
//! Proxy and Tor connection modes are not supported by this transport (direct dialing only).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_wsocket::futures_util::stream::SplitSink;
use async_wsocket::futures_util::{Sink, SinkExt, StreamExt, TryStreamExt};
use async_wsocket::{ConnectionMode, Message, WebSocket};
use nostr::util::BoxedFuture;
use nostr::Url;
use nostr_sdk::pool::transport::error::TransportError;
use nostr_sdk::pool::transport::websocket::{WebSocketSink, WebSocketStream, WebSocketTransport};

/// Dials relays directly with `TCP_NODELAY` on (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDelayTransport;

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
            let dial = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true);
            let (stream, _response) = tokio::time::timeout(timeout, dial)
                .await
                .map_err(|_| TransportError::backend(TimedOut))?
                .map_err(TransportError::backend)?;
            let (tx, rx) = WebSocket::Tokio(stream).split();
            let sink: WebSocketSink = Box::new(NoDelaySink(tx));
            let stream: WebSocketStream = Box::pin(rx.map_err(TransportError::backend));
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
