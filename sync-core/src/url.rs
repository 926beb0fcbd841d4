//! Relay URL canonicalisation: the one place that decides when two URLs name the same relay.
//!
//! Rules (docs/spec.md §4): scheme and host lower-case, default port dropped, trailing slash dropped,
//! `ws`/`wss` only, a bare host gets `wss://`, fragments and credentials are not relay URLs.

use std::fmt;
use std::sync::Arc;

use nostr::Url;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A canonical relay URL. Two `RelayUrl`s are equal exactly when they name the same relay.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayUrl(Arc<str>);

impl RelayUrl {
    /// Canonicalises `raw`; `None` if it is not a usable `ws`/`wss` relay URL.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 2048 || raw.chars().any(char::is_whitespace) {
            return None;
        }
        let with_scheme;
        let raw = if raw.contains("://") {
            raw
        } else {
            with_scheme = format!("wss://{raw}");
            &with_scheme
        };
        let url = Url::parse(raw).ok()?;
        if !matches!(url.scheme(), "ws" | "wss")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let host = url.host_str().filter(|h| !h.is_empty())?;
        let mut out = format!("{}://{}", url.scheme(), host.to_ascii_lowercase());
        if let Some(port) = url.port() {
            out.push_str(&format!(":{port}"));
        }
        out.push_str(url.path().trim_end_matches('/'));
        if let Some(query) = url.query().filter(|q| !q.is_empty()) {
            out.push('?');
            out.push_str(query);
        }
        Some(Self(out.into()))
    }

    /// The relay a git `clone` URL implies: `https://h[:p]/…` → `wss://h[:p]`, `http` → `ws`.
    /// Other schemes (ssh, git, …) imply no relay.
    #[must_use]
    pub fn from_clone_url(clone: &str) -> Option<Self> {
        let url = Url::parse(clone.trim()).ok()?;
        let scheme = match url.scheme() {
            "https" => "wss",
            "http" => "ws",
            _ => return None,
        };
        let host = url.host_str()?;
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Self::parse(&format!("{scheme}://{host}{port}"))
    }

    /// The canonical text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host as the URL parser normalised it: lower-case name, dotted IPv4, or IPv6 in
    /// brackets (`127.1` and `2130706433` are already `127.0.0.1` here).
    #[must_use]
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or(&*self.0, |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        if authority.starts_with('[') {
            return authority.find(']').map_or(authority, |i| &authority[..=i]);
        }
        authority.split(':').next().unwrap_or(authority)
    }

    /// The port: explicit, or the scheme's default (`ws` 80, `wss` 443).
    #[must_use]
    pub fn port(&self) -> u16 {
        let rest = self.0.split_once("://").map_or(&*self.0, |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        let after_host = &authority[self.host().len().min(authority.len())..];
        after_host
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(if self.0.starts_with("wss:") { 443 } else { 80 })
    }
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl Serialize for RelayUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RelayUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid relay URL {raw:?}")))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn canon(raw: &str) -> Option<String> {
        RelayUrl::parse(raw).map(|u| u.to_string())
    }

    #[test]
    fn variants_collapse_to_one() {
        for raw in [
            "wss://Relay.Example.com/",
            "WSS://relay.example.com:443",
            "relay.example.com",
            " wss://relay.example.com// ",
        ] {
            assert_eq!(
                canon(raw).as_deref(),
                Some("wss://relay.example.com"),
                "{raw}"
            );
        }
        assert_eq!(
            canon("ws://127.0.0.1:80/").as_deref(),
            Some("ws://127.0.0.1")
        );
        assert_eq!(
            canon("ws://127.0.0.1:7777").as_deref(),
            Some("ws://127.0.0.1:7777")
        );
        assert_eq!(
            canon("wss://h/nostr/?x=1#frag").as_deref(),
            Some("wss://h/nostr?x=1")
        );
    }

    #[test]
    fn host_and_port_are_read_back() {
        let hp = |raw: &str| {
            let u = RelayUrl::parse(raw).unwrap();
            (u.host().to_string(), u.port())
        };
        assert_eq!(
            hp("wss://Relay.Example.com/x"),
            ("relay.example.com".into(), 443)
        );
        assert_eq!(hp("ws://127.1:7000"), ("127.0.0.1".into(), 7000));
        assert_eq!(hp("ws://2130706433"), ("127.0.0.1".into(), 80));
        assert_eq!(hp("ws://[::1]:7000/p?q=1"), ("[::1]".into(), 7000));
        assert_eq!(hp("wss://[2001:db8::1]"), ("[2001:db8::1]".into(), 443));
        assert_eq!(hp("wss://h?x=1:2"), ("h".into(), 443));
    }

    #[test]
    fn non_relay_urls_are_rejected() {
        for raw in [
            "",
            "https://h",
            "ftp://h",
            "wss://",
            "wss://user:pw@h",
            "wss://a b",
        ] {
            assert_eq!(canon(raw), None, "{raw}");
        }
    }

    #[test]
    fn clone_urls_imply_relays() {
        let f = |s: &str| RelayUrl::from_clone_url(s).map(|u| u.to_string());
        assert_eq!(
            f("https://Git.Example.com/npub1x/repo.git").as_deref(),
            Some("wss://git.example.com")
        );
        assert_eq!(
            f("http://127.0.0.1:8080/a/b.git").as_deref(),
            Some("ws://127.0.0.1:8080")
        );
        assert_eq!(f("git@github.com:a/b.git"), None);
        assert_eq!(f("ssh://git@h/a.git"), None);
    }

    proptest! {
        #[test]
        fn canonicalisation_is_idempotent(
            scheme in prop::sample::select(vec!["", "ws://", "wss://", "WSS://", "Ws://"]),
            host in "[a-zA-Z0-9]{1,8}(\\.[a-zA-Z]{1,5}){0,2}",
            port in prop::option::of(1u16..65535),
            path in "(/[a-zA-Z0-9]{0,4}){0,3}/?",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let raw = format!("{scheme}{host}{port}{path}");
            if let Some(once) = RelayUrl::parse(&raw) {
                let twice = RelayUrl::parse(once.as_str());
                prop_assert_eq!(Some(once.clone()), twice);
                prop_assert!(!once.as_str().ends_with('/'));
                let s = once.as_str();
                prop_assert!(s.starts_with("ws://") || s.starts_with("wss://"));
                let host = s[s.find("://").unwrap() + 3..].split(['/', '?']).next().unwrap_or_default();
                prop_assert_eq!(host.to_string(), host.to_ascii_lowercase());
            }
        }
    }
}
