//! The open-network rules (docs/spec.md §13) on the real binary: a bootstrap relay on loopback
//! serves an announcement that lists our relay and, besides, targets on other loopback
//! spellings and a clone URL on loopback; its NIP-11 answer redirects to yet another loopback
//! address. Each of those is a listener that counts connection attempts. By default every
//! counter stays 0 while the bootstrap relay's events are synced; with
//! `--allow-private-targets` every one of them is contacted.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nostr::{Event, EventBuilder, EventId, Filter, Keys, Kind, Tag, Timestamp};
use nostr_sdk::Client;
use sync_runtime::demo::{Behaviour, SourceRelay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A listener that counts the connections made to it (and closes each at once).
struct Counter {
    /// `host:port` as a URL writes it.
    authority: String,
    /// Connections accepted so far.
    hits: Arc<AtomicUsize>,
}

impl Counter {
    fn bind(ip: &str, shown_host: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("bind counting listener");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self {
            authority: format!("{shown_host}:{port}"),
            hits,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Every private target the announcement and the NIP-11 redirect name.
struct Targets {
    /// `(what, counter)`.
    all: Vec<(&'static str, Counter)>,
}

impl Targets {
    fn new() -> Self {
        let all = vec![
            ("ws://127.0.0.2", Counter::bind("127.0.0.2", "127.0.0.2")),
            ("ws://[::1]", Counter::bind("::1", "[::1]")),
            ("ws://localhost", Counter::bind("127.0.0.1", "localhost")),
            ("ws://2130706433", Counter::bind("127.0.0.1", "2130706433")),
            (
                "clone http://127.0.0.3",
                Counter::bind("127.0.0.3", "127.0.0.3"),
            ),
            ("NIP-11 redirect", Counter::bind("127.0.0.4", "127.0.0.4")),
        ];
        Self { all }
    }

    fn relays(&self) -> Vec<String> {
        self.all[..4]
            .iter()
            .map(|(_, c)| format!("ws://{}", c.authority))
            .collect()
    }

    fn clone_url(&self) -> String {
        format!("http://{}/repo.git", self.all[4].1.authority)
    }

    fn redirect(&self) -> String {
        format!("http://{}/", self.all[5].1.authority)
    }

    fn hits(&self) -> Vec<(&'static str, usize)> {
        self.all.iter().map(|(name, c)| (*name, c.hits())).collect()
    }
}

fn sign(kind: u16, tags: Vec<Tag>, at: u64, keys: &Keys) -> Event {
    EventBuilder::new(Kind::from(kind), "")
        .tags(tags)
        .custom_created_at(Timestamp::from(at))
        .sign_with_keys(keys)
        .expect("sign")
}

fn tag(parts: &[&str]) -> Tag {
    Tag::parse(parts.iter().copied()).expect("tag")
}

/// The announcement (our relay, the bootstrap relay and the private targets) and a patch.
fn corpus(ours: &str, bootstrap: &str, targets: &Targets) -> Vec<Event> {
    let keys = Keys::generate();
    let mut relays = vec![
        "relays".to_string(),
        ours.to_string(),
        bootstrap.to_string(),
    ];
    relays.extend(targets.relays());
    let relays: Vec<&str> = relays.iter().map(String::as_str).collect();
    let announcement = sign(
        30617,
        vec![
            tag(&["d", "repo"]),
            tag(&relays),
            tag(&["clone", &targets.clone_url()]),
        ],
        1_760_000_000,
        &keys,
    );
    let coord = format!("30617:{}:repo", keys.public_key().to_hex());
    let patch = sign(1617, vec![tag(&["a", &coord])], 1_760_000_001, &keys);
    vec![announcement, patch]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The running binary; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(port: u16, metrics: u16, data: &Path, bootstrap: &str, lab: bool) -> Running {
    let mut cmd = Command::new(grasp_sync_tests::workspace_bin::grasp_sync());
    cmd.args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .args(["--data-dir", data.to_str().expect("utf-8")])
        .args(["--bootstrap", bootstrap, "--seed", "1"])
        .args(["--discovery-window-ms", "200", "--startup-jitter-ms", "0"])
        .args(["--backoff-base-ms", "200", "--backoff-max-ms", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if lab {
        cmd.arg("--allow-private-targets");
    }
    Running(cmd.spawn().expect("grasp-sync starts"))
}

/// The ids our relay serves out of `ids`.
async fn served(url: &str, ids: &[EventId]) -> usize {
    let client = Client::default();
    if client.add_relay(url).await.is_err() {
        return 0;
    }
    client.connect().await;
    let filter = Filter::new().ids(ids.iter().copied());
    let n = client
        .fetch_events(filter, Duration::from_secs(2))
        .await
        .map_or(0, |events| events.len());
    client.shutdown().await;
    n
}

async fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
}

/// One run of the binary over a fresh data directory; returns the counters' hits once the
/// bootstrap relay's events are served (and, with `lab`, once every target was contacted),
/// and the `/status` and `/metrics` texts.
async fn run_once(lab: bool) -> (Vec<(&'static str, usize)>, String, String) {
    let targets = Targets::new();
    let source = SourceRelay::start(Behaviour::Plain).await.expect("source");
    let upstream: u16 = source
        .direct_url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let redirect = grasp_sync_tests::http_front::redirect(&targets.redirect());
    let bootstrap = grasp_sync_tests::http_front::start(upstream, redirect).await;
    let (port, metrics) = (free_port(), free_port());
    let ours = format!("ws://127.0.0.1:{port}");
    let events = corpus(&ours, &bootstrap, &targets);
    source.seed(&events).await.expect("seed");
    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
    let data = tempfile::tempdir().expect("tempdir");
    let _running = start(port, metrics, data.path(), &bootstrap, lab);
    let start = Instant::now();
    let mut synced = false;
    while start.elapsed() < Duration::from_secs(40) {
        synced = synced || served(&ours, &ids).await == ids.len();
        let all_hit = targets.hits().iter().all(|(_, n)| *n > 0);
        if synced && (!lab || all_hit) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        synced,
        "the bootstrap relay's events are synced (lab: {lab})"
    );
    if !lab {
        // Long enough for discovery, connects and the NIP-11 fetch to have happened.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let status = http_get(metrics, "/status").await;
    let metrics_text = http_get(metrics, "/metrics").await;
    (targets.hits(), status, metrics_text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_never_contacted_unless_the_lab_switch_is_on() {
    let (hits, status, metrics) = run_once(false).await;
    assert!(
        hits.iter().all(|(_, n)| *n == 0),
        "no private target was contacted: {hits:?}"
    );
    for refused in [
        "ws://127.0.0.2:",
        "ws://[::1]:",
        "ws://localhost:",
        "ws://127.0.0.3:",
    ] {
        assert!(
            status.contains(refused),
            "/status lists {refused}: {status}"
        );
    }
    let refused_line = metrics
        .lines()
        .find(|l| l.starts_with("ngit_sync_relays_refused_total{reason=\"non_global_address\"}"))
        .unwrap_or_default()
        .to_string();
    let count: f64 = refused_line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(count >= 5.0, "refusals counted: {refused_line:?}");

    let (hits, _, _) = run_once(true).await;
    assert!(
        hits.iter().all(|(_, n)| *n > 0),
        "with --allow-private-targets every target is contacted: {hits:?}"
    );
}
