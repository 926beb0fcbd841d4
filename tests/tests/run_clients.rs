//! `grasp-sync run` against its own clients and a second copy of itself, as an operator sees
//! it: a real process, real WebSocket clients. A second `run` on the same data directory is
//! refused while the first keeps serving; the `--client-*` flags are honoured; bad client
//! messages only cost a NOTICE; the NIP-11 document and `/metrics` say so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use grasp_sync_tests::json_ws::{connect, next_json, Ws};

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A scratch directory, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "grasp-sync-run-clients-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `grasp-sync run` on fresh ports with `extra` flags; no inherited `GRASP_SYNC_*` variables.
fn command(data: &Path, port: u16, metrics: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(grasp_sync_tests::workspace_bin::grasp_sync());
    for (key, _) in std::env::vars() {
        if key.starts_with("GRASP_SYNC_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .args(["--data-dir", data.to_str().expect("utf-8")])
        .args(["--seed", "1"])
        .args(extra)
        .env("RUST_LOG", "warn");
    cmd
}

/// A running `grasp-sync run`, killed when dropped.
struct Node {
    child: Child,
    port: u16,
    metrics: u16,
}

impl Node {
    /// Starts it and waits until `/status` answers.
    async fn start(data: &Path, extra: &[&str]) -> Self {
        let (port, metrics) = (free_port(), free_port());
        let child = command(data, port, metrics, extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("grasp-sync starts");
        let mut node = Self {
            child,
            port,
            metrics,
        };
        let start = Instant::now();
        while http_get(metrics, "/status", "").await.is_none() {
            let exited = node.child.try_wait().expect("wait");
            assert!(exited.is_none(), "grasp-sync exited early: {exited:?}");
            assert!(start.elapsed() < Duration::from_secs(20), "never ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs `path` with an optional extra header; the body of a 200 answer.
async fn http_get(port: u16, path: &str, header: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Sends a REQ and waits for its EOSE, skipping any events.
async fn req_eose(ws: &mut Ws, sub: &str) {
    let req = format!(r#"["REQ","{sub}",{{"kinds":[30617],"limit":1}}]"#);
    ws.send(Message::text(req)).await.expect("send");
    loop {
        let message = next_json(ws).await;
        if message[0] == "EOSE" && message[1] == sub {
            return;
        }
        assert_eq!(message[0], "EVENT", "{message}");
    }
}

/// Waits up to 20 s for the process to exit on its own.
fn wait_exit(mut child: Child) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the second grasp-sync did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_data_dir_is_refused_and_the_first_keeps_serving() {
    let scratch = Scratch::new("lock");
    let data = scratch.0.join("data");
    let first = Node::start(&data, &[]).await;
    let mut client = connect(&first.url()).await;
    req_eose(&mut client, "before").await;

    let second = command(&data, free_port(), free_port(), &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("second grasp-sync starts");
    let output = wait_exit(second);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "second run succeeded: {stderr}");
    assert!(
        stderr.contains(data.to_str().expect("utf-8")),
        "the message names the directory: {stderr}"
    );
    assert!(stderr.contains("another grasp-sync"), "{stderr}");

    // The first one never noticed: same connection, new connection, still running.
    req_eose(&mut client, "after").await;
    req_eose(&mut connect(&first.url()).await, "fresh").await;
    let mut first = first;
    assert!(first.child.try_wait().expect("wait").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_flags_are_honoured_and_bad_messages_only_cost_a_notice() {
    let scratch = Scratch::new("limits");
    let flags = [
        "--client-max-subscriptions",
        "2",
        "--client-max-message-bytes",
        "4096",
        "--client-max-connections",
        "3",
    ];
    let node = Node::start(&scratch.0.join("data"), &flags).await;
    let url = node.url();
    let mut bystander = connect(&url).await;
    let mut ws = connect(&url).await;

    ws.send(Message::text("{not json")).await.expect("send");
    let notice = next_json(&mut ws).await;
    assert_eq!(notice[0], "NOTICE", "{notice}");
    assert!(notice[1].as_str().unwrap_or("").starts_with("invalid: "));
    let big = format!(r#"["REQ","big",{{"search":"{}"}}]"#, "x".repeat(5000));
    ws.send(Message::text(big)).await.expect("send");
    let notice = next_json(&mut ws).await;
    assert!(
        notice[1].as_str().unwrap_or("").contains("too large"),
        "{notice}"
    );
    assert_eq!(next_json(&mut ws).await[0], "CLOSED");

    // Same connection: two subscriptions fit, the third is refused rate-limited.
    req_eose(&mut ws, "one").await;
    req_eose(&mut ws, "two").await;
    let third = r#"["REQ","three",{"kinds":[30617]}]"#;
    ws.send(Message::text(third)).await.expect("send");
    let closed = next_json(&mut ws).await;
    assert_eq!(closed[0], "CLOSED", "{closed}");
    assert!(
        closed[2]
            .as_str()
            .unwrap_or("")
            .starts_with("rate-limited:"),
        "{closed}"
    );
    req_eose(&mut bystander, "unaffected").await;

    // A fourth connection is refused (3 allowed, 2 open + this one + one more).
    let _third_conn = connect(&url).await;
    let refused = tokio_tungstenite::connect_async(&url).await;
    assert!(refused.is_err(), "a fourth connection was admitted");

    let metrics = http_get(node.metrics, "/metrics", "")
        .await
        .expect("/metrics");
    for series in [
        "ngit_sync_client_messages_refused_total{reason=\"malformed\"} 1",
        "ngit_sync_client_messages_refused_total{reason=\"too_large\"} 1",
        "ngit_sync_client_connections_refused_total 1",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    let nip11 = http_get(node.port, "/", "Accept: application/nostr+json\r\n")
        .await
        .expect("NIP-11");
    let nip11: Value = serde_json::from_str(&nip11).expect("JSON");
    assert_eq!(nip11["limitation"]["max_message_length"], 4096);
    assert_eq!(nip11["limitation"]["max_subscriptions"], 2);
}
