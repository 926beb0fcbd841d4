//! Builds a workspace target with the cargo that runs the tests (same target directory, same
//! profile) and returns the executable's path, read from the build's `compiler-artifact`
//! message. For tests that run another package's binary or an example as a process.

use std::path::{Path, PathBuf};
use std::process::Command;
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
