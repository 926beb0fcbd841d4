//! Filter building for the three layers (docs/spec.md §3): L1 announcements, state, L2 repo events,
//! L3 root-event events. Pure functions; live and historic copies differ only in `limit`/`since`.

use std::collections::BTreeSet;
use std::sync::Arc;

use nostr::{Alphabet, EventId, Filter, Kind, PublicKey, SingleLetterTag, Timestamp};
use serde::{Deserialize, Serialize};

use crate::event_meta::{
    RepoCoord, KIND_ANNOUNCEMENT, KIND_GRASP_LIST, KIND_RELAY_LIST, KIND_STATE,
};
use crate::index::keyset::union_sorted;
use crate::index::want::WantIndex;
use crate::item::{Item, Key, KeyKind};
use crate::wire_filter::{hex8, FilterView, TagValues, WireFilter};

/// Which layer a filter belongs to (used in subscription ids and snapshots).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Layer {
    /// `{kinds: [30617, 10317]}`.
    L1,
    /// `{kinds: [30618], #d: [...]}`.
    State,
    /// `#a` / `#A` / `#q` with repo coordinates.
    L2,
    /// `#e` / `#E` / `#q` with root event ids.
    L3,
    /// `ids` fetches of what negentropy found missing.
    Ids,
    /// Sync+ (docs/spec.md §15): `{kinds: [10002, 10317], authors: [...]}`, participants'
    /// relay lists.
    Lists,
}

impl Layer {
    /// Short name used in subscription ids.
    #[must_use]
    pub const fn short(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::State => "st",
            Self::L2 => "l2",
            Self::L3 => "l3",
            Self::Ids => "ids",
            Self::Lists => "rl",
        }
    }
}

/// A filter with the layer it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LayerFilter {
    /// The layer.
    pub layer: Layer,
    /// The filter (without `limit`/`since`; see [`live`] and [`historic`]).
    pub filter: Filter,
}

/// A semantic filter of one chunk as the core sends it: its values are shared by the three
/// letters of the chunk and by every copy (a catch-up's reconciliations, a re-sent REQ).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChunkFilter {
    /// The layer.
    pub(crate) layer: Layer,
    /// The filter (without `limit`/`since`).
    pub(crate) filter: WireFilter,
}

/// Sorts, deduplicates and splits `values` into chunks of at most `size` (`size` ≥ 1).
/// Every value lands in exactly one chunk, whatever the input order.
#[must_use]
pub fn chunk<T: Ord>(values: impl IntoIterator<Item = T>, size: usize) -> Vec<Vec<T>> {
    let sorted: BTreeSet<T> = values.into_iter().collect();
    let mut out: Vec<Vec<T>> = Vec::new();
    for value in sorted {
        match out.last_mut() {
            Some(last) if last.len() < size.max(1) => last.push(value),
            _ => out.push(vec![value]),
        }
    }
    out
}

/// The single-letter tag of an indexed tag letter (`a`, `A`, `q`, `e`, `E`; anything else is `d`).
#[must_use]
pub fn tag(c: char) -> SingleLetterTag {
    match c {
        'a' => SingleLetterTag::lowercase(Alphabet::A),
        'A' => SingleLetterTag::uppercase(Alphabet::A),
        'q' => SingleLetterTag::lowercase(Alphabet::Q),
        'e' => SingleLetterTag::lowercase(Alphabet::E),
        'E' => SingleLetterTag::uppercase(Alphabet::E),
        _ => SingleLetterTag::lowercase(Alphabet::D),
    }
}

/// The semantic filters covering `items`, chunked at `chunk_size` values per filter:
/// L1 once if wanted, one state filter per chunk of identifiers (deduplicated across owners),
/// three L2 filters per chunk of repo coordinates, three L3 filters per chunk of root ids.
#[must_use]
pub fn build<'a>(items: impl IntoIterator<Item = &'a Item>, chunk_size: usize) -> Vec<LayerFilter> {
    let mut values = Values::default();
    for item in items {
        match item {
            Item::Announcements => values.l1 = true,
            Item::State(c) => values.identifiers.push(&c.identifier),
            Item::RepoEvents(c) => values.coords.push(c),
            Item::Root(id) => values.roots.push(id),
            Item::RelayLists(pk) => values.authors.push(pk),
        }
    }
    // Items may repeat: roots are made distinct here (keys are distinct by construction).
    values.roots.sort_unstable();
    values.roots.dedup();
    (values.normalised().filters(chunk_size))
        .map(|c| LayerFilter {
            layer: c.layer,
            filter: c.filter.to_filter(),
        })
        .collect()
}

/// [`build`] over interned keys (keys the want index does not know are skipped), as the core
/// sends them.
pub(crate) fn build_keys<'a>(
    keys: impl IntoIterator<Item = &'a Key>,
    want: &WantIndex,
    chunk_size: usize,
) -> Vec<ChunkFilter> {
    key_values(keys, want).filters(chunk_size).collect()
}

/// The distinct values the filters of `keys` carry (no filter is built yet). `keys` may
/// repeat and come in any order (e.g. two sets chained).
pub(crate) fn key_values<'a, 'w>(
    keys: impl IntoIterator<Item = &'a Key>,
    want: &'w WantIndex,
) -> Values<'w> {
    // Distinct keys are distinct repositories and roots (both are interned), so only the
    // identifiers (shared across owners) need deduplicating by value below.
    let mut keys: Vec<Key> = keys.into_iter().copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut values = Values::default();
    for key in keys {
        match key.kind() {
            KeyKind::Announcements => values.l1 = true,
            KeyKind::State(n) => values
                .identifiers
                .extend(want.coord(n).map(|c| &c.identifier)),
            KeyKind::RepoEvents(n) => values.coords.extend(want.coord(n)),
            KeyKind::Root(x) => values.roots.extend(want.root_id(x)),
            KeyKind::RelayLists(a) => values.authors.extend(want.plus.author(a)),
        }
    }
    values.normalised()
}

/// The distinct values of each layer. Coordinates are kept as `RepoCoord`s: their order is the
/// order of their strings (`30617:` + fixed-length lower-case hex owner + `:` + identifier),
/// and only the chunks actually built are formatted. Invariants (once built by [`build`] or
/// [`key_values`]): `identifiers` and `coords` are sorted and distinct; `roots` are distinct
/// but unsorted (their sizes do not depend on order; [`Values::filters`] sorts them).
#[derive(Default)]
pub(crate) struct Values<'a> {
    /// Layer 1 is wanted.
    l1: bool,
    /// State identifiers (`#d`), sorted and distinct.
    identifiers: Vec<&'a String>,
    /// Repository coordinates (`#a/#A/#q`), sorted and distinct.
    coords: Vec<&'a RepoCoord>,
    /// Root ids (`#e/#E/#q`), distinct, in no particular order.
    roots: Vec<&'a EventId>,
    /// Sync+ participants whose relay lists are wanted (`authors`), sorted and distinct.
    authors: Vec<&'a PublicKey>,
}

/// Bytes [`wire_bytes`] counts for every filter (braces, `limit`/`since` room).
const FILTER_BASE_BYTES: usize = 40;
/// Bytes [`wire_bytes`] counts per tag key (`"#a":[…]`).
const TAG_KEY_BYTES: usize = 8;
/// Bytes [`wire_bytes`] counts per kind.
const KIND_BYTES: usize = 6;
/// Bytes [`wire_bytes`] counts per id in `ids` (64 hex digits, quotes, comma).
const ID_BYTES: usize = 67;
/// Bytes of a coordinate string besides its identifier: `30617:` + 64 hex digits + `:`.
const COORD_PREFIX_BYTES: usize = 71;
/// Bytes of a hex event id.
const HEX_ID_BYTES: usize = 64;

/// Bytes [`wire_bytes`] counts for a tag value of `len_bytes` (quotes and comma).
const fn tag_value_bytes(len_bytes: usize) -> usize {
    len_bytes + 3
}

/// Bits of a [`sorted_ids`] sort key that hold the id's position.
const POSITION_BITS: u32 = 24;

/// The ids' bytes in increasing order (the order of `EventId`'s `Ord` and of the hex
/// strings). Sorted as one integer each: the first 5 bytes, big-endian, above the id's
/// position (held contiguously instead of behind pointers; radix-sorted on the 5 bytes,
/// which is stable, so ids sharing them keep their positions' order); ids sharing their first
/// 5 bytes (rare) are then put in order by a full sort. The ids are copied out once, in the
/// order given (reading them again in sorted order, scattered, costs more than the copy).
fn sorted_ids(ids: Vec<&EventId>) -> Vec<[u8; 32]> {
    let mut bytes: Vec<[u8; 32]> = ids.into_iter().map(|id| *id.as_bytes()).collect();
    if bytes.len() >= 1 << POSITION_BITS {
        bytes.sort_unstable();
        return bytes;
    }
    let mut order: Vec<u64> = (bytes.iter().enumerate())
        .map(|(i, b)| {
            let mut hi = [0u8; 8];
            hi[..5].copy_from_slice(&b[..5]);
            u64::from_be_bytes(hi) | i as u64
        })
        .collect();
    radix_sort_above_position(&mut order);
    let position = (1u64 << POSITION_BITS) - 1;
    let tied = (order.windows(2)).any(|w| w[0] >> POSITION_BITS == w[1] >> POSITION_BITS);
    let mut out: Vec<[u8; 32]> = (order.iter())
        .map(|k| bytes[(k & position) as usize])
        .collect();
    if tied {
        out.sort_unstable();
    }
    out
}

/// Sorts `keys` by their bits above [`POSITION_BITS`], one byte per pass from the lowest
/// (stable: keys equal there keep their order). Short inputs are sorted whole (the same
/// order when keys are distinct, as [`sorted_ids`]' are).
fn radix_sort_above_position(keys: &mut Vec<u64>) {
    if keys.len() < 256 {
        keys.sort_unstable();
        return;
    }
    let mut spare = vec![0u64; keys.len()];
    for shift in (POSITION_BITS..64).step_by(8) {
        let digit = |k: u64| ((k >> shift) & 0xff) as usize;
        let mut starts = [0usize; 256];
        for k in keys.iter() {
            starts[digit(*k)] += 1;
        }
        let mut sum = 0;
        for s in &mut starts {
            (*s, sum) = (sum, sum + *s);
        }
        for k in keys.iter() {
            let d = digit(*k);
            spare[starts[d]] = *k;
            starts[d] += 1;
        }
        std::mem::swap(keys, &mut spare);
    }
}

/// Appends the lower-case hex of 32 bytes, written into a fixed buffer first (no `char`
/// iterator, no per-byte capacity checks).
fn push_hex32(out: &mut String, bytes: &[u8; 32]) {
    let mut buf = [0u8; 64];
    for (digits, eight) in buf.chunks_exact_mut(16).zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(eight);
        digits.copy_from_slice(&hex8(u64::from_be_bytes(word)));
    }
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

/// Appends `30617:<owner hex>:<identifier>`, as `RepoCoord`'s `Display` writes it.
fn push_coord(out: &mut String, c: &RepoCoord) {
    out.push_str("30617:");
    push_hex32(out, c.owner.as_bytes());
    out.push(':');
    out.push_str(&c.identifier);
}

/// The three filters of one L2 or L3 chunk (letters in order), sharing one value set.
fn three(layer: Layer, letters: [char; 3], values: TagValues) -> [ChunkFilter; 3] {
    let values = Arc::new(values);
    letters.map(|letter| ChunkFilter {
        layer,
        filter: WireFilter::tag(tag(letter), None, Arc::clone(&values)),
    })
}

/// The values of a chunk, each written by `write`, in the chunk's (increasing) order.
fn tag_values<T>(chunk: &[T], bytes_each: usize, write: impl Fn(&mut String, &T)) -> TagValues {
    let mut values = TagValues::with_capacity(chunk.len(), bytes_each);
    for v in chunk {
        values.push_with(|out| write(out, v));
    }
    values
}

/// Bytes [`wire_bytes`] counts for a filter as the core sends it, without building it.
#[must_use]
pub(crate) fn wire_size(filter: &WireFilter) -> usize {
    match filter.view() {
        FilterView::Full(f) => wire_bytes(f),
        FilterView::Tag { kind, values, .. } => {
            FILTER_BASE_BYTES
                + usize::from(kind.is_some()) * KIND_BYTES
                + TAG_KEY_BYTES
                + values.text_len()
                + tag_value_bytes(0) * values.len()
        }
    }
}

impl<'a> Values<'a> {
    /// Sorts and deduplicates identifiers and coordinates (see the invariants).
    fn normalised(mut self) -> Self {
        self.identifiers = sorted_by_prefix(self.identifiers, |v| prefix8(v.as_bytes()));
        self.coords = sorted_by_prefix(self.coords, |c| prefix8(c.owner.as_bytes()));
        self.authors.sort_unstable();
        self.authors.dedup();
        self
    }

    /// The values of the union of the key sets `self` and `other` were built from, which are
    /// disjoint (so their roots are distinct): the same as [`key_values`] of that union,
    /// merged from the two sorted halves instead of looked up and sorted again.
    pub(crate) fn union(&self, other: &Self) -> Self {
        let mut roots = Vec::with_capacity(self.roots.len() + other.roots.len());
        roots.extend_from_slice(&self.roots);
        roots.extend_from_slice(&other.roots);
        Self {
            l1: self.l1 || other.l1,
            identifiers: union_sorted(&self.identifiers, &other.identifiers),
            coords: union_sorted(&self.coords, &other.coords),
            roots,
            authors: union_sorted(&self.authors, &other.authors),
        }
    }

    /// How many filters [`Values::filters`] yields.
    pub(crate) fn filter_count(&self, chunk_size: usize) -> usize {
        let size = chunk_size.max(1);
        usize::from(self.l1)
            + self.identifiers.len().div_ceil(size)
            + 3 * self.coords.len().div_ceil(size)
            + 3 * self.roots.len().div_ceil(size)
            + self.authors.len().div_ceil(size)
    }

    /// The exact [`wire_bytes`] of each filter [`Values::filters`] yields, in the same order,
    /// computed from value counts and lengths without building a filter or a string (for
    /// counting REQs with `Budget::count_reqs`). `limit`/`since` do not change the figure.
    pub(crate) fn filter_sizes(&self, chunk_size: usize) -> impl Iterator<Item = usize> + '_ {
        let size = chunk_size.max(1);
        let l1 = self.l1.then_some(FILTER_BASE_BYTES + 2 * KIND_BYTES);
        let state = self.identifiers.chunks(size).map(|chunk| {
            let values: usize = chunk.iter().map(|v| tag_value_bytes(v.len())).sum();
            FILTER_BASE_BYTES + KIND_BYTES + TAG_KEY_BYTES + values
        });
        let l2 = self.coords.chunks(size).flat_map(|chunk| {
            let values: usize = chunk
                .iter()
                .map(|c| tag_value_bytes(COORD_PREFIX_BYTES + c.identifier.len()))
                .sum();
            [FILTER_BASE_BYTES + TAG_KEY_BYTES + values; 3]
        });
        let roots = self.roots.len();
        let l3 = (0..roots.div_ceil(size)).flat_map(move |i| {
            let values = size.min(roots - i * size) * tag_value_bytes(HEX_ID_BYTES);
            [FILTER_BASE_BYTES + TAG_KEY_BYTES + values; 3]
        });
        let authors = self.authors.len();
        let lists = (0..authors.div_ceil(size)).map(move |i| {
            FILTER_BASE_BYTES + 2 * KIND_BYTES + size.min(authors - i * size) * ID_BYTES
        });
        l1.into_iter().chain(state).chain(l2).chain(l3).chain(lists)
    }

    /// The filters, in layer order, built one chunk at a time (a caller that stops early does
    /// not pay for the rest).
    pub(crate) fn filters(self, chunk_size: usize) -> impl Iterator<Item = ChunkFilter> + 'a {
        let size = chunk_size.max(1);
        let l1 = self.l1.then(|| ChunkFilter {
            layer: Layer::L1,
            filter: Filter::new()
                .kinds([KIND_ANNOUNCEMENT, KIND_GRASP_LIST].map(Kind::from))
                .into(),
        });
        let identifiers = self.identifiers;
        let state = (0..identifiers.len().div_ceil(size)).map(move |i| {
            let chunk = &identifiers[i * size..((i + 1) * size).min(identifiers.len())];
            let values = tag_values(chunk, 16, |out, v| out.push_str(v));
            let kind = Some(Kind::from(KIND_STATE));
            ChunkFilter {
                layer: Layer::State,
                filter: WireFilter::tag(tag('d'), kind, Arc::new(values)),
            }
        });
        let coords = self.coords;
        let l2 = (0..coords.len().div_ceil(size)).flat_map(move |i| {
            let chunk = &coords[i * size..((i + 1) * size).min(coords.len())];
            let values = tag_values(chunk, COORD_PREFIX_BYTES + 16, |out, c| push_coord(out, c));
            three(Layer::L2, ['a', 'A', 'q'], values)
        });
        // Ids copied out of the want index once (a re-packed live group sorts thousands).
        let roots = sorted_ids(self.roots);
        let l3 = (0..roots.len().div_ceil(size)).flat_map(move |i| {
            let chunk = &roots[i * size..((i + 1) * size).min(roots.len())];
            let values = TagValues::hex32(chunk.iter());
            three(Layer::L3, ['e', 'E', 'q'], values)
        });
        let authors = self.authors;
        let lists = (0..authors.len().div_ceil(size)).map(move |i| {
            let chunk = &authors[i * size..((i + 1) * size).min(authors.len())];
            ChunkFilter {
                layer: Layer::Lists,
                filter: Filter::new()
                    .kinds([KIND_RELAY_LIST, KIND_GRASP_LIST].map(Kind::from))
                    .authors(chunk.iter().map(|pk| **pk))
                    .into(),
            }
        });
        l1.into_iter().chain(state).chain(l2).chain(l3).chain(lists)
    }
}

/// The first 8 bytes of `bytes` (zero-padded), big-endian: ordered like `bytes` wherever two
/// of them differ (equal prefixes decide nothing).
fn prefix8(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(word)
}

/// `values` sorted and deduplicated, as `sort_unstable` and `dedup` would, where `prefix`
/// is ordered like the values wherever it differs: most comparisons are of the prefixes,
/// held next to the references, instead of reading both values behind them.
fn sorted_by_prefix<'a, T: Ord + ?Sized>(
    values: Vec<&'a T>,
    prefix: impl Fn(&T) -> u64,
) -> Vec<&'a T> {
    if values.len() < 2 {
        return values;
    }
    let mut keyed: Vec<(u64, &'a T)> = values.into_iter().map(|v| (prefix(v), v)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    keyed.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    keyed.into_iter().map(|(_, v)| v).collect()
}

/// `ids` filters of at most `chunk_size` ids each.
#[must_use]
pub fn ids(ids: impl IntoIterator<Item = EventId>, chunk_size: usize) -> Vec<LayerFilter> {
    chunk(ids, chunk_size)
        .into_iter()
        .map(|c| LayerFilter {
            layer: Layer::Ids,
            filter: Filter::new().ids(c),
        })
        .collect()
}

/// The live copy: `limit: 0`, kept open.
#[must_use]
pub fn live(filter: &Filter) -> Filter {
    filter.clone().limit(0)
}

/// The historic copy: optional `since`, optional `until`, and a page `limit`.
#[must_use]
pub fn historic(
    filter: &Filter,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    limit: Option<usize>,
) -> Filter {
    let mut f = filter.clone();
    f.since = since;
    f.until = until;
    f.limit = limit;
    f
}

/// An estimate of a filter's size on the wire, in bytes (for packing REQs).
#[must_use]
pub fn wire_bytes(filter: &Filter) -> usize {
    let values: usize = filter
        .generic_tags
        .values()
        .flat_map(|v| v.iter())
        .map(|v| tag_value_bytes(v.len()))
        .sum();
    let ids = filter.ids.as_ref().map_or(0, |s| s.len() * ID_BYTES)
        + filter.authors.as_ref().map_or(0, |s| s.len() * ID_BYTES);
    let kinds = filter.kinds.as_ref().map_or(0, |s| s.len() * KIND_BYTES);
    FILTER_BASE_BYTES + values + ids + kinds + filter.generic_tags.len() * TAG_KEY_BYTES
}

#[cfg(test)]
mod tests;
