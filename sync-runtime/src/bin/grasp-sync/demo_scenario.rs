//! The demo's scenario while the syncing relay runs: live events, the mid-run restart of one
//! source, the progress line, and the stop condition (every expected event stored, every
//! source relay done with its historic sync, the scenario played out) or the deadline.

use std::io::Write;
use std::time::{Duration, Instant};

use sync_runtime::demo::{
    status_line, verify, Behaviour, Corpus, LivePublisher, RelayProgress, Report,
};
use sync_runtime::RuntimeStatus;

use crate::demo_sources::Sources;
use crate::serve::Node;

/// How often the scenario advances and the store is checked.
const TICK: Duration = Duration::from_millis(250);
/// Live events published during the run (one per tick).
const LIVE_EVENTS: usize = 20;
/// Events stored on the restarting relay while it is down.
const GAP_EVENTS: usize = 5;
/// How long the restarting relay stays down.
const DOWN_FOR: Duration = Duration::from_secs(2);
/// The restarting relay is stopped once its historic sync completed, or after this long.
const STOP_AT_LATEST: Duration = Duration::from_secs(15);
/// With every relay done and the scenario played out, the run ends once the store has not
/// changed for this long (nothing more can arrive before the next daily resync).
const STALLED_AFTER: Duration = Duration::from_secs(20);
/// Without a terminal, the progress line is printed this often.
const PLAIN_PRINT_EVERY: Duration = Duration::from_secs(2);

/// Where the restart of the restarting relay stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    /// Waiting for its historic sync to complete.
    Waiting,
    /// Stopped at this instant.
    Down(Instant),
    /// Back up.
    Done,
}

/// The scenario's state.
pub(crate) struct Scenario {
    /// Publishes live events to running sources.
    publisher: LivePublisher,
    /// Rewrite one status line in place (terminal) or print a line every few seconds.
    tty: bool,
    /// Live events published so far.
    live_sent: usize,
    /// The restart's progress.
    restart: Restart,
}

impl Scenario {
    /// Connects the live publisher to every source.
    pub(crate) async fn new(seed: u64, sources: &Sources, tty: bool) -> Result<Self, String> {
        Ok(Self {
            publisher: LivePublisher::connect(seed, &sources.urls).await?,
            tty,
            live_sent: 0,
            restart: Restart::Waiting,
        })
    }

    /// Runs until done or `deadline`; returns the last verification and the runtime's status
    /// of every source (in source order).
    pub(crate) async fn drive(
        &mut self,
        node: &Node,
        sources: &mut Sources,
        corpus: &mut Corpus,
        deadline: Duration,
    ) -> Result<(Report, Vec<String>), String> {
        let start = Instant::now();
        let mut last_print: Option<Instant> = None;
        let mut last_change = (0, Instant::now());
        loop {
            tokio::time::sleep(TICK).await;
            let statuses = source_statuses(&node.handle.status(), &sources.urls);
            self.step_restart(sources, corpus, &statuses, start).await?;
            self.publish_live(sources, corpus).await?;
            let holdings = sources.holdings().await?;
            let report = verify(&holdings, &corpus.scope, node.db.as_ref()).await?;
            self.print_progress(start.elapsed(), &report, &statuses, &mut last_print);
            let settled = statuses
                .iter()
                .all(|s| s == "Connected" || s == "ConnectedHistoricSyncFailures");
            let played_out = self.restart == Restart::Done && self.live_sent == LIVE_EVENTS;
            if played_out && settled && report.is_complete() {
                self.end_line();
                return Ok((report, statuses));
            }
            if report.present_total != last_change.0 {
                last_change = (report.present_total, Instant::now());
            }
            if played_out && settled && last_change.1.elapsed() >= STALLED_AFTER {
                self.end_line();
                println!(
                    "demo: every relay done and no new event stored for {} s: stopping",
                    STALLED_AFTER.as_secs()
                );
                return Ok((report, statuses));
            }
            if start.elapsed() >= deadline {
                self.end_line();
                println!(
                    "demo: gave up after {} s (--timeout-secs)",
                    deadline.as_secs()
                );
                return Ok((report, statuses));
            }
        }
    }

    /// Stops the restarting relay once it completed its historic sync, stores events on it
    /// while it is down (only a reconnect catch-up can find them), restarts it.
    async fn step_restart(
        &mut self,
        sources: &mut Sources,
        corpus: &mut Corpus,
        statuses: &[String],
        start: Instant,
    ) -> Result<(), String> {
        let Some(index) = sources
            .relays
            .iter()
            .position(|r| r.behaviour == Behaviour::Restarting)
        else {
            self.restart = Restart::Done;
            return Ok(());
        };
        match self.restart {
            Restart::Waiting => {
                let complete = statuses[index] == "Connected";
                if complete || start.elapsed() >= STOP_AT_LATEST {
                    sources.relays[index].stop().await;
                    let gap: Vec<_> = (0..GAP_EVENTS)
                        .filter_map(|_| self.publisher.next_event(corpus, index))
                        .collect();
                    sources.relays[index].seed(&gap).await?;
                    self.note(&format!(
                        "r{index} stopped; {} events stored on it while it is down",
                        gap.len()
                    ));
                    self.restart = Restart::Down(Instant::now());
                }
            }
            Restart::Down(since) if since.elapsed() >= DOWN_FOR => {
                sources.relays[index]
                    .restart()
                    .await
                    .map_err(|e| format!("restarting r{index}: {e}"))?;
                self.note(&format!("r{index} restarted"));
                self.restart = Restart::Done;
            }
            Restart::Down(_) | Restart::Done => {}
        }
        Ok(())
    }

    /// Publishes one live event per tick, round-robin over the running sources.
    async fn publish_live(&mut self, sources: &Sources, corpus: &mut Corpus) -> Result<(), String> {
        if self.live_sent >= LIVE_EVENTS {
            return Ok(());
        }
        let count = sources.relays.len();
        for offset in 0..count {
            let index = (self.live_sent + offset) % count;
            if !sources.relays[index].is_running() {
                continue;
            }
            if let Some(event) = self.publisher.next_event(corpus, index) {
                self.publisher.publish(&sources.urls[index], &event).await?;
                self.live_sent += 1;
                return Ok(());
            }
        }
        Ok(())
    }

    /// The live status line.
    fn print_progress(
        &self,
        elapsed: Duration,
        report: &Report,
        statuses: &[String],
        last_print: &mut Option<Instant>,
    ) {
        let rows: Vec<RelayProgress> = report
            .relays
            .iter()
            .enumerate()
            .map(|(i, r)| RelayProgress {
                name: format!("r{i}"),
                status: statuses.get(i).cloned().unwrap_or_default(),
                present: r.present,
                expected: r.expected,
            })
            .collect();
        let line = format!(
            "{} | live {}/{LIVE_EVENTS}",
            status_line(elapsed, &rows),
            self.live_sent
        );
        if self.tty {
            print!("\r{line}\x1b[K");
            let _ = std::io::stdout().flush();
        } else if last_print.is_none_or(|t| t.elapsed() >= PLAIN_PRINT_EVERY) {
            println!("{line}");
            *last_print = Some(Instant::now());
        }
    }

    /// A scenario note on its own line.
    fn note(&self, text: &str) {
        self.end_line();
        println!("demo: {text}");
    }

    /// Ends the in-place status line on a terminal.
    fn end_line(&self) {
        if self.tty {
            println!();
        }
    }

    /// Disconnects the live publisher.
    pub(crate) async fn shutdown(self) {
        self.publisher.shutdown().await;
    }
}

/// The runtime's status name for each source URL (`-` if it does not track it yet).
fn source_statuses(status: &RuntimeStatus, urls: &[String]) -> Vec<String> {
    urls.iter()
        .map(|url| {
            status
                .relay(url)
                .map_or_else(|| "-".to_string(), |r| format!("{:?}", r.status))
        })
        .collect()
}
