//! Resolved settings of `grasp-sync run`: flags and environment (already merged by clap) over
//! the `--config` file over the defaults, validated, with every error naming the option.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use sync_core::RelayUrl;

use crate::cli::RunArgs;
use crate::client_options;
use crate::config_file::{self, FileConfig};
use crate::logging::LogFormat;
use crate::tunables::Tunables;
use sync_runtime::demo::ClientLimits;

/// Default `--listen`.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:7777";
/// Default `--metrics-listen`.
pub(crate) const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9777";
/// Default `--data-dir`.
pub(crate) const DEFAULT_DATA_DIR: &str = "./grasp-sync-data";

/// Everything `run` needs, validated.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Where the relay listens (a concrete socket address).
    pub(crate) listen: SocketAddr,
    /// Canonical URLs this relay is known by; never empty.
    pub(crate) service_urls: Vec<String>,
    /// The data directory; exists and is writable.
    pub(crate) data_dir: PathBuf,
    /// The relay's NIP-42 key file (`--relay-key-file`, else `relay.key` in the data
    /// directory); created on first start (docs/spec.md §14).
    pub(crate) relay_key_file: PathBuf,
    /// Accept every valid announcement.
    pub(crate) archive_all: bool,
    /// Keep or delete a withdrawn repository's stored events.
    pub(crate) on_withdrawal: sync_runtime::OnWithdrawal,
    /// Where `/metrics` and `/status` are served.
    pub(crate) metrics_listen: SocketAddr,
    /// The seed of the engine's randomness.
    pub(crate) seed: u64,
    /// True when the seed was drawn from the OS (it is logged so a run can be reproduced).
    pub(crate) seed_from_os: bool,
    /// Optional JSONL trace of the engine's inputs.
    pub(crate) record_trace: Option<PathBuf>,
    /// Log format.
    pub(crate) log: LogFormat,
    /// Most repositories one author may announce here.
    pub(crate) max_announcements_per_author: usize,
    /// Size and tag bounds on events, from sync and from clients alike.
    pub(crate) event_limits: sync_runtime::EventLimits,
    /// The engine configuration: own URLs = `service_urls`, bootstrap relays, negentropy switch
    /// and every tunable; `validate()` passed.
    pub(crate) sync: sync_core::Config,
    /// Limits on the relay's own clients, validated.
    pub(crate) clients: ClientLimits,
}

/// Resolves `args` (flags > env) over the `--config` file over the defaults.
pub(crate) fn resolve(args: RunArgs) -> Result<Settings, String> {
    let file = match &args.config {
        Some(path) => config_file::load(path)?,
        None => FileConfig::default(),
    };
    merge(args, file)
}

/// The merge and validation, separate from reading the file so it can be tested.
pub(crate) fn merge(args: RunArgs, file: FileConfig) -> Result<Settings, String> {
    let clients = client_options::merge(args.clients, &file)?;
    let (listen, metrics_listen) = listen_addrs(args.listen, args.metrics_listen, &file)?;
    let raw_service = prefer(args.service_url, file.service_url);
    let service_urls = if raw_service.is_empty() {
        vec![canonical_url("--service-url", &format!("ws://{listen}"))?]
    } else {
        canonical_urls("--service-url", &raw_service)?
    };
    let bootstrap = canonical_urls("--bootstrap", &prefer(args.bootstrap, file.bootstrap))?;
    if let Some(own) = bootstrap.iter().find(|b| service_urls.contains(b)) {
        return Err(format!(
            "--bootstrap {own} is one of this relay's own --service-url values; a relay never syncs from itself"
        ));
    }
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    check_data_dir(&data_dir)?;
    let relay_key_file = args
        .relay_key_file
        .or(file.relay_key_file)
        .unwrap_or_else(|| data_dir.join(sync_runtime::relay_key::RELAY_KEY_FILE));
    let (seed, seed_from_os) = match args.seed.or(file.seed) {
        Some(seed) => (seed, false),
        None => (seed_from_os(), true),
    };
    let mut sync = sync_config(
        service_urls.clone(),
        bootstrap,
        args.disable_negentropy.or(file.disable_negentropy),
        args.sync.or(file.sync),
    )?;
    sync.allow_private_targets = args
        .allow_private_targets
        .or(file.allow_private_targets)
        .unwrap_or(false);
    sync.sync_plus = args.sync_plus.or(file.sync_plus).unwrap_or(true);
    sync.index_relays =
        canonical_urls("--index-relay", &prefer(args.index_relay, file.index_relay))?;
    let on_withdrawal = on_withdrawal(args.on_withdrawal, file.on_withdrawal.as_deref())?;
    let event_limits = event_limits(
        args.max_event_bytes.or(file.max_event_bytes),
        args.max_event_tags.or(file.max_event_tags),
    )?;
    Ok(Settings {
        listen,
        service_urls,
        data_dir,
        relay_key_file,
        archive_all: args.archive_all.or(file.archive_all).unwrap_or(false),
        on_withdrawal,
        max_announcements_per_author: args
            .max_announcements_per_author
            .or(file.max_announcements_per_author)
            .unwrap_or(sync_runtime::grasp::DEFAULT_MAX_ANNOUNCEMENTS_PER_AUTHOR),
        event_limits,
        metrics_listen,
        seed,
        seed_from_os,
        record_trace: args.record_trace.or(file.record_trace),
        log: args.log.or(file.log).unwrap_or_default(),
        sync,
        clients,
    })
}

/// `--listen` and `--metrics-listen` (flag > env > file > default); they must differ.
fn listen_addrs(
    listen: Option<String>,
    metrics_listen: Option<String>,
    file: &FileConfig,
) -> Result<(SocketAddr, SocketAddr), String> {
    let listen_text = listen.or_else(|| file.listen.clone());
    let listen = parse_addr("--listen", listen_text.as_deref().unwrap_or(DEFAULT_LISTEN))?;
    let metrics_text = metrics_listen.or_else(|| file.metrics_listen.clone());
    let metrics_listen = parse_addr(
        "--metrics-listen",
        metrics_text.as_deref().unwrap_or(DEFAULT_METRICS_LISTEN),
    )?;
    if metrics_listen == listen {
        return Err(format!(
            "--metrics-listen {metrics_listen} is the same address as --listen"
        ));
    }
    Ok((listen, metrics_listen))
}

/// `--on-withdrawal` (flag > env > file), default keep.
fn on_withdrawal(
    flag: Option<sync_runtime::OnWithdrawal>,
    file: Option<&str>,
) -> Result<sync_runtime::OnWithdrawal, String> {
    match (flag, file) {
        (Some(mode), _) => Ok(mode),
        (None, Some(text)) => text
            .parse()
            .map_err(|e| format!("on_withdrawal in the config file: {e}")),
        (None, None) => Ok(sync_runtime::OnWithdrawal::Keep),
    }
}

/// `--max-event-bytes` and `--max-event-tags` as given (flag > env > file), else the defaults;
/// validated.
fn event_limits(
    bytes: Option<usize>,
    tags: Option<usize>,
) -> Result<sync_runtime::EventLimits, String> {
    let defaults = sync_runtime::EventLimits::default();
    let limits = sync_runtime::EventLimits {
        max_event_bytes: bytes.unwrap_or(defaults.max_event_bytes),
        max_event_tags: tags.unwrap_or(defaults.max_event_tags),
    };
    if limits.max_event_bytes < 1_024 || limits.max_event_tags == 0 {
        return Err(
            "--max-event-bytes must be at least 1024 and --max-event-tags at least 1".into(),
        );
    }
    Ok(limits)
}

/// The engine configuration from the resolved values; its own validation errors are
/// translated to the flag names.
fn sync_config(
    own: Vec<String>,
    bootstrap: Vec<String>,
    disable_negentropy: Option<bool>,
    tunables: Tunables,
) -> Result<sync_core::Config, String> {
    let mut config = sync_core::Config {
        own_relay_urls: own,
        bootstrap_relays: bootstrap,
        disable_negentropy: disable_negentropy.unwrap_or(false),
        ..sync_core::Config::default()
    };
    tunables.apply(&mut config);
    config.validate().map_err(|e| {
        format!(
            "invalid sync setting --{}: {}",
            e.field.replace('_', "-"),
            e.problem
        )
    })?;
    Ok(config)
}

/// Flags/env values if any were given, else the file's.
fn prefer(given: Vec<String>, file: Vec<String>) -> Vec<String> {
    if given.is_empty() {
        file
    } else {
        given
    }
}

/// A listen address: `IP:PORT`, or `HOST:PORT` that resolves.
fn parse_addr(flag: &str, text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let resolved = text.to_socket_addrs().ok().and_then(|mut a| a.next());
    resolved.ok_or_else(|| {
        format!("invalid {flag} {text:?}: expected IP:PORT or HOST:PORT, e.g. 127.0.0.1:7777")
    })
}

/// Canonicalises every URL, naming the flag and the value on error; duplicates are dropped.
fn canonical_urls(flag: &str, raw: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for url in raw {
        let url = canonical_url(flag, url)?;
        if !out.contains(&url) {
            out.push(url);
        }
    }
    Ok(out)
}

/// One relay URL: must name its scheme (`ws://` or `wss://`) and a host.
fn canonical_url(flag: &str, raw: &str) -> Result<String, String> {
    let lower = raw.trim().to_ascii_lowercase();
    let explicit = lower.starts_with("ws://") || lower.starts_with("wss://");
    match RelayUrl::parse(raw) {
        Some(url) if explicit => Ok(url.as_str().to_string()),
        _ => Err(format!(
            "invalid {flag} {raw:?}: expected a relay URL like wss://relay.example.com or ws://127.0.0.1:7777"
        )),
    }
}

/// The data directory must exist (it is created) and be writable.
fn check_data_dir(dir: &Path) -> Result<(), String> {
    let unusable =
        |e: std::io::Error| format!("data directory {} is not usable: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(unusable)?;
    let probe = dir.join(".grasp-sync-write-test");
    std::fs::write(&probe, b"ok").map_err(unusable)?;
    std::fs::remove_file(&probe).map_err(unusable)?;
    Ok(())
}

/// A seed from the OS: std's per-process random hasher keys, mixed with the clock.
fn seed_from_os() -> u64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::collections::hash_map::RandomState::new().hash_one(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_with_dir() -> (RunArgs, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let args = RunArgs {
            data_dir: Some(dir.path.clone()),
            ..RunArgs::default()
        };
        (args, dir)
    }

    /// A throwaway directory under the target dir's temp, removed on drop.
    mod tempdir {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicU32, Ordering};

        static NEXT: AtomicU32 = AtomicU32::new(0);

        pub(super) struct Dir {
            pub(super) path: PathBuf,
        }

        impl Dir {
            pub(super) fn new() -> Self {
                let n = NEXT.fetch_add(1, Ordering::SeqCst);
                let path = std::env::temp_dir()
                    .join(format!("grasp-sync-settings-{}-{n}", std::process::id()));
                Self { path }
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[test]
    fn defaults_derive_the_service_url_from_listen() {
        let (args, _dir) = args_with_dir();
        let s = merge(args, FileConfig::default()).expect("defaults are valid");
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.metrics_listen.to_string(), DEFAULT_METRICS_LISTEN);
        assert_eq!(s.service_urls, vec!["ws://127.0.0.1:7777".to_string()]);
        assert_eq!(s.sync.own_relay_urls, s.service_urls);
        assert!(s.seed_from_os);
        assert!(!s.archive_all);
        assert_eq!(s.on_withdrawal, sync_runtime::OnWithdrawal::Keep);
        assert_eq!(s.sync.chunk_size, 100);
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let (mut args, _dir) = args_with_dir();
        args.listen = Some("127.0.0.1:8001".into());
        args.sync.chunk_size = Some(11);
        let file = config_file::parse(
            "listen = \"127.0.0.1:8002\"\nseed = 9\non_withdrawal = \"delete\"\nbootstrap = [\"WSS://Other.Relay/\"]\n[sync]\nchunk_size = 22\npage_limit = 33",
        )
        .expect("valid");
        let s = merge(args, file).expect("valid");
        assert_eq!(s.listen.port(), 8001);
        assert_eq!(s.seed, 9);
        assert_eq!(s.on_withdrawal, sync_runtime::OnWithdrawal::Delete);
        assert!(!s.seed_from_os);
        assert_eq!(
            s.sync.bootstrap_relays,
            vec!["wss://other.relay".to_string()]
        );
        assert_eq!(s.sync.chunk_size, 11);
        assert_eq!(s.sync.page_limit, 33);
    }

    #[test]
    fn bad_values_name_their_option() {
        type Edit = Box<dyn Fn(&mut RunArgs)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|a| a.listen = Some("nonsense".into())), "--listen"),
            (
                Box::new(|a| a.bootstrap = vec!["http://x".into()]),
                "--bootstrap",
            ),
            (
                Box::new(|a| a.bootstrap = vec!["relay.example".into()]),
                "--bootstrap",
            ),
            (
                Box::new(|a| a.service_url = vec!["ftp://x".into()]),
                "--service-url",
            ),
            (Box::new(|a| a.sync.chunk_size = Some(0)), "--chunk-size"),
            (
                Box::new(|a| a.sync.max_subscriptions = Some(1)),
                "--max-subscriptions",
            ),
            (
                Box::new(|a| a.bootstrap = vec!["ws://127.0.0.1:7777".into()]),
                "own --service-url",
            ),
            (
                Box::new(|a| a.metrics_listen = Some(DEFAULT_LISTEN.into())),
                "--metrics-listen",
            ),
        ];
        for (edit, expected) in cases {
            let (mut args, _dir) = args_with_dir();
            edit(&mut args);
            let err = merge(args, FileConfig::default()).unwrap_err();
            assert!(err.contains(expected), "{err:?} should mention {expected}");
        }
    }

    #[test]
    fn a_file_in_place_of_the_data_dir_is_rejected() {
        let dir = tempdir::Dir::new();
        std::fs::create_dir_all(&dir.path).expect("mkdir");
        let file_path = dir.path.join("plain-file");
        std::fs::write(&file_path, b"x").expect("write");
        let args = RunArgs {
            data_dir: Some(file_path.join("sub")),
            ..RunArgs::default()
        };
        let err = merge(args, FileConfig::default()).unwrap_err();
        assert!(err.contains("data directory"), "{err}");
    }
}
