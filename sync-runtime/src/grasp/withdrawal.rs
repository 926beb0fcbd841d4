//! Which repositories an accepted event withdraws from sync (docs/spec.md §14): a newer
//! announcement that lists none of our service URLs (and is hosted neither by archive mode nor
//! by the maintainer exception), or a NIP-09 deletion of a stored announcement.

use nostr::{Event, EventId, Kind};
use nostr_database::{DatabaseError, NostrDatabase};
use sync_core::{EventMeta, KIND_ANNOUNCEMENT};

use crate::grasp::deletion::DeletionTargets;
use crate::grasp::grasp_policy::GraspPolicy;
use crate::grasp::lookup;
use crate::policy::{Withdrawal, WithdrawalReason};

impl GraspPolicy {
    /// The withdrawals `event` causes; a store error withdraws nothing (and is logged).
    pub(crate) async fn withdrawals_of(&self, event: &Event) -> Vec<Withdrawal> {
        let result = if event.kind.as_u16() == KIND_ANNOUNCEMENT {
            self.unlisted(event).await.map(|w| w.into_iter().collect())
        } else if event.kind == Kind::EventDeletion {
            deleted_announcements(self.db(), event).await
        } else {
            Ok(Vec::new())
        };
        result.unwrap_or_else(|error| {
            tracing::warn!(%error, id = %event.id, "GRASP policy: store query failed; nothing withdrawn");
            Vec::new()
        })
    }

    /// An announcement we would not host (it lists none of our service URLs, archive mode is
    /// off, its author is no maintainer of another owner's stored announcement with the same
    /// `d`) withdraws its own coordinate.
    pub(crate) async fn unlisted(
        &self,
        event: &Event,
    ) -> Result<Option<Withdrawal>, DatabaseError> {
        let meta = EventMeta::from_event(event);
        let Some(coord) = meta.own_coord().filter(|c| !c.identifier.is_empty()) else {
            return Ok(None);
        };
        if self.hosts_without_store(&meta) || self.maintainer_exception(event).await? {
            return Ok(None);
        }
        Ok(Some(Withdrawal {
            coord,
            reason: WithdrawalReason::Unlisted,
        }))
    }
}

/// The announcements a deletion request removes from the store: its own `a` coordinates of
/// kind 30617 and its `e` ids of stored 30617s, each only where the stored announcement is not
/// newer than the request (the store deletes nothing newer either).
async fn deleted_announcements(
    db: &dyn NostrDatabase,
    event: &Event,
) -> Result<Vec<Withdrawal>, DatabaseError> {
    let targets = DeletionTargets::of(event);
    let mut announcements = Vec::new();
    for address in &targets.addresses {
        if address.kind.as_u16() == KIND_ANNOUNCEMENT && address.author == event.pubkey {
            let stored =
                lookup::stored_announcement(db, address.author, &address.identifier).await?;
            announcements.extend(stored);
        }
    }
    let ids: Vec<EventId> = targets.ids.iter().copied().collect();
    if !ids.is_empty() {
        let held = lookup::held_events(db, &ids).await?;
        announcements.extend(
            held.into_iter()
                .filter(|e| e.kind.as_u16() == KIND_ANNOUNCEMENT && e.pubkey == event.pubkey),
        );
    }
    let mut out: Vec<Withdrawal> = Vec::new();
    for announcement in announcements {
        if announcement.created_at > event.created_at {
            continue;
        }
        let Some(coord) = EventMeta::from_event(&announcement).own_coord() else {
            continue;
        };
        if !out.iter().any(|w| w.coord == coord) {
            out.push(Withdrawal {
                coord,
                reason: WithdrawalReason::Deleted,
            });
        }
    }
    Ok(out)
}
