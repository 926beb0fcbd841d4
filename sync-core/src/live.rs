//! Live coverage (docs/spec.md §8): every wanted item of a connected relay is covered by a `limit: 0`
//! subscription. Items are opened in groups of packed REQs; a group whose items shrink is
//! closed and its remainder re-opened; when live subscriptions would exceed the budget's soft
//! cap, everything is consolidated into as few REQs as the relay allows (live only: items
//! already synced need no historic pass).

use std::collections::BTreeSet;

use crate::command::{Command, SubId, SubKind};
use crate::ctx::Ctx;
use crate::event_meta::{EventMeta, KIND_ANNOUNCEMENT, KIND_GRASP_LIST, KIND_STATE};
use crate::filters::{key_values, Values};
use crate::historic::batch::Batch;
use crate::index::keyset::KeySet;
use crate::index::want::WantIndex;
use crate::item::{Key, KeyKind};
use crate::relay::{KindCounts, LiveGroup, OpenSub, RelayState, SubRole};
use crate::wanted::Wanted;
use crate::wire_filter::WireFilter;

impl RelayState {
    /// Makes live coverage of `candidates` match the target: opens what is missing, closes
    /// what is no longer wanted. Deferred (and replayed later) during a rate-limit cooldown.
    pub(crate) fn reconcile_live(&mut self, ctx: &mut Ctx<'_>, candidates: &BTreeSet<Key>) {
        let wanted = Wanted::new(ctx.want, &self.url, candidates.len());
        self.reconcile_live_with(ctx, candidates, &wanted);
    }

    /// [`RelayState::reconcile_live`] with the relay's target already at hand.
    pub(crate) fn reconcile_live_with(
        &mut self,
        ctx: &mut Ctx<'_>,
        candidates: &BTreeSet<Key>,
        wanted: &Wanted<'_>,
    ) {
        if !self.status.is_live() {
            return;
        }
        // In the candidates' order (sorted): the set below is built without sorting.
        let mut missing = Vec::new();
        let mut stale_groups = BTreeSet::new();
        for item in candidates {
            match (wanted.wants(item), self.live_group_of(item)) {
                (true, None) => missing.push(*item),
                (false, Some(group)) => {
                    stale_groups.insert(group);
                }
                _ => {}
            }
        }
        let mut add: KeySet = missing.into_iter().collect();
        for group in stale_groups {
            // Merged in one pass: a closed group can hold thousands of items.
            let mut kept = self.close_group(ctx, group).filtered(|i| wanted.wants(i));
            add.append(&mut kept);
        }
        if add.is_empty() {
            return;
        }
        if self.health.is_rate_limited(ctx.now.mono) {
            self.live_dirty = true;
            return;
        }
        self.open_live(ctx, add);
    }

    /// Opens live subscriptions for `items`, consolidating when the soft cap would be exceeded.
    fn open_live(&mut self, ctx: &mut Ctx<'_>, mut items: KeySet) {
        let values = self.make_live_room(ctx, &mut items);
        let room = self
            .budget
            .live_hard_cap()
            .saturating_sub(self.live_sub_count());
        let (reqs, packed, total) = self.live_reqs(ctx, &items, values, room);
        if packed < total {
            self.counters.live_filters_over_budget += (total - packed) as u64;
            self.live_full = true;
        }
        self.note_coverage(ctx, &items, packed == total);
        if reqs.is_empty() {
            // Nothing fits (over budget): record the items with the newest group rather than
            // growing a group with no subscription per discovery batch.
            if let Some(g) = self.live_groups.values_mut().next_back() {
                // `items` are covered by no group, so the sets are disjoint.
                g.counts = g.counts.plus(KindCounts::of(&items));
                g.items.append(&mut items);
                debug_assert_eq!(g.counts, KindCounts::of(&g.items));
                return;
            }
        }
        // Make room: historic requests wait for slots, live coverage does not.
        self.evict_historic_for(ctx, reqs.len());
        let group = self.next_seq();
        let mut subs = Vec::with_capacity(reqs.len());
        for filters in reqs {
            let sub = SubId(format!("live{}", self.next_seq()));
            let filters_sent = filters.len();
            // A relay that taught us a pace gets its live REQs one at a time too (before any
            // historic request): the slot is taken now, the REQ waits in `live_held`.
            if self.live_held.is_empty() && self.health.pace.allows(ctx.now.mono) {
                self.send_live(ctx, sub.clone(), filters);
            } else {
                self.live_held.push_back((sub.clone(), filters));
            }
            self.subs.insert(
                sub.clone(),
                OpenSub {
                    role: SubRole::Live { group },
                    filters: Vec::new(),
                    filters_sent,
                },
            );
            subs.push(sub);
        }
        let counts = KindCounts::of(&items);
        let live = LiveGroup {
            subs,
            items,
            counts,
        };
        self.live_groups.insert(group, live);
    }

    /// Before `items` get their own group when live REQs are open: merges the newest groups
    /// into `items` (or consolidates) when the soft cap would be exceeded. Returns the values
    /// of `items` as they end up, when already computed (the live REQs are built from them).
    fn make_live_room<'w>(&mut self, ctx: &mut Ctx<'w>, items: &mut KeySet) -> Option<Values<'w>> {
        if self.live_sub_count() == 0 {
            return None;
        }
        let mut values = key_values(&*items, ctx.want);
        let mut after = self.live_sub_count() + self.count_reqs(ctx, &values);
        if after > self.budget.live_soft_cap() && !self.live_full {
            let reqs;
            (reqs, values) = self.absorb_small_tail(ctx, items, values);
            after = self.live_sub_count() + reqs;
        }
        if after > self.budget.live_soft_cap() && self.consolidation_helps(ctx, items, after) {
            ctx.stats.consolidations += 1;
            for g in self.groups_to_merge(ctx, items) {
                // A linear merge of two sorted sets.
                items.append(&mut self.close_group(ctx, g));
            }
            return None;
        }
        Some(values)
    }

    /// The live REQs of `items` that fit in `room` REQs, how many filters they hold, and how
    /// many filters `items` need. Only the filters that fit are built; the rest are counted.
    /// A pending batch of exactly these items (a quick reconnect's catch-up over every
    /// confirmed item) already holds the same filters (same items, same chunking): they are
    /// shared, not rebuilt. `values`, when given, are those of `items` (else looked up).
    fn live_reqs<'w>(
        &self,
        ctx: &Ctx<'w>,
        items: &KeySet,
        values: Option<Values<'w>>,
        room: usize,
    ) -> (Vec<Vec<WireFilter>>, usize, usize) {
        let chunk = ctx.cfg.chunk_size;
        let same = |b: &&Batch| b.filters_are_of(items);
        if let Some(batch) = self.pending.batches.values().find(same) {
            debug_assert!(batch.filters == crate::filters::build_keys(items, ctx.want, chunk));
            let live = batch.filters.iter().map(|f| f.filter.clone().limit(0));
            let (reqs, packed) = self.budget.pack_within(live, room);
            return (reqs, packed, batch.filters.len());
        }
        let values = values.unwrap_or_else(|| key_values(items, ctx.want));
        debug_assert!(
            (values.filter_sizes(chunk)).eq(key_values(items, ctx.want).filter_sizes(chunk))
        );
        let total = values.filter_count(chunk);
        let live = values.filters(chunk).map(|f| f.filter.limit(0));
        let (reqs, packed) = self.budget.pack_within(live, room);
        (reqs, packed, total)
    }

    /// How many REQs the live filters of `items` alone would take (counted from the values'
    /// sizes; no filter is built). `items` may chain several disjoint sets.
    fn reqs_for<'k>(&self, ctx: &Ctx<'_>, items: impl IntoIterator<Item = &'k Key>) -> usize {
        let values = key_values(items, ctx.want);
        self.budget
            .count_reqs(values.filter_sizes(ctx.cfg.chunk_size))
    }

    /// How many REQs the live filters of `values` take (counted from the values' sizes).
    fn count_reqs(&self, ctx: &Ctx<'_>, values: &Values<'_>) -> usize {
        self.budget
            .count_reqs(values.filter_sizes(ctx.cfg.chunk_size))
    }

    /// The logarithmic method (binary-counter merging, as in a log-structured tree): the newest
    /// groups are closed and merged into `items` while they hold no more items than `items`
    /// and merging saves at least one REQ (a merge that saves nothing is churn).
    /// Group sizes then at least double from newest to oldest, so a relay holds O(log n)
    /// groups (each wasting at most one partly filled REQ) and each item is rebuilt and re-sent
    /// O(log n) times in all, instead of every group being re-packed once the soft cap is hit
    /// (quadratic in the number of discovered roots). Only used once the soft cap would be
    /// exceeded (below it, a new group costs one REQ and no churn), and not while `live_full`
    /// (the newest group then also holds items left out over budget; re-packing adds no room).
    /// `values` are those of `items`; each step merges in the values of one group (rather than
    /// looking up and sorting the whole union again). Returns how many REQs the live filters
    /// of `items` take afterwards, and their values.
    fn absorb_small_tail<'w>(
        &mut self,
        ctx: &mut Ctx<'w>,
        items: &mut KeySet,
        mut values: Values<'w>,
    ) -> (usize, Values<'w>) {
        let mut items_reqs = self.count_reqs(ctx, &values);
        let mut merged = false;
        while let Some((&tail, g)) = self.live_groups.last_key_value() {
            if g.items.len() > items.len() {
                break;
            }
            let union = values.union(&key_values(&g.items, ctx.want));
            let union_reqs = self.count_reqs(ctx, &union);
            if union_reqs >= items_reqs + g.subs.len() {
                break;
            }
            items.append(&mut self.close_group(ctx, tail));
            (items_reqs, values) = (union_reqs, union);
            merged = true;
        }
        // A close and re-pack, counted like the full consolidation it replaces.
        ctx.stats.consolidations += u64::from(merged);
        (items_reqs, values)
    }

    /// The groups a consolidation re-packs with `new`: every group but the largest when that
    /// alone gets under the soft cap (work and churn proportional to the small groups, like
    /// merging the small runs of a log-structured tree), else every group.
    fn groups_to_merge(&self, ctx: &Ctx<'_>, new: &KeySet) -> Vec<u64> {
        let all: Vec<u64> = self.live_groups.keys().copied().collect();
        let Some((&largest, big)) = self
            .live_groups
            .iter()
            .max_by_key(|(id, g)| (g.subs.len(), g.items.len(), std::cmp::Reverse(**id)))
        else {
            return all;
        };
        let others: Vec<u64> = all.iter().copied().filter(|g| *g != largest).collect();
        let others_items = others.iter().flat_map(|g| &self.live_groups[g].items);
        let reqs = self.reqs_for(ctx, new.iter().chain(others_items));
        if big.subs.len() + reqs <= self.budget.live_soft_cap() {
            others
        } else {
            all
        }
    }

    /// Whether closing every live group and re-packing it with `new` is worth it, when adding
    /// `new` as its own group would leave `after` live REQs (over the soft cap). A lower bound
    /// on the re-packed REQs comes from item counts (no filter is built). Consolidate when
    /// `after` would not fit under the hard cap and the result can. Between the soft and the
    /// hard cap, a new group takes free slots (one REQ each, where a re-pack closes and
    /// re-opens every REQ of the relay: every filter rebuilt, live coverage briefly gone;
    /// re-packing as soon as the soft cap was passed re-packed the busiest relays at every
    /// discovery batch, 63 % of its CPU at 100k roots, docs/performance.md); when the slots it
    /// needs are held by historic requests, those would be evicted, so it re-packs if the
    /// result can get under the soft cap. Not while `live_full` (the last packing already
    /// left filters out).
    fn consolidation_helps(&self, ctx: &Ctx<'_>, new: &KeySet, after: usize) -> bool {
        if self.live_full {
            return false;
        }
        // The groups' sets and `new` are disjoint, so their counts add up.
        let counts =
            (self.live_groups.values()).fold(KindCounts::of(new), |sum, g| sum.plus(g.counts));
        debug_assert_eq!(counts, KindCounts::of(self.live_items().chain(new)));
        let chunk = ctx.cfg.chunk_size.max(1);
        let filters = usize::from(counts.l1 > 0)
            + usize::from(counts.states > 0)
            + 3 * counts.repos.div_ceil(chunk)
            + 3 * counts.roots.div_ceil(chunk);
        let reqs = filters.div_ceil(self.budget.max_filters.max(1));
        let hard = self.budget.live_hard_cap();
        if after > hard {
            return reqs <= hard;
        }
        // Room historic requests do not hold is taken; room they hold is not: evicting them
        // re-sends their pages (780 more pages in the e2e initial sync when it was taken).
        let new_reqs = after.saturating_sub(self.live_sub_count());
        let free = self.subs.len() + new_reqs <= self.budget.total();
        !free && reqs <= self.budget.live_soft_cap()
    }

    /// Brings open subscriptions back within a budget that just shrank: historic requests are
    /// re-queued first; if live subscriptions alone are too many they are re-packed.
    pub(crate) fn enforce_budget(&mut self, ctx: &mut Ctx<'_>) {
        self.evict_historic_for(ctx, 0);
        if self.live_sub_count() > self.budget.live_hard_cap() {
            ctx.stats.consolidations += 1;
            let groups: Vec<u64> = self.live_groups.keys().copied().collect();
            let mut items = KeySet::new();
            for g in groups {
                items.append(&mut self.close_group(ctx, g));
            }
            self.reconcile_live(ctx, &items.into_iter().collect());
        }
    }

    /// Whether `event` matches the live filters of `group`, decided from the group's items (the
    /// filters themselves are not kept). Exact for each filter shape the group's items produce
    /// (L1 kinds, `#d` of kind 30618, `#a/#A/#q` coordinates, `#e/#E/#q` root ids), at the
    /// level of the group: a delivery on one REQ of the group that matches another of its REQs
    /// (or items left out over budget) counts as matching.
    pub(crate) fn live_matches(&self, group: u64, event: &EventMeta, want: &WantIndex) -> bool {
        let Some(g) = self.live_groups.get(&group) else {
            return false;
        };
        let kind = event.kind_u16();
        if (kind == KIND_ANNOUNCEMENT || kind == KIND_GRASP_LIST)
            && g.items.contains(&Key::ANNOUNCEMENTS)
        {
            return true;
        }
        if event.is_relay_list()
            && want
                .plus
                .author_index(&event.author)
                .is_some_and(|a| g.items.contains(&Key::relay_lists(a)))
        {
            return true;
        }
        event.tags.iter().any(|(letter, value)| match letter {
            'a' | 'A' | 'q' if value.starts_with("30617:") => want
                .repo_index(value)
                .is_some_and(|n| g.items.contains(&Key::repo_events(n))),
            'e' | 'E' | 'q' => want
                .root_index(value)
                .is_some_and(|x| g.items.contains(&Key::root(x))),
            'd' if kind == KIND_STATE => g.items.iter().any(|k| match k.kind() {
                KeyKind::State(n) => want.coord(n).is_some_and(|c| c.identifier == *value),
                _ => false,
            }),
            _ => false,
        })
    }

    /// Sends a live REQ (counted by the pace).
    pub(crate) fn send_live(&mut self, ctx: &mut Ctx<'_>, sub: SubId, filters: Vec<WireFilter>) {
        self.health.pace.sent(ctx.now.mono);
        ctx.out.push(Command::Subscribe {
            relay: self.url.clone(),
            sub,
            kind: SubKind::Live,
            filters,
        });
    }

    /// Closes every subscription of a live group; returns the items it covered. A REQ still
    /// held by the pace was never sent: it is dropped, not closed.
    pub(crate) fn close_group(&mut self, ctx: &mut Ctx<'_>, group: u64) -> KeySet {
        let Some(g) = self.live_groups.remove(&group) else {
            return KeySet::new();
        };
        self.live_full = false;
        for sub in g.subs {
            if self.subs.remove(&sub).is_some() {
                let held = self.live_held.len();
                self.live_held.retain(|(s, _)| *s != sub);
                if self.live_held.len() == held {
                    ctx.unsubscribe(&self.url, sub);
                }
            }
        }
        g.items
    }

    /// The relay closed a live subscription: its group loses coverage until the repair
    /// deadline, after which it is re-opened and the gap caught up. After an `auth-required:`
    /// refusal that is retried (`auth_retry`) the repair comes when the authentication hold
    /// ends (docs/spec.md §14), else after `rate_limit_cooldown_ms`.
    pub(crate) fn on_live_closed(
        &mut self,
        ctx: &mut Ctx<'_>,
        sub: &SubId,
        group: u64,
        auth_retry: bool,
    ) {
        self.subs.remove(sub);
        if let Some(g) = self.live_groups.get_mut(&group) {
            g.subs.retain(|s| s != sub);
        }
        self.close_group(ctx, group);
        let wall = ctx.now.wall;
        self.live_gap_since = Some(self.live_gap_since.map_or(wall, |t| t.min(wall)));
        let cooldown_end = self.health.rate_limited_until.unwrap_or(ctx.now.mono);
        let wait = if auth_retry {
            0
        } else {
            ctx.cfg.rate_limit_cooldown_ms
        };
        self.live_repair_at = Some(cooldown_end.max(ctx.now.mono.plus_ms(wait)));
    }
}
