//! NIP-11 relay information: the `limitation` values the core's subscription budget uses.
//!
//! Fetched with a minimal HTTP/1.1 GET (`Accept: application/nostr+json`) over plain TCP for
//! `ws://` relays and over TLS (rustls with the ring provider, webpki roots) for `wss://`,
//! following at most three redirects. Every connection is opened by the [`Dialer`], so the
//! open-network rules (docs/spec.md §13) hold for the first request and each redirect alike.
//! Responses are bounded in size and time; anything unparsable is ignored (the core then keeps
//! its configured limits, and clamps absurd values).

use std::time::Duration;

use nostr::Url;
use serde::Deserialize;
use sync_core::RelayLimits;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;

use crate::dial::Dialer;

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

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 3;

/// Where one HTTP request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    /// `https` (TLS) or `http`.
    tls: bool,
    /// Host as a URL writes it (IPv6 in brackets).
    host: String,
    /// Port (explicit or the scheme's default).
    port: u16,
    /// `Host` header value.
    authority: String,
    /// Path and query.
    path: String,
}

impl Target {
    /// The request for a `ws[s]://` relay URL, or for a redirect's `http[s]://` URL.
    fn from_url(url: &Url) -> Option<Self> {
        let tls = match url.scheme() {
            "wss" | "https" => true,
            "ws" | "http" => false,
            _ => return None,
        };
        let host = url.host_str()?.to_string();
        let port = url.port().unwrap_or(if tls { 443 } else { 80 });
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        Some(Self {
            tls,
            host,
            port,
            authority,
            path,
        })
    }
}

/// What one response said.
#[derive(Debug, PartialEq, Eq)]
enum Response {
    /// A `200` body.
    Body(Vec<u8>),
    /// A redirect to this location (absolute or relative).
    Redirect(String),
}

/// Fetches the limits of `relay_url` (`ws[s]://host[:port][/path]`); `None` when unavailable.
/// Every connection, the first and each redirect's (at most [`MAX_REDIRECTS`]), goes through
/// `dialer`, so a redirect to a non-global address is refused like any other target.
pub(crate) async fn fetch_limits(
    dialer: &Dialer,
    relay_url: &str,
    timeout: Duration,
) -> Option<RelayLimits> {
    let fetch = async {
        let mut url = Url::parse(relay_url).ok()?;
        for _ in 0..=MAX_REDIRECTS {
            let target = Target::from_url(&url)?;
            match request(dialer, &target, timeout).await? {
                Response::Body(body) => return parse_limits(&body),
                Response::Redirect(location) => {
                    url = url.join(&location).ok()?;
                    tracing::debug!(relay = relay_url, to = %url, "NIP-11 redirect");
                }
            }
        }
        None
    };
    tokio::time::timeout(timeout, fetch).await.ok()?
}

/// One GET over a connection the dialer opened.
async fn request(dialer: &Dialer, target: &Target, timeout: Duration) -> Option<Response> {
    let tcp = match dialer.connect(&target.host, target.port, timeout).await {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::debug!(host = %target.host, error = %e, "NIP-11 request not sent");
            return None;
        }
    };
    let raw = if target.tls {
        let bare = target.host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(bare.to_string()).ok()?;
        let connector = tokio_rustls::TlsConnector::from(crate::dial::tls_config());
        let stream = connector.connect(name, tcp).await.ok()?;
        get(stream, &target.authority, &target.path).await?
    } else {
        get(tcp, &target.authority, &target.path).await?
    };
    response_of(&raw)
}

/// Sends the GET and reads the whole response (at most [`MAX_RESPONSE_BYTES`]).
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
    Some(response)
}

/// What an HTTP/1.1 response says: a `200` body (plain or chunked), or a redirect's
/// `Location`; `None` for anything else.
fn response_of(response: &[u8]) -> Option<Response> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.lines().next()?.split_whitespace().nth(1)?.to_string();
    if matches!(status.as_str(), "301" | "302" | "303" | "307" | "308") {
        let location = head.lines().skip(1).find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })?;
        return Some(Response::Redirect(location));
    }
    body_of(response).map(Response::Body)
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

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
    fn relay_urls_and_redirects_become_requests() {
        let t = |u: &str| Target::from_url(&Url::parse(u).unwrap());
        let wss = t("wss://relay.example/nostr?x=1").unwrap();
        assert_eq!((wss.tls, wss.port), (true, 443));
        assert_eq!(
            (wss.authority.as_str(), wss.path.as_str()),
            ("relay.example", "/nostr?x=1")
        );
        let ws = t("ws://[::1]:7000").unwrap();
        assert_eq!((ws.tls, ws.host.as_str(), ws.port), (false, "[::1]", 7000));
        assert_eq!(ws.authority, "[::1]:7000");
        assert!(t("http://h/x").is_some_and(|r| !r.tls));
        assert_eq!(t("ftp://h"), None);
    }

    /// Serves one HTTP response per connection and counts connections.
    async fn http_server(
        ip: &str,
        reply: String,
    ) -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut request = vec![0u8; 1024];
                let _n = socket.read(&mut request).await;
                let _sent = socket.write_all(reply.as_bytes()).await;
            }
        });
        (port, hits, task)
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn limits_are_fetched_from_a_local_http_server() {
        let (port, hits, _server) =
            http_server("127.0.0.1", ok(r#"{"limitation":{"max_subscriptions":7}}"#)).await;
        let lab = Dialer::new(true, []);
        let limits = fetch_limits(
            &lab,
            &format!("ws://127.0.0.1:{port}"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(limits.unwrap().max_subscriptions, Some(7));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let refused = fetch_limits(&lab, "ws://127.0.0.1:9", Duration::from_secs(2)).await;
        assert_eq!(refused, None);
        assert_eq!(
            fetch_limits(&lab, "http://x", Duration::from_secs(1)).await,
            None
        );
    }

    #[tokio::test]
    async fn redirects_are_followed_only_where_the_dialer_allows() {
        let (inner, inner_hits, _a) =
            http_server("127.0.0.4", ok(r#"{"limitation":{"max_filters":3}}"#)).await;
        let redirect = format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.4:{inner}/info\r\nContent-Length: 0\r\n\r\n"
        );
        let (outer, outer_hits, _b) = http_server("127.0.0.1", redirect).await;
        let origin = format!("ws://127.0.0.1:{outer}");
        // The operator named the origin: it is trusted, the redirect's target is not.
        let strict = Dialer::new(false, [origin.as_str()]);
        assert_eq!(
            fetch_limits(&strict, &origin, Duration::from_secs(5)).await,
            None
        );
        assert_eq!(outer_hits.load(Ordering::SeqCst), 1);
        assert_eq!(
            inner_hits.load(Ordering::SeqCst),
            0,
            "the redirect was refused"
        );
        let lab = Dialer::new(true, []);
        let limits = fetch_limits(&lab, &origin, Duration::from_secs(5)).await;
        assert_eq!(limits.unwrap().max_filters, Some(3));
        assert_eq!(inner_hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn responses_are_bodies_or_redirects() {
        let r = b"HTTP/1.1 301 Moved\r\nLOCATION:  /x \r\n\r\n";
        assert_eq!(response_of(r), Some(Response::Redirect("/x".into())));
        assert_eq!(
            response_of(b"HTTP/1.1 302 Found\r\n\r\n"),
            None,
            "no location"
        );
        let ok = b"HTTP/1.1 200 OK\r\n\r\n{}";
        assert_eq!(response_of(ok), Some(Response::Body(b"{}".to_vec())));
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

        /// Whatever a server sends, reading it as a response never panics.
        #[test]
        fn arbitrary_responses_never_panic_as_redirects(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = response_of(&bytes);
        }
    }
}
