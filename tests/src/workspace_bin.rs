//! Builds a workspace target with the cargo that runs the tests (same target directory, same
//! profile) and returns the executable's path, read from the build's `compiler-artifact`
//! message. For tests that run another package's binary or an example as a process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Builds `target_args` (e.g. `["-p", "sync-sim", "--bin", "sync-sim"]`) and returns the
/// executable it produced. Panics with cargo's output if the build fails.
#[must_use]
pub fn build_executable(target_args: &[&str]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let output = Command::new(cargo)
        .arg("build")
        .args(target_args)
        .args(["--message-format=json", "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build {target_args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo build {target_args:?} named no executable"))
}

/// The `grasp-sync` binary (built once per test process), for the binary's black-box tests.
#[must_use]
pub fn grasp_sync() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| build_executable(&["-p", "sync-runtime", "--bin", "grasp-sync"]))
        .clone()
}

/// `grasp-sync run` in the lab setting the black-box tests share: our relay on `port`, metrics
/// on `metrics`, data in `data`, seed 1, no start-up jitter, short backoff (200 ms to 1 s),
/// private targets allowed (the source relays are on loopback), INFO logs to `stderr`. Callers
/// add their own flags and spawn it.
#[must_use]
pub fn lab_run(port: u16, metrics: u16, data: &Path, stderr: std::fs::File) -> Command {
    let mut command = Command::new(grasp_sync());
    command
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .args(["--data-dir", data.to_str().expect("utf-8")])
        .args(["--seed", "1", "--startup-jitter-ms", "0"])
        .args(["--backoff-base-ms", "200", "--backoff-max-ms", "1000"])
        .arg("--allow-private-targets")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr);
    command
}
