//! `grasp-sync demo` with small settings, as CI runs it: it must verify the store complete
//! and say so, with exit code 0.

use std::process::Command;

/// Parses `demo: synced X/Y events from N relays, M missing`.
fn summary(stdout: &str) -> Option<(u64, u64, u64, u64)> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("demo: synced "))?;
    let rest = line.strip_prefix("demo: synced ")?;
    let (counts, rest) = rest.split_once(" events from ")?;
    let (present, expected) = counts.split_once('/')?;
    let (relays, rest) = rest.split_once(" relays, ")?;
    let missing = rest.strip_suffix(" missing")?;
    Some((
        present.parse().ok()?,
        expected.parse().ok()?,
        relays.parse().ok()?,
        missing.parse().ok()?,
    ))
}

#[test]
fn summary_line_parses() {
    assert_eq!(
        summary("x\ndemo: synced 5/6 events from 4 relays, 1 missing\n"),
        Some((5, 6, 4, 1))
    );
    assert_eq!(summary("demo: synced lots"), None);
}

#[test]
fn small_demo_syncs_everything() {
    let output = Command::new(grasp_sync_tests::workspace_bin::grasp_sync())
        .args([
            "demo",
            "--events",
            "300",
            "--relays",
            "5",
            "--seed",
            "11",
            "--timeout-secs",
            "90",
        ])
        .output()
        .expect("grasp-sync demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let (present, expected, relays, missing) =
        summary(&stdout).unwrap_or_else(|| panic!("no summary line:\n{stdout}\n{stderr}"));
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert_eq!(relays, 5);
    assert_eq!(missing, 0, "{stdout}");
    assert_eq!(present, expected, "{stdout}");
    // 300 generated minus the foreign repository's events, plus live and gap events.
    assert!(expected >= 250, "only {expected} expected:\n{stdout}");
    assert!(stdout.contains("r1 restarted"), "{stdout}");
    // Nothing of the repository that does not list the demo relay was stored.
    assert!(!stdout.contains("not listing us were stored"), "{stdout}");
}
