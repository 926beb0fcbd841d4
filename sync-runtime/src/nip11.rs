//! NIP-11 relay information: the `limitation` values the core's subscription budget uses.
//!
//! Fetched with a minimal HTTP/1.1 GET (`Accept: application/nostr+json`) over plain TCP for
//! `ws://` relays. `wss://` relays would need TLS; this build does not fetch their document
//! (the core then uses its configured limits, and learns from "too many" answers). Responses are
//! bounded in size and time; anything unparsable is ignored (absurd values are clamped by the
//! core).

use std::time::Duration;

use serde::Deserialize;
use sync_core::RelayLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// Fetches the limits of `relay_url` (`ws://host[:port][/path]`); `None` when unavailable.
pub(crate) async fn fetch_limits(relay_url: &str, timeout: Duration) -> Option<RelayLimits> {
    let rest = relay_url.strip_prefix("ws://")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let body = tokio::time::timeout(timeout, get(&addr, authority, &path))
        .await
        .ok()??;
    parse_limits(&body)
}

async fn get(addr: &str, host: &str, path: &str) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/nostr+json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
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
    fn http_bodies_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
        assert_eq!(body_of(plain).unwrap(), b"{\"a\":1}");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked).unwrap(), b"{\"a\":1}");
        assert_eq!(body_of(b"HTTP/1.1 404 Not Found\r\n\r\n"), None);
        assert_eq!(body_of(b"garbage"), None);
    }
}
