//! Startup (docs/spec.md §4): before connecting anywhere, the core's indexes are rebuilt from the host's
//! store — every accepted announcement (30617) and root event (1617, 1618, 1621), with no result
//! cap — and the rejected-events memory of the previous run is restored. A stored announcement
//! that the host's policy says withdraws its own repository (docs/spec.md §14: a newer version
//! that no longer lists us) is not replayed, so a withdrawal survives a restart.

use nostr::{Filter, Kind};
use nostr_database::NostrDatabase;
use sync_core::{
    EventMeta, Input, RejectedEntry, KIND_ANNOUNCEMENT, KIND_GRASP_LIST, KIND_RELAY_LIST,
    REPLY_KINDS, ROOT_KINDS, SYNC_PLUS_REPLAYED_REPLIES,
};

use crate::error::RuntimeError;
use crate::policy::WritePolicy;
use crate::withdrawal::withdraws_itself;

/// The inputs that replay the store: announcements first (so roots attach at once), each group
/// in `(created_at, id)` order so a replay is deterministic. Announcements `policy` reports as
/// withdrawing their own repository are left out. With Sync+ on (`sync_plus`), relay lists
/// and the newest [`SYNC_PLUS_REPLAYED_REPLIES`] replies follow, so participants and their
/// relays survive a restart.
pub(crate) async fn replay_store(
    db: &dyn NostrDatabase,
    policy: &dyn WritePolicy,
    sync_plus: bool,
) -> Result<Vec<Input>, RuntimeError> {
    let mut inputs = Vec::new();
    let mut groups = vec![
        Filter::new().kind(Kind::from(KIND_ANNOUNCEMENT)),
        Filter::new().kinds(ROOT_KINDS.iter().map(|k| Kind::from(*k))),
    ];
    if sync_plus {
        let replies = REPLY_KINDS.iter().map(|k| Kind::from(*k));
        groups.push(
            Filter::new()
                .kinds(replies)
                .limit(SYNC_PLUS_REPLAYED_REPLIES),
        );
        let lists = [KIND_RELAY_LIST, KIND_GRASP_LIST].map(Kind::from);
        groups.push(Filter::new().kinds(lists));
    }
    for filter in groups {
        let events = db
            .query(filter)
            .await
            .map_err(|e| RuntimeError::Store(e.to_string()))?;
        let mut metas: Vec<EventMeta> = Vec::new();
        for event in events.iter() {
            if event.kind == Kind::from(KIND_ANNOUNCEMENT) {
                let withdrawals = policy.withdrawals(event).await;
                if withdraws_itself(event, &withdrawals) {
                    tracing::info!(id = %event.id, "stored announcement withdraws its repository; not synced");
                    continue;
                }
            }
            metas.push(EventMeta::from_event(event));
        }
        metas.sort_by_key(|m| (m.created_at, m.id));
        inputs.extend(metas.into_iter().map(|event| Input::Accepted { event }));
    }
    Ok(inputs)
}

/// The input that restores a persisted rejected memory (none when it is empty).
pub(crate) fn restore_rejected(entries: Vec<RejectedEntry>) -> Option<Input> {
    (!entries.is_empty()).then_some(Input::RestoreRejected { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::{EventBuilder, Keys, Tag};
    use nostr_database::{MemoryDatabase, MemoryDatabaseOptions};

    #[tokio::test]
    async fn replays_announcements_then_roots_without_a_cap() {
        let db = MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: None,
        });
        let keys = Keys::generate();
        for i in 0..600u64 {
            let patch = EventBuilder::new(Kind::GitPatch, format!("p{i}"))
                .custom_created_at(nostr::Timestamp::from(1_700_000_000 + i))
                .sign_with_keys(&keys)
                .unwrap();
            db.save_event(&patch).await.unwrap();
        }
        let ann = EventBuilder::new(Kind::GitRepoAnnouncement, "")
            .tag(Tag::identifier("r"))
            .custom_created_at(nostr::Timestamp::from(1_800_000_000))
            .sign_with_keys(&keys)
            .unwrap();
        db.save_event(&ann).await.unwrap();
        let note = EventBuilder::new(Kind::TextNote, "n")
            .sign_with_keys(&keys)
            .unwrap();
        db.save_event(&note).await.unwrap();
        let inputs = replay_store(&db, &crate::AcceptAll, false).await.unwrap();
        assert_eq!(
            inputs.len(),
            601,
            "600 patches (more than any default limit) + 1 announcement"
        );
        assert!(
            matches!(&inputs[0], Input::Accepted { event } if event.id == ann.id),
            "announcement first"
        );
        assert!(restore_rejected(Vec::new()).is_none());
    }
}
