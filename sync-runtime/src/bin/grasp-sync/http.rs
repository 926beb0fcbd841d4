//! The operator's HTTP endpoint: `GET /metrics` (Prometheus text format) and `GET /status`
//! (JSON), on `--metrics-listen`.
//!
//! HTTP/1.1 by hyper: one request per connection (`Connection: close`), a bounded request
//! head, a read timeout and a cap on concurrent connections, so a misbehaving scraper cannot
//! grow memory or hold the server.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
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

/// Serves until `stop`. The listener is bound by the caller, so "port in use" is reported
/// before anything starts.
pub(crate) async fn serve(listener: TcpListener, endpoints: Arc<dyn Endpoints>, mut stop: Stop) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(false)
        .title_case_headers(true)
        .auto_date_header(false)
        .max_header_size(MAX_HEAD_BYTES)
        .header_read_timeout(READ_TIMEOUT)
        .timer(TokioTimer::new());
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
        let service = hyper::service::service_fn(move |request| {
            let endpoints = endpoints.clone();
            async move { Ok::<_, Infallible>(answer(&request, endpoints.as_ref()).await) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "metrics server: connection error");
            }
            drop(permit);
        });
    }
}

/// The response to one request (hyper leaves the body out for `HEAD`).
async fn answer<B>(request: &Request<B>, endpoints: &dyn Endpoints) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
    }
    match request.uri().path() {
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            endpoints.metrics().await,
        ),
        "/status" => respond(StatusCode::OK, "application/json", endpoints.status().await),
        "/" => text(StatusCode::OK, "grasp-sync: see /metrics and /status\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /status\n",
        ),
    }
}

/// A plain-text response.
fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

/// A response that closes the connection after it.
fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

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
        let head = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.contains("Content-Length: 4\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "no body for HEAD: {head}");
        let bad = get(addr, "garbage\r\n\r\n").await;
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");

        trigger.trigger();
        server.await.expect("server stops on trigger");
    }

    #[tokio::test]
    async fn silent_clients_are_dropped_after_the_read_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (trigger, stop) = crate::shutdown::channel();
        let server = tokio::spawn(serve(listener, Arc::new(Fixed), stop));
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let mut out = Vec::new();
        let read = tokio::time::timeout(READ_TIMEOUT * 2, silent.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "the connection was closed");
        trigger.trigger();
        server.await.expect("server stops on trigger");
    }
}
