//! Across crates: a trace recorded by `sync-runtime` against real relays replays identically in
//! the `sync-sim` binary (`sync-sim replay <trace>`), so a production trace can be debugged in
//! the simulator. The runtime syncs a small repository from two nostr-relay-builder relays on
//! 127.0.0.1, shuts down (which flushes the trace), and the simulator's CLI replays the file.

mod rt_support;

use std::process::Command;

use nostr::{Event, Keys};
use rt_support::*;
use sync_runtime::SyncRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_trace_replays_identically_in_the_sync_sim_cli() {
    let (a, b) = (TestRelay::start(None).await, TestRelay::start(None).await);
    let owner = Keys::generate();
    let t = now_secs() - 3_600;
    let ann = announcement(&owner, "traced", &[&a.url, &b.url, OWN_URL], t);
    let c = coord(&owner, "traced");
    let repo_state = state(&owner, "traced", t + 1);
    let patches: Vec<Event> = (0..6)
        .map(|n| root(&owner, 1617, &c, n, t + 2 + n))
        .collect();
    let replies: Vec<Event> = patches
        .iter()
        .take(2)
        .enumerate()
        .map(|(n, p)| reply(&owner, "e", p, t + 10 + n as u64))
        .collect();
    a.store(&[ann.clone(), repo_state.clone()]).await;
    a.store(&patches[..3]).await;
    b.store(std::slice::from_ref(&ann)).await;
    b.store(&patches[3..]).await;
    b.store(&replies).await;

    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("runtime-trace.jsonl");
    let host = host_db();
    let handle = SyncRuntime::builder(fast_config(&[]))
        .database(host.clone())
        .trace_path(trace.clone())
        .seed(16)
        .spawn()
        .await
        .unwrap();
    host_accepts(&handle, host.as_ref(), &ann).await;
    let all: Vec<Event> = std::iter::once(repo_state)
        .chain(patches)
        .chain(replies)
        .collect();
    assert!(
        eventually(WAIT, || holds_all(host.as_ref(), &all)).await,
        "the repository is synced from both relays"
    );
    wait_connected(&handle, &[&a.url, &b.url]).await;
    handle.shutdown().await.unwrap();

    let text = std::fs::read_to_string(&trace).unwrap();
    let (_, steps) = sync_core::trace::parse(&text).expect("the runtime writes a parsable trace");
    assert!(!steps.is_empty(), "the trace records the run");

    let output = Command::new(grasp_sync_tests::workspace_bin::build_executable(&[
        "-p", "sync-sim", "--bin", "sync-sim",
    ]))
    .arg("replay")
    .arg(&trace)
    .output()
    .expect("sync-sim runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("replay: identical"),
        "sync-sim replay {}:\n{stdout}\n{}",
        trace.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}
