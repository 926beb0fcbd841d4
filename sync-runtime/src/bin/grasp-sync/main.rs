//! `grasp-sync`: a syncing GRASP relay in one command (`run`), and its end-to-end demo (`demo`).
//!
//! | Concept | File |
//! |---|---|
//! | command line (flags, env vars) | `cli.rs` |
//! | limits on the relay's own clients | `client_options.rs` |
//! | the `--config` TOML file | `config_file.rs` |
//! | one process per data directory (lock file) | `data_lock.rs` |
//! | merge flag > env > file > default, validation | `settings.rs` |
//! | logging | `logging.rs` |
//! | the node: store, policy, runtime, relay, HTTP | `serve.rs` |
//! | `/metrics` and `/status` | `http.rs` |
//! | per-relay progress in the log | `progress_log.rs` |
//! | SIGINT/SIGTERM | `shutdown.rs` |
//! | `demo` | `demo_cmd.rs`, `demo_scenario.rs` |

mod cli;
mod client_options;
mod config_file;
mod data_lock;
mod demo_cmd;
mod demo_scenario;
mod demo_sources;
mod http;
mod logging;
mod progress_log;
mod serve;
mod settings;
mod shutdown;
mod tunables;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, RunArgs};

/// Exit code for configuration errors (clap uses 2 for bad flags too).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("grasp-sync: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Run(args) => runtime.block_on(run(*args)),
        Command::Demo(args) => runtime.block_on(demo_cmd::run(args)),
    }
}

/// `grasp-sync run`: serve and sync until SIGINT/SIGTERM.
async fn run(args: RunArgs) -> ExitCode {
    let settings = match settings::resolve(args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("grasp-sync: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(settings.log, logging::DEFAULT_FILTER);
    // Before the ports: a second grasp-sync on the same directory is told exactly that.
    let lock = match data_lock::DataDirLock::acquire(&settings.data_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("grasp-sync: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let listeners = match serve::bind(&settings).await {
        Ok(listeners) => listeners,
        Err(e) => {
            eprintln!("grasp-sync: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tracing::info!(
        listen = %settings.listen,
        service_urls = ?settings.service_urls,
        data_dir = %settings.data_dir.display(),
        bootstrap = ?settings.sync.bootstrap_relays,
        metrics = %settings.metrics_listen,
        seed = settings.seed,
        seed_from_os = settings.seed_from_os,
        archive_all = settings.archive_all,
        on_withdrawal = settings.on_withdrawal.as_str(),
        negentropy = !settings.sync.disable_negentropy,
        "grasp-sync starting"
    );
    let node = match serve::start(&settings, listeners, lock).await {
        Ok(node) => node,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("grasp-sync: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(relay = %node.relay_addr, metrics = %node.metrics_addr, "serving");
    let signal = shutdown::signal().await;
    tracing::info!(
        signal,
        "shutting down: stopping sync, saving state, closing the store"
    );
    match node.shutdown().await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
