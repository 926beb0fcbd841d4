//! NIP-11 relay information: the `limitation` values the core's subscription budget uses.
//!
//! Fetched with reqwest (`GET`, `Accept: application/nostr+json`; `http` for `ws://` relays,
//! `https` for `wss://`, TLS by rustls with the ring provider and webpki roots), following at
//! most three redirects. The open-network rules (docs/spec.md §13) hold for the first request
//! and each redirect alike: names are resolved once by [`CheckedResolver`] under the
//! [`AddressRules`] and reqwest connects to the checked addresses; literal IP hosts, which
//! reqwest does not resolve, are checked before the request and in the redirect policy.
//! Responses are bounded in size and time; anything unparsable is ignored (the core then keeps
//! its configured limits, and clamps absurd values).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nostr::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Attempt, Policy};
use serde::Deserialize;
use sync_core::RelayLimits;
use tokio_rustls::rustls;

use crate::dial::{AddressRules, DialError, Dialer};

/// Upper bound on a NIP-11 response.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The part of a NIP-11 document we read; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
struct Document {
    /// The relay's announced limits, if any.
    #[serde(default)]
    limitation: Option<Limitation>,
}

/// NIP-11 `limitation`, each value kept as JSON so a wrongly typed one is ignored alone.
#[derive(Debug, Default, Deserialize)]
struct Limitation {
    /// Open subscriptions per connection.
    max_subscriptions: Option<serde_json::Value>,
    /// Filters per subscription.
    max_filters: Option<serde_json::Value>,
    /// Largest `limit` honoured.
    max_limit: Option<serde_json::Value>,
    /// Largest message accepted, in bytes.
    max_message_length: Option<serde_json::Value>,
}

/// A non-negative integer, if `v` is one.
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

/// Fetches the limits of `relay_url` (`ws[s]://host[:port][/path]`); `None` when unavailable.
/// The first request and each redirect's (at most [`MAX_REDIRECTS`]) are held to `dialer`'s
/// rules, so a redirect to a non-global address is refused like any other target.
pub(crate) async fn fetch_limits(
    dialer: &Dialer,
    relay_url: &str,
    timeout: Duration,
) -> Option<RelayLimits> {
    let url = http_url(relay_url)?;
    let current = Arc::new(Current::default());
    if let Err(e) = admit(dialer.rules(), &current, &url) {
        tracing::debug!(relay = relay_url, error = %e, "NIP-11 request not sent");
        return None;
    }
    let client = match client(dialer.rules(), &current, timeout) {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "NIP-11 client could not be built");
            return None;
        }
    };
    let fetch = async {
        let request = client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/nostr+json");
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(relay = relay_url, error = ?e, "NIP-11 request failed");
                return None;
            }
        };
        if response.status() != reqwest::StatusCode::OK {
            return None;
        }
        parse_limits(&bounded_body(response).await?)
    };
    tokio::time::timeout(timeout, fetch).await.ok()?
}

/// The `http[s]://` URL of a `ws[s]://` relay URL; `None` for any other scheme.
fn http_url(relay_url: &str) -> Option<Url> {
    let mut url = Url::parse(relay_url).ok()?;
    let scheme = match url.scheme() {
        "ws" => "http",
        "wss" => "https",
        _ => return None,
    };
    url.set_scheme(scheme).ok()?;
    Some(url)
}

/// A client for one fetch: our TLS configuration, no proxy (a proxy would connect for us,
/// unchecked), names resolved by [`CheckedResolver`], redirects through [`redirect`].
fn client(
    rules: &Arc<AddressRules>,
    current: &Arc<Current>,
    timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    let policy = {
        let (rules, current) = (rules.clone(), current.clone());
        Policy::custom(move |attempt| redirect(&rules, &current, attempt))
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(rustls::ClientConfig::clone(&crate::dial::tls_config()))
        .no_proxy()
        .dns_resolver(CheckedResolver {
            rules: rules.clone(),
            current: current.clone(),
        })
        .redirect(policy)
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
}

/// Follows a redirect if it is one of the first [`MAX_REDIRECTS`] and its target passes
/// [`admit`].
fn redirect(
    rules: &AddressRules,
    current: &Current,
    attempt: Attempt<'_>,
) -> reqwest::redirect::Action {
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error("too many NIP-11 redirects");
    }
    match admit(rules, current, attempt.url()) {
        Ok(()) => {
            tracing::debug!(to = %attempt.url(), "NIP-11 redirect");
            attempt.follow()
        }
        Err(e) => attempt.error(e),
    }
}

/// Checks a URL about to be requested: `http[s]` only, and a literal IP host (which reqwest
/// connects to without asking the resolver) must pass the rules. Names are checked by the
/// resolver, which learns the port from here.
fn admit(rules: &AddressRules, current: &Current, url: &Url) -> Result<(), DialError> {
    let unusable = || {
        let text = format!("not an http(s) URL: {url}");
        DialError::Connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, text))
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(unusable());
    }
    let host = url.host_str().ok_or_else(unusable)?;
    let port = url.port_or_known_default().ok_or_else(unusable)?;
    if let Some(ip) = AddressRules::literal_ip(host) {
        rules.check(host, port, &[SocketAddr::new(ip, port)])?;
    }
    current.set(host, port);
    Ok(())
}

/// The host and port of the URL being requested (reqwest tells the resolver only the host;
/// the rules trust a host per port).
#[derive(Debug, Default)]
struct Current(Mutex<(String, u16)>);

impl Current {
    /// Notes the URL about to be requested.
    fn set(&self, host: &str, port: u16) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (host.to_ascii_lowercase(), port);
    }

    /// The port `host` is requested on; 0 (trusted nowhere) for a host not being requested.
    fn port_of(&self, host: &str) -> u16 {
        let current = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.0.eq_ignore_ascii_case(host) {
            current.1
        } else {
            0
        }
    }
}

/// reqwest's resolver under the open-network rules: each name is resolved once and refused
/// if it has a non-global address and is not trusted; reqwest connects to what it returns.
#[derive(Debug)]
struct CheckedResolver {
    /// The rules of the dialer.
    rules: Arc<AddressRules>,
    /// The URL being requested, for the port.
    current: Arc<Current>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules.clone();
        let host = name.as_str().to_string();
        let port = self.current.port_of(&host);
        Box::pin(async move {
            let addrs = rules.resolve_checked(&host, port).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The body, at most [`MAX_RESPONSE_BYTES`]; a body cut short by the peer keeps what arrived.
async fn bounded_body(mut response: reqwest::Response) -> Option<Vec<u8>> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return None;
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Some(body),
            // A TLS peer that closes without close_notify ends the body with an error.
            Err(_) if !body.is_empty() => return Some(body),
            Err(_) => return None,
        }
        if body.len() > MAX_RESPONSE_BYTES {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    fn relay_urls_become_http_urls() {
        let u = |s: &str| http_url(s).map(|u| u.to_string());
        assert_eq!(
            u("wss://relay.example/nostr?x=1").as_deref(),
            Some("https://relay.example/nostr?x=1")
        );
        assert_eq!(u("ws://[::1]:7000").as_deref(), Some("http://[::1]:7000/"));
        assert_eq!(u("http://h/x"), None);
        assert_eq!(u("ftp://h"), None);
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

    #[tokio::test]
    async fn names_are_resolved_under_the_rules() {
        let (port, hits, _server) = http_server("127.0.0.1", ok("{}")).await;
        let url = format!("ws://localhost:{port}");
        let strict = Dialer::new(false, []);
        assert_eq!(
            fetch_limits(&strict, &url, Duration::from_secs(5)).await,
            None
        );
        let elsewhere = Dialer::new(false, [format!("ws://localhost:{}", port + 1).as_str()]);
        assert_eq!(
            fetch_limits(&elsewhere, &url, Duration::from_secs(5)).await,
            None
        );
        assert_eq!(hits.load(Ordering::SeqCst), 0, "refused before connecting");
        let named = Dialer::new(false, [url.as_str()]);
        let limits = fetch_limits(&named, &url, Duration::from_secs(5)).await;
        assert_eq!(limits, Some(RelayLimits::default()));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn chunked_bodies_are_read_and_oversized_ones_refused() {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"l\r\n1b\r\nimitation\":{\"max_limit\":9}}\r\n0\r\n\r\n";
        let (port, _, _server) = http_server("127.0.0.1", chunked.to_string()).await;
        let lab = Dialer::new(true, []);
        let url = format!("ws://127.0.0.1:{port}");
        let limits = fetch_limits(&lab, &url, Duration::from_secs(5)).await;
        assert_eq!(limits.unwrap().max_limit, Some(9));
        let padding = " ".repeat(MAX_RESPONSE_BYTES);
        let (port, _, _server) = http_server("127.0.0.1", ok(&format!("{{}}{padding}"))).await;
        let url = format!("ws://127.0.0.1:{port}");
        assert_eq!(fetch_limits(&lab, &url, Duration::from_secs(5)).await, None);
    }

    proptest::proptest! {
        /// Whatever a server sends, parsing never panics.
        #[test]
        fn arbitrary_documents_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_limits(&bytes);
        }
    }
}
