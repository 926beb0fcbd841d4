//! The operator's HTTP endpoint: `GET /metrics` (Prometheus text format) and `GET /status`
//! (JSON), on `--metrics-listen`.
//!
//! Deliberately minimal HTTP/1.1 on plain tokio: one request per connection, `Connection:
//! close`, a bounded request head, a read timeout and a cap on concurrent connections, so a
//! misbehaving scraper cannot grow memory or hold the server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::shutdown::Stop;

/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// A client that has not sent its request head by then is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 32;

/// A boxed body future.
pub(crate) type BodyFuture<'a> = Pin<Box<dyn Future<Output = String> + Send + 'a>>;

/// Where the bodies come from.
pub(crate) trait Endpoints: Send + Sync + 'static {
    /// The Prometheus text exposition.
    fn metrics(&self) -> BodyFuture<'_>;
    /// The status snapshot as JSON.
    fn status(&self) -> BodyFuture<'_>;
}

/// One answer.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    /// Status line code and reason.
    status: &'static str,
    /// `Content-Type`.
    content_type: &'static str,
    /// The body.
    body: String,
}

/// Serves until `stop`. The listener is bound by the caller, so "port in use" is reported
/// before anything starts.
pub(crate) async fn serve(listener: TcpListener, endpoints: Arc<dyn Endpoints>, mut stop: Stop) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.wait() => return,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "metrics server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, endpoints.as_ref()).await {
                tracing::debug!(error = %e, "metrics server: connection error");
            }
            drop(permit);
        });
    }
}

/// Reads one request, writes one response.
async fn handle(mut stream: TcpStream, endpoints: &dyn Endpoints) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let response = match parse_request_line(&head) {
        Some(("GET" | "HEAD", path)) => route(path, endpoints).await,
        Some(_) => text("405 Method Not Allowed", "only GET is served\n"),
        None => text("400 Bad Request", "bad request\n"),
    };
    let is_head = head.starts_with("HEAD ");
    let header = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if !is_head {
        stream.write_all(response.body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// The answer for `path` (query strings ignored).
async fn route(path: &str, endpoints: &dyn Endpoints) -> Response {
    match path.split('?').next().unwrap_or(path) {
        "/metrics" => Response {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: endpoints.metrics().await,
        },
        "/status" => Response {
            status: "200 OK",
            content_type: "application/json",
            body: endpoints.status().await,
        },
        "/" => text("200 OK", "grasp-sync: see /metrics and /status\n"),
        _ => text("404 Not Found", "not found: try /metrics or /status\n"),
    }
}

/// A plain-text response.
fn text(status: &'static str, body: &str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_string(),
    }
}

/// Reads until the blank line that ends the head, at most [`MAX_HEAD_BYTES`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() >= MAX_HEAD_BYTES {
            break;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `METHOD PATH` of the request line, if it is one.
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?;
    let path = parts.next()?;
    let version = parts.next()?;
    version.starts_with("HTTP/").then_some((method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Endpoints for Fixed {
        fn metrics(&self) -> BodyFuture<'_> {
            Box::pin(async { "m 1\n".to_string() })
        }
        fn status(&self) -> BodyFuture<'_> {
            Box::pin(async { "{\"ok\":true}".to_string() })
        }
    }

    async fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).await.expect("read");
        out
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(parse_request_line("garbage"), None);
        assert_eq!(parse_request_line(""), None);
    }

    proptest::proptest! {
        /// Arbitrary request heads never panic, and what parses came from the first line.
        #[test]
        fn any_head_parses(head in "(?s).{0,300}") {
            if let Some((method, path)) = parse_request_line(&head) {
                let first = head.lines().next().unwrap_or_default();
                proptest::prop_assert!(first.contains(method) && first.contains(path));
            }
        }
    }

    #[tokio::test]
    async fn serves_metrics_status_and_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (trigger, stop) = crate::shutdown::channel();
        let server = tokio::spawn(serve(listener, Arc::new(Fixed), stop));

        let metrics = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
        assert!(metrics.contains("Content-Length: 4\r\n"), "{metrics}");
        assert!(metrics.ends_with("\r\n\r\nm 1\n"), "{metrics}");

        let status = get(addr, "GET /status?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(status.contains("application/json"), "{status}");
        assert!(status.ends_with("{\"ok\":true}"), "{status}");

        let missing = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let bad = get(addr, "\r\n\r\n").await;
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");

        trigger.trigger();
        server.await.expect("server stops on trigger");
    }
}
