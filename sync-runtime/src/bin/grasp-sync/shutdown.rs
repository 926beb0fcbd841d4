//! Graceful shutdown: SIGINT and SIGTERM become one broadcast "stop" that every task of the
//! process watches.

use tokio::sync::watch;

/// The sending half: `trigger` once, every [`Stop`] wakes.
#[derive(Clone, Debug)]
pub(crate) struct Trigger(watch::Sender<bool>);

/// A handle that resolves when shutdown was triggered. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Stop(watch::Receiver<bool>);

/// A connected pair.
pub(crate) fn channel() -> (Trigger, Stop) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Stop(rx))
}

impl Trigger {
    /// Asks every holder of a [`Stop`] to stop. Idempotent.
    pub(crate) fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// Resolves once shutdown was triggered (at once if it already was, or if the trigger is
    /// gone).
    pub(crate) async fn wait(&mut self) {
        // An error means the sender was dropped: treat as a stop too.
        let _stopped = self.0.wait_for(|stop| *stop).await;
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM and returns the signal's name.
pub(crate) async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops grasp-sync");
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_every_clone() {
        let (trigger, stop) = channel();
        let mut a = stop.clone();
        let mut b = stop;
        let waiter = tokio::spawn(async move { b.wait().await });
        trigger.trigger();
        a.wait().await;
        waiter.await.expect("waiter finished");
    }
}
