//! [`HostileRelay`]: a raw WebSocket relay that answers REQs with configurable misbehaviour,
//! next to a set of valid events it serves correctly (so a test can check good data still
//! flows). It does not speak NIP-77: `NEG-*` messages get strfry's "unknown cmd" NOTICE, which
//! pushes a syncing client onto the REQ path where the misbehaviour lives.

use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use nostr::filter::MatchEventOptions;
use nostr::{
    ClientMessage, Event, EventId, Filter, JsonUtil, Keys, RelayMessage, SubscriptionId, Tag,
    Timestamp,
};
use tokio_tungstenite::tungstenite::{self, Message};

use sync_runtime::demo::server::{Server, ServerSocket};
use sync_runtime::demo::UNKNOWN_CMD_NOTICE;

use crate::testkit::forge;

/// Upper bound on forged events remembered for [`HostileRelay::forged`].
const MAX_REMEMBERED_FORGED: usize = 10_000;
/// Upper bound on one forged page, whatever `limit` a REQ asks for.
const MAX_PAGE: usize = 1_000;

/// What the relay does wrong. Everything off = a well-behaved relay serving the valid set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misbehaviour {
    /// Per historic filter, `forged_per_req` fresh events matching it with a broken signature
    /// or id.
    pub invalid_signatures: bool,
    /// Per REQ, `forged_per_req` validly signed events that match none of its filters but tag
    /// the valid set (a policy would accept them if the filter were not checked).
    pub outside_filter: bool,
    /// Every historic filter (with or without `until`) is answered with a full page (its
    /// `limit`, else `page_size`) of fresh matching events at or below its `until`: pagination
    /// never runs dry.
    pub endless_pages: bool,
    /// Never send EOSE.
    pub no_eose: bool,
    /// Before answering a REQ, send frames that are not valid relay messages.
    pub garbage_frames: bool,
    /// Before answering a REQ, send one `EVENT` frame of at least this many bytes.
    pub oversize_bytes: Option<usize>,
    /// Page size for `endless_pages` when a filter has no `limit`.
    pub page_size: usize,
    /// How many invalid / outside events per REQ.
    pub forged_per_req: usize,
}

impl Default for Misbehaviour {
    fn default() -> Self {
        Self {
            invalid_signatures: false,
            outside_filter: false,
            endless_pages: false,
            no_eose: false,
            garbage_frames: false,
            oversize_bytes: None,
            page_size: 50,
            forged_per_req: 3,
        }
    }
}

/// An event the relay forged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forged {
    /// Matches the REQ's filter; its signature or id does not verify.
    Invalid(Event),
    /// Validly signed, matches none of the REQ's filters.
    Outside(Event),
}

impl Forged {
    /// The event as sent.
    #[must_use]
    pub fn event(&self) -> &Event {
        match self {
            Self::Invalid(event) | Self::Outside(event) => event,
        }
    }
}

/// Counters of what the relay did, monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostileStats {
    /// REQs received.
    pub reqs: usize,
    /// REQs with an `until` in some filter (pagination pages).
    pub reqs_with_until: usize,
    /// `NEG-OPEN`s refused.
    pub neg_opens: usize,
    /// Events of the valid set sent.
    pub valid_sent: usize,
    /// Events with a broken signature or id sent.
    pub invalid_sent: usize,
    /// Events outside the REQ's filters sent.
    pub outside_sent: usize,
    /// Fresh events sent as endless pages.
    pub endless_sent: usize,
    /// Garbage frames sent.
    pub garbage_sent: usize,
    /// Oversize frames sent.
    pub oversize_sent: usize,
}

/// One counter per [`HostileStats`] field.
#[derive(Debug, Default)]
struct Counters {
    /// See [`HostileStats`].
    reqs: AtomicUsize,
    /// See [`HostileStats`].
    reqs_with_until: AtomicUsize,
    /// See [`HostileStats`].
    neg_opens: AtomicUsize,
    /// See [`HostileStats`].
    valid_sent: AtomicUsize,
    /// See [`HostileStats`].
    invalid_sent: AtomicUsize,
    /// See [`HostileStats`].
    outside_sent: AtomicUsize,
    /// See [`HostileStats`].
    endless_sent: AtomicUsize,
    /// See [`HostileStats`].
    garbage_sent: AtomicUsize,
    /// See [`HostileStats`].
    oversize_sent: AtomicUsize,
}

fn bump(counter: &AtomicUsize, by: usize) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// State shared by the sessions.
#[derive(Debug)]
struct Shared {
    /// The misbehaviour; fixed at start.
    misbehaviour: Misbehaviour,
    /// The valid events served, newest first.
    valid: Vec<Event>,
    /// Tags relating forged outsiders to the valid set.
    bait: Vec<Tag>,
    /// Signs forged events.
    keys: Keys,
    /// What happened.
    counters: Counters,
    /// Invalid and outside events sent; at most [`MAX_REMEMBERED_FORGED`].
    forged: Mutex<Vec<Forged>>,
    /// Numbers forged events (unique contents).
    serial: AtomicUsize,
}

impl Shared {
    fn remember(&self, forged_event: Forged) {
        let mut forged = self
            .forged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if forged.len() < MAX_REMEMBERED_FORGED {
            forged.push(forged_event);
        }
    }

    fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed) as u64
    }
}

/// A running hostile relay. Stopping (or dropping) it closes every connection.
#[derive(Debug)]
pub struct HostileRelay {
    /// The listener and its sessions.
    server: Server,
    /// Shared with the sessions.
    shared: Arc<Shared>,
}

impl HostileRelay {
    /// Starts a relay on `127.0.0.1` serving `valid` (answered correctly, by filter) with
    /// `misbehaviour` on top.
    ///
    /// # Errors
    /// If no loopback port can be bound.
    pub async fn start(misbehaviour: Misbehaviour, mut valid: Vec<Event>) -> io::Result<Self> {
        valid.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        let shared = Arc::new(Shared {
            bait: forge::bait_tags(&valid, 8),
            misbehaviour,
            valid,
            keys: Keys::generate(),
            counters: Counters::default(),
            forged: Mutex::new(Vec::new()),
            serial: AtomicUsize::new(0),
        });
        let for_sessions = shared.clone();
        let server = Server::start(move |ws| session(ws, for_sessions.clone())).await?;
        Ok(Self { server, shared })
    }

    /// The relay's URL (`ws://127.0.0.1:<port>`).
    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// What the relay did so far.
    #[must_use]
    pub fn stats(&self) -> HostileStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        HostileStats {
            reqs: get(&c.reqs),
            reqs_with_until: get(&c.reqs_with_until),
            neg_opens: get(&c.neg_opens),
            valid_sent: get(&c.valid_sent),
            invalid_sent: get(&c.invalid_sent),
            outside_sent: get(&c.outside_sent),
            endless_sent: get(&c.endless_sent),
            garbage_sent: get(&c.garbage_sent),
            oversize_sent: get(&c.oversize_sent),
        }
    }

    /// The invalid and outside-the-filter events sent so far (the first 10 000): none of them
    /// may end up in a store.
    #[must_use]
    pub fn forged(&self) -> Vec<Forged> {
        self.shared
            .forged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The ids of [`HostileRelay::forged`].
    #[must_use]
    pub fn forged_ids(&self) -> Vec<EventId> {
        self.forged().iter().map(|f| f.event().id).collect()
    }

    /// Closes the listener and every connection. Idempotent.
    pub fn stop(&self) {
        self.server.stop();
    }
}

/// Serves one connection until it closes.
async fn session(mut ws: ServerSocket, shared: Arc<Shared>) {
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let sent = match ClientMessage::from_json(text.as_str()) {
            Ok(ClientMessage::Req {
                subscription_id,
                filters,
            }) => {
                let filters: Vec<Filter> = filters.into_iter().map(|f| f.into_owned()).collect();
                answer_req(&mut ws, &shared, &subscription_id, &filters).await
            }
            Ok(ClientMessage::NegOpen { .. }) => {
                bump(&shared.counters.neg_opens, 1);
                send(&mut ws, RelayMessage::notice(UNKNOWN_CMD_NOTICE)).await
            }
            Ok(ClientMessage::NegMsg { .. } | ClientMessage::NegClose { .. }) => {
                send(&mut ws, RelayMessage::notice(UNKNOWN_CMD_NOTICE)).await
            }
            Ok(ClientMessage::Event(event)) => {
                send(
                    &mut ws,
                    RelayMessage::ok(event.id, false, "blocked: read-only"),
                )
                .await
            }
            Ok(_) => Ok(()),
            Err(_) => send(&mut ws, RelayMessage::notice("ERROR: bad msg")).await,
        };
        if sent.is_err() {
            break;
        }
    }
}

async fn send(ws: &mut ServerSocket, message: RelayMessage<'_>) -> Result<(), tungstenite::Error> {
    ws.send(Message::text(message.as_json())).await
}

async fn send_event(
    ws: &mut ServerSocket,
    sub: &SubscriptionId,
    event: Event,
) -> Result<(), tungstenite::Error> {
    send(ws, RelayMessage::event(sub.clone(), event)).await
}

/// Whether `filter` asks for stored events (not a `limit: 0` live subscription).
fn historic(filter: &Filter) -> bool {
    filter.limit != Some(0)
}

/// Answers one REQ: garbage and oversize frames first, then the valid matches, then the forged
/// events, then EOSE (unless withheld).
async fn answer_req(
    ws: &mut ServerSocket,
    shared: &Shared,
    sub: &SubscriptionId,
    filters: &[Filter],
) -> Result<(), tungstenite::Error> {
    let m = &shared.misbehaviour;
    bump(&shared.counters.reqs, 1);
    if filters.iter().any(|f| f.until.is_some()) {
        bump(&shared.counters.reqs_with_until, 1);
    }
    if m.garbage_frames {
        send_garbage(ws, shared, sub).await?;
    }
    if let Some(bytes) = m.oversize_bytes {
        let content = "x".repeat(bytes);
        let frame = serde_json::json!(["EVENT", sub.as_str(), {"content": content}]).to_string();
        ws.send(Message::text(frame)).await?;
        bump(&shared.counters.oversize_sent, 1);
    }
    send_valid(ws, shared, sub, filters).await?;
    if m.invalid_signatures {
        send_invalid(ws, shared, sub, filters).await?;
    }
    if m.outside_filter {
        for _ in 0..m.forged_per_req {
            let Some(event) =
                forge::outside(filters, &shared.bait, &shared.keys, shared.next_serial())
            else {
                break;
            };
            shared.remember(Forged::Outside(event.clone()));
            send_event(ws, sub, event).await?;
            bump(&shared.counters.outside_sent, 1);
        }
    }
    if m.endless_pages {
        send_endless(ws, shared, sub, filters).await?;
    }
    if m.no_eose {
        return Ok(());
    }
    send(ws, RelayMessage::eose(sub.clone())).await
}

/// The valid events matching any filter, each once, up to each filter's `limit`.
async fn send_valid(
    ws: &mut ServerSocket,
    shared: &Shared,
    sub: &SubscriptionId,
    filters: &[Filter],
) -> Result<(), tungstenite::Error> {
    let mut sent = BTreeSet::new();
    for filter in filters.iter().filter(|f| historic(f)) {
        let matches = shared
            .valid
            .iter()
            .filter(|e| filter.match_event(e, MatchEventOptions::new()))
            .take(filter.limit.unwrap_or(usize::MAX));
        for event in matches {
            if sent.insert(event.id) {
                send_event(ws, sub, event.clone()).await?;
                bump(&shared.counters.valid_sent, 1);
            }
        }
    }
    Ok(())
}

/// Fresh events matching each historic filter, alternately with a foreign signature and with
/// content tampered after signing.
async fn send_invalid(
    ws: &mut ServerSocket,
    shared: &Shared,
    sub: &SubscriptionId,
    filters: &[Filter],
) -> Result<(), tungstenite::Error> {
    let now = Timestamp::now();
    for filter in filters.iter().filter(|f| historic(f)) {
        let at = filter.until.unwrap_or(now);
        for i in 0..shared.misbehaviour.forged_per_req {
            let serial = shared.next_serial();
            let Some(event) = forge::matching(filter, &shared.keys, at, serial) else {
                break;
            };
            let broken = if i % 2 == 0 {
                let Some(donor) = forge::matching(filter, &shared.keys, at, serial + 1_000_000)
                else {
                    break;
                };
                forge::bad_signature(&event, &donor)
            } else {
                forge::bad_id(&event)
            };
            shared.remember(Forged::Invalid(broken.clone()));
            send_event(ws, sub, broken).await?;
            bump(&shared.counters.invalid_sent, 1);
        }
    }
    Ok(())
}

/// A full page of fresh, valid, matching events per historic filter, dated from its `until`
/// (or now) downwards, one per second.
async fn send_endless(
    ws: &mut ServerSocket,
    shared: &Shared,
    sub: &SubscriptionId,
    filters: &[Filter],
) -> Result<(), tungstenite::Error> {
    let now = Timestamp::now().as_secs();
    for filter in filters.iter().filter(|f| historic(f)) {
        let page = filter
            .limit
            .unwrap_or(shared.misbehaviour.page_size)
            .min(MAX_PAGE);
        let top = filter.until.map_or(now, |t| t.as_secs());
        for i in 0..page as u64 {
            let at = Timestamp::from(top.saturating_sub(i));
            let Some(event) = forge::matching(filter, &shared.keys, at, shared.next_serial())
            else {
                break;
            };
            send_event(ws, sub, event).await?;
            bump(&shared.counters.endless_sent, 1);
        }
    }
    Ok(())
}

/// Frames no relay should send: not JSON, truncated arrays, wrong types, a bad event, binary.
async fn send_garbage(
    ws: &mut ServerSocket,
    shared: &Shared,
    sub: &SubscriptionId,
) -> Result<(), tungstenite::Error> {
    let sub = sub.as_str();
    let id = forge::dummy_id().to_hex();
    let texts = [
        "this is not json".to_string(),
        "[".to_string(),
        r#"["EVENT"]"#.to_string(),
        serde_json::json!(["EVENT", sub, {"id": id, "kind": "one"}]).to_string(),
        serde_json::json!(["EVENT", sub, "not an object"]).to_string(),
        serde_json::json!(["EOSE"]).to_string(),
        serde_json::json!(["EOSE", 42]).to_string(),
        serde_json::json!(["CLOSED"]).to_string(),
        serde_json::json!(["OK", id, "yes"]).to_string(),
        serde_json::json!(["NEG-MSG", sub, "zz"]).to_string(),
        serde_json::json!({"not": "an array"}).to_string(),
        serde_json::json!(["UNKNOWN-VERB", sub]).to_string(),
    ];
    for text in texts {
        ws.send(Message::text(text)).await?;
        bump(&shared.counters.garbage_sent, 1);
    }
    ws.send(Message::binary(vec![0u8, 159, 146, 150])).await?;
    bump(&shared.counters.garbage_sent, 1);
    Ok(())
}

#[cfg(test)]
#[path = "hostile_relay_tests.rs"]
mod tests;
