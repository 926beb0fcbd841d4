//! Repository withdrawal (docs/spec.md §14): what the runtime does once the host's policy said
//! that an accepted event withdraws a repository (a newer announcement that no longer lists us,
//! a NIP-09 deletion of the announcement). The withdrawal is logged and counted, the
//! repository's stored history is kept or deleted as the operator chose ([`OnWithdrawal`]), and
//! the core hears `Input::WithdrawRepo`, so every relay nothing else wants is reaped.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use nostr::{Event, EventId, Filter, Kind, SingleLetterTag};
use nostr_database::{DatabaseError, NostrDatabase};
use sync_core::{EventMeta, Input, RepoCoord, KIND_ANNOUNCEMENT, KIND_STATE};
use tokio::sync::mpsc;

use crate::messages::DriverMsg;
use crate::metrics::Metrics;
use crate::policy::Withdrawal;

/// Most stored events read per tag family when deleting a withdrawn repository's history;
/// anything beyond stays (logged) and can be removed by a later withdrawal or by hand.
pub const MAX_DELETED_PER_WITHDRAWAL: usize = 100_000;

/// What happens to a withdrawn repository's stored history (`--on-withdrawal`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnWithdrawal {
    /// Keep every stored event; only syncing stops (the default).
    #[default]
    Keep,
    /// Delete the repository's stored events (docs/operations.md, "Withdrawn repositories"):
    /// the events tagging its coordinate with `a`/`A`/`q` that tag no other repository, and
    /// the owner's state (30618) when no other owner announces the same `d`. The announcement
    /// that withdrew it and deletion requests (kind 5) stay.
    Delete,
}

impl OnWithdrawal {
    /// The flag value (`keep` or `delete`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Delete => "delete",
        }
    }
}

impl FromStr for OnWithdrawal {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep" => Ok(Self::Keep),
            "delete" => Ok(Self::Delete),
            other => Err(format!("expected keep or delete, got {other:?}")),
        }
    }
}

/// Applies withdrawals: shared by the ingest path (synced events) and the handle (events the
/// host accepted from its own clients).
#[derive(Clone)]
pub(crate) struct Withdrawer {
    /// The host's store.
    pub(crate) db: Arc<dyn NostrDatabase>,
    /// Keep or delete the history.
    pub(crate) mode: OnWithdrawal,
    /// `ngit_sync_repos_withdrawn_total` and friends.
    pub(crate) metrics: Metrics,
    /// The driver's inbox.
    pub(crate) tx: mpsc::Sender<DriverMsg>,
}

impl Withdrawer {
    /// Logs, counts, deletes the history if asked, then tells the core; `false` once the
    /// driver is gone.
    pub(crate) async fn apply(&self, withdrawal: &Withdrawal) -> bool {
        let reason = withdrawal.reason.label();
        tracing::info!(coord = %withdrawal.coord, reason, on_withdrawal = self.mode.as_str(), "repository withdrawn from sync");
        self.metrics
            .repos_withdrawn
            .with_label_values(&[reason])
            .inc();
        if self.mode == OnWithdrawal::Delete {
            match delete_history(self.db.as_ref(), &withdrawal.coord).await {
                Ok(deleted) => {
                    tracing::info!(coord = %withdrawal.coord, deleted, "withdrawn repository's stored events deleted");
                    self.metrics.withdrawn_events_deleted.inc_by(deleted as u64);
                }
                Err(error) => {
                    tracing::warn!(coord = %withdrawal.coord, %error, "deleting a withdrawn repository's events failed");
                }
            }
        }
        let input = Input::WithdrawRepo {
            coord: withdrawal.coord.clone(),
        };
        self.tx.send(DriverMsg::Input(input)).await.is_ok()
    }
}

/// Whether `withdrawals` include the coordinate of `event` itself (an announcement that
/// withdraws its own repository must not be reported as a discovery).
pub(crate) fn withdraws_itself(event: &Event, withdrawals: &[Withdrawal]) -> bool {
    EventMeta::from_event(event)
        .own_coord()
        .is_some_and(|own| withdrawals.iter().any(|w| w.coord == own))
}

/// Deletes the stored history of `coord` (see [`OnWithdrawal::Delete`]); returns how many
/// events were deleted.
async fn delete_history(db: &dyn NostrDatabase, coord: &RepoCoord) -> Result<usize, DatabaseError> {
    let value = coord.to_string();
    let mut doomed: BTreeSet<EventId> = BTreeSet::new();
    for letter in ['a', 'A', 'q'] {
        let Ok(tag) = SingleLetterTag::from_char(letter) else {
            continue;
        };
        let filter = Filter::new()
            .custom_tag(tag, value.clone())
            .limit(MAX_DELETED_PER_WITHDRAWAL);
        let events = db.query(filter).await?;
        if events.len() >= MAX_DELETED_PER_WITHDRAWAL {
            tracing::warn!(%coord, letter = %letter, "more stored events than one withdrawal deletes; the rest stay");
        }
        doomed.extend(
            events
                .iter()
                .filter(|e| e.kind != Kind::EventDeletion && !tags_another_repository(e, &value))
                .map(|e| e.id),
        );
    }
    if !other_owner_announces(db, coord).await? {
        let state = Filter::new()
            .kind(Kind::from(KIND_STATE))
            .author(coord.owner)
            .identifier(coord.identifier.clone())
            .limit(16);
        doomed.extend(db.query(state).await?.iter().map(|e| e.id));
    }
    let ids: Vec<EventId> = doomed.into_iter().collect();
    for chunk in ids.chunks(500) {
        db.delete(Filter::new().ids(chunk.iter().copied())).await?;
    }
    Ok(ids.len())
}

/// Whether `event` also tags (`a`/`A`/`q`) a repository other than `coord`: it belongs to that
/// one too and is kept.
fn tags_another_repository(event: &Event, coord: &str) -> bool {
    event.tags.iter().any(|tag| {
        let slice = tag.as_slice();
        matches!(slice.first().map(String::as_str), Some("a" | "A" | "q"))
            && slice
                .get(1)
                .is_some_and(|v| v.starts_with("30617:") && v != coord)
    })
}

/// Whether another owner's announcement with the same `d` is stored (then the owner's state
/// may be that repository's state too, and is kept).
async fn other_owner_announces(
    db: &dyn NostrDatabase,
    coord: &RepoCoord,
) -> Result<bool, DatabaseError> {
    let filter = Filter::new()
        .kind(Kind::from(KIND_ANNOUNCEMENT))
        .identifier(coord.identifier.clone())
        .limit(crate::grasp::MAX_ANNOUNCEMENTS_PER_IDENTIFIER);
    Ok(db
        .query(filter)
        .await?
        .iter()
        .any(|e| e.pubkey != coord.owner))
}

#[cfg(test)]
mod tests {
    use nostr::{EventBuilder, Keys, Tag};
    use nostr_database::{MemoryDatabase, MemoryDatabaseOptions};

    use super::*;

    fn tagged(keys: &Keys, kind: u16, coords: &[&str]) -> Event {
        let tags = coords.iter().map(|c| Tag::parse(["a", c]).unwrap());
        EventBuilder::new(Kind::from(kind), "x")
            .tags(tags)
            .sign_with_keys(keys)
            .unwrap()
    }

    #[tokio::test]
    async fn delete_removes_only_what_belongs_to_the_withdrawn_repository_alone() {
        let db = MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: None,
        });
        let owner = Keys::generate();
        let gone = format!("30617:{}:gone", owner.public_key().to_hex());
        let kept = format!("30617:{}:kept", owner.public_key().to_hex());
        let patch = tagged(&owner, 1617, &[&gone]);
        let shared = tagged(&owner, 1621, &[&gone, &kept]);
        let other = tagged(&owner, 1617, &[&kept]);
        let state = EventBuilder::new(Kind::from(KIND_STATE), "")
            .tag(Tag::identifier("gone"))
            .sign_with_keys(&owner)
            .unwrap();
        for e in [&patch, &shared, &other, &state] {
            db.save_event(e).await.unwrap();
        }
        let coord = RepoCoord::parse(&gone).unwrap();
        assert_eq!(delete_history(&db, &coord).await.unwrap(), 2);
        for (e, held) in [
            (&patch, false),
            (&state, false),
            (&shared, true),
            (&other, true),
        ] {
            let status = db.event_by_id(&e.id).await.unwrap().is_some();
            assert_eq!(status, held, "kind {}", e.kind);
        }
        assert_eq!("delete".parse(), Ok(OnWithdrawal::Delete));
        assert!("purge".parse::<OnWithdrawal>().is_err());
    }
}
