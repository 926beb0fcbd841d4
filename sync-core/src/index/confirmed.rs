//! The confirmed index of one relay: items whose historic sync completed on it. Connection
//! facts (status, last connected, disconnected at) live beside it in `relay::RelayState`.

use std::collections::BTreeSet;

use crate::item::Key;

/// Items confirmed complete on one relay. Invariant: cleared on every fresh start; an item
/// leaves it as soon as it leaves the relay's target.
#[derive(Clone, Debug, Default)]
pub(crate) struct Confirmed {
    items: BTreeSet<Key>,
}

impl Confirmed {
    pub(crate) fn contains(&self, item: &Key) -> bool {
        self.items.contains(item)
    }
    /// The keys of `items` not confirmed, in order.
    pub(crate) fn not_in<'a>(&'a self, items: &'a BTreeSet<Key>) -> impl Iterator<Item = &'a Key> {
        items.difference(&self.items)
    }
    /// Adds `items`: a linear merge when they are many, else one insert each.
    pub(crate) fn merge(&mut self, mut items: BTreeSet<Key>) {
        if items.len().saturating_mul(8) >= self.items.len() {
            self.items.append(&mut items);
        } else {
            self.items.extend(items);
        }
    }
    pub(crate) fn remove(&mut self, item: &Key) -> bool {
        self.items.remove(item)
    }
    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Key> {
        self.items.iter()
    }
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}
