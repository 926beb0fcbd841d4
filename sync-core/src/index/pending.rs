//! The pending index of one relay: historic batches in flight and which batch holds each item.

use std::collections::BTreeMap;

use crate::command::SubId;
use crate::historic::batch::Batch;
use crate::item::Key;

/// Batches in flight on one relay. Invariants: `item_batch[i] == b` iff `batches[b].items`
/// contains `i`; `sub_batch[s] == b` iff batch `b` has request `s` open.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pending {
    pub(crate) batches: BTreeMap<u64, Batch>,
    item_batch: BTreeMap<Key, u64>,
    pub(crate) sub_batch: BTreeMap<SubId, u64>,
}

impl Pending {
    /// Adds a batch, indexing its items (an item already pending elsewhere is left there).
    pub(crate) fn insert(&mut self, mut batch: Batch) {
        if self.item_batch.is_empty() {
            // Bulk-built from the sorted set (a reconnect's catch-up holds every item).
            self.item_batch = batch.items.iter().map(|i| (*i, batch.id)).collect();
        } else {
            batch.items.retain(|i| !self.item_batch.contains_key(i));
            for i in &batch.items {
                self.item_batch.insert(*i, batch.id);
            }
        }
        self.batches.insert(batch.id, batch);
    }

    /// Every pending item, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.item_batch.keys()
    }

    /// How many items are pending.
    pub(crate) fn item_count(&self) -> usize {
        self.item_batch.len()
    }

    pub(crate) fn contains(&self, item: &Key) -> bool {
        self.item_batch.contains_key(item)
    }

    /// Drops an item from whatever batch holds it (its batch keeps running).
    pub(crate) fn remove_item(&mut self, item: &Key) {
        if let Some(b) = self.item_batch.remove(item) {
            if let Some(batch) = self.batches.get_mut(&b) {
                batch.items.remove(item);
            }
        }
    }

    /// Removes a resolved batch and its index entries.
    pub(crate) fn take(&mut self, id: u64) -> Option<Batch> {
        let batch = self.batches.remove(&id)?;
        if self.batches.is_empty() {
            // The last batch held every indexed item.
            self.item_batch.clear();
        } else {
            for i in &batch.items {
                self.item_batch.remove(i);
            }
        }
        self.sub_batch.retain(|_, b| *b != id);
        Some(batch)
    }

    pub(crate) fn clear(&mut self) -> Vec<Batch> {
        self.item_batch.clear();
        self.sub_batch.clear();
        std::mem::take(&mut self.batches).into_values().collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}
