//! Lag bursts: nostr-sdk's notification stream is a tokio broadcast channel, which answers
//! `RecvError::Lagged(missed)` when this reader fell more than the channel's capacity behind.
//! Every lag makes the core catch every relay up, so reporting each `Lagged` result as its own
//! `Input::Lagged` multiplies the catch-up work exactly when the runtime is already behind.
//!
//! A burst is a run of `Lagged` results with no message between them. [`LagReader`] reads the
//! stream and folds a burst into one [`LagBurst`]: after the first `Lagged` it drains the
//! channel without waiting (`try_recv`), and the burst ends at the next real message (kept for
//! the following read) or when the stream would block. The pipeline then reports the burst as
//! ONE `Input::Lagged`, and additionally merges a burst into a `Lagged` it has queued but not
//! yet handed to the driver when no input lies between them (the core has not acted on the
//! first one yet, so one catch-up covers both). The `ngit_sync_stream_lagged_total` metric
//! still counts every `Lagged` result ([`LagBurst::results`]).

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// A run of consecutive `Lagged` results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LagBurst {
    /// How many `Lagged` results the burst folded (at least 1).
    pub(crate) results: u64,
    /// Messages lost over the whole burst (sum of the results' counts).
    pub(crate) missed: u64,
}

/// What [`LagReader::next`] read.
#[derive(Debug, PartialEq)]
pub(crate) enum Received<T> {
    /// A message, in stream order.
    Message(T),
    /// The stream lagged, once or several times in a row.
    Lagged(LagBurst),
    /// Every sender is gone.
    Closed,
}

/// Folds the rest of a burst that began with a `Lagged(first_missed)` result: keeps calling
/// `try_next` while it lags. Returns the burst and the message that ended it, if one did
/// (`None` when the stream would block or is closed).
pub(crate) fn drain_burst<T>(
    first_missed: u64,
    mut try_next: impl FnMut() -> Result<T, TryRecvError>,
) -> (LagBurst, Option<T>) {
    let mut burst = LagBurst {
        results: 1,
        missed: first_missed,
    };
    loop {
        match try_next() {
            Err(TryRecvError::Lagged(missed)) => {
                burst.results += 1;
                burst.missed = burst.missed.saturating_add(missed);
            }
            Ok(message) => return (burst, Some(message)),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return (burst, None),
        }
    }
}

/// A broadcast receiver that reports lag in bursts (see the module docs).
#[derive(Debug)]
pub(crate) struct LagReader<T> {
    /// The stream.
    rx: broadcast::Receiver<T>,
    /// The message that ended the last burst; returned by the next read (at most one).
    stashed: Option<T>,
}

impl<T: Clone> LagReader<T> {
    /// Reads `rx`.
    pub(crate) fn new(rx: broadcast::Receiver<T>) -> Self {
        Self { rx, stashed: None }
    }

    /// The next message, lag burst or the end. Cancel safe: the only await is the receiver's
    /// own cancel-safe `recv`, and the stash is taken only by a read that returns it.
    pub(crate) async fn next(&mut self) -> Received<T> {
        if let Some(message) = self.stashed.take() {
            return Received::Message(message);
        }
        match self.rx.recv().await {
            Ok(message) => Received::Message(message),
            Err(RecvError::Closed) => Received::Closed,
            Err(RecvError::Lagged(missed)) => {
                let rx = &mut self.rx;
                let (burst, next) = drain_burst(missed, || rx.try_recv());
                self.stashed = next;
                Received::Lagged(burst)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_lag_results_fold_into_one_burst_ended_by_the_next_message() {
        let mut script = vec![
            Err(TryRecvError::Lagged(7)),
            Err(TryRecvError::Lagged(2)),
            Ok("m"),
            Err(TryRecvError::Lagged(100)),
        ]
        .into_iter();
        let (burst, next) = drain_burst(5, || script.next().unwrap());
        assert_eq!(
            burst,
            LagBurst {
                results: 3,
                missed: 14
            }
        );
        assert_eq!(next, Some("m"));
        assert_eq!(script.len(), 1, "reading stopped at the message");
    }

    #[test]
    fn a_burst_ends_when_the_stream_would_block_or_closes() {
        for end in [TryRecvError::Empty, TryRecvError::Closed] {
            let mut script = vec![Err(TryRecvError::Lagged(u64::MAX)), Err(end)].into_iter();
            let (burst, next) = drain_burst::<u8>(3, || script.next().unwrap());
            assert_eq!(
                burst,
                LagBurst {
                    results: 2,
                    missed: u64::MAX
                },
                "saturates"
            );
            assert_eq!(next, None);
        }
    }

    #[tokio::test]
    async fn a_real_overflow_reads_as_one_burst_then_the_surviving_messages_in_order() {
        let (tx, rx) = broadcast::channel(2);
        for i in 0..6u32 {
            tx.send(i).unwrap();
        }
        let mut reader = LagReader::new(rx);
        assert_eq!(
            reader.next().await,
            Received::Lagged(LagBurst {
                results: 1,
                missed: 4
            })
        );
        assert_eq!(reader.next().await, Received::Message(4));
        assert_eq!(reader.next().await, Received::Message(5));
        drop(tx);
        assert_eq!(reader.next().await, Received::Closed);
    }
}
