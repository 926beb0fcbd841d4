//! The demo's source relays: in-process `LocalRelay`s on loopback, each with a behaviour that
//! exercises one part of the sync engine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nostr::Event;
use nostr_database::{MemoryDatabase, MemoryDatabaseOptions, NostrDatabase};
use nostr_relay_builder::builder::RateLimit;
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use tokio::net::TcpListener;

use super::neg_proxy::{NegMode, NegProxy};
use super::relay_front::RelayFront;

/// Results per filter on the capping relay (forces pagination).
pub const CAPPED_FILTER_LIMIT: usize = 100;

/// What makes a source relay special.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers at most [`CAPPED_FILTER_LIMIT`] events per filter.
    Capped,
    /// Stopped and restarted in the middle of the run (events are added while it is down).
    Restarting,
    /// Does not speak NIP-77: announcements list a [`NegProxy`] in front of it that answers
    /// every negentropy message with strfry's `NOTICE "ERROR: bad msg: unknown cmd"`.
    NoNegentropy,
    /// Not a bootstrap relay: only an announcement on another relay names it.
    DiscoverOnly,
    /// A plain relay.
    Plain,
}

impl Behaviour {
    /// The behaviour of source `index` (the first four are the special ones).
    #[must_use]
    pub fn for_index(index: usize) -> Self {
        match index {
            0 => Self::Capped,
            1 => Self::Restarting,
            2 => Self::NoNegentropy,
            3 => Self::DiscoverOnly,
            _ => Self::Plain,
        }
    }

    /// A short label for tables.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Capped => "caps 100/filter",
            Self::Restarting => "restarted",
            Self::NoNegentropy => "no NIP-77",
            Self::DiscoverOnly => "via announcement",
            Self::Plain => "plain",
        }
    }
}

/// One running (or stopped) source relay.
#[derive(Debug)]
pub struct SourceRelay {
    /// Its behaviour.
    pub behaviour: Behaviour,
    /// Its store (shared with the relay; written directly when seeding).
    pub db: Arc<MemoryDatabase>,
    /// The relay behind the front.
    relay: LocalRelay,
    /// The listener front; `None` while stopped.
    front: Option<RelayFront>,
    /// The address it listens on (kept across restarts).
    addr: SocketAddr,
    /// The NIP-77-refusing proxy in front of a [`Behaviour::NoNegentropy`] relay.
    proxy: Option<NegProxy>,
}

impl SourceRelay {
    /// Binds a loopback port and starts serving an empty store.
    pub async fn start(behaviour: Behaviour) -> std::io::Result<Self> {
        let db = Arc::new(MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: None,
        }));
        let mut builder = RelayBuilder::default()
            .database(db.clone())
            .rate_limit(RateLimit {
                max_reqs: 500,
                notes_per_minute: 1_000_000,
            });
        if behaviour == Behaviour::Capped {
            builder = builder
                .default_filter_limit(CAPPED_FILTER_LIMIT)
                .max_filter_limit(CAPPED_FILTER_LIMIT);
        }
        let relay = LocalRelay::new(builder);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let front = RelayFront::start(relay.clone(), listener, None);
        let proxy = match behaviour {
            Behaviour::NoNegentropy => {
                Some(NegProxy::start(&format!("ws://{addr}"), NegMode::Notice).await?)
            }
            _ => None,
        };
        Ok(Self {
            behaviour,
            db,
            relay,
            front: Some(front),
            addr,
            proxy,
        })
    }

    /// The URL clients use (and announcements list): the proxy's for a relay without NIP-77,
    /// else the relay's own.
    #[must_use]
    pub fn url(&self) -> String {
        self.proxy
            .as_ref()
            .map_or_else(|| self.direct_url(), NegProxy::url)
    }

    /// `NEG-OPEN` messages the proxy refused so far (0 without a proxy).
    #[must_use]
    pub fn neg_opens_refused(&self) -> usize {
        self.proxy.as_ref().map_or(0, NegProxy::neg_opens)
    }

    /// `ws://127.0.0.1:<port>`: where the relay itself listens.
    #[must_use]
    pub fn direct_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Stores events directly (no client, no notification): for seeding and for events
    /// "published" while the relay is down.
    pub async fn seed(&self, events: impl IntoIterator<Item = &Event>) -> Result<(), String> {
        for event in events {
            self.db
                .save_event(event)
                .await
                .map_err(|e| format!("seeding {}: {e}", self.direct_url()))?;
        }
        Ok(())
    }

    /// Closes the listener and every connection now.
    pub async fn stop(&mut self) {
        if let Some(front) = self.front.take() {
            front.stop().await;
        }
    }

    /// True while serving.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.front.is_some()
    }

    /// Listens again on the same port (retrying for up to 2 s while the port is released).
    pub async fn restart(&mut self) -> std::io::Result<()> {
        if self.front.is_some() {
            return Ok(());
        }
        let mut last_error = None;
        for _ in 0..40 {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => {
                    self.front = Some(RelayFront::start(self.relay.clone(), listener, None));
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("cannot rebind")))
    }

    /// Every event the relay holds now.
    pub async fn all_events(&self) -> Result<Vec<Event>, String> {
        let events = self
            .db
            .query(nostr::Filter::new())
            .await
            .map_err(|e| format!("querying {}: {e}", self.direct_url()))?;
        Ok(events.into_iter().collect())
    }
}
