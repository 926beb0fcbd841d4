//! The `grasp-sync` command line: bad input is rejected before anything starts, with a message
//! that names the option, and flag > env > file precedence holds. Runs the real binary.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh scratch directory for one test (removed at the end of the test).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("grasp-sync-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `grasp-sync` with `args` and `envs`, no inherited `GRASP_SYNC_*` variables.
fn grasp_sync(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(grasp_sync_tests::workspace_bin::grasp_sync());
    for (key, _) in std::env::vars() {
        if key.starts_with("GRASP_SYNC_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).envs(envs.iter().copied());
    cmd.output().expect("grasp-sync runs")
}

/// Asserts exit code 2 and that stderr contains every `needle`; returns stderr.
fn rejected(output: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{needle:?} not in stderr: {stderr}"
        );
    }
    stderr
}

#[test]
fn help_lists_options_tunables_and_their_env_vars() {
    let output = grasp_sync(&["run", "--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--listen",
        "--service-url",
        "--data-dir",
        "--bootstrap",
        "--archive-all",
        "--on-withdrawal",
        "GRASP_SYNC_ON_WITHDRAWAL",
        "--disable-negentropy",
        "--metrics-listen",
        "--seed",
        "--record-trace",
        "--log",
        "--config",
        "--batch-deadline-ms",
        "--chunk-size",
        "--rate-limit-cooldown-ms",
        "GRASP_SYNC_BATCH_DEADLINE_MS",
        "GRASP_SYNC_LISTEN",
        "--client-max-subscriptions",
        "--client-events-per-minute",
        "--client-max-message-bytes",
        "--client-max-connections",
        "GRASP_SYNC_CLIENT_MAX_MESSAGE_BYTES",
    ] {
        assert!(help.contains(needle), "{needle} missing from run --help");
    }
}

#[test]
fn bad_flags_and_values_name_the_option() {
    let dir = Scratch::new("bad-values");
    let data = dir.path("data");
    let data = data.to_str().expect("utf-8 path");
    let cases: [(&[&str], &[&str]); 9] = [
        (&["--listen", "nonsense"], &["--listen", "nonsense"]),
        (&["--metrics-listen", "1.2.3.4"], &["--metrics-listen"]),
        (
            &["--bootstrap", "http://relay.example"],
            &["--bootstrap", "http://relay.example"],
        ),
        (&["--bootstrap", "relay.example"], &["--bootstrap"]),
        (&["--service-url", "ftp://x"], &["--service-url"]),
        (&["--chunk-size", "0"], &["--chunk-size", "greater than 0"]),
        (&["--max-subscriptions", "1"], &["--max-subscriptions"]),
        (
            &["--client-max-message-bytes", "10"],
            &["--client-max-message-bytes", "between"],
        ),
        (
            &["--client-max-subscriptions", "0"],
            &["--client-max-subscriptions"],
        ),
    ];
    for (args, needles) in cases {
        let mut all = vec!["run", "--data-dir", data];
        all.extend_from_slice(args);
        rejected(&grasp_sync(&all, &[]), needles);
    }
    // Unknown flags and unparsable numbers are clap's errors (also exit code 2).
    rejected(&grasp_sync(&["run", "--bogus"], &[]), &["--bogus"]);
    rejected(&grasp_sync(&["run", "--seed", "x"], &[]), &["--seed"]);
    rejected(&grasp_sync(&["run", "--log", "xml"], &[]), &["--log"]);
    rejected(
        &grasp_sync(&["run", "--on-withdrawal", "purge"], &[]),
        &["--on-withdrawal", "keep or delete"],
    );
    rejected(&grasp_sync(&["demo", "--relays", "2"], &[]), &["--relays"]);
}

#[test]
fn an_unusable_data_dir_is_rejected() {
    let dir = Scratch::new("data-dir");
    let file = dir.path("a-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let below_file = file.join("data");
    let output = grasp_sync(
        &["run", "--data-dir", below_file.to_str().expect("utf-8")],
        &[],
    );
    rejected(&output, &["data directory", "not usable"]);
}

#[test]
fn a_port_in_use_is_reported() {
    let dir = Scratch::new("port");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let free = TcpListener::bind("127.0.0.1:0").expect("bind");
    let metrics = free.local_addr().expect("addr").to_string();
    drop(free);
    let data = dir.path("data");
    let output = grasp_sync(
        &[
            "run",
            "--listen",
            &addr,
            "--metrics-listen",
            &metrics,
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
        &[],
    );
    rejected(&output, &[&addr, "--listen", "port in use"]);
}

#[test]
fn config_file_errors_name_the_file_and_the_key() {
    let dir = Scratch::new("config");
    let file = dir.path("grasp.toml");
    std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").expect("write");
    let output = grasp_sync(&["run", "--config", file.to_str().expect("utf-8")], &[]);
    rejected(&output, &["grasp.toml", "lisen"]);
    let missing = dir.path("missing.toml");
    let output = grasp_sync(&["run", "--config", missing.to_str().expect("utf-8")], &[]);
    rejected(&output, &["missing.toml"]);
}

/// `--listen` is validated before the tunables, so which of the two errors appears shows
/// which `listen` value won.
#[test]
fn flag_beats_env_beats_file() {
    let dir = Scratch::new("precedence");
    let data = dir.path("data");
    let data = data.to_str().expect("utf-8");
    let file = dir.path("grasp.toml");
    std::fs::write(&file, "listen = \"from-file\"\n[sync]\nchunk_size = 0\n").expect("write");
    let file = file.to_str().expect("utf-8");
    let good = "127.0.0.1:1";

    // The file alone: its bad listen is reported.
    let out = grasp_sync(&["run", "--config", file, "--data-dir", data], &[]);
    rejected(&out, &["--listen", "from-file"]);
    // Env over file: the env's good listen wins, so the file's chunk_size = 0 is reported.
    let out = grasp_sync(
        &["run", "--config", file, "--data-dir", data],
        &[("GRASP_SYNC_LISTEN", good)],
    );
    rejected(&out, &["--chunk-size"]);
    // Flag over env: a bad env listen is ignored when the flag is given.
    let out = grasp_sync(
        &[
            "run",
            "--config",
            file,
            "--data-dir",
            data,
            "--listen",
            good,
        ],
        &[("GRASP_SYNC_LISTEN", "from-env")],
    );
    rejected(&out, &["--chunk-size"]);
    // Env alone is read too.
    let out = grasp_sync(
        &["run", "--data-dir", data],
        &[("GRASP_SYNC_LISTEN", "from-env")],
    );
    rejected(&out, &["--listen", "from-env"]);
    // A flag beats the file's tunable as well: with chunk_size fixed, the next check
    // (max_subscriptions, validated after every positive field) is the one that fails.
    let out = grasp_sync(
        &[
            "run",
            "--config",
            file,
            "--data-dir",
            data,
            "--listen",
            good,
            "--chunk-size",
            "5",
            "--max-subscriptions",
            "1",
        ],
        &[],
    );
    let stderr = rejected(&out, &["--max-subscriptions"]);
    assert!(!stderr.contains("--chunk-size"), "{stderr}");
}

#[test]
fn a_corrupt_relay_key_file_is_a_clear_error() {
    let dir = Scratch::new("key");
    let key = dir.path("relay.key");
    std::fs::write(&key, "not a secret key\n").expect("write");
    let ports: Vec<String> = (0..2)
        .map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").to_string()
        })
        .collect();
    let data = dir.path("data");
    let output = grasp_sync(
        &[
            "run",
            "--listen",
            &ports[0],
            "--metrics-listen",
            &ports[1],
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--relay-key-file",
            key.to_str().expect("utf-8"),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("does not hold a secret key"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}
