//! `grasp-sync run` as a user runs it: a real process, two real source relays on loopback
//! (one bootstrap, one only named by an announcement), a separate nostr-sdk client reading
//! from the syncing relay, `/metrics` and `/status` over HTTP, SIGTERM, a store that reopens,
//! and a restart that resumes without downloading again.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nostr::{Event, EventBuilder, EventId, Filter, Keys, Kind, Tag, Timestamp};
use nostr_database::NostrDatabase;
use nostr_sdk::Client;
use sync_runtime::demo::{Behaviour, SourceRelay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn tag(parts: &[&str]) -> Tag {
    Tag::parse(parts.iter().copied()).expect("tag")
}

fn sign(kind: u16, content: &str, tags: Vec<Tag>, at: u64, keys: &Keys) -> Event {
    EventBuilder::new(Kind::from(kind), content)
        .tags(tags)
        .custom_created_at(Timestamp::from(at))
        .sign_with_keys(keys)
        .expect("sign")
}

/// A repo announced on both sources (listing our relay and both), with state, two roots on
/// each source and a comment on each root. Returns (events on source A, events on source B).
fn corpus(ours: &str, a: &str, b: &str) -> (Vec<Event>, Vec<Event>) {
    let keys = Keys::generate();
    let coord = format!("30617:{}:demo", keys.public_key().to_hex());
    let base = 1_750_000_000;
    let announcement = sign(
        30617,
        "",
        vec![tag(&["d", "demo"]), tag(&["relays", ours, a, b])],
        base,
        &keys,
    );
    let state = sign(
        30618,
        "",
        vec![tag(&["d", "demo"]), tag(&["HEAD", "ref: refs/heads/main"])],
        base,
        &keys,
    );
    let mut on_a = vec![announcement.clone(), state.clone()];
    let mut on_b = vec![announcement];
    for (i, target) in [&mut on_a, &mut on_b].into_iter().enumerate() {
        for n in 0..2u64 {
            let kind = if n == 0 { 1617 } else { 1621 };
            let root = sign(
                kind,
                &format!("root {i}/{n}"),
                vec![tag(&["a", &coord])],
                base + 10 + n,
                &keys,
            );
            let comment = sign(
                1111,
                "comment",
                vec![tag(&["E", &root.id.to_hex()]), tag(&["K", "1617"])],
                base + 20 + n,
                &keys,
            );
            target.push(root);
            target.push(comment);
        }
    }
    (on_a, on_b)
}

/// A repository whose announcement lists only our relay and `c`, with two patches on `c`.
/// Returns (the announcement, the events held by `c`).
fn repo_only_on(ours: &str, c: &str) -> (Event, Vec<Event>) {
    let keys = Keys::generate();
    let coord = format!("30617:{}:pushed", keys.public_key().to_hex());
    let at = 1_760_000_000;
    let announcement = sign(
        30617,
        "",
        vec![tag(&["d", "pushed"]), tag(&["relays", ours, c])],
        at,
        &keys,
    );
    let mut on_c = vec![announcement.clone()];
    for n in 0..2 {
        on_c.push(sign(
            1617,
            &format!("patch {n}"),
            vec![tag(&["a", &coord])],
            at + 1 + n,
            &keys,
        ));
    }
    (announcement, on_c)
}

/// Publishes `event` to `url` with a fresh client; panics unless the relay accepts it.
async fn publish(url: &str, event: &Event) {
    let client = Client::default();
    client.add_relay(url).await.expect("add relay");
    client.connect().await;
    let output = client.send_event(event).await.expect("send");
    assert!(!output.success.is_empty(), "rejected: {:?}", output.failed);
    client.shutdown().await;
}

/// GETs `path` from the metrics server; the body, or `None` if it does not answer yet.
async fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The value of the first sample line starting with `series`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls `check` every 200 ms until it holds or `timeout` passes.
async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// The ids a fresh client gets from `url` for `ids`.
async fn served_ids(url: &str, ids: &[EventId]) -> BTreeSet<EventId> {
    let client = Client::default();
    if client.add_relay(url).await.is_err() {
        return BTreeSet::new();
    }
    client.connect().await;
    let filter = Filter::new().ids(ids.iter().copied());
    let events = client
        .fetch_events(filter, Duration::from_secs(2))
        .await
        .map(|events| events.into_iter().map(|e| e.id).collect())
        .unwrap_or_default();
    client.shutdown().await;
    events
}

/// The running binary; killed if the test fails before SIGTERM.
struct Running {
    child: Child,
    stderr: PathBuf,
}

impl Running {
    fn start(port: u16, metrics: u16, data: &Path, bootstrap: &str, log: &Path) -> Self {
        let stderr = std::fs::File::create(log).expect("log file");
        // Source B is on loopback and named only by an announcement: the lab setting allows it.
        let child = grasp_sync_tests::workspace_bin::lab_run(port, metrics, data, stderr)
            .args(["--bootstrap", bootstrap, "--discovery-window-ms", "200"])
            .spawn()
            .expect("grasp-sync starts");
        Self {
            child,
            stderr: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then wait up to 15 s for a clean exit.
    fn terminate(mut self) -> String {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let log = self.log();
                assert!(status.success(), "exit {status:?}; log:\n{log}");
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_syncs_serves_reports_stops_and_resumes() {
    let source_a = SourceRelay::start(Behaviour::Plain)
        .await
        .expect("source A");
    let source_b = SourceRelay::start(Behaviour::Plain)
        .await
        .expect("source B");
    let (a, b) = (source_a.direct_url(), source_b.direct_url());
    let (port, metrics_port) = (free_port(), free_port());
    let ours = format!("ws://127.0.0.1:{port}");
    let (on_a, on_b) = corpus(&ours, &a, &b);
    source_a.seed(&on_a).await.expect("seed A");
    source_b.seed(&on_b).await.expect("seed B");
    let mut ids: Vec<EventId> = on_a.iter().chain(&on_b).map(|e| e.id).collect();
    ids.sort();
    ids.dedup();

    let scratch = std::env::temp_dir().join(format!("grasp-sync-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let data = scratch.join("data");
    let first = Running::start(port, metrics_port, &data, &a, &scratch.join("first.log"));

    // Everything, from the bootstrap relay and from the one only the announcement names,
    // is served to a separate client.
    let all_served = eventually(Duration::from_secs(30), || async {
        served_ids(&ours, &ids).await.len() == ids.len()
    })
    .await;
    assert!(
        all_served,
        "not all {} events served; log:\n{}",
        ids.len(),
        first.log()
    );

    let text = http_get(metrics_port, "/metrics")
        .await
        .expect("/metrics answers");
    let synced = metric(&text, "ngit_sync_events_synced_total").expect("synced counter");
    assert_eq!(synced as usize, ids.len(), "{text}");
    let connected = format!("ngit_sync_relay_connected{{relay=\"{b}\"}}");
    assert!(
        metric(&text, &connected).is_some(),
        "{connected} missing:\n{text}"
    );
    let status = http_get(metrics_port, "/status")
        .await
        .expect("/status answers");
    let status: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    let relays = status["sync"]["relays"].as_array().expect("relays array");
    assert_eq!(relays.len(), 2, "{status}");
    assert_eq!(status["service_urls"][0], ours.as_str());
    // The NIP-42 key was created in the data directory, owner-only, and /status shows it.
    let key_file = data.join(sync_runtime::relay_key::RELAY_KEY_FILE);
    let (key, created) = sync_runtime::relay_key::load_or_create(&key_file).expect("key file");
    assert!(!created, "created by the node at its first start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        status["sync"]["auth_key"]["pubkey"],
        key.public_key().to_hex().as_str(),
        "{status}"
    );
    assert!(
        first.log().contains(&key.public_key().to_hex()),
        "pubkey logged at start"
    );

    // An announcement a client publishes to our relay (listing a third relay nobody else
    // names) is accepted by the policy and makes the node sync that relay too.
    let source_c = SourceRelay::start(Behaviour::Plain)
        .await
        .expect("source C");
    let c = source_c.direct_url();
    let (announced, on_c) = repo_only_on(&ours, &c);
    source_c.seed(&on_c).await.expect("seed C");
    publish(&ours, &announced).await;
    let c_ids: Vec<EventId> = on_c.iter().map(|e| e.id).collect();
    let c_served = eventually(Duration::from_secs(30), || async {
        served_ids(&ours, &c_ids).await.len() == c_ids.len()
    })
    .await;
    assert!(
        c_served,
        "events of the announced relay not synced; log:\n{}",
        first.log()
    );
    ids.extend(c_ids);

    let log = first.terminate();
    assert!(log.contains("stopped cleanly"), "{log}");

    // The store reopens and holds everything.
    {
        let store = nostr_lmdb::NostrLMDB::open(data.join("lmdb")).expect("store reopens");
        let held = store
            .count(Filter::new().ids(ids.iter().copied()))
            .await
            .expect("count");
        assert_eq!(held, ids.len());
    }

    // A restart resumes from the store: both relays complete again and nothing is downloaded
    // anew.
    let second = Running::start(port, metrics_port, &data, &a, &scratch.join("second.log"));
    let settled = eventually(Duration::from_secs(30), || async {
        let Some(body) = http_get(metrics_port, "/status").await else {
            return false;
        };
        let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let relays = status["sync"]["relays"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        relays.len() == 3 && relays.iter().all(|r| r["status"] == "Connected")
    })
    .await;
    assert!(settled, "not settled after restart; log:\n{}", second.log());
    let text = http_get(metrics_port, "/metrics")
        .await
        .expect("/metrics answers");
    assert_eq!(
        metric(&text, "ngit_sync_events_synced_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(served_ids(&ours, &ids).await.len(), ids.len());
    second.terminate();
    let _ = std::fs::remove_dir_all(&scratch);
}
