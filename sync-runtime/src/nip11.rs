//! NIP-11 relay information: the `limitation` values the core's subscription budget uses.
//!
//! Fetched with a minimal HTTP/1.1 GET (`Accept: application/nostr+json`) over plain TCP for
//! `ws://` relays and over TLS (rustls with the ring provider, webpki roots) for `wss://`.
//! Responses are bounded in size and time; anything unparsable is ignored (the core then keeps
//! its configured limits, and clamps absurd values).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use sync_core::RelayLimits;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Upper bound on a NIP-11 response.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
struct Document {
    #[serde(default)]
    limitation: Option<Limitation>,
}

#[derive(Debug, Default, Deserialize)]
struct Limitation {
    max_subscriptions: Option<serde_json::Value>,
    max_filters: Option<serde_json::Value>,
    max_limit: Option<serde_json::Value>,
    max_message_length: Option<serde_json::Value>,
}

fn number(v: Option<&serde_json::Value>) -> Option<u64> {
    v.and_then(serde_json::Value::as_u64)
}

/// Parses the limits out of a NIP-11 JSON document; `None` if it is not one.
pub(crate) fn parse_limits(body: &[u8]) -> Option<RelayLimits> {
    let doc: Document = serde_json::from_slice(body).ok()?;
    let l = doc.limitation.unwrap_or_default();
    Some(RelayLimits {
        max_subscriptions: number(l.max_subscriptions.as_ref()),
        max_filters: number(l.max_filters.as_ref()),
        max_limit: number(l.max_limit.as_ref()),
        max_message_length: number(l.max_message_length.as_ref()),
    })
}

/// Fetches the limits of `relay_url` (`ws[s]://host[:port][/path]`); `None` when unavailable.
pub(crate) async fn fetch_limits(relay_url: &str, timeout: Duration) -> Option<RelayLimits> {
    let (tls, rest) = match relay_url.split_once("://")? {
        ("ws", rest) => (false, rest),
        ("wss", rest) => (true, rest),
        _ => return None,
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let default_port = if tls { 443 } else { 80 };
    let (host, addr) = split_authority(authority, default_port)?;
    let fetch = async {
        let tcp = TcpStream::connect(&addr).await.ok()?;
        if tls {
            let name = rustls::pki_types::ServerName::try_from(host.clone()).ok()?;
            let stream = tls_connector().connect(name, tcp).await.ok()?;
            get(stream, authority, &path).await
        } else {
            get(tcp, authority, &path).await
        }
    };
    let body = tokio::time::timeout(timeout, fetch).await.ok()??;
    parse_limits(&body)
}

/// `(host, host:port)` of an authority (`host`, `host:port`, `[v6]`, `[v6]:port`).
fn split_authority(authority: &str, default_port: u16) -> Option<(String, String)> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .map_or(Some(default_port), |p| p.parse().ok())?;
        return Some((host.to_string(), format!("[{host}]:{port}")));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((
            host.to_string(),
            format!("{host}:{}", port.parse::<u16>().ok()?),
        )),
        None => Some((authority.to_string(), format!("{authority}:{default_port}"))),
    }
}

/// One TLS client configuration for the process (ring provider, webpki roots).
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_or_else(
                |_| rustls::ClientConfig::builder().with_root_certificates(roots.clone()),
                |b| b.with_root_certificates(roots.clone()),
            )
            .with_no_client_auth();
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    path: &str,
) -> Option<Vec<u8>> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/nostr+json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // A TLS peer that closes without close_notify ends the read with an error: keep
        // what arrived.
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            Err(_) if !response.is_empty() => 0,
            Err(_) => return None,
        };
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
        if response.len() > MAX_RESPONSE_BYTES {
            return None;
        }
    }
    body_of(&response)
}

/// The body of a `200` HTTP/1.1 response (plain or chunked).
fn body_of(response: &[u8]) -> Option<Vec<u8>> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    if !head.lines().next()?.contains(" 200") {
        return None;
    }
    if head.contains("transfer-encoding: chunked") {
        return dechunk(body);
    }
    Some(body.to_vec())
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_and_junk_is_ignored() {
        let doc = br#"{"name":"x","limitation":{"max_subscriptions":10,"max_filters":"many","max_limit":-1,"max_message_length":16384}}"#;
        let limits = parse_limits(doc).unwrap();
        assert_eq!(limits.max_subscriptions, Some(10));
        assert_eq!(limits.max_filters, None, "a string is not a number");
        assert_eq!(limits.max_limit, None, "a negative value is ignored");
        assert_eq!(limits.max_message_length, Some(16_384));
        assert_eq!(
            parse_limits(br#"{"name":"no limits"}"#),
            Some(RelayLimits::default())
        );
        assert_eq!(parse_limits(b"<html>"), None);
    }

    #[test]
    fn authorities_split_into_host_and_address() {
        let split = |a| split_authority(a, 443);
        assert_eq!(
            split("relay.example"),
            Some(("relay.example".into(), "relay.example:443".into()))
        );
        assert_eq!(split("h:7000"), Some(("h".into(), "h:7000".into())));
        assert_eq!(
            split("[::1]:7000"),
            Some(("::1".into(), "[::1]:7000".into()))
        );
        assert_eq!(split("[::1]"), Some(("::1".into(), "[::1]:443".into())));
        assert_eq!(split("h:notaport"), None);
    }

    #[tokio::test]
    async fn limits_are_fetched_from_a_local_http_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 1024];
            let n = socket.read(&mut request).await.unwrap();
            let request = String::from_utf8_lossy(&request[..n]).to_string();
            let body = r#"{"limitation":{"max_subscriptions":7}}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(reply.as_bytes()).await.unwrap();
            request
        });
        let limits = fetch_limits(&format!("ws://127.0.0.1:{port}"), Duration::from_secs(5)).await;
        assert_eq!(limits.unwrap().max_subscriptions, Some(7));
        let request = server.await.unwrap();
        assert!(
            request.contains("Accept: application/nostr+json"),
            "{request}"
        );
        let refused = fetch_limits("ws://127.0.0.1:9", Duration::from_secs(2)).await;
        assert_eq!(refused, None);
        assert_eq!(fetch_limits("http://x", Duration::from_secs(1)).await, None);
    }

    #[test]
    fn http_bodies_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(body_of(plain).unwrap(), b"{\"a\":1}");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked).unwrap(), b"{\"a\":1}");
        assert_eq!(body_of(b"HTTP/1.1 404 Not Found\r\n\r\n"), None);
        assert_eq!(body_of(b"garbage"), None);
    }

    proptest::proptest! {
        /// Whatever a server sends, parsing never panics and never returns more than it got.
        #[test]
        fn arbitrary_responses_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Some(body) = body_of(&bytes) {
                proptest::prop_assert!(body.len() <= bytes.len());
            }
            let _ = parse_limits(&bytes);
            let _ = dechunk(&bytes);
        }

        /// Any authority with a port either splits into a dialable address or is refused.
        #[test]
        fn authorities_never_panic(authority in "[a-z0-9.:\\[\\]]{0,40}") {
            if let Some((_, addr)) = split_authority(&authority, 443) {
                proptest::prop_assert!(addr.contains(':'));
            }
        }
    }
}
