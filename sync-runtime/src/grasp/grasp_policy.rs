//! [`GraspPolicy`]: the default write policy of a GRASP relay, one rule per event kind.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use nostr::{Event, Kind};
use nostr_database::{DatabaseError, NostrDatabase};
use sync_core::{
    EventMeta, RelayUrl, KIND_ANNOUNCEMENT, KIND_GRASP_LIST, KIND_RELAY_LIST, KIND_STATE,
};

use crate::grasp::deletion::check_deletion;
use crate::grasp::lookup;
use crate::grasp::maintainers::{authorised_for_state, maintainer_of_other_owner};
use crate::grasp::references::References;
use crate::policy::{PolicyFuture, Verdict, WithdrawalsFuture, WritePolicy};

/// A service URL given to [`GraspPolicy::try_new`] that is not a usable relay URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a ws:// or wss:// relay URL: {0:?}")]
pub struct InvalidServiceUrl(pub String);

/// The default GRASP write policy (see the [module docs](crate::grasp) for the rules).
///
/// Stateless apart from configuration: every decision is a few bounded queries against the
/// host's store, which holds exactly the accepted events.
#[derive(Clone)]
pub struct GraspPolicy {
    /// The host's store; invariant: it holds exactly the events this policy (or the host)
    /// accepted, so "accepted" is answered by querying it.
    db: Arc<dyn NostrDatabase>,
    /// Our own relay URLs, canonicalised; an announcement listing one of them is ours.
    service_urls: BTreeSet<RelayUrl>,
    /// Archive mode: accept every well-formed announcement, listed or not.
    archive_all: bool,
    /// Most repositories one author may have announced here; a further announcement (a new
    /// identifier) is rejected, a replacement of a stored one is not (docs/spec.md §13).
    max_announcements_per_author: usize,
    /// Sync+ (docs/spec.md §15): accept kind 10002 relay lists of participants. Off: a 10002
    /// is judged like any other kind (GRASP-02).
    relay_lists: bool,
}

/// Default of [`GraspPolicy::with_max_announcements_per_author`]: far above what one person
/// maintains, far below what a flood would need.
pub const DEFAULT_MAX_ANNOUNCEMENTS_PER_AUTHOR: usize = 100;

impl fmt::Debug for GraspPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraspPolicy")
            .field("service_urls", &self.service_urls)
            .field("archive_all", &self.archive_all)
            .finish_non_exhaustive()
    }
}

impl GraspPolicy {
    /// A policy over `db` for a relay reachable at `service_urls`. URLs that are not relay URLs
    /// are ignored with a warning; use [`GraspPolicy::try_new`] to refuse them instead.
    #[must_use]
    pub fn new(db: Arc<dyn NostrDatabase>, service_urls: Vec<String>, archive_all: bool) -> Self {
        let mut canonical = BTreeSet::new();
        for raw in &service_urls {
            match RelayUrl::parse(raw) {
                Some(url) => {
                    canonical.insert(url);
                }
                None => tracing::warn!(url = %raw, "GRASP policy: ignoring invalid service URL"),
            }
        }
        Self {
            db,
            service_urls: canonical,
            archive_all,
            max_announcements_per_author: DEFAULT_MAX_ANNOUNCEMENTS_PER_AUTHOR,
            relay_lists: false,
        }
    }

    /// Sync+ (docs/spec.md §15): accept the kind 10002 relay lists of participants of the
    /// repositories held here (see `lookup::participates`). Off by default.
    #[must_use]
    pub fn with_relay_lists(mut self, on: bool) -> Self {
        self.relay_lists = on;
        self
    }

    /// Caps the repositories one author may announce here (default
    /// [`DEFAULT_MAX_ANNOUNCEMENTS_PER_AUTHOR`]; at least 1).
    #[must_use]
    pub fn with_max_announcements_per_author(mut self, max: usize) -> Self {
        self.max_announcements_per_author = max.max(1);
        self
    }

    /// Like [`GraspPolicy::new`], but the first invalid service URL is an error.
    ///
    /// # Errors
    /// [`InvalidServiceUrl`] for a URL that is not a `ws://`/`wss://` relay URL.
    pub fn try_new(
        db: Arc<dyn NostrDatabase>,
        service_urls: Vec<String>,
        archive_all: bool,
    ) -> Result<Self, InvalidServiceUrl> {
        if let Some(bad) = service_urls.iter().find(|u| RelayUrl::parse(u).is_none()) {
            return Err(InvalidServiceUrl(bad.clone()));
        }
        Ok(Self::new(db, service_urls, archive_all))
    }

    /// Our service URLs, canonical.
    #[must_use]
    pub fn service_urls(&self) -> &BTreeSet<RelayUrl> {
        &self.service_urls
    }

    /// Decides about `event`; a store error rejects (fail-secure) with an `error:` reason.
    pub async fn decide(&self, event: &Event) -> Verdict {
        let db = self.db.as_ref();
        let result = match event.kind.as_u16() {
            KIND_ANNOUNCEMENT => self.check_announcement(event).await,
            KIND_STATE => check_state(db, event).await,
            KIND_GRASP_LIST => Ok(Verdict::Accept),
            KIND_RELAY_LIST if self.relay_lists => check_relay_list(db, event).await,
            _ if event.kind == Kind::EventDeletion => check_deletion(db, event).await,
            _ => self.check_related(event).await,
        };
        result.unwrap_or_else(|error| {
            tracing::warn!(%error, id = %event.id, "GRASP policy: store query failed");
            Verdict::reject(format!("error: store query failed: {error}"))
        })
    }

    /// The host's store.
    pub(crate) fn db(&self) -> &dyn NostrDatabase {
        self.db.as_ref()
    }

    /// Whether an announcement is hosted without asking the store: archive mode, or it lists
    /// one of our service URLs.
    pub(crate) fn hosts_without_store(&self, meta: &EventMeta) -> bool {
        self.archive_all || lists_service(&meta.relays, self)
    }

    /// Whether the announcement's author is a maintainer of another owner's stored
    /// announcement with the same `d` (the public implementation's maintainer exception).
    pub(crate) async fn maintainer_exception(&self, event: &Event) -> Result<bool, DatabaseError> {
        let Some(d) = repo_identifier(event) else {
            return Ok(false);
        };
        let lists = lookup::maintainer_lists(self.db.as_ref(), d).await?;
        Ok(maintainer_of_other_owner(&lists, &event.pubkey))
    }

    /// Every other kind: accepted when it references a stored repository that is not withdrawn
    /// (docs/spec.md §14) or a stored event, or a stored event references it.
    async fn check_related(&self, event: &Event) -> Result<Verdict, DatabaseError> {
        let db = self.db.as_ref();
        let mut references = References::of(event);
        self.drop_withdrawn(&mut references).await?;
        if lookup::references_held(db, &references).await?
            || lookup::referenced_by_stored(db, event).await?
        {
            return Ok(Verdict::Accept);
        }
        Ok(Verdict::reject(
            "blocked: event references no repository or event held here",
        ))
    }

    /// Forgets the repository coordinates whose stored announcement withdraws its own
    /// repository (an event for a withdrawn repository is not let in through it).
    async fn drop_withdrawn(&self, references: &mut References) -> Result<(), DatabaseError> {
        let mut withdrawn = Vec::new();
        for address in &references.addresses {
            if address.kind.as_u16() != KIND_ANNOUNCEMENT {
                continue;
            }
            let db = self.db.as_ref();
            let stored = lookup::stored_announcement(db, address.author, &address.identifier);
            if let Some(announcement) = stored.await? {
                if self.unlisted(&announcement).await?.is_some() {
                    withdrawn.push(address.clone());
                }
            }
        }
        for address in withdrawn {
            references.addresses.remove(&address);
        }
        Ok(())
    }

    /// 30617: ours if it lists one of our service URLs (or archive mode), or if its author is a
    /// maintainer of another owner's stored announcement with the same identifier; also a newer
    /// version of a stored announcement that no longer lists us (the owner's latest word: it is
    /// stored and withdraws the repository, docs/spec.md §14). An announcement older than the
    /// stored version of its coordinate is refused: the store would not keep it, and it must
    /// not bring a withdrawn repository back.
    async fn check_announcement(&self, event: &Event) -> Result<Verdict, DatabaseError> {
        let Some(d) = repo_identifier(event) else {
            return Ok(Verdict::reject(
                "invalid: repository announcement without a `d` identifier",
            ));
        };
        let stored = lookup::stored_announcement(self.db.as_ref(), event.pubkey, d).await?;
        if stored
            .as_ref()
            .is_some_and(|s| lookup::newer_than(s, event))
        {
            return Ok(Verdict::reject(
                "duplicate: a newer announcement of this repository is stored",
            ));
        }
        let cap = self.max_announcements_per_author;
        if lookup::other_announcements_by(self.db.as_ref(), event.pubkey, d, cap).await? >= cap {
            return Ok(Verdict::reject(format!(
                "rate-limited: this author already has {cap} repositories announced here"
            )));
        }
        if self.hosts_without_store(&EventMeta::from_event(event))
            || stored.is_some()
            || self.maintainer_exception(event).await?
        {
            return Ok(Verdict::Accept);
        }
        Ok(Verdict::reject(
            "blocked: announcement does not list this relay",
        ))
    }
}

impl WritePolicy for GraspPolicy {
    fn check<'a>(&'a self, event: &'a Event) -> PolicyFuture<'a> {
        Box::pin(self.decide(event))
    }

    fn withdrawals<'a>(&'a self, event: &'a Event) -> WithdrawalsFuture<'a> {
        Box::pin(self.withdrawals_of(event))
    }
}

/// Whether any of the raw `relays` values names one of the policy's service URLs.
fn lists_service(relays: &[String], policy: &GraspPolicy) -> bool {
    relays
        .iter()
        .filter_map(|raw| RelayUrl::parse(raw))
        .any(|url| policy.service_urls.contains(&url))
}

/// The non-empty `d` identifier of a repository event.
fn repo_identifier(event: &Event) -> Option<&str> {
    event.tags.identifier().filter(|d| !d.is_empty())
}

/// 10002 (Sync+ on): from a participant of a repository held here.
async fn check_relay_list(db: &dyn NostrDatabase, event: &Event) -> Result<Verdict, DatabaseError> {
    if lookup::participates(db, event.pubkey).await? {
        return Ok(Verdict::Accept);
    }
    Ok(Verdict::reject(
        "blocked: relay list of an author who takes part in no repository held here",
    ))
}

/// 30618: from the recursive maintainer closure of an owner with a stored announcement.
async fn check_state(db: &dyn NostrDatabase, event: &Event) -> Result<Verdict, DatabaseError> {
    let Some(d) = repo_identifier(event) else {
        return Ok(Verdict::reject(
            "invalid: repository state without a `d` identifier",
        ));
    };
    let lists = lookup::maintainer_lists(db, d).await?;
    if lists.is_empty() {
        return Ok(Verdict::reject(
            "blocked: no announcement of this repository is stored",
        ));
    }
    if authorised_for_state(&lists, &event.pubkey) {
        return Ok(Verdict::Accept);
    }
    Ok(Verdict::reject(
        "blocked: author is not a maintainer of this repository",
    ))
}
