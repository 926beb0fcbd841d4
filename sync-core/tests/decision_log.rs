//! The core's decisions reach `tracing` with the relay and the reason (docs/spec.md §14):
//! status changes, connect failures and the naughty list, CLOSED reasons, rate limits, NIP-77
//! fallback and reaping, whoever drives the core (no shell polling involved).

use std::io::Write;
use std::sync::{Arc, Mutex};

use sync_core::{Command, Config, Input, Now, RelayUrl, SyncCore};

const R0: &str = "wss://r0.example";

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

/// Runs `f` with the decision log captured at `debug`; returns what was logged.
fn capture(f: impl FnOnce()) -> String {
    let buf = Captured::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    buf.text()
}

fn at(ms: u64) -> Now {
    Now::at(ms, 1_700_000_000 + ms / 1_000)
}

/// A core with `R0` as its bootstrap relay, connected; returns it and the first historic
/// subscription id it opened.
fn connected_core() -> (SyncCore, String) {
    let cfg = Config {
        bootstrap_relays: vec![R0.into()],
        startup_jitter_ms: 0,
        ..Config::default()
    };
    let mut core = SyncCore::new(cfg, 7, at(0));
    let relay = RelayUrl::parse(R0).expect("url");
    let _ = core.step(at(1), Input::Tick);
    let cmds = core.step(at(2), Input::Connected { relay });
    let sub = cmds
        .iter()
        .find_map(|c| match c {
            Command::Subscribe { sub, .. } => Some(sub.0.clone()),
            _ => None,
        })
        .expect("a subscription after connecting");
    (core, sub)
}

fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn status_changes_are_logged_by_the_core_with_the_relay() {
    let log = capture(|| {
        let _ = connected_core();
    });
    let status = lines_with(&log, "relay status");
    assert!(
        status
            .iter()
            .any(|l| l.contains("relay=wss://r0.example") && l.contains("to=Syncing")),
        "{log}"
    );
    // A connect attempt is at debug (its outcome follows at info).
    for line in &status {
        let level = if line.contains("to=Connecting") {
            " DEBUG "
        } else {
            " INFO "
        };
        assert!(line.contains(level), "{log}");
    }
}

#[test]
fn a_failed_connect_is_logged_with_its_class_and_the_wait() {
    let log = capture(|| {
        let cfg = Config {
            bootstrap_relays: vec![R0.into()],
            startup_jitter_ms: 0,
            ..Config::default()
        };
        let mut core = SyncCore::new(cfg, 7, at(0));
        let _ = core.step(at(1), Input::Tick);
        let relay = RelayUrl::parse(R0).expect("url");
        let error = "failed to lookup address information: Name or service not known".into();
        let _ = core.step(at(2), Input::ConnectFailed { relay, error });
    });
    let failed = lines_with(&log, "connect failed");
    assert_eq!(failed.len(), 1, "{log}");
    assert!(failed[0].contains("relay=wss://r0.example"), "{log}");
    assert!(
        failed[0].contains("reason=\"dns\"") || failed[0].contains("reason=dns"),
        "{log}"
    );
    assert!(failed[0].contains("retry_in_ms="), "{log}");
}

#[test]
fn closed_reasons_and_rate_limits_are_logged_escaped() {
    let log = capture(|| {
        let (mut core, sub) = connected_core();
        let relay = RelayUrl::parse(R0).expect("url");
        let message = "rate-limited: slow down\nFORGED line".to_string();
        let _ = core.step(
            at(3),
            Input::Closed {
                relay,
                sub: sub.as_str().into(),
                message,
            },
        );
    });
    let closed = lines_with(&log, "relay closed a subscription");
    assert_eq!(closed.len(), 1, "{log}");
    assert!(
        closed[0].contains("rate-limited: slow down\\nFORGED line"),
        "{log}"
    );
    assert!(!log.lines().any(|l| l.starts_with("FORGED")), "{log}");
    let limited = lines_with(&log, "rate limited: cooling down");
    assert_eq!(limited.len(), 1, "{log}");
    assert!(
        limited[0].contains(" WARN ") && limited[0].contains("pace_ms=500"),
        "{log}"
    );
}

#[test]
fn nip77_fallback_is_logged_once_per_relay() {
    let log = capture(|| {
        let (mut core, _) = connected_core();
        let relay = RelayUrl::parse(R0).expect("url");
        for t in 3..6 {
            let message = "ERROR: negentropy disabled".to_string();
            let relay = relay.clone();
            let _ = core.step(at(t), Input::Notice { relay, message });
        }
    });
    let unsupported = lines_with(&log, "NIP-77 unsupported");
    assert_eq!(unsupported.len(), 1, "{log}");
    assert!(
        unsupported[0].contains("reason=\"notice\"") || unsupported[0].contains("reason=notice")
    );
    assert_eq!(lines_with(&log, "relay notice").len(), 3, "{log}");
}

#[test]
fn nothing_is_logged_without_decisions_to_report() {
    // A quiet core (nothing to connect to) writes nothing, at any level.
    let log = capture(|| {
        let mut core = SyncCore::new(Config::default(), 7, at(0));
        for t in 1..100 {
            let _ = core.step(at(t * 1_000), Input::Tick);
        }
    });
    assert_eq!(log, "");
}
