//! [`NegProxy`]: a loopback WebSocket proxy that makes a NIP-77 relay look like one without
//! NIP-77. Everything is forwarded both ways except the negentropy messages (`NEG-OPEN`,
//! `NEG-MSG`, `NEG-CLOSE`), which never reach the relay and are answered per [`NegMode`].

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::server::{Server, ServerSocket};

/// NOTICE strfry sends for a command it does not know (its answer to NIP-77 when disabled).
pub const UNKNOWN_CMD_NOTICE: &str = "ERROR: bad msg: unknown cmd";
/// NEG-ERR reason sent in [`NegMode::NegErr`].
pub const NEG_DISABLED_REASON: &str = "blocked: negentropy disabled";

/// How the proxy answers negentropy messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NegMode {
    /// `["NOTICE", "ERROR: bad msg: unknown cmd"]` for every negentropy message (strfry).
    Notice,
    /// `["NEG-ERR", <sub>, "blocked: negentropy disabled"]` for `NEG-OPEN`; later messages of
    /// the same exchange are dropped.
    NegErr,
    /// No answer at all.
    Silent,
}

/// A running proxy. Stopping (or dropping) it closes every proxied connection.
#[derive(Debug)]
pub struct NegProxy {
    /// The listener and its sessions.
    server: Server,
    /// `NEG-OPEN` messages intercepted so far (monotonic).
    neg_opens: Arc<AtomicUsize>,
}

impl NegProxy {
    /// Starts a proxy on `127.0.0.1` in front of `upstream_url` (a `ws://` URL). Each client
    /// connection opens its own upstream connection; if that fails the client is disconnected.
    ///
    /// # Errors
    /// If no loopback port can be bound.
    pub async fn start(upstream_url: &str, mode: NegMode) -> io::Result<Self> {
        let upstream: Arc<str> = upstream_url.into();
        let neg_opens = Arc::new(AtomicUsize::new(0));
        let counter = neg_opens.clone();
        let server = Server::start(move |client| {
            proxy_session(client, upstream.clone(), mode, counter.clone())
        })
        .await?;
        Ok(Self { server, neg_opens })
    }

    /// The proxy's URL (`ws://127.0.0.1:<port>`).
    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// How many `NEG-OPEN`s the proxy intercepted.
    #[must_use]
    pub fn neg_opens(&self) -> usize {
        self.neg_opens.load(Ordering::Relaxed)
    }

    /// Closes the listener and every proxied connection. Idempotent.
    pub fn stop(&self) {
        self.server.stop();
    }
}

/// A negentropy message: its verb and subscription id.
fn negentropy_message(text: &str) -> Option<(String, String)> {
    if !text.contains("NEG-") {
        return None;
    }
    let value: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    let verb = value.first()?.as_str()?;
    if !verb.starts_with("NEG-") {
        return None;
    }
    let sub = value.get(1).and_then(|v| v.as_str()).unwrap_or_default();
    Some((verb.to_string(), sub.to_string()))
}

/// The proxy's answer to one intercepted negentropy message, if any.
fn answer(mode: NegMode, verb: &str, sub: &str) -> Option<String> {
    match (mode, verb) {
        (NegMode::Notice, _) => Some(serde_json::json!(["NOTICE", UNKNOWN_CMD_NOTICE]).to_string()),
        (NegMode::NegErr, "NEG-OPEN") => {
            Some(serde_json::json!(["NEG-ERR", sub, NEG_DISABLED_REASON]).to_string())
        }
        _ => None,
    }
}

/// Proxies one client connection until either side closes.
async fn proxy_session(
    mut client: ServerSocket,
    upstream_url: Arc<str>,
    mode: NegMode,
    neg_opens: Arc<AtomicUsize>,
) {
    // Nagle off, as on the accepted side: a CLOSE followed by a REQ is two small writes, and
    // with Nagle on the second waits for the relay's delayed ACK (~40 ms a round trip).
    let Ok((mut upstream, _response)) =
        tokio_tungstenite::connect_async_with_config(&*upstream_url, None, true).await
    else {
        let _closed = client.close(None).await;
        return;
    };
    loop {
        tokio::select! {
            from_client = client.next() => {
                let Some(Ok(message)) = from_client else { break };
                if let Message::Text(text) = &message {
                    if let Some((verb, sub)) = negentropy_message(text.as_str()) {
                        if verb == "NEG-OPEN" {
                            neg_opens.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(reply) = answer(mode, &verb, &sub) {
                            if client.send(Message::text(reply)).await.is_err() {
                                break;
                            }
                        }
                        continue;
                    }
                }
                if forward(&mut upstream, message).await.is_err() {
                    break;
                }
            }
            from_upstream = upstream.next() => {
                let Some(Ok(message)) = from_upstream else { break };
                if forward(&mut client, message).await.is_err() {
                    break;
                }
            }
        }
    }
    let _closed = client.close(None).await;
    let _closed = upstream.close(None).await;
}

/// Sends a data or close frame on; pings and pongs are answered by each hop itself.
async fn forward<S>(to: &mut S, message: Message) -> Result<(), ()>
where
    S: SinkExt<Message> + Unpin,
{
    match message {
        Message::Text(_) | Message::Binary(_) => to.send(message).await.map_err(|_| ()),
        Message::Close(_) => Err(()),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG_OPEN: &str = r#"["NEG-OPEN","neg1",{"kinds":[1]},"6100"]"#;

    // The proxy seen by a raw client (each mode, forwarding, stop) is tested in the workspace's
    // `tests` crate (`tests/tests/neg_proxy.rs`), next to the raw client of the test kit.

    #[test]
    fn only_negentropy_verbs_are_intercepted() {
        assert_eq!(
            negentropy_message(NEG_OPEN),
            Some(("NEG-OPEN".into(), "neg1".into()))
        );
        assert_eq!(negentropy_message(r#"["REQ","NEG-x",{}]"#), None);
        assert_eq!(negentropy_message("NEG- not json"), None);
    }
}
