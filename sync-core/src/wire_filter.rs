//! The filters the core puts in its commands (`Command::Subscribe`, `Command::NegentropyDiff`).
//!
//! A [`WireFilter`] is a nostr `Filter` in a form that is cheap for the core to build, copy and
//! keep: the semantic filters of a chunk (docs/spec.md §3) hold their tag values as one shared,
//! sorted buffer ([`TagValues`]), which the three letters of an L2 or L3 chunk share and which
//! a catch-up or a re-sent live REQ copies by reference. The nostr `Filter`, with one owned
//! `String` per value, is built only when a shell (or a test) reads it: through `Deref`, which
//! builds it once per `WireFilter` value, or [`WireFilter::to_filter`]. Equality, `Debug` and
//! serde go through that `Filter`, so a `WireFilter` is indistinguishable from the `Filter` it
//! stands for.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use nostr::{Filter, Kind, SingleLetterTag, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The 16 lower-case hex digits of `x` (big-endian), computed on all digits at once: the
/// bytes are spread into 16-bit lanes, split into nibbles (high nibble first), and each nibble
/// `n` becomes `'0' + n`, plus `'a' - '0' - 10` when `n > 9` (`n + 6` carries into bit 4).
/// No lane overflows into the next.
pub(crate) const fn hex8(x: u64) -> [u8; 16] {
    const LANES_32: u128 = 0x0000_0000_FFFF_FFFF_0000_0000_FFFF_FFFF;
    const LANES_16: u128 = 0x0000_FFFF_0000_FFFF_0000_FFFF_0000_FFFF;
    const LANES_8: u128 = 0x00FF_00FF_00FF_00FF_00FF_00FF_00FF_00FF;
    const ONES: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;
    let mut s = x as u128;
    s = (s | (s << 32)) & LANES_32;
    s = (s | (s << 16)) & LANES_16;
    s = (s | (s << 8)) & LANES_8;
    let nibbles = ((s & (ONES * 0xF0)) << 4) | (s & (ONES * 0x0F));
    let letters = ((nibbles + ONES * 6) >> 4) & ONES;
    (nibbles + ONES * 0x30 + letters * 0x27).to_be_bytes()
}

/// Sorted, distinct tag values held in one buffer. Invariant: `ends` is non-decreasing, its
/// last entry (if any) is `text.len()`, and the values it delimits are strictly increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagValues {
    /// The values, concatenated.
    text: String,
    /// The end offset in `text` of each value.
    ends: Vec<u32>,
}

impl TagValues {
    /// An empty set with room for `values` values of about `bytes_each` bytes.
    #[must_use]
    pub fn with_capacity(values: usize, bytes_each: usize) -> Self {
        Self {
            text: String::with_capacity(values * bytes_each),
            ends: Vec::with_capacity(values),
        }
    }

    /// Appends the value `write` writes; the caller appends in increasing order.
    pub fn push_with(&mut self, write: impl FnOnce(&mut String)) {
        write(&mut self.text);
        let end = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        self.ends.push(end);
        let n = self.len();
        debug_assert!(
            n < 2 || self.get(n - 2) < self.get(n - 1),
            "values out of order"
        );
    }

    /// The lower-case hex of each of `ids`, which are strictly increasing (so are their hex
    /// strings). Written as bytes and checked as UTF-8 once for the whole buffer (not once per
    /// value): a re-packed live group formats thousands of root ids.
    #[must_use]
    pub fn hex32<'b>(ids: impl ExactSizeIterator<Item = &'b [u8; 32]>) -> Self {
        let mut text = Vec::with_capacity(ids.len() * 64);
        let mut ends = Vec::with_capacity(ids.len());
        for id in ids {
            for eight in id.chunks_exact(8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(eight);
                text.extend_from_slice(&hex8(u64::from_be_bytes(word)));
            }
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
            debug_assert!(
                ends.len() < 2 || text[text.len() - 128..text.len() - 64] < text[text.len() - 64..]
            );
        }
        Self {
            text: String::from_utf8(text).unwrap_or_default(),
            ends,
        }
    }

    /// How many values.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of all values together.
    #[must_use]
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Value `i` (`i < len()`).
    fn get(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |j| self.ends[j] as usize);
        &self.text[start..self.ends[i] as usize]
    }

    /// The values, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(s, e)| &self.text[s as usize..*e as usize])
    }
}

/// What a [`WireFilter`] holds besides `since`/`until`/`limit`.
#[derive(Clone, Debug)]
enum Body {
    /// Any nostr filter (ids fetches, L1, pages, filters from outside the core).
    Full(Arc<Filter>),
    /// One tag letter with shared values, and optionally one kind.
    Tag {
        /// The tag letter.
        tag: SingleLetterTag,
        /// The one kind the filter also requires, if any.
        kind: Option<Kind>,
        /// The values.
        values: Arc<TagValues>,
    },
}

/// A view of a [`WireFilter`]'s contents without building its nostr `Filter`.
#[derive(Clone, Copy, Debug)]
pub enum FilterView<'a> {
    /// A nostr filter (its `since`/`until`/`limit` may differ from the `WireFilter`'s).
    Full(&'a Filter),
    /// One tag letter's values, and optionally one kind.
    Tag {
        /// The tag letter.
        tag: SingleLetterTag,
        /// The one kind, if any.
        kind: Option<Kind>,
        /// The values.
        values: &'a TagValues,
    },
}

/// A filter as the core emits it (see the module documentation). Cloning it copies no tag
/// value.
pub struct WireFilter {
    /// The filter without its window.
    body: Body,
    /// `since`.
    since: Option<Timestamp>,
    /// `until`.
    until: Option<Timestamp>,
    /// `limit`.
    limit: Option<usize>,
    /// The nostr `Filter`, built on first `Deref` (never for a `Full` body whose window is
    /// its own; boxed, to keep commands small). Not copied by `clone`.
    built: OnceLock<Box<Filter>>,
}

impl WireFilter {
    /// A filter on one tag letter with `values` (shared) and optionally one kind.
    #[must_use]
    pub fn tag(tag: SingleLetterTag, kind: Option<Kind>, values: Arc<TagValues>) -> Self {
        Self::from_body(Body::Tag { tag, kind, values })
    }

    fn from_body(body: Body) -> Self {
        Self {
            body,
            since: None,
            until: None,
            limit: None,
            built: OnceLock::new(),
        }
    }

    /// The same filter with `limit`.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self.built = OnceLock::new();
        self
    }

    /// A copy with this window (`since`, `until`, `limit`), sharing the values.
    #[must_use]
    pub fn window(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: Option<usize>,
    ) -> Self {
        Self {
            body: self.body.clone(),
            since,
            until,
            limit,
            built: OnceLock::new(),
        }
    }

    /// `since`.
    #[must_use]
    pub fn since(&self) -> Option<Timestamp> {
        self.since
    }

    /// The contents, without building the nostr `Filter`.
    #[must_use]
    pub fn view(&self) -> FilterView<'_> {
        match &self.body {
            Body::Full(f) => FilterView::Full(f),
            Body::Tag { tag, kind, values } => FilterView::Tag {
                tag: *tag,
                kind: *kind,
                values,
            },
        }
    }

    /// How many tag values the filter carries (without building it).
    #[must_use]
    pub fn tag_value_count(&self) -> usize {
        match self.view() {
            FilterView::Full(f) => f.generic_tags.values().map(BTreeSet::len).sum(),
            FilterView::Tag { values, .. } => values.len(),
        }
    }

    /// The nostr `Filter` this stands for, newly built.
    #[must_use]
    pub fn to_filter(&self) -> Filter {
        let mut f = match &self.body {
            Body::Full(f) => (**f).clone(),
            Body::Tag { tag, kind, values } => {
                let mut f = Filter::new();
                // Sorted input: the set is bulk-built.
                let set: BTreeSet<String> = values.iter().map(str::to_owned).collect();
                f.generic_tags.insert(*tag, set);
                f.kinds = kind.map(|k| BTreeSet::from([k]));
                f
            }
        };
        f.since = self.since;
        f.until = self.until;
        f.limit = self.limit;
        f
    }

    /// The nostr `Filter` of a `Full` body whose window is the `WireFilter`'s own.
    fn own_full(&self) -> Option<&Filter> {
        match &self.body {
            Body::Full(f)
                if f.since == self.since && f.until == self.until && f.limit == self.limit =>
            {
                Some(f)
            }
            _ => None,
        }
    }
}

impl From<Filter> for WireFilter {
    fn from(filter: Filter) -> Self {
        let (since, until, limit) = (filter.since, filter.until, filter.limit);
        Self {
            body: Body::Full(Arc::new(filter)),
            since,
            until,
            limit,
            built: OnceLock::new(),
        }
    }
}

impl Deref for WireFilter {
    type Target = Filter;

    fn deref(&self) -> &Filter {
        match self.own_full() {
            Some(f) => f,
            None => self.built.get_or_init(|| Box::new(self.to_filter())),
        }
    }
}

impl Clone for WireFilter {
    fn clone(&self) -> Self {
        self.window(self.since, self.until, self.limit)
    }
}

impl PartialEq for WireFilter {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for WireFilter {}

impl fmt::Debug for WireFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for WireFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WireFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Filter::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use nostr::Alphabet;

    use super::*;

    fn values(vs: &[&str]) -> Arc<TagValues> {
        let mut t = TagValues::default();
        for v in vs {
            t.push_with(|s| s.push_str(v));
        }
        Arc::new(t)
    }

    #[test]
    fn a_tag_filter_is_the_nostr_filter_it_stands_for() {
        let d = SingleLetterTag::lowercase(Alphabet::D);
        let kind = Kind::from(30618u16);
        let w = WireFilter::tag(d, Some(kind), values(&["", "a", "b"])).limit(0);
        let expected = Filter::new()
            .kind(kind)
            .custom_tags(d, ["", "a", "b"])
            .limit(0);
        assert_eq!(*w, expected);
        assert_eq!(w.to_filter(), expected);
        assert_eq!(w.tag_value_count(), 3);
        let since = Timestamp::from(7);
        let copy = w.window(Some(since), None, Some(5));
        assert_eq!(*copy, expected.clone().since(since).limit(5));
        assert_eq!(
            serde_json::to_string(&copy).unwrap(),
            serde_json::to_string(&*copy).unwrap()
        );
        let back: WireFilter =
            serde_json::from_str(&serde_json::to_string(&copy).unwrap()).unwrap();
        assert_eq!(back, copy);
        assert_eq!(format!("{back:?}"), format!("{:?}", *copy));
    }

    #[test]
    fn a_full_filter_keeps_its_own_window() {
        let f = Filter::new().kind(Kind::from(1u16)).limit(3);
        let w = WireFilter::from(f.clone());
        assert_eq!(*w, f);
        assert_eq!(*w.clone().limit(0), f.clone().limit(0));
        assert_eq!(w.tag_value_count(), 0);
    }
}
