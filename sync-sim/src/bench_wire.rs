//! Wire accounting for `sync-sim bench`: every REQ, CLOSE, NEG-*, EVENT, EOSE, CLOSED and
//! NOTICE the simulated world carries, sized as the JSON nostr's `ClientMessage` /
//! `RelayMessage::as_json()` produce, with round trips counted per filter.
//!
//! Two parts are modelled rather than measured, because the simulator abstracts them away:
//! - event bodies: the sim's events are [`EventMeta`]s, so an EVENT is sized as a nostr event
//!   with the same id, author, kind, `created_at` and tags, empty content and a 64-byte
//!   signature ([`event_json_bytes`]);
//! - negentropy payloads: the sim answers NEG-OPEN with the missing ids directly, so the hex
//!   payloads of NEG-OPEN / NEG-MSG are sized with [`neg_model`] (NIP-77 v1 framing: an id
//!   list below 32 items, else 16 fingerprint buckets of about 25 bytes), and the rounds of a
//!   reconciliation whose sets differ are estimated from the larger set.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use nostr::secp256k1::schnorr::Signature;
use nostr::{ClientMessage, Event, EventId, Filter, JsonUtil, RelayMessage, SubscriptionId, Tag};
use sync_core::{EventMeta, RelayUrl, SubId, SubKind};

/// Items below which negentropy sends the id list itself instead of bucket fingerprints.
const NEG_ID_LIST_MAX: usize = 32;
/// Bytes of one negentropy fingerprint range (bound, mode, 16-byte fingerprint).
const NEG_BUCKET_BYTES: usize = 25;
/// Buckets per negentropy split.
const NEG_BUCKETS: usize = 16;

/// JSON size of the nostr event an [`EventMeta`] stands for (empty content, see module doc).
#[must_use]
pub fn event_json_bytes(e: &EventMeta) -> usize {
    event_of(e).as_json().len()
}

/// The nostr event an [`EventMeta`] stands for.
fn event_of(e: &EventMeta) -> Event {
    let mut tags: Vec<Tag> = Vec::new();
    for (letter, value) in &e.tags {
        if let Ok(t) = Tag::parse([letter.to_string(), value.clone()]) {
            tags.push(t);
        }
    }
    let lists = [
        ("relays", e.relays.clone()),
        ("clone", e.clone_urls.clone()),
        (
            "maintainers",
            e.maintainers.iter().map(|k| k.to_hex()).collect(),
        ),
    ];
    for (name, values) in lists {
        if values.is_empty() {
            continue;
        }
        let mut parts = vec![name.to_string()];
        parts.extend(values);
        if let Ok(t) = Tag::parse(parts) {
            tags.push(t);
        }
    }
    let sig = Signature::from_slice(&[0x5a; 64]).expect("64 bytes are a signature");
    Event::new(e.id, e.author, e.created_at, e.kind, tags, "", sig)
}

fn sid(sub: &SubId) -> SubscriptionId {
    SubscriptionId::new(sub.0.clone())
}

/// A filter's identity for round-trip counting: the relay and the filter's JSON without
/// `since`, `until`, `limit` (pages and catch-ups of one filter on one relay are one filter).
#[must_use]
pub fn filter_key(relay: &RelayUrl, f: &Filter) -> String {
    let mut f = f.clone();
    f.since = None;
    f.until = None;
    f.limit = None;
    format!("{relay} {}", f.as_json())
}

/// The modelled negentropy exchange of one reconciliation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegModel {
    /// Hex characters of the NEG-OPEN initial message.
    pub open_hex: usize,
    /// Hex characters the relay sends back in total (all NEG-MSGs).
    pub answer_hex: usize,
    /// Hex characters of our further NEG-MSGs (0 when one round suffices).
    pub more_hex: usize,
    /// Round trips (1 when the sets are equal).
    pub rounds: u64,
}

/// Bytes of one negentropy message describing `n` items in one range.
fn neg_range_bytes(n: usize) -> usize {
    if n < NEG_ID_LIST_MAX {
        4 + 32 * n
    } else {
        NEG_BUCKETS * NEG_BUCKET_BYTES
    }
}

/// Models a reconciliation of `local` items against `remote` items of which `missing` are
/// absent locally and `extra` are absent on the relay.
#[must_use]
pub fn neg_model(local: usize, remote: usize, missing: usize, extra: usize) -> NegModel {
    let open_hex = 2 * (1 + neg_range_bytes(local));
    if missing == 0 && extra == 0 {
        return NegModel {
            open_hex,
            answer_hex: 2 * 4,
            more_hex: 0,
            rounds: 1,
        };
    }
    // Each further round splits differing ranges 16 ways until they fall below the id-list
    // size; the final answer names the differing ids.
    let mut rounds = 1u64;
    let mut span = local.max(remote);
    while span >= NEG_ID_LIST_MAX {
        span /= NEG_BUCKETS;
        rounds += 1;
    }
    let differing = missing + extra;
    let per_round = NEG_BUCKETS * NEG_BUCKET_BYTES * differing.min(NEG_BUCKETS);
    NegModel {
        open_hex,
        answer_hex: 2 * (per_round * (rounds as usize - 1) + 4 + 32 * differing),
        more_hex: 2 * per_round * (rounds as usize - 1),
        rounds,
    }
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Messages.
    pub msgs: u64,
    /// JSON bytes.
    pub bytes: u64,
}

impl Flow {
    fn add(&mut self, bytes: usize) {
        self.msgs += 1;
        self.bytes += bytes as u64;
    }
}

/// Everything on the wire since the log was (re)started.
#[derive(Clone, Debug, Default)]
pub struct WireLog {
    /// Client → relay (REQ, CLOSE, NEG-OPEN, NEG-MSG, NEG-CLOSE).
    pub out: Flow,
    /// Relay → client (EVENT, EOSE, CLOSED, NOTICE, NEG-MSG, NEG-ERR).
    pub inbound: Flow,
    /// Requests whose answer the engine waits for (historic REQs, negentropy rounds).
    pub round_trips: u64,
    /// Round trips per (relay, filter) (see [`filter_key`]); a REQ with k filters counts once
    /// for each.
    pub per_filter: BTreeMap<String, u64>,
    /// Live REQs sent (not waited for).
    pub live_reqs: u64,
    /// EVENT messages received.
    pub events_in: u64,
    /// JSON bytes of the EVENT messages' events alone.
    pub event_bytes: u64,
    /// Distinct event ids received.
    pub event_ids: BTreeSet<EventId>,
    /// CLOSED answers saying "too many" (subscriptions, filters) or "too large".
    pub too_many: u64,
    /// Those answers by message text.
    pub too_many_by_message: BTreeMap<String, u64>,
    /// JSON bytes of the filters themselves in REQ and NEG-OPEN messages.
    pub filter_bytes: u64,
    /// What each relay cost (see [`RelayCost`]).
    pub per_relay: BTreeMap<RelayUrl, RelayCost>,
    /// Open negentropy ids and the modelled answer still to come.
    neg_open: BTreeMap<SubId, NegModel>,
}

/// Where one relay's bytes went: the filters we sent it and the events it sent us, split into
/// events no relay had sent before and copies of events already received (from it or another).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCost {
    /// JSON bytes of the filters in our REQs and NEG-OPENs to it.
    pub filter_bytes: u64,
    /// EVENT messages from it carrying an id received for the first time.
    pub first_events: u64,
    /// JSON bytes of those EVENT messages.
    pub first_bytes: u64,
    /// EVENT messages from it carrying an id already received.
    pub copy_events: u64,
    /// JSON bytes of those EVENT messages.
    pub copy_bytes: u64,
}

impl WireLog {
    /// `REQ sub filters`.
    pub fn req(&mut self, relay: &RelayUrl, sub: &SubId, kind: SubKind, filters: &[Filter]) {
        let msg = ClientMessage::Req {
            subscription_id: Cow::Owned(sid(sub)),
            filters: filters.iter().map(Cow::Borrowed).collect(),
        };
        self.out.add(msg.as_json().len());
        let bytes = filters
            .iter()
            .map(|f| f.as_json().len() as u64)
            .sum::<u64>();
        self.filter_bytes += bytes;
        self.per_relay
            .entry(relay.clone())
            .or_default()
            .filter_bytes += bytes;
        if kind == SubKind::Live {
            self.live_reqs += 1;
            return;
        }
        self.round_trips += 1;
        for f in filters {
            *self.per_filter.entry(filter_key(relay, f)).or_default() += 1;
        }
    }

    /// `CLOSE sub` or `NEG-CLOSE sub`.
    pub fn close(&mut self, sub: &SubId) {
        let msg = if self.neg_open.remove(sub).is_some() {
            ClientMessage::NegClose {
                subscription_id: Cow::Owned(sid(sub)),
            }
        } else {
            ClientMessage::close(sid(sub))
        };
        self.out.add(msg.as_json().len());
    }

    /// `NEG-OPEN sub filter` (and, in the model, our further NEG-MSGs).
    pub fn neg_open(&mut self, relay: &RelayUrl, sub: &SubId, filter: &Filter, model: NegModel) {
        let msg = ClientMessage::neg_open(sid(sub), filter.clone(), "0".repeat(model.open_hex));
        self.out.add(msg.as_json().len());
        self.filter_bytes += filter.as_json().len() as u64;
        self.per_relay
            .entry(relay.clone())
            .or_default()
            .filter_bytes += filter.as_json().len() as u64;
        if model.more_hex > 0 {
            let more = ClientMessage::NegMsg {
                subscription_id: Cow::Owned(sid(sub)),
                message: Cow::Owned("0".repeat(model.more_hex)),
            };
            self.out.add(more.as_json().len());
        }
        self.round_trips += model.rounds;
        *self
            .per_filter
            .entry(filter_key(relay, filter))
            .or_default() += model.rounds;
        self.neg_open.insert(sub.clone(), model);
    }

    /// The relay's negentropy answer (`error`: a NEG-ERR or NOTICE with this text).
    pub fn neg_answer(&mut self, sub: &SubId, error: Option<&str>) {
        let msg = match (error, self.neg_open.get(sub)) {
            (Some(text), _) => RelayMessage::NegErr {
                subscription_id: Cow::Owned(sid(sub)),
                message: Cow::Owned(text.to_string()),
            },
            (None, model) => RelayMessage::NegMsg {
                subscription_id: Cow::Owned(sid(sub)),
                message: Cow::Owned("0".repeat(model.map_or(8, |m| m.answer_hex))),
            },
        };
        self.inbound.add(msg.as_json().len());
    }

    /// `EVENT sub event` from `relay`.
    pub fn event(&mut self, relay: &RelayUrl, sub: &SubId, e: &EventMeta) {
        let event = event_of(e);
        self.event_bytes += event.as_json().len() as u64;
        let bytes = RelayMessage::event(sid(sub), event).as_json().len();
        self.inbound.add(bytes);
        self.events_in += 1;
        let cost = self.per_relay.entry(relay.clone()).or_default();
        if self.event_ids.insert(e.id) {
            cost.first_events += 1;
            cost.first_bytes += bytes as u64;
        } else {
            cost.copy_events += 1;
            cost.copy_bytes += bytes as u64;
        }
    }

    /// `EOSE sub`.
    pub fn eose(&mut self, sub: &SubId) {
        self.inbound
            .add(RelayMessage::eose(sid(sub)).as_json().len());
    }

    /// `CLOSED sub message`.
    pub fn closed(&mut self, sub: &SubId, message: &str) {
        self.inbound
            .add(RelayMessage::closed(sid(sub), message).as_json().len());
        if message.contains("too many") || message.contains("too large") {
            self.too_many += 1;
            *self
                .too_many_by_message
                .entry(message.to_string())
                .or_default() += 1;
        }
    }

    /// `NOTICE message`.
    pub fn notice(&mut self, message: &str) {
        self.inbound
            .add(RelayMessage::notice(message).as_json().len());
    }

    /// Distinct (relay, filter) pairs that took at least one round trip.
    #[must_use]
    pub fn filters(&self) -> usize {
        self.per_filter.len()
    }

    /// The most round trips any one filter took.
    #[must_use]
    pub fn max_round_trips_per_filter(&self) -> u64 {
        self.per_filter.values().copied().max().unwrap_or(0)
    }

    /// Bytes both ways.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.out.bytes + self.inbound.bytes
    }

    /// Messages both ways.
    #[must_use]
    pub fn total_msgs(&self) -> u64 {
        self.out.msgs + self.inbound.msgs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{key, meta};

    #[test]
    fn sizes_are_the_nostr_json_lengths() {
        let e = meta(1, key(1), 1617, 1_700_000_000, &[('a', "30617:x:y".into())]);
        let json = event_of(&e).as_json();
        assert_eq!(event_json_bytes(&e), json.len());
        assert!(json.contains("\"30617:x:y\""));
        let mut log = WireLog::default();
        log.eose(&SubId("s".into()));
        assert_eq!(log.inbound.bytes, r#"["EOSE","s"]"#.len() as u64);
        log.closed(&SubId("s".into()), "rate-limited: too many REQs");
        assert_eq!(log.too_many, 1);
    }

    #[test]
    fn in_sync_negentropy_is_one_round() {
        assert_eq!(neg_model(500, 500, 0, 0).rounds, 1);
        assert!(neg_model(500, 501, 1, 0).rounds >= 2);
        assert_eq!(
            neg_model(3, 4, 1, 0).rounds,
            1,
            "an id list needs one round"
        );
    }

    #[test]
    fn pages_of_one_filter_count_as_one_filter() {
        let f = Filter::new().kind(nostr::Kind::from(1617u16)).limit(10);
        let g = f.clone().until(nostr::Timestamp::from(5)).limit(3);
        let r = RelayUrl::parse("wss://r.sim").expect("a valid URL");
        assert_eq!(filter_key(&r, &f), filter_key(&r, &g));
    }
}
