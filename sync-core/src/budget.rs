//! The subscription budget of one relay (docs/spec.md §8): how many subscriptions may be open, how many
//! filters and bytes one REQ may carry, and packing filters into REQs within those limits.

use crate::config::Config;
use crate::filters::wire_size;
use crate::historic::pagination::PageSize;
use crate::input::RelayLimits;
use crate::wire_filter::WireFilter;

/// Bytes of a REQ message besides its filters (`["REQ","<sub>",…]`).
const REQ_OVERHEAD_BYTES: usize = 96;

/// Limits in force for one relay. Invariant: every field is ≥ 1 and `total() ≥ 2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Budget {
    /// The configured cap.
    configured_subs: usize,
    /// NIP-11 `max_subscriptions`, clamped.
    advertised_subs: Option<usize>,
    /// Lowered each time the relay answered "too many".
    shrunk_subs: Option<usize>,
    /// Filters per REQ: the configured cap, NIP-11 `max_filters` and `shrunk_filters`, the
    /// least of them.
    pub(crate) max_filters: usize,
    /// Lowered each time the relay answered "too many filters" to a REQ of several.
    shrunk_filters: Option<usize>,
    /// Bytes per REQ.
    pub(crate) max_bytes: usize,
    /// NIP-11 `max_limit`, clamped.
    pub(crate) max_limit: Option<usize>,
    /// The page size learned from the relay's answers (an unannounced result cap); kept
    /// across reconnects and daily resyncs.
    pub(crate) page_size: PageSize,
}

fn clamp(v: Option<u64>, lo: usize, hi: usize) -> Option<usize> {
    v.filter(|v| *v > 0)
        .map(|v| usize::try_from(v).unwrap_or(hi).clamp(lo, hi))
}

impl Budget {
    /// Ids per `ids` filter: at most `configured`, and few enough that one REQ with one such
    /// filter fits the relay's message limit (each id costs 67 bytes of JSON: 64 hex digits,
    /// quotes and a comma; 256 bytes are left for the envelope and the subscription id).
    #[must_use]
    pub(crate) fn id_chunk(&self, configured: usize) -> usize {
        const ID_JSON_BYTES: usize = 67;
        const ENVELOPE_BYTES: usize = 256;
        let fits = self.max_bytes.saturating_sub(ENVELOPE_BYTES) / ID_JSON_BYTES;
        configured.min(fits).max(1)
    }

    pub(crate) fn new(cfg: &Config) -> Self {
        Self {
            configured_subs: cfg.max_subscriptions.max(2),
            advertised_subs: None,
            shrunk_subs: None,
            max_filters: cfg.max_filters_per_req.max(1),
            shrunk_filters: None,
            max_bytes: cfg.max_message_bytes.max(1024),
            max_limit: None,
            page_size: PageSize::default(),
        }
    }

    /// Applies NIP-11 limits; absurd values are clamped (0 means "not advertised").
    pub(crate) fn apply_limits(&mut self, limits: &RelayLimits, cfg: &Config) {
        self.advertised_subs = clamp(limits.max_subscriptions, 2, 100_000);
        self.max_filters = clamp(limits.max_filters, 1, 10_000)
            .map_or(cfg.max_filters_per_req.max(1), |f| {
                f.min(cfg.max_filters_per_req.max(1)).max(1)
            })
            .min(self.shrunk_filters.unwrap_or(usize::MAX));
        self.max_bytes = clamp(limits.max_message_length, 1024, 16 << 20)
            .map_or(cfg.max_message_bytes.max(1024), |b| {
                b.min(cfg.max_message_bytes.max(1024))
            });
        self.max_limit = clamp(limits.max_limit, 1, 1_000_000);
    }

    /// The relay said "too many" while `open` subscriptions were open: never exceed `open − 1`.
    pub(crate) fn shrink(&mut self, open: usize) {
        let to = open.saturating_sub(1).max(2);
        self.shrunk_subs = Some(self.shrunk_subs.map_or(to, |s| s.min(to)));
    }

    /// The cap "too many" answers have set, if any (persisted with the sync cursor).
    pub(crate) fn subs_at_most(&self) -> Option<usize> {
        self.shrunk_subs
    }

    /// The relay said "too many filters" to a REQ of `sent` filters: from now on at most
    /// half as many per REQ (halving finds a low cap in a few answers, each of which costs a
    /// cooldown). Returns `false` when `sent` was 1: then the relay counts filters across
    /// subscriptions, and the caller shrinks the subscription budget instead.
    pub(crate) fn shrink_filters(&mut self, sent: usize) -> bool {
        if sent <= 1 {
            return false;
        }
        self.cap_filters(sent / 2);
        true
    }

    /// Never more than `at_most` (at least 1) filters per REQ from now on.
    pub(crate) fn cap_filters(&mut self, at_most: usize) {
        let to = at_most.max(1);
        let to = self.shrunk_filters.map_or(to, |s| s.min(to));
        self.shrunk_filters = Some(to);
        self.max_filters = self.max_filters.min(to);
    }

    /// The cap "too many filters" answers have set, if any (persisted with the sync cursor).
    pub(crate) fn filters_at_most(&self) -> Option<usize> {
        self.shrunk_filters
    }

    /// Subscriptions that may be open at once (live, historic and negentropy together).
    pub(crate) fn total(&self) -> usize {
        let mut t = self.configured_subs;
        if let Some(a) = self.advertised_subs {
            t = t.min(a);
        }
        if let Some(s) = self.shrunk_subs {
            t = t.min(s);
        }
        t.max(2)
    }

    /// Live subscriptions beyond which new live work triggers consolidation.
    pub(crate) fn live_soft_cap(&self) -> usize {
        (self.total() / 2).max(1)
    }

    /// Live subscriptions never exceed this: a quarter of the budget (at least one slot)
    /// stays for historic work (docs/spec.md §8, "minus room for historic batches"). With one slot
    /// left, a relay whose live coverage fills its budget pages or reconciles one filter at a
    /// time (the e2e benchmark's relay without NIP-77 paged at ~115 events/s that way).
    pub(crate) fn live_hard_cap(&self) -> usize {
        self.total() - self.historic_reserve()
    }

    /// Subscription slots live coverage leaves to historic requests.
    pub(crate) fn historic_reserve(&self) -> usize {
        (self.total() / 4).max(1)
    }

    /// [`Budget::pack`] keeping only the first `max_reqs` REQs: stops pulling filters at the
    /// first one that would open REQ `max_reqs + 1`. Returns the REQs and how many filters
    /// they hold.
    pub(crate) fn pack_within(
        &self,
        filters: impl Iterator<Item = WireFilter>,
        max_reqs: usize,
    ) -> (Vec<Vec<WireFilter>>, usize) {
        let mut out: Vec<Vec<WireFilter>> = Vec::new();
        let mut packer = Packer::new(self);
        for f in filters {
            let b = wire_size(&f);
            if packer.joins_last(b) {
                out.last_mut().expect("joins an open REQ").push(f);
            } else if out.len() < max_reqs {
                out.push(vec![f]);
            } else {
                break;
            }
            packer.add(b);
        }
        (out, packer.filters)
    }

    /// How many REQs [`Budget::pack`] makes of filters of these wire sizes (see
    /// `filters::Values::filter_sizes`), without building them: the same packing rule.
    pub(crate) fn count_reqs(&self, sizes_bytes: impl IntoIterator<Item = usize>) -> usize {
        let mut packer = Packer::new(self);
        for b in sizes_bytes {
            packer.add(b);
        }
        packer.reqs
    }

    /// How many of the leading filters of these wire sizes fit in one REQ (the same rule as
    /// [`Budget::pack_within`] with one REQ; at least one if there is any).
    pub(crate) fn first_req_len(&self, sizes_bytes: impl IntoIterator<Item = usize>) -> usize {
        let mut packer = Packer::new(self);
        for b in sizes_bytes {
            if packer.reqs == 1 && !packer.joins_last(b) {
                break;
            }
            packer.add(b);
        }
        packer.filters
    }

    /// Packs filters greedily into REQs of at most `max_filters` filters and `max_bytes` bytes
    /// (the reference the size-only [`Budget::count_reqs`] is tested against).
    #[cfg(test)]
    pub(crate) fn pack(&self, filters: Vec<WireFilter>) -> Vec<Vec<WireFilter>> {
        self.pack_within(filters.into_iter(), usize::MAX).0
    }
}

/// The greedy packing rule shared by [`Budget::pack_within`] and [`Budget::count_reqs`] (so
/// building and counting can never disagree): a filter joins the last REQ while that REQ has
/// fewer than `max_filters` filters and stays within `max_bytes`, else it opens a new REQ.
struct Packer<'b> {
    /// The limits.
    budget: &'b Budget,
    /// REQs opened so far.
    reqs: usize,
    /// Filters placed so far.
    filters: usize,
    /// Filters in the last REQ (0 iff `reqs == 0`).
    in_last: usize,
    /// Bytes of the last REQ, its overhead included (0 iff `reqs == 0`).
    last_bytes: usize,
}

impl<'b> Packer<'b> {
    /// An empty packing.
    fn new(budget: &'b Budget) -> Self {
        Self {
            budget,
            reqs: 0,
            filters: 0,
            in_last: 0,
            last_bytes: 0,
        }
    }

    /// Whether a filter of `bytes` joins the last REQ (else it opens a new one).
    fn joins_last(&self, bytes: usize) -> bool {
        self.reqs > 0
            && self.in_last < self.budget.max_filters
            && self.last_bytes + bytes <= self.budget.max_bytes
    }

    /// Places a filter of `bytes`.
    fn add(&mut self, bytes: usize) {
        if self.joins_last(bytes) {
            self.in_last += 1;
            self.last_bytes += bytes;
        } else {
            self.reqs += 1;
            self.in_last = 1;
            self.last_bytes = REQ_OVERHEAD_BYTES + bytes;
        }
        self.filters += 1;
    }
}

#[cfg(test)]
mod tests {
    use nostr::Filter;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn nip11_and_too_many_lower_the_budget() {
        let cfg = Config::default();
        let mut b = Budget::new(&cfg);
        assert_eq!(b.total(), 20);
        b.apply_limits(
            &RelayLimits {
                max_subscriptions: Some(10),
                ..RelayLimits::default()
            },
            &cfg,
        );
        assert_eq!(b.total(), 10);
        b.shrink(8);
        assert_eq!(b.total(), 7);
        b.apply_limits(
            &RelayLimits {
                max_subscriptions: Some(u64::MAX),
                max_filters: Some(0),
                ..RelayLimits::default()
            },
            &cfg,
        );
        assert_eq!((b.total(), b.max_filters), (7, 10));
        b.shrink(0);
        assert_eq!(b.total(), 2);
    }

    /// "Too many filters" to a REQ of several halves the filters per REQ, and NIP-11 limits
    /// read later do not raise it again; to a REQ of one it lowers nothing here.
    #[test]
    fn too_many_filters_lowers_the_filters_per_req_for_good() {
        let cfg = Config::default();
        let mut b = Budget::new(&cfg);
        assert_eq!(b.max_filters, 10);
        assert!(!b.shrink_filters(1), "one filter: not a filters cap");
        assert_eq!((b.max_filters, b.filters_at_most()), (10, None));
        assert!(b.shrink_filters(10));
        assert_eq!(b.max_filters, 5);
        assert!(b.shrink_filters(5));
        assert_eq!(b.max_filters, 2);
        assert!(
            b.shrink_filters(8),
            "a later answer to a larger REQ raises nothing"
        );
        assert_eq!((b.max_filters, b.filters_at_most()), (2, Some(2)));
        b.apply_limits(
            &RelayLimits {
                max_filters: Some(100),
                ..RelayLimits::default()
            },
            &cfg,
        );
        assert_eq!(
            b.max_filters, 2,
            "NIP-11 does not undo what the relay answered"
        );
        assert!(b.shrink_filters(2));
        assert_eq!(b.max_filters, 1);
        let (reqs, packed) = b.pack_within(
            (0..3).map(|i| WireFilter::from(Filter::new().limit(i))),
            usize::MAX,
        );
        assert_eq!((reqs.len(), packed), (3, 3), "one filter per REQ");
        assert_eq!(b.total(), 20, "the subscription budget is untouched");
    }

    /// The wire sizes of the filters `packing_keeps_every_filter_within_limits` packs.
    fn filters_sizes(n: usize) -> impl Iterator<Item = usize> {
        (0..n).map(|i| wire_size(&Filter::new().limit(i).into()))
    }

    proptest! {
        #[test]
        fn packing_keeps_every_filter_within_limits(n in 0usize..200, max_filters in 1usize..20, max_bytes in 1024usize..20_000) {
            let cfg = Config { max_filters_per_req: max_filters, max_message_bytes: max_bytes, ..Config::default() };
            let b = Budget::new(&cfg);
            let filters: Vec<WireFilter> = (0..n).map(|i| Filter::new().limit(i).into()).collect();
            let packed = b.pack(filters.clone());
            prop_assert_eq!(b.count_reqs(filters.iter().map(wire_size)), packed.len());
            prop_assert_eq!(packed.iter().flatten().cloned().collect::<Vec<_>>(), filters.clone());
            prop_assert!(packed.iter().all(|r| !r.is_empty() && r.len() <= max_filters));
            let keep = n % 7;
            let (within, count) = b.pack_within(filters.into_iter(), keep);
            let mut truncated = packed.clone();
            truncated.truncate(keep);
            prop_assert_eq!(count, truncated.iter().map(Vec::len).sum::<usize>());
            prop_assert_eq!(within, truncated);
            // One REQ's worth is the first REQ of the packing.
            let first = b.first_req_len(filters_sizes(n));
            prop_assert_eq!(first, packed.first().map_or(0, Vec::len));
        }
    }

    #[test]
    fn live_coverage_leaves_a_quarter_of_the_budget_to_historic_requests() {
        for subs in [2usize, 3, 4, 7, 10, 20, 32, 200, 500] {
            let cfg = Config {
                max_subscriptions: subs,
                ..Config::default()
            };
            let b = Budget::new(&cfg);
            let reserve = b.total() - b.live_hard_cap();
            assert!(
                reserve >= 1 && reserve >= b.total() / 4,
                "{subs}: {reserve}"
            );
            assert!(b.live_soft_cap() <= b.live_hard_cap(), "{subs}");
        }
    }

    #[test]
    fn an_ids_filter_fits_the_message_limit() {
        let cfg = Config {
            max_message_bytes: 16 * 1024,
            ..Config::default()
        };
        let budget = Budget::new(&cfg);
        let chunk = budget.id_chunk(cfg.id_chunk_size);
        assert!(
            chunk < cfg.id_chunk_size,
            "300 ids (20 KB) do not fit 16 KiB"
        );
        let ids: Vec<String> = (0..chunk).map(|i| format!("{i:064x}")).collect();
        let req = format!(
            r#"["REQ","{}",{{"ids":{}}}]"#,
            "s".repeat(64),
            serde_json::to_string(&ids).unwrap()
        );
        assert!(req.len() <= 16 * 1024, "{} bytes", req.len());
        assert_eq!(Budget::new(&Config::default()).id_chunk(300), 300);
    }
}
