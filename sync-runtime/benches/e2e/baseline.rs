//! The baseline: a plain nostr-sdk loop fetching the same filters (the practical floor), with
//! its own client whose database is a fresh LMDB store (the SDK verifies and saves every
//! event it receives there). For a NIP-77 relay: negentropy dry-run per filter
//! (`SyncOptions::default().dry_run()`, avoiding the SDK's early-returning download mode, G1)
//! then `ids` REQs in batches; for the relay without NIP-77: REQ pagination per filter with an
//! inclusive `until` and de-duplication by id. Relays run in parallel.
//!
//! Also the raw negentropy time of an in-sync reconciliation of the same filters (dry-run
//! against the full store, nothing else running).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use nostr::{EventId, Filter, Timestamp};
use nostr_sdk::prelude::{Events, ReqExitPolicy};
use nostr_sdk::{Client, Relay, RelayOptions, SyncOptions};
use sync_runtime::NoDelayTransport;

use crate::world::{Source, World};

/// Negentropy reconciliations in flight per relay.
pub(crate) const NEG_IN_FLIGHT: usize = 8;
/// Ids per `ids` REQ (the engine's `id_chunk_size` is 300; the probe's best was 500).
pub(crate) const IDS_PER_REQ: usize = 500;
/// REQs in flight per relay (ids batches, or pagination of different filters).
pub(crate) const REQS_IN_FLIGHT: usize = 4;
/// Page size of REQ pagination (LocalRelay's default per-filter limit).
pub(crate) const PAGE_LIMIT: usize = 500;
/// Timeout of one REQ or reconciliation.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What the baseline did on one relay.
#[derive(Default)]
pub(crate) struct RelayRun {
    /// Reconciliation (NIP-77) time, or zero.
    pub(crate) negentropy: Duration,
    /// Ids the reconciliations found missing.
    pub(crate) missing_ids: usize,
    /// Fetch time (ids REQs or pagination).
    pub(crate) fetch: Duration,
    /// REQs sent (ids batches or pages).
    pub(crate) requests: usize,
    /// Events received (before de-duplication across relays).
    pub(crate) received: usize,
}

/// A client on `urls`, saving into `db`, `TCP_NODELAY` on, no auto-reconnect.
pub(crate) async fn connect(
    urls: &[String],
    db: Arc<dyn nostr_database::NostrDatabase>,
) -> Result<Client, String> {
    let client = Client::builder()
        .database(db)
        .websocket_transport(NoDelayTransport::allowing_private_targets())
        .build();
    for url in urls {
        let opts = RelayOptions::new()
            .reconnect(false)
            .notification_channel_size(65_536);
        client
            .pool()
            .add_relay(url.as_str(), opts)
            .await
            .map_err(|e| format!("adding {url}: {e}"))?;
        client
            .try_connect_relay(url.as_str(), Duration::from_secs(5))
            .await
            .map_err(|e| format!("connecting {url}: {e}"))?;
    }
    Ok(client)
}

/// The initial sync: every relay in parallel; returns per-relay figures in source order.
pub(crate) async fn initial_sync(world: &World, client: &Client) -> Result<Vec<RelayRun>, String> {
    let mut tasks = Vec::new();
    for source in &world.sources {
        let relay = client
            .relay(source.url.as_str())
            .await
            .map_err(|e| e.to_string())?;
        tasks.push(sync_relay(relay, source));
    }
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .collect()
}

async fn sync_relay(relay: Relay, source: &Source) -> Result<RelayRun, String> {
    if !source.nip77 {
        let started = Instant::now();
        let (requests, received) = paginate_all(&relay, &source.filters).await?;
        return Ok(RelayRun {
            fetch: started.elapsed(),
            requests,
            received,
            ..RelayRun::default()
        });
    }
    let started = Instant::now();
    let mut missing: BTreeSet<EventId> = BTreeSet::new();
    for reconciliation in reconcile_all(&relay, &source.filters).await? {
        // Collected into a BTreeSet: the hash order never reaches the output.
        #[allow(clippy::iter_over_hash_type, reason = "collected into a BTreeSet")]
        for id in reconciliation.remote {
            missing.insert(id);
        }
    }
    let negentropy = started.elapsed();
    let started = Instant::now();
    let ids: Vec<EventId> = missing.iter().copied().collect();
    let batches: Vec<Filter> = ids
        .chunks(IDS_PER_REQ)
        .map(|c| Filter::new().ids(c.iter().copied()))
        .collect();
    let requests = batches.len();
    let received = stream::iter(batches)
        .map(|filter| fetch(&relay, filter))
        .buffer_unordered(REQS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|r| r.map(|events| events.len()))
        .sum::<Result<usize, String>>()?;
    Ok(RelayRun {
        negentropy,
        missing_ids: missing.len(),
        fetch: started.elapsed(),
        requests,
        received,
    })
}

/// Dry-run reconciliation of every filter against the client's store, `NEG_IN_FLIGHT` at once.
async fn reconcile_all(
    relay: &Relay,
    filters: &[Filter],
) -> Result<Vec<nostr_sdk::prelude::Reconciliation>, String> {
    stream::iter(filters.iter().cloned())
        .map(|filter| async move {
            let opts = SyncOptions::default()
                .dry_run()
                .initial_timeout(REQUEST_TIMEOUT);
            relay
                .sync(filter, &opts)
                .await
                .map_err(|e| format!("negentropy on {}: {e}", relay.url()))
        })
        .buffer_unordered(NEG_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// One REQ until EOSE.
async fn fetch(relay: &Relay, filter: Filter) -> Result<Events, String> {
    relay
        .fetch_events(filter, REQUEST_TIMEOUT, ReqExitPolicy::ExitOnEOSE)
        .await
        .map_err(|e| format!("REQ on {}: {e}", relay.url()))
}

/// Paginates every filter, `REQS_IN_FLIGHT` filters at once; returns (pages, events received).
async fn paginate_all(relay: &Relay, filters: &[Filter]) -> Result<(usize, usize), String> {
    let results = stream::iter(filters.iter().cloned())
        .map(|filter| paginate(relay, filter))
        .buffer_unordered(REQS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut totals = (0, 0);
    for result in results {
        let (pages, received) = result?;
        totals.0 += pages;
        totals.1 += received;
    }
    Ok(totals)
}

/// Pages through one filter: `until` = the oldest `created_at` of the previous page
/// (inclusive, so same-second events are not lost), until a short page or a page with
/// nothing new.
async fn paginate(relay: &Relay, filter: Filter) -> Result<(usize, usize), String> {
    let mut seen: BTreeSet<EventId> = BTreeSet::new();
    let mut until: Option<Timestamp> = None;
    let mut pages = 0;
    let mut received = 0;
    loop {
        let mut page = filter.clone().limit(PAGE_LIMIT);
        if let Some(until) = until {
            page = page.until(until);
        }
        let events = fetch(relay, page).await?;
        pages += 1;
        received += events.len();
        let full = events.len() >= PAGE_LIMIT;
        let mut new = 0;
        for event in events {
            until = Some(until.map_or(event.created_at, |u| u.min(event.created_at)));
            new += usize::from(seen.insert(event.id));
        }
        if !full || new == 0 {
            return Ok((pages, received));
        }
    }
}

/// The raw negentropy time of an in-sync reconciliation: every filter of every NIP-77 relay
/// (relays in parallel, `NEG_IN_FLIGHT` filters at once), dry-run against `client`'s full
/// store. Returns the wall time and the ids the relays have and the store lacks (must be 0;
/// ids the store has and one relay lacks are normal: the store is the union of all relays).
pub(crate) async fn raw_negentropy(
    world: &World,
    client: &Client,
) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for source in world.sources.iter().filter(|s| s.nip77) {
        let relay = client
            .relay(source.url.as_str())
            .await
            .map_err(|e| e.to_string())?;
        tasks.push(async move {
            let recs = reconcile_all(&relay, &source.filters).await?;
            Ok::<usize, String>(recs.iter().map(|r| r.remote.len()).sum())
        });
    }
    let diffs = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .sum::<Result<usize, String>>()?;
    Ok((started.elapsed(), diffs))
}

/// REQ pagination of every filter of the relays without NIP-77, with a full store (what an
/// in-sync resync costs there). Returns the wall time and the pages.
pub(crate) async fn paginate_in_sync(
    world: &World,
    client: &Client,
) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let mut pages = 0;
    for source in world.sources.iter().filter(|s| !s.nip77) {
        let relay = client
            .relay(source.url.as_str())
            .await
            .map_err(|e| e.to_string())?;
        pages += paginate_all(&relay, &source.filters).await?.0;
    }
    Ok((started.elapsed(), pages))
}

/// What the baseline's in-sync resync costs when it does what our daily resync does: raw
/// negentropy of the NIP-77 relays and REQ pagination of the others **at the same time**
/// (ours resyncs all relays at once, so their work competes for the same two cores).
pub(crate) struct AtOnce {
    /// Start to the end of the last NIP-77 relay's reconciliation.
    pub(crate) negentropy: Duration,
    /// Start to the end of the last page of the relays without NIP-77.
    pub(crate) pagination: Duration,
    /// Pages requested.
    pub(crate) pages: usize,
}

/// [`raw_negentropy`] and [`paginate_in_sync`] started together (see [`AtOnce`]).
pub(crate) async fn resync_at_once(world: &World, client: &Client) -> Result<AtOnce, String> {
    let (neg, req) = futures_util::future::join(
        raw_negentropy(world, client),
        paginate_in_sync(world, client),
    )
    .await;
    let ((negentropy, _missing), (pagination, pages)) = (neg?, req?);
    Ok(AtOnce {
        negentropy,
        pagination,
        pages,
    })
}
