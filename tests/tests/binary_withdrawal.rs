//! `grasp-sync run --on-withdrawal delete` as a process (docs/spec.md §14, docs/operations.md
//! "Withdrawn repositories"): a client publishes to our relay an announcement listing it (the
//! repository is synced from a source relay on 127.0.0.1), then the owner's newer announcement
//! without it (withdrawn: logged, counted, relay closed, history deleted), then, after a
//! restart that keeps it withdrawn, one listing it again (synced again).

mod rt_support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use nostr::{Event, EventId, Filter, Keys};
use nostr_sdk::Client;
use rt_support::{announcement, coord, eventually, metric, now_secs, root, TestRelay, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("addr").port()
}

/// The binary on `port` (metrics on `metrics`), killed when dropped.
struct Node(Child);

impl Node {
    fn start(port: u16, metrics: u16, data: &Path, log: &Path) -> Self {
        let stderr = std::fs::File::create(log).expect("log file");
        let child = grasp_sync_tests::workspace_bin::lab_run(port, metrics, data, stderr)
            .args(["--on-withdrawal", "delete", "--discovery-window-ms", "100"])
            .spawn()
            .expect("grasp-sync starts");
        Self(child)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn metrics(port: u16) -> String {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
}

async fn client(url: &str) -> Client {
    let client = Client::default();
    client.add_relay(url).await.expect("add relay");
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    client
}

async fn publish(url: &str, event: &Event) {
    let client = client(url).await;
    let out = client.send_event(event).await.expect("send");
    assert!(!out.success.is_empty(), "rejected: {:?}", out.failed);
    client.shutdown().await;
}

/// Whether our relay serves the event `id`.
async fn serves(url: &str, id: EventId) -> bool {
    let client = client(url).await;
    let found = client
        .fetch_events(Filter::new().id(id), Duration::from_secs(2))
        .await
        .is_ok_and(|events| !events.is_empty());
    client.shutdown().await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_withdraws_deletes_stays_withdrawn_and_takes_the_repository_back() {
    let source = TestRelay::start(None).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let (port, metrics_port) = (free_port(), free_port());
    let ours = format!("ws://127.0.0.1:{port}");
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let c = coord(&owner, "moving");
    let patch = root(&owner, 1617, &c, 1, t + 1);
    source.store(std::slice::from_ref(&patch)).await;
    let log = dir.path().join("node.log");
    let node = Node::start(port, metrics_port, &dir.path().join("data"), &log);
    let up = eventually(WAIT, || async { !metrics(metrics_port).await.is_empty() }).await;
    assert!(up, "the node answers");

    publish(
        &ours,
        &announcement(&owner, "moving", &[&source.url, &ours], t),
    )
    .await;
    assert!(eventually(WAIT, || serves(&ours, patch.id)).await, "synced");
    let withdrawn = "ngit_sync_repos_withdrawn_total{reason=\"unlisted\"}";
    let tracked = "ngit_sync_relays_tracked_total";
    publish(
        &ours,
        &announcement(&owner, "moving", &[&source.url], t + 10),
    )
    .await;
    let gone = eventually(WAIT, || async {
        let text = metrics(metrics_port).await;
        metric(&text, withdrawn) == Some(1.0) && metric(&text, tracked) == Some(0.0)
    })
    .await;
    assert!(
        gone,
        "withdrawn and the relay closed:\n{}",
        metrics(metrics_port).await
    );
    assert!(!serves(&ours, patch.id).await, "history deleted");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("repository withdrawn from sync"), "{text}");
    drop(node);

    let node = Node::start(port, metrics_port, &dir.path().join("data"), &log);
    let up = eventually(WAIT, || async { !metrics(metrics_port).await.is_empty() }).await;
    assert!(up, "the node answers again");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let text = metrics(metrics_port).await;
    assert_eq!(
        metric(&text, tracked),
        Some(0.0),
        "still withdrawn:\n{text}"
    );
    publish(
        &ours,
        &announcement(&owner, "moving", &[&source.url, &ours], t + 20),
    )
    .await;
    assert!(
        eventually(WAIT, || serves(&ours, patch.id)).await,
        "listed again: synced again"
    );
    drop(node);
}
