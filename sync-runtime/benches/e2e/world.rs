//! The benchmark's world: three LMDB-backed `LocalRelay`s on loopback (each behind a
//! `TCP_NODELAY` [`RelayFront`]; the last one also behind a [`NegProxy`] that refuses NIP-77
//! like strfry does), filled with the demo generator's NIP-34 corpus, and the filters a client
//! needs per relay to fetch all of it (built with `sync_core::filters::build`, exactly as the
//! engine builds them).

use std::path::Path;
use std::sync::Arc;

use futures_util::future::join_all;
use nostr::{Event, Filter};
use nostr_database::NostrDatabase;
use nostr_lmdb::NostrLMDB;
use nostr_relay_builder::builder::RateLimit;
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use sync_core::{Item, RepoCoord};
use sync_runtime::demo::{generate, Corpus, GeneratorSpec, NegMode, NegProxy, RelayFront, Scope};
use tokio::net::TcpListener;

/// The URL our (syncing) relay is known by in announcements. Nothing listens there: the engine
/// never dials its own URLs.
pub(crate) const OUR_URL: &str = "ws://127.0.0.1:9";
/// Concurrent `save_event` calls when seeding (nostr-lmdb batches them into one transaction).
const SEED_BATCH: usize = 2_000;

/// One source relay.
pub(crate) struct Source {
    /// The URL announcements list for it (the proxy's for the relay without NIP-77).
    pub(crate) url: String,
    /// Whether it answers NIP-77.
    pub(crate) nip77: bool,
    /// Events placed on it.
    pub(crate) events: usize,
    /// The filters covering everything placed on it.
    pub(crate) filters: Vec<Filter>,
    /// Kept alive for the whole benchmark (dropping it closes the listener).
    _front: RelayFront,
    /// Kept alive for the whole benchmark.
    _proxy: Option<NegProxy>,
    /// The relay (its sessions hold clones).
    _relay: LocalRelay,
}

/// Everything the phases share.
pub(crate) struct World {
    /// The source relays, in generator order.
    pub(crate) sources: Vec<Source>,
    /// The generated data.
    pub(crate) corpus: Corpus,
}

impl World {
    /// Every source URL (the bootstrap list).
    pub(crate) fn urls(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.url.clone()).collect()
    }

    /// Distinct events generated (all of them end up on at least one relay).
    pub(crate) fn total_events(&self) -> usize {
        self.corpus.events.len()
    }

    /// Distinct events of repositories listing us (what the GRASP policy accepts).
    pub(crate) fn synced_scope_events(&self) -> usize {
        self.corpus
            .scope
            .values()
            .filter(|s| **s == Scope::Synced)
            .count()
    }

    /// Root events in the corpus.
    pub(crate) fn root_events(&self) -> usize {
        self.corpus.repos.iter().map(|r| r.roots.len()).sum()
    }
}

/// Starts three LMDB relays in `dir` (the last without NIP-77), generates `events` events
/// with `seed` and seeds each relay with the events placed on it. With `directory`, every
/// announcement is also placed on the first relay, so a client bootstrapped with it alone
/// discovers the other two from the announcements.
pub(crate) async fn build(
    dir: &Path,
    events: usize,
    seed: u64,
    directory: bool,
) -> Result<World, String> {
    let mut started = Vec::new();
    for index in 0..3 {
        started.push(start_relay(dir, index, index != 2).await?);
    }
    let urls: Vec<String> = started.iter().map(|s| s.url.clone()).collect();
    let mut corpus = generate(&GeneratorSpec {
        seed,
        events,
        our_url: OUR_URL.to_string(),
        source_urls: urls,
        must_list: Vec::new(),
    });
    if directory {
        let announcements = corpus
            .events
            .iter_mut()
            .filter(|p| p.event.kind.as_u16() == 30617 && !p.relays.contains(&0));
        announcements.for_each(|p| p.relays.push(0));
    }
    let mut sources = Vec::new();
    for (index, relay) in started.into_iter().enumerate() {
        let placed: Vec<&Event> = corpus
            .events
            .iter()
            .filter(|p| p.relays.contains(&index))
            .map(|p| &p.event)
            .collect();
        seed_store(&relay.db, &placed).await?;
        sources.push(Source {
            url: relay.url,
            nip77: relay.nip77,
            events: placed.len(),
            filters: relay_filters(&corpus, index, sync_core::Config::default().chunk_size),
            _front: relay.front,
            _proxy: relay.proxy,
            _relay: relay.relay,
        });
    }
    Ok(World { sources, corpus })
}

/// A relay while the corpus is not generated yet.
struct Started {
    url: String,
    nip77: bool,
    db: Arc<NostrLMDB>,
    relay: LocalRelay,
    front: RelayFront,
    proxy: Option<NegProxy>,
}

async fn start_relay(dir: &Path, index: usize, nip77: bool) -> Result<Started, String> {
    let db = Arc::new(open_lmdb(&dir.join(format!("source-{index}")))?);
    let relay = LocalRelay::new(RelayBuilder::default().database(db.clone()).rate_limit(
        RateLimit {
            max_reqs: 500,
            notes_per_minute: 1_000_000,
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding source relay {index}: {e}"))?;
    let front = RelayFront::start(relay.clone(), listener, None);
    let proxy = if nip77 {
        None
    } else {
        let proxy = NegProxy::start(&front.url(), NegMode::Notice)
            .await
            .map_err(|e| format!("starting the NIP-77 proxy: {e}"))?;
        Some(proxy)
    };
    let url = proxy.as_ref().map_or_else(|| front.url(), NegProxy::url);
    Ok(Started {
        url,
        nip77,
        db,
        relay,
        front,
        proxy,
    })
}

/// Opens (creating) an LMDB store at `path`.
pub(crate) fn open_lmdb(path: &Path) -> Result<NostrLMDB, String> {
    std::fs::create_dir_all(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    NostrLMDB::open(path).map_err(|e| format!("opening LMDB at {}: {e}", path.display()))
}

/// Saves `events` into `db`, many at a time so nostr-lmdb's ingester batches the writes.
async fn seed_store(db: &NostrLMDB, events: &[&Event]) -> Result<(), String> {
    for chunk in events.chunks(SEED_BATCH) {
        for result in join_all(chunk.iter().map(|e| db.save_event(e))).await {
            result.map_err(|e| format!("seeding a source relay: {e}"))?;
        }
    }
    Ok(())
}

/// The filters covering everything placed on relay `index`: L1, and the state, repo-event and
/// root-event filters of every repository listing it, chunked like the engine chunks them.
fn relay_filters(corpus: &Corpus, index: usize, chunk_size: usize) -> Vec<Filter> {
    let mut items = vec![Item::Announcements];
    for repo in corpus.repos.iter().filter(|r| r.relays.contains(&index)) {
        let Some(coord) = RepoCoord::parse(&repo.coordinate) else {
            continue;
        };
        items.push(Item::State(coord.clone()));
        items.push(Item::RepoEvents(coord));
        items.extend(repo.roots.iter().map(|id| Item::Root(*id)));
    }
    sync_core::filters::build(&items, chunk_size)
        .into_iter()
        .map(|f| f.filter)
        .collect()
}

/// Distinct events in `db`.
pub(crate) async fn count(db: &dyn NostrDatabase) -> Result<usize, String> {
    db.count(Filter::new())
        .await
        .map_err(|e| format!("counting a store: {e}"))
}
