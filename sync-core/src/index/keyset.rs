//! [`KeySet`]: a set of interned keys held as one sorted vector. Live groups keep their items
//! in one: a group is built once, merged whole into a larger one (the logarithmic merge of
//! `live.rs`) and asked about membership, never edited one key at a time; a sorted vector
//! merges by one linear pass over contiguous keys (a B-tree set walks and rebuilds nodes) and
//! takes 4 bytes per key.

use std::collections::BTreeSet;

use crate::item::Key;

/// [`KeySet::append`] inserts `other`'s keys one at a time when `self` holds at least this
/// many times as many keys.
const FEW_KEYS_RATIO: usize = 16;

/// Distinct keys in increasing order. Invariant: `keys` is strictly increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeySet {
    /// The keys, strictly increasing.
    keys: Vec<Key>,
}

impl KeySet {
    /// An empty set.
    pub(crate) const fn new() -> Self {
        Self { keys: Vec::new() }
    }

    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `key` is in the set (binary search; a key above the last, such as one
    /// interned since the set was built, is answered without one).
    pub(crate) fn contains(&self, key: &Key) -> bool {
        match self.keys.last() {
            Some(last) if key <= last => self.keys.binary_search(key).is_ok(),
            _ => false,
        }
    }

    /// The keys, in increasing order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Key> {
        self.keys.iter()
    }

    /// Moves every key of `other` into `self` (a linear merge; keys in both are kept once),
    /// leaving `other` empty, as `BTreeSet::append` does.
    pub(crate) fn append(&mut self, other: &mut Self) {
        if other.keys.is_empty() {
            return;
        }
        if self.keys.is_empty() {
            std::mem::swap(self, other);
            return;
        }
        if other.keys.len().saturating_mul(FEW_KEYS_RATIO) <= self.keys.len() {
            // A few keys into a large set (a batch of newly discovered items joining a group):
            // each is inserted where it belongs, which moves only the keys after it (new keys
            // mostly come last), instead of copying the whole set into a new vector.
            self.keys.reserve_exact(other.keys.len());
            for key in std::mem::take(&mut other.keys) {
                if let Err(at) = self.keys.binary_search(&key) {
                    self.keys.insert(at, key);
                }
            }
            return;
        }
        let (a, b) = (
            std::mem::take(&mut self.keys),
            std::mem::take(&mut other.keys),
        );
        self.keys = union_sorted(&a, &b);
    }

    /// The keys `keep` accepts, in order.
    pub(crate) fn filtered(self, keep: impl FnMut(&Key) -> bool) -> Self {
        let mut keys = self.keys;
        keys.retain(keep);
        keys.shrink_to_fit();
        Self { keys }
    }

    /// Whether `set` holds exactly these keys.
    pub(crate) fn same_as(&self, set: &BTreeSet<Key>) -> bool {
        self.keys.len() == set.len() && self.keys.iter().eq(set)
    }
}

impl FromIterator<Key> for KeySet {
    /// Sorts and deduplicates (a sorted input is only checked, not sorted again).
    fn from_iter<I: IntoIterator<Item = Key>>(iter: I) -> Self {
        let mut keys: Vec<Key> = iter.into_iter().collect();
        if !keys.windows(2).all(|w| w[0] < w[1]) {
            keys.sort_unstable();
            keys.dedup();
        }
        keys.shrink_to_fit();
        Self { keys }
    }
}

impl<'a> IntoIterator for &'a KeySet {
    type Item = &'a Key;
    type IntoIter = std::slice::Iter<'a, Key>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter()
    }
}

impl IntoIterator for KeySet {
    type Item = Key;
    type IntoIter = std::vec::IntoIter<Key>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.into_iter()
    }
}

/// The sorted, distinct union of two sorted, distinct slices (equal values kept once).
pub(crate) fn union_sorted<T: Ord + Copy>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn keys(xs: &[u32]) -> Vec<Key> {
        xs.iter().map(|x| Key::root(*x)).collect()
    }

    proptest! {
        /// A `KeySet` behaves as a `BTreeSet` of the same keys: collecting, appending,
        /// membership, filtering and order.
        #[test]
        fn behaves_as_a_btree_set(a in prop::collection::vec(0u32..300, 0..200), b in prop::collection::vec(0u32..300, 0..40), probe in 0u32..300) {
            let (ka, kb) = (keys(&a), keys(&b));
            let mut set: KeySet = ka.iter().copied().collect();
            let mut other: KeySet = kb.iter().copied().collect();
            let mut model: BTreeSet<Key> = ka.iter().copied().collect();
            let mut model_other: BTreeSet<Key> = kb.iter().copied().collect();
            prop_assert!(set.same_as(&model));
            set.append(&mut other);
            model.append(&mut model_other);
            prop_assert!(other.is_empty());
            prop_assert!(set.same_as(&model));
            prop_assert_eq!(set.len(), model.len());
            let p = Key::root(probe);
            prop_assert_eq!(set.contains(&p), model.contains(&p));
            let kept = set.clone().filtered(|k| *k != p);
            model.remove(&p);
            prop_assert!(kept.same_as(&model));
            prop_assert!(kept.into_iter().eq(model));
        }
    }
}
