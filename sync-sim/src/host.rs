//! The host: a GRASP relay's store and write policy, as the library sees it through
//! `Outcome`s. Announcements are accepted when they list our relay; state events when their
//! author owns or maintains an accepted repository of that identifier; other kinds only when
//! they reference an accepted repository or a stored event. Blacklisted authors and withdrawn
//! repositories are rejected.

use std::collections::{BTreeMap, BTreeSet};

use nostr::{EventId, PublicKey};
use sync_core::{
    EventMeta, Outcome, RelayUrl, RepoCoord, KIND_ANNOUNCEMENT, KIND_GRASP_LIST, KIND_RELAY_LIST,
    KIND_STATE,
};

use crate::events::{address, newer};

/// A replacement address (kind, author, `d`).
type Address = (u16, PublicKey, String);

/// What the host decided, and whether the decision withdrew a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The outcome reported to the core.
    pub outcome: Outcome,
    /// A repository this event withdrew (a newer announcement no longer listing us).
    pub withdrew: Option<RepoCoord>,
}

/// The host's store and policy.
#[derive(Clone, Debug)]
pub struct Host {
    /// Our relay's canonical URLs.
    our: BTreeSet<RelayUrl>,
    /// Whether relays are derived from clone URLs (as the core does).
    derive_from_clone: bool,
    /// Authors whose events are rejected.
    blacklist: BTreeSet<PublicKey>,
    /// Repositories the operator withdrew: their announcements are rejected from then on.
    withdrawn: BTreeSet<RepoCoord>,
    /// Every stored event. Invariant: each was accepted by the policy when stored.
    pub store: BTreeMap<EventId, EventMeta>,
    /// The newest stored event per replacement address.
    latest: BTreeMap<Address, EventId>,
    /// Accepted repositories and their current announcement. Invariant: the id is in `store`.
    pub repos: BTreeMap<RepoCoord, EventId>,
    /// Bodies of rejected events, kept for `Reoffer` (bounded by the scenario's event count).
    pub rejected: BTreeMap<EventId, EventMeta>,
}

impl Host {
    /// An empty host for `our` relay URLs.
    #[must_use]
    pub fn new(our: &[String], blacklist: &[PublicKey], derive_from_clone: bool) -> Self {
        Self {
            our: our.iter().filter_map(|u| RelayUrl::parse(u)).collect(),
            derive_from_clone,
            blacklist: blacklist.iter().copied().collect(),
            withdrawn: BTreeSet::new(),
            store: BTreeMap::new(),
            latest: BTreeMap::new(),
            repos: BTreeMap::new(),
            rejected: BTreeMap::new(),
        }
    }

    /// The canonical relays an announcement lists (relays tags and, if enabled, clone URLs).
    #[must_use]
    pub fn listed_relays(&self, ann: &EventMeta) -> BTreeSet<RelayUrl> {
        let mut out: BTreeSet<RelayUrl> = ann
            .relays
            .iter()
            .filter_map(|u| RelayUrl::parse(u))
            .collect();
        if self.derive_from_clone {
            out.extend(
                ann.clone_urls
                    .iter()
                    .filter_map(|u| RelayUrl::from_clone_url(u)),
            );
        }
        out
    }

    fn lists_us(&self, ann: &EventMeta) -> bool {
        self.listed_relays(ann).iter().any(|u| self.our.contains(u))
    }

    /// Whether `e` is stored, or a newer version of its address is.
    #[must_use]
    pub fn has_or_newer(&self, e: &EventMeta) -> bool {
        if self.store.contains_key(&e.id) {
            return true;
        }
        address(e)
            .and_then(|a| self.latest.get(&a))
            .and_then(|id| self.store.get(id))
            .is_some_and(|stored| !newer(e, stored))
    }

    /// The policy, without side effects.
    #[must_use]
    pub fn would_accept(&self, e: &EventMeta) -> bool {
        if self.blacklist.contains(&e.author) {
            return false;
        }
        match e.kind_u16() {
            KIND_ANNOUNCEMENT => {
                let coord = e.own_coord().expect("kind checked");
                !self.withdrawn.contains(&coord) && self.lists_us(e)
            }
            KIND_STATE => {
                let d = e.identifier().unwrap_or_default();
                self.repos.iter().any(|(coord, ann)| {
                    coord.identifier == d
                        && (coord.owner == e.author
                            || self.store[ann].maintainers.contains(&e.author))
                })
            }
            KIND_GRASP_LIST => true,
            KIND_RELAY_LIST => self.is_participant(&e.author),
            _ => {
                e.tagged_repos().iter().any(|c| self.repos.contains_key(c))
                    || ['e', 'E', 'q'].iter().any(|l| {
                        e.tag_values(*l).any(|v| {
                            EventId::from_hex(v).is_ok_and(|id| self.store.contains_key(&id))
                        })
                    })
            }
        }
    }

    /// Whether `pk` participates in an accepted repository (docs/spec.md §15): owns or
    /// maintains one, or wrote a stored event that tags one or one of its stored roots. Only
    /// participants' relay lists (kind 10002) are accepted.
    #[must_use]
    pub fn is_participant(&self, pk: &PublicKey) -> bool {
        let repos = &self.repos;
        let owns = repos
            .iter()
            .any(|(coord, ann)| coord.owner == *pk || self.store[ann].maintainers.contains(pk));
        owns || self.store.values().any(|e| {
            e.author == *pk
                && e.own_coord().is_none()
                && (e.tagged_repos().iter().any(|c| repos.contains_key(c))
                    || ['e', 'E', 'q'].iter().any(|l| {
                        e.tag_values(*l).any(|v| {
                            EventId::from_hex(v).is_ok_and(|id| {
                                self.store.get(&id).is_some_and(|r| {
                                    r.tagged_repos().iter().any(|c| repos.contains_key(c))
                                })
                            })
                        })
                    }))
        })
    }

    /// Offers `e` to the policy: stores it if accepted.
    pub fn offer(&mut self, e: &EventMeta) -> Decision {
        let keep = |outcome| Decision {
            outcome,
            withdrew: None,
        };
        if self.store.contains_key(&e.id) {
            return keep(Outcome::Duplicate);
        }
        let addr = address(e);
        let current = addr
            .as_ref()
            .and_then(|a| self.latest.get(a))
            .and_then(|id| self.store.get(id));
        if current.is_some_and(|c| !newer(e, c)) {
            return keep(Outcome::Duplicate);
        }
        if !self.would_accept(e) {
            self.rejected.insert(e.id, e.clone());
            let mut withdrew = None;
            if let Some(coord) = e.own_coord() {
                if current.is_some() && self.repos.remove(&coord).is_some() {
                    withdrew = Some(coord);
                }
            }
            return Decision {
                outcome: Outcome::Rejected,
                withdrew,
            };
        }
        self.rejected.remove(&e.id);
        self.store.insert(e.id, e.clone());
        if let Some(a) = addr {
            self.latest.insert(a, e.id);
        }
        if let Some(coord) = e.own_coord() {
            self.repos.insert(coord, e.id);
        }
        keep(Outcome::Saved)
    }

    /// The operator withdraws a repository: its announcements are rejected from now on.
    pub fn withdraw(&mut self, coord: &RepoCoord) {
        self.withdrawn.insert(coord.clone());
        self.repos.remove(coord);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{announcement, key, meta};

    fn host() -> Host {
        Host::new(&["wss://our.sim".into()], &[key(99)], true)
    }

    #[test]
    fn policy_follows_grasp_rules() {
        let mut h = host();
        let coord = RepoCoord {
            owner: key(1),
            identifier: "r".into(),
        };
        let not_us = announcement(1, &coord, &["wss://x.sim".into()], 10);
        assert_eq!(h.offer(&not_us).outcome, Outcome::Rejected);
        let patch = meta(2, key(2), 1617, 11, &[('a', coord.to_string())]);
        assert_eq!(h.offer(&patch).outcome, Outcome::Rejected, "orphan");
        let ann = announcement(3, &coord, &["wss://OUR.sim/".into()], 12);
        assert_eq!(h.offer(&ann).outcome, Outcome::Saved);
        assert_eq!(h.offer(&patch).outcome, Outcome::Saved);
        assert_eq!(h.offer(&patch).outcome, Outcome::Duplicate);
        let comment = meta(4, key(3), 1111, 13, &[('E', patch.id.to_hex())]);
        assert_eq!(h.offer(&comment).outcome, Outcome::Saved);
        let forged = meta(5, key(3), KIND_STATE, 13, &[('d', "r".into())]);
        assert_eq!(h.offer(&forged).outcome, Outcome::Rejected);
        let state = meta(6, key(1), KIND_STATE, 13, &[('d', "r".into())]);
        assert_eq!(h.offer(&state).outcome, Outcome::Saved);
        let spam = meta(7, key(99), 1111, 13, &[('a', coord.to_string())]);
        assert_eq!(h.offer(&spam).outcome, Outcome::Rejected);
        // Replaced without our relay: rejected, and the repository is withdrawn.
        let gone = announcement(8, &coord, &["wss://x.sim".into()], 20);
        let d = h.offer(&gone);
        assert_eq!(d.outcome, Outcome::Rejected);
        assert_eq!(d.withdrew, Some(coord.clone()));
        assert!(h.repos.is_empty());
        // An older version is a duplicate, not a new decision.
        assert!(h.has_or_newer(&ann));
    }

    #[test]
    fn clone_urls_count_as_listing() {
        let mut h = host();
        let coord = RepoCoord {
            owner: key(1),
            identifier: "r".into(),
        };
        let mut ann = announcement(1, &coord, &[], 10);
        ann.clone_urls.push("https://our.sim/npub/r.git".into());
        assert_eq!(h.offer(&ann).outcome, Outcome::Saved);
    }
}
