//! Which relay URLs taken from events may become sync targets, and the memory of those that
//! were refused (docs/spec.md §13, the open network).
//!
//! Every relay URL in an announcement (a `relays` value or a `clone` URL) is written by a
//! stranger. Before it can become a target it must be a usable relay URL, no longer than
//! `max_relay_url_bytes`, not a literal non-global address (unless `allow_private_targets`),
//! and fit under `max_tracked_relays`. Operator-named relays (bootstrap) are trusted. The
//! shell applies the address rule again to what a name resolves to, and reports a refusal
//! with [`crate::Input::ConnectRefused`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::address::{classify_host, HostClass, NonGlobal};
use crate::config::Config;
use crate::url::RelayUrl;

/// How many refused URLs are remembered (for `/status` and to log each only once).
pub const RECENT_REFUSALS: usize = 256;

/// Why a relay URL from an event is not a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Refusal {
    /// Its host is a literal non-global address, or `localhost`.
    NonGlobalAddress(NonGlobal),
    /// Its host name resolved to a non-global address (found by the shell).
    ResolvesNonGlobal(NonGlobal),
    /// Longer than `max_relay_url_bytes`.
    UrlTooLong,
    /// `max_tracked_relays` relays are already tracked.
    TrackedRelaysCap,
}

impl Refusal {
    /// The metric label (`ngit_sync_relays_refused_total{reason}`).
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::NonGlobalAddress(_) => "non_global_address",
            Self::ResolvesNonGlobal(_) => "resolves_non_global",
            Self::UrlTooLong => "url_too_long",
            Self::TrackedRelaysCap => "tracked_relays_cap",
        }
    }

    /// Every label, in a fixed order.
    pub const LABELS: [&'static str; 4] = [
        "non_global_address",
        "resolves_non_global",
        "url_too_long",
        "tracked_relays_cap",
    ];
}

/// What became of one raw URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Vetted {
    /// A target.
    Target(RelayUrl),
    /// Not a relay URL at all (counted as invalid).
    Invalid,
    /// A relay URL we will not contact; the text is what is remembered and logged.
    Refused(String, Refusal),
}

/// Vets one raw URL from an event. `from_clone` says it is a git clone URL (`https://…`)
/// rather than a relay URL. The tracked-relays cap is checked by the caller, who knows the
/// count.
pub(crate) fn vet(
    raw: &str,
    from_clone: bool,
    cfg: &Config,
    trusted: &BTreeSet<RelayUrl>,
) -> Vetted {
    if raw.len() > cfg.max_relay_url_bytes {
        let shown: String = raw.chars().take(64).collect();
        return Vetted::Refused(format!("{shown}…"), Refusal::UrlTooLong);
    }
    let parsed = if from_clone {
        RelayUrl::from_clone_url(raw)
    } else {
        RelayUrl::parse(raw)
    };
    let Some(url) = parsed else {
        return Vetted::Invalid;
    };
    if cfg.allow_private_targets || trusted.contains(&url) {
        return Vetted::Target(url);
    }
    match classify_host(url.host()) {
        HostClass::NonGlobal(class) => {
            Vetted::Refused(url.to_string(), Refusal::NonGlobalAddress(class))
        }
        HostClass::GlobalIp(_) | HostClass::Name => Vetted::Target(url),
    }
}

/// Refusal counts by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalCounts {
    /// Literal non-global hosts in events.
    pub non_global_address: u64,
    /// Names the shell resolved to non-global addresses.
    pub resolves_non_global: u64,
    /// URLs over `max_relay_url_bytes`.
    pub url_too_long: u64,
    /// URLs refused because `max_tracked_relays` relays were tracked.
    pub tracked_relays_cap: u64,
}

impl RefusalCounts {
    /// `(label, count)` for every reason, in [`Refusal::LABELS`] order.
    #[must_use]
    pub fn by_label(&self) -> [(&'static str, u64); 4] {
        [
            (Refusal::LABELS[0], self.non_global_address),
            (Refusal::LABELS[1], self.resolves_non_global),
            (Refusal::LABELS[2], self.url_too_long),
            (Refusal::LABELS[3], self.tracked_relays_cap),
        ]
    }

    fn add(&mut self, refusal: Refusal) {
        let n = match refusal {
            Refusal::NonGlobalAddress(_) => &mut self.non_global_address,
            Refusal::ResolvesNonGlobal(_) => &mut self.resolves_non_global,
            Refusal::UrlTooLong => &mut self.url_too_long,
            Refusal::TrackedRelaysCap => &mut self.tracked_relays_cap,
        };
        *n += 1;
    }
}

/// The most recently refused URLs. Invariant: `order` and `recent` hold the same keys, at
/// most [`RECENT_REFUSALS`] of them, oldest first in `order`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Refusals {
    recent: BTreeMap<String, Refusal>,
    order: VecDeque<String>,
}

impl Refusals {
    /// Counts a refusal; logs it the first time the URL is seen while it is remembered.
    pub(crate) fn record(&mut self, url: String, refusal: Refusal, counts: &mut RefusalCounts) {
        counts.add(refusal);
        if self.recent.insert(url.clone(), refusal).is_some() {
            return;
        }
        tracing::warn!(
            relay = %url,
            reason = refusal.label(),
            detail = ?refusal,
            "relay URL from an event refused (open-network rules)"
        );
        self.order.push_back(url);
        while self.order.len() > RECENT_REFUSALS {
            if let Some(old) = self.order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    /// Remembered refusals, in URL order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, Refusal)> {
        self.recent.iter().map(|(u, r)| (u.as_str(), *r))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn vet_default(raw: &str) -> Vetted {
        vet(raw, false, &Config::default(), &BTreeSet::new())
    }

    #[test]
    fn non_global_literals_are_refused_and_names_pass() {
        for raw in [
            "ws://127.0.0.2:7000",
            "ws://[::1]:7000",
            "ws://localhost:7000",
            "ws://2130706433:7000",
            "wss://10.0.0.1",
            "wss://169.254.169.254/latest",
        ] {
            assert!(
                matches!(
                    vet_default(raw),
                    Vetted::Refused(_, Refusal::NonGlobalAddress(_))
                ),
                "{raw}"
            );
        }
        let clone = vet(
            "http://127.0.0.3:9000/x.git",
            true,
            &Config::default(),
            &BTreeSet::new(),
        );
        assert!(matches!(
            clone,
            Vetted::Refused(_, Refusal::NonGlobalAddress(NonGlobal::Loopback))
        ));
        assert!(matches!(
            vet_default("wss://relay.example.com"),
            Vetted::Target(_)
        ));
        assert!(matches!(vet_default("wss://8.8.8.8"), Vetted::Target(_)));
        assert_eq!(vet_default("ftp://x"), Vetted::Invalid);
    }

    #[test]
    fn the_lab_switch_and_trusted_relays_lift_the_address_rule() {
        let lab = Config {
            allow_private_targets: true,
            ..Config::default()
        };
        assert!(matches!(
            vet("ws://127.0.0.2:7000", false, &lab, &BTreeSet::new()),
            Vetted::Target(_)
        ));
        let trusted: BTreeSet<RelayUrl> = [RelayUrl::parse("ws://127.0.0.1:7000").unwrap()].into();
        assert!(matches!(
            vet("ws://127.0.0.1:7000/", false, &Config::default(), &trusted),
            Vetted::Target(_)
        ));
    }

    #[test]
    fn long_urls_are_refused_before_parsing() {
        let raw = format!("wss://{}.example.com", "a".repeat(600));
        assert!(matches!(
            vet_default(&raw),
            Vetted::Refused(_, Refusal::UrlTooLong)
        ));
    }

    #[test]
    fn refusals_are_remembered_once_and_bounded() {
        let mut refusals = Refusals::default();
        let mut counts = RefusalCounts::default();
        for i in 0..(RECENT_REFUSALS + 50) {
            refusals.record(format!("ws://10.0.0.{i}"), Refusal::UrlTooLong, &mut counts);
            refusals.record(format!("ws://10.0.0.{i}"), Refusal::UrlTooLong, &mut counts);
        }
        assert_eq!(counts.url_too_long, 2 * (RECENT_REFUSALS as u64 + 50));
        assert_eq!(refusals.iter().count(), RECENT_REFUSALS);
        assert!(
            refusals.iter().all(|(u, _)| u != "ws://10.0.0.0"),
            "oldest forgotten"
        );
    }

    proptest! {
        /// With the address rule on, no target that vetting lets through has a non-global
        /// literal host, whatever the input.
        #[test]
        fn no_target_is_a_non_global_literal(
            host in prop::sample::select(vec![
                "127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", "[::1]",
                "[::ffff:7f00:1]", "10.1.2.3", "192.168.0.1", "169.254.169.254", "[fe80::1]",
                "[fd00::1]", "100.64.0.1", "localhost", "a.localhost", "8.8.8.8", "relay.example",
                "0.0.0.0", "[::]", "224.0.0.1",
            ]),
            port in prop::option::of(1u16..65535),
            clone in any::<bool>(),
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let raw = if clone { format!("https://{host}{port}/r.git") } else { format!("wss://{host}{port}") };
            if let Vetted::Target(url) = vet(&raw, clone, &Config::default(), &BTreeSet::new()) {
                prop_assert!(!matches!(classify_host(url.host()), HostClass::NonGlobal(_)), "{}", url);
            }
        }
    }
}
