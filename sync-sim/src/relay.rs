//! A fake remote relay: an in-memory store with NIP-01 replacement, filter matching through
//! the core's one `matches`, per-filter result caps, id-query caps, subscription and filter
//! caps, REQ rate limits, NIP-11 limits, negentropy modes and EOSE faults.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use nostr::{EventId, Filter};
use sync_core::{matches, EventMeta, NegentropyResult, RelayLimits, RelayUrl, SubId, SubKind};

use crate::events::{address, newer};
use crate::rng::SimRng;
use crate::scenario::{AuthMode, NegMode, RelaySpec};

/// A message from the relay on an open connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayMsg {
    /// `EVENT sub event`.
    Event(SubId, EventMeta),
    /// `EOSE sub`.
    Eose(SubId),
    /// `CLOSED sub message`.
    Closed(SubId, String),
    /// `NOTICE message`.
    Notice(String),
    /// A negentropy answer (or error) for a reconciliation id.
    Neg(SubId, NegentropyResult),
}

/// A subscription open on the relay.
#[derive(Clone, Debug)]
struct OpenSub {
    filters: Vec<Filter>,
    kind: SubKind,
}

/// Recently closed subscription ids kept for late-traffic faults.
const LATE_MEMORY: usize = 8;

/// One fake relay.
#[derive(Clone, Debug)]
pub struct FakeRelay {
    /// Its behaviour.
    pub spec: RelaySpec,
    /// Canonical URL.
    pub url: RelayUrl,
    /// Stored events. Invariant: at most one per replacement address (the newest).
    pub events: BTreeMap<EventId, EventMeta>,
    /// The stored id per replacement address.
    latest: BTreeMap<(u16, nostr::PublicKey, String), EventId>,
    /// Connects fail until this virtual ms (a fault).
    pub down_until_ms: u64,
    /// The open connection's epoch; messages of older epochs are dropped.
    pub conn: Option<u64>,
    /// Epoch counter.
    pub epoch: u64,
    /// The latest connection attempt (an abandoned attempt's completion is dropped).
    pub attempt: u64,
    /// Subscriptions open on the current connection.
    subs: BTreeMap<SubId, OpenSub>,
    /// Recently closed ids (at most `LATE_MEMORY`).
    pub recently_closed: VecDeque<SubId>,
    /// REQ times within the last second (rate limiting).
    req_times: VecDeque<u64>,
    /// EOSEs are held back while `now < stall_until_ms`, by `stall_ms`.
    pub stall_until_ms: u64,
    /// How long a stalled EOSE is held.
    pub stall_ms: u64,
    /// EOSEs still to drop.
    pub drop_eose: u32,
    /// Negentropy reconciliations still to fail.
    pub neg_errors: u32,
    /// The connection breaks right after its next EOSE is read (a fault).
    pub break_after_eose: bool,
    /// Latency stream.
    rng: SimRng,
    /// NIP-42 (`AuthMode::Accepts`): when the client's AUTH reaches the relay on the current
    /// connection; `None` until the relay sent its challenge (with its first refusal).
    authed_from_ms: Option<u64>,
    /// Largest REQ message (JSON bytes) the relay accepts, announced through NIP-11; larger
    /// REQs get `CLOSED "error: message too large"`. `None`: unlimited (set by `bench`).
    pub max_message_bytes: Option<usize>,
}

impl FakeRelay {
    /// A relay with `spec`; its latency stream derives from `seed` and its index.
    #[must_use]
    pub fn new(spec: RelaySpec, seed: u64, index: u64) -> Self {
        let url = RelayUrl::parse(&spec.url).expect("scenario relay URLs are valid");
        Self {
            spec,
            url,
            events: BTreeMap::new(),
            latest: BTreeMap::new(),
            down_until_ms: 0,
            conn: None,
            epoch: 0,
            attempt: 0,
            subs: BTreeMap::new(),
            recently_closed: VecDeque::new(),
            req_times: VecDeque::new(),
            stall_until_ms: 0,
            stall_ms: 0,
            drop_eose: 0,
            neg_errors: 0,
            break_after_eose: false,
            rng: SimRng::new(seed, 1_000 + index),
            max_message_bytes: None,
            authed_from_ms: None,
        }
    }

    /// Stores `e` unless a newer version of its address is stored; returns whether it is new.
    pub fn store(&mut self, e: &EventMeta) -> bool {
        if self.events.contains_key(&e.id) {
            return false;
        }
        if let Some(a) = address(e) {
            if let Some(old) = self.latest.get(&a).and_then(|id| self.events.get(id)) {
                if !newer(e, old) {
                    return false;
                }
                let old_id = old.id;
                self.events.remove(&old_id);
            }
            self.latest.insert(a, e.id);
        }
        self.events.insert(e.id, e.clone());
        true
    }

    /// Whether a connection attempt at `now_ms` succeeds.
    #[must_use]
    pub fn accepts_connections(&self, now_ms: u64) -> bool {
        !self.spec.dead_forever && now_ms >= self.down_until_ms
    }

    /// Opens a connection: a new epoch, no subscriptions.
    pub fn open(&mut self) -> u64 {
        self.epoch += 1;
        self.conn = Some(self.epoch);
        self.subs.clear();
        self.authed_from_ms = None;
        self.epoch
    }

    /// Closes the connection (if any); returns whether one was open.
    pub fn close(&mut self) -> bool {
        self.epoch += 1;
        self.subs.clear();
        self.authed_from_ms = None;
        self.conn.take().is_some()
    }

    /// One message latency.
    pub fn latency(&mut self) -> u64 {
        let (lo, hi) = self.spec.latency_ms;
        self.rng.range(lo, hi)
    }

    /// NIP-11 limits, if the relay advertises them.
    #[must_use]
    pub fn limits(&self) -> Option<RelayLimits> {
        self.spec.advertise_limits.then_some(RelayLimits {
            max_subscriptions: Some(self.spec.max_subs as u64),
            max_filters: Some(self.spec.max_filters as u64),
            max_limit: Some(self.spec.page_cap as u64),
            max_message_length: self.max_message_bytes.map(|b| b as u64),
        })
    }

    fn eose_delay(&mut self, now_ms: u64) -> Option<u64> {
        if self.drop_eose > 0 {
            self.drop_eose -= 1;
            return None;
        }
        let stall = if now_ms < self.stall_until_ms {
            self.stall_ms
        } else {
            0
        };
        Some(self.spec.eose_delay_ms + stall)
    }

    /// Answers `REQ sub filters`: the messages and their delays from now.
    pub fn on_req(
        &mut self,
        now_ms: u64,
        sub: &SubId,
        kind: SubKind,
        filters: &[Filter],
    ) -> Vec<(u64, RelayMsg)> {
        let d = self.latency();
        if self.refuses_unauthenticated(now_ms, d) {
            let message = "auth-required: we only serve authenticated users".to_string();
            return vec![(d, RelayMsg::Closed(sub.clone(), message))];
        }
        while self.req_times.front().is_some_and(|t| now_ms >= t + 1_000) {
            self.req_times.pop_front();
        }
        let limit = match (self.spec.reqs_per_sec, self.spec.steady_reqs_per_sec) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(limit) = limit {
            if self.req_times.len() >= limit as usize {
                let mut out = vec![(
                    d,
                    RelayMsg::Closed(sub.clone(), "rate-limited: slow down".into()),
                )];
                if self.spec.notice_on_rate_limit {
                    out.push((d, RelayMsg::Notice("too many requests, slow down".into())));
                }
                return out;
            }
        }
        self.req_times.push_back(now_ms);
        if let Some(max) = self.max_message_bytes {
            let req = nostr::ClientMessage::req(nostr::SubscriptionId::new(sub.0.clone()), filters);
            let len = nostr::JsonUtil::as_json(&req).len();
            if len > max {
                let what = if filters.iter().any(|f| f.ids.is_some()) {
                    "ids"
                } else {
                    "tags"
                };
                let message = format!("error: message too large ({what} REQ of {len} B)");
                return vec![(d, RelayMsg::Closed(sub.clone(), message))];
            }
        }
        if filters.len() > self.spec.max_filters {
            return vec![(
                d,
                RelayMsg::Closed(sub.clone(), "error: too many filters".into()),
            )];
        }
        if !self.subs.contains_key(sub) && self.subs.len() >= self.spec.max_subs {
            return vec![(
                d,
                RelayMsg::Closed(sub.clone(), "rate-limited: too many REQs".into()),
            )];
        }
        self.subs.insert(
            sub.clone(),
            OpenSub {
                filters: filters.to_vec(),
                kind,
            },
        );
        let mut sent = BTreeSet::new();
        let mut found = Vec::new();
        for f in filters {
            found.extend(self.query(f).into_iter().filter(|e| sent.insert(e.id)));
        }
        if let Some(cap) = self
            .spec
            .req_cap
            .filter(|_| filters.iter().all(|f| f.ids.is_none()))
        {
            found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
            found.truncate(cap);
        }
        let mut out: Vec<(u64, RelayMsg)> = found
            .into_iter()
            .map(|e| (d, RelayMsg::Event(sub.clone(), e)))
            .collect();
        if let Some(extra) = self.eose_delay(now_ms) {
            out.push((d + extra, RelayMsg::Eose(sub.clone())));
        }
        out
    }

    /// Whether a REQ arriving at `now_ms` is refused for want of NIP-42 authentication. A
    /// `Accepts` relay sends its challenge with the first refusal; the simulated shell's AUTH
    /// arrives a round trip (`2·d`) later and the relay serves the connection from then on.
    fn refuses_unauthenticated(&mut self, now_ms: u64, d: u64) -> bool {
        match self.spec.auth {
            AuthMode::None => false,
            AuthMode::Refuses => true,
            AuthMode::Accepts => match self.authed_from_ms {
                Some(at) => now_ms < at,
                None => {
                    self.authed_from_ms = Some(now_ms + 2 * d);
                    true
                }
            },
        }
    }

    /// Results of one filter: newest first, ties by lowest id, capped.
    fn query(&self, f: &Filter) -> Vec<EventMeta> {
        select(
            self.events.values(),
            f,
            self.spec.page_cap,
            self.spec.id_cap,
        )
        .into_iter()
        .cloned()
        .collect()
    }

    /// `CLOSE sub` (or `NEG-CLOSE`).
    pub fn on_close(&mut self, sub: &SubId) {
        if self.subs.remove(sub).is_some() {
            self.recently_closed.push_back(sub.clone());
            if self.recently_closed.len() > LATE_MEMORY {
                self.recently_closed.pop_front();
            }
        }
    }

    /// Answers `NEG-OPEN` at `now_ms`: the ids the relay has for `filter` that `local` lacks
    /// (an error while NIP-42 authentication is missing).
    pub fn on_negentropy(
        &mut self,
        now_ms: u64,
        sub: &SubId,
        filter: &Filter,
        local: &BTreeMap<EventId, EventMeta>,
    ) -> Option<(u64, RelayMsg)> {
        let d = self.latency();
        if self.refuses_unauthenticated(now_ms, d) {
            let message = "NEG-ERR: auth-required: we only serve authenticated users".into();
            return Some((
                d,
                RelayMsg::Neg(sub.clone(), NegentropyResult::Error { message }),
            ));
        }
        let result = if self.spec.neg == NegMode::On && self.neg_errors > 0 {
            // The fault cycles through what can go wrong with one reconciliation.
            self.neg_errors -= 1;
            match self.neg_errors % 3 {
                0 => NegentropyResult::Error {
                    message: "NEG-ERR: error: reconciliation aborted".into(),
                },
                1 => NegentropyResult::Timeout,
                _ => NegentropyResult::Lagged,
            }
        } else {
            neg_answer(self.spec.neg, self.events.values(), filter, |id| {
                local.contains_key(id)
            })?
        };
        Some((d, RelayMsg::Neg(sub.clone(), result)))
    }

    /// For wire accounting of a reconciliation of `filter`: items `local` has, items the relay
    /// has, how many of the relay's `local` lacks and how many of `local`'s the relay lacks.
    /// A relay without NIP-77 reconciles nothing: `(local, 0, 0, 0)`.
    #[must_use]
    pub fn neg_counts(
        &self,
        filter: &Filter,
        local: &BTreeMap<EventId, EventMeta>,
    ) -> (usize, usize, usize, usize) {
        let mut unlimited = filter.clone();
        unlimited.limit = None;
        let mine = local.values().filter(|e| matches(&unlimited, e)).count();
        if self.spec.neg != NegMode::On {
            return (mine, 0, 0, 0);
        }
        let theirs: Vec<&EventMeta> = self
            .events
            .values()
            .filter(|e| matches(&unlimited, e))
            .collect();
        let missing = theirs.iter().filter(|e| !local.contains_key(&e.id)).count();
        let shared = theirs.len() - missing;
        (mine, theirs.len(), missing, mine - shared.min(mine))
    }

    /// A newly published event: deliveries to open subscriptions that match it.
    pub fn on_publish(&mut self, e: &EventMeta) -> Vec<(u64, RelayMsg)> {
        if !self.store(e) || self.conn.is_none() {
            return Vec::new();
        }
        let d = self.latency();
        self.subs
            .iter()
            .filter(|(_, s)| s.filters.iter().any(|f| matches(f, e)))
            .map(|(id, _)| (d, RelayMsg::Event(id.clone(), e.clone())))
            .collect()
    }

    /// The relay closes its open subscriptions that are `live` (or not): CLOSED messages.
    pub fn close_subs(&mut self, live: bool, message: &str) -> Vec<(u64, RelayMsg)> {
        let d = self.latency();
        let chosen: Vec<SubId> = self
            .subs
            .iter()
            .filter(|(_, s)| (s.kind == SubKind::Live) == live)
            .map(|(id, _)| id.clone())
            .collect();
        chosen
            .into_iter()
            .map(|s| {
                self.subs.remove(&s);
                (d, RelayMsg::Closed(s, message.to_string()))
            })
            .collect()
    }

    /// Traffic on a subscription we closed: an EVENT, EOSE and CLOSED.
    pub fn late_traffic(&mut self) -> Vec<(u64, RelayMsg)> {
        let Some(sub) = self.recently_closed.back().cloned() else {
            return Vec::new();
        };
        let d = self.latency();
        let mut out = Vec::new();
        if let Some(e) = self.events.values().next() {
            out.push((d, RelayMsg::Event(sub.clone(), e.clone())));
        }
        out.push((d, RelayMsg::Eose(sub.clone())));
        out.push((d, RelayMsg::Closed(sub, "error: already closed".into())));
        out
    }

    /// Every fault healed (the liveness phase). Drawn REQ rate limiting and hanging connects
    /// count as faults: a burst-limited relay may still fail a batch for the rest of the run
    /// once its retries are used up, and a dead relay is tried once per 24 h (a hanging attempt
    /// then costs a day). A steady rate cap (`steady_reqs_per_sec`) is kept: the core paces
    /// its REQs and must complete under it.
    pub fn heal(&mut self) {
        self.spec.reqs_per_sec = None;
        self.spec.slow_connect_percent = 0;
        self.down_until_ms = 0;
        self.stall_until_ms = 0;
        self.drop_eose = 0;
        self.neg_errors = 0;
        self.break_after_eose = false;
    }
}

/// What a relay storing `events` returns for one filter: the matching events newest first, ties
/// by lowest id, at most `page_cap` (`id_cap` for an `ids` filter) and at most the filter's
/// `limit`. The one query model of the seeded world ([`FakeRelay`]) and the scripted one
/// ([`crate::script`]).
pub fn select<'a>(
    events: impl IntoIterator<Item = &'a EventMeta>,
    f: &Filter,
    page_cap: usize,
    id_cap: usize,
) -> Vec<&'a EventMeta> {
    let cap = if f.ids.is_some() { id_cap } else { page_cap }.min(f.limit.unwrap_or(usize::MAX));
    if cap == 0 {
        return Vec::new();
    }
    let mut hits: Vec<&EventMeta> = events.into_iter().filter(|e| matches(f, e)).collect();
    hits.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    hits.truncate(cap);
    hits
}

/// The fault-free NIP-77 answer of a relay in `mode` storing `events` to a reconciliation of
/// `filter` (its `limit` ignored) with a host that has the ids `has` says: the ids the host
/// lacks (sorted), a refusal, or `None` for a relay that never answers. Shared by
/// [`FakeRelay`] and the scripted world ([`crate::script`]).
pub fn neg_answer<'a>(
    mode: NegMode,
    events: impl IntoIterator<Item = &'a EventMeta>,
    filter: &Filter,
    has: impl Fn(&EventId) -> bool,
) -> Option<NegentropyResult> {
    Some(match mode {
        NegMode::Silent => return None,
        // The shell's timeout answers for the relay (the world delays it accordingly).
        NegMode::Timeout => NegentropyResult::Timeout,
        NegMode::UnsupportedNotice => NegentropyResult::Refused {
            message: "ERROR: unknown envelope label: NEG-OPEN".into(),
        },
        NegMode::UnsupportedNegErr => NegentropyResult::Refused {
            message: "NEG-ERR: blocked: negentropy is disabled".into(),
        },
        NegMode::On => {
            let mut unlimited = filter.clone();
            unlimited.limit = None;
            let mut ids: Vec<EventId> = events
                .into_iter()
                .filter(|e| matches(&unlimited, e) && !has(&e.id))
                .map(|e| e.id)
                .collect();
            ids.sort();
            ids.dedup();
            NegentropyResult::Missing { ids }
        }
    })
}
