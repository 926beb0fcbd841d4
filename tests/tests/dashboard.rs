//! docs/grafana-dashboard.json queries only metrics the runtime exports: every `ngit_sync_*`
//! name in every panel's `expr` is a `# TYPE` line of a real runtime's `/metrics` text once it
//! has connected to one relay (fixed label values are created at registration, per-relay series
//! once a relay is tracked, the last-complete time once it is Connected).

mod rt_support;

use std::collections::BTreeSet;

use rt_support::*;
use sync_runtime::SyncRuntime;

/// The metric names in a PromQL expression (`_bucket`, `_sum`, `_count` stripped).
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let mut rest = expr;
    while let Some(at) = rest.find("ngit_sync_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        into.insert(name.to_string());
        rest = &tail[end..];
    }
}

/// Every panel's `expr`, nested rows included.
fn exprs(panels: &serde_json::Value, into: &mut Vec<String>) {
    for panel in panels.as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                into.push(expr.to_string());
            }
        }
        exprs(&panel["panels"], into);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana-dashboard.json"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(json["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let mut all = Vec::new();
    exprs(&json["panels"], &mut all);
    assert!(all.len() >= 12, "panels with queries: {all:?}");
    let mut names = BTreeSet::new();
    for expr in &all {
        metric_names(expr, &mut names);
    }

    let relay = TestRelay::start(None).await;
    let handle = SyncRuntime::builder(fast_config(&[&relay.url]))
        .database(host_db())
        .registry(prometheus::Registry::new())
        .seed(15)
        .spawn()
        .await
        .unwrap();
    let status = wait_connected(&handle, &[&relay.url]).await;
    let snapshot = status.relay(&relay.url).unwrap();
    assert!(snapshot.last_complete.is_some(), "/status: {snapshot:?}");
    assert_eq!(snapshot.counters.disconnects, 0);
    let series = format!(
        "ngit_sync_relay_last_complete_timestamp_seconds{{relay=\"{}\"}}",
        relay.url
    );
    let exported = || async { metric(&handle.metrics_text(), &series).is_some() };
    assert!(eventually(WAIT, exported).await, "{series}");

    let text = handle.metrics_text();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !text.lines().any(|l| l.starts_with(&format!("# TYPE {n} "))))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\n{text}"
    );
}
