//! Re-checking ids deferred to another relay's fetch (issue 12, deliverable 4; docs/spec.md
//! §7.1): a relay whose diff found ids another relay (or another batch of its own) was already
//! fetching waits for that fetch, and takes the ids over when it ends without them (failed,
//! fell back, disconnected, or the relay did not deliver them), so nothing is lost by fetching
//! each id once.

use nostr::EventId;

use crate::command::Command;
use crate::historic::batch::Stage;
use crate::historic::claims::Claim;
use crate::url::RelayUrl;

use super::SyncCore;

/// Re-check passes per step at most (a pass can end fetches other waiting relays wait for);
/// what is left is re-checked at the next step.
const MAX_PASSES: usize = 4;

/// The re-check of one batch: its id, ids now stored, ids to fetch itself.
type Resolution = (u64, Vec<EventId>, Vec<EventId>);

impl SyncCore {
    /// Re-checks deferred ids when some relay's id fetches changed since the last check (or
    /// ids were deferred this step): stored ids are settled, ids whose claim ended are
    /// fetched by the deferring relay.
    pub(crate) fn resume_deferred(&mut self, out: &mut Vec<Command>) {
        for _ in 0..MAX_PASSES {
            if self.claims.waiting.is_empty() {
                return;
            }
            let print = self.fetch_print();
            if !self.claims.fresh && print == self.claims.last_print {
                return;
            }
            self.claims.fresh = false;
            self.claims.last_print = print;
            let waiting: Vec<RelayUrl> = self.claims.waiting.iter().cloned().collect();
            for url in waiting {
                let resolutions = self.deferred_resolutions(&url);
                let Some((r, mut ctx)) = self.relay_ctx(&url, out) else {
                    self.claims.waiting.remove(&url);
                    continue;
                };
                for (batch, settled, take) in resolutions {
                    r.resume_deferred_ids(&mut ctx, batch, &settled, take);
                }
                let still = r.pending.batches.values().any(|b| b.has_deferred());
                r.pump(&mut ctx);
                if !still {
                    ctx.claims.waiting.remove(&url);
                }
            }
            self.reindex_touched();
        }
        self.claims.fresh = true;
    }

    /// What each batch of `url` with deferred ids should do with them now.
    fn deferred_resolutions(&self, url: &RelayUrl) -> Vec<Resolution> {
        let Some(r) = self.relays.get(url) else {
            return Vec::new();
        };
        let mut res = Vec::new();
        for b in r.pending.batches.values() {
            let Stage::Fetch(f) = &b.stage else {
                continue;
            };
            if f.deferred.is_empty() {
                continue;
            }
            let (mut settled, mut take) = (Vec::new(), Vec::new());
            for id in &f.deferred {
                match self.claims.get(id) {
                    Some(Claim::Stored) => settled.push(*id),
                    Some(Claim::Fetching(a)) if self.fetch_live(a, id) => {}
                    _ => take.push(*id),
                }
            }
            if !settled.is_empty() || !take.is_empty() {
                res.push((b.id, settled, take));
            }
        }
        res
    }

    /// Whether `relay` is live and one of its id fetches still asks for `id`: requested, not
    /// yet received, and the round is still on the wire (a round that ended without it, even
    /// one waiting for deferred ids of its own, does not count: two relays, or two batches of
    /// one relay, never wait for each other).
    fn fetch_live(&self, relay: &RelayUrl, id: &EventId) -> bool {
        self.relays.get(relay).is_some_and(|r| {
            r.status.is_live() && r.pending.batches.values().any(|b| b.fetches_live(id))
        })
    }

    /// A digest of every relay's id-fetch state that a delivery does not change but the end
    /// of a fetch does: per relay its position, whether it is live, and per batch fetching by
    /// id its id, round, number of ids asked for and whether the round is on the wire.
    pub(crate) fn fetch_print(&self) -> Vec<u64> {
        let mut print = Vec::new();
        for (i, r) in self.relays.values().enumerate() {
            print.push(i as u64);
            print.push(u64::from(r.status.is_live()));
            for b in r.pending.batches.values() {
                if let Stage::Fetch(f) = &b.stage {
                    let on_wire = u64::from(b.fetching_ids());
                    print.extend([b.id, u64::from(f.round), f.requested.len() as u64, on_wire]);
                }
            }
        }
        print
    }
}
