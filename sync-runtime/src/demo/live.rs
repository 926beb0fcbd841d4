//! Live events during the demo: new follow-ups in repositories that list the syncing relay,
//! published to a running source relay through a real nostr-sdk client (so they reach the
//! syncing relay only through its live subscriptions), or stored directly on a relay that is
//! down (so only the reconnect catch-up can find them).

use std::time::Duration;

use nostr::{Event, Timestamp};
use nostr_sdk::{Client, RelayOptions};

use super::generator::{follow_up, Corpus, Dice, Scope};

/// How often the publisher re-dials a source relay that went away.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// Tries of one publish (a restarted source may still be reconnecting).
const PUBLISH_ATTEMPTS: u32 = 3;

/// Publishes live events with its own client and random stream.
#[derive(Debug)]
pub struct LivePublisher {
    /// Connected to every running source relay.
    client: Client,
    /// Which repo, which relay, which kind.
    dice: DiceBox,
}

/// `Dice` is not `Debug`; this wrapper says so in one line.
struct DiceBox(Dice);

impl std::fmt::Debug for DiceBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dice")
    }
}

impl LivePublisher {
    /// Connects to `urls` (waits up to 5 s for the connections). A relay the demo restarts is
    /// re-dialled every 500 ms: with nostr-sdk's default (10 s, growing, ±3 s) the first
    /// publish after a restart could wait longer than the SDK's 10 s wait for the OK.
    pub async fn connect(seed: u64, urls: &[String]) -> Result<Self, String> {
        let client = Client::default();
        for url in urls {
            let opts = RelayOptions::new()
                .retry_interval(RECONNECT_EVERY)
                .adjust_retry_interval(false);
            client
                .pool()
                .add_relay(url.as_str(), opts)
                .await
                .map_err(|e| format!("live publisher: {url}: {e}"))?;
        }
        client.connect().await;
        client.wait_for_connection(Duration::from_secs(5)).await;
        Ok(Self {
            client,
            dice: DiceBox(Dice::new(seed, 1)),
        })
    }

    /// Creates the next live event (a follow-up in a repository that lists us), records it in
    /// `corpus` as placed on `relay`, and returns it. `relay` must be one of the repository's
    /// relays, so the candidate repositories are those listing it; `None` if there is none.
    pub fn next_event(&mut self, corpus: &mut Corpus, relay: usize) -> Option<Event> {
        let candidates: Vec<usize> = corpus
            .repos
            .iter()
            .enumerate()
            .filter(|(_, r)| r.scope == Scope::Synced && r.relays.contains(&relay))
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let repo = candidates[self.dice.0.below(candidates.len())];
        let event = follow_up(corpus, &mut self.dice.0, repo, Timestamp::now());
        corpus.push(event.clone(), vec![relay], Scope::Synced);
        Some(event)
    }

    /// Sends `event` to the relay at `url` and waits for its OK; a relay that is still
    /// reconnecting (a restarted source) gets [`PUBLISH_ATTEMPTS`] tries.
    pub async fn publish(&self, url: &str, event: &Event) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=PUBLISH_ATTEMPTS {
            match self.client.send_event_to([url], event).await {
                Ok(output) if !output.success.is_empty() => return Ok(()),
                Ok(output) => last = format!("{url} refused a live event: {:?}", output.failed),
                Err(e) => last = format!("publishing to {url}: {e}"),
            }
            if attempt < PUBLISH_ATTEMPTS {
                tokio::time::sleep(RECONNECT_EVERY).await;
            }
        }
        Err(last)
    }

    /// Disconnects.
    pub async fn shutdown(self) {
        self.client.shutdown().await;
    }
}
