//! Which network addresses a sync target may point at (docs/spec.md §13, the open network).
//!
//! Announcements, clone URLs and relay lists come from strangers. A target whose host is a
//! non-global address (loopback, private, link-local with the cloud metadata service, …)
//! would let anyone make our relay open connections into the operator's own network. This
//! module classifies addresses and host names; it does no IO. The core refuses literal
//! non-global hosts before any `Connect`; the shell resolves names and refuses (and never
//! dials) a name that resolves to a non-global address.
//!
//! The classification follows the IANA special-purpose address registries: an address is
//! global only if no row of them applies. IPv6 forms that embed an IPv4 address (mapped,
//! compatible, NAT64, 6to4) are classified by the address they embed.

// `core::net` holds only the address types; sockets and name resolution (IO) are in `std::net`.
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// Why an address is not global. Labels are stable (metrics, logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NonGlobal {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`, and names such as `localhost`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// RFC 6598 shared address space (carrier-grade NAT): `100.64/10`.
    Shared,
    /// `169.254/16` (incl. the cloud metadata service `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18/15`, `2001:2::/48`.
    Benchmarking,
    /// `fc00::/7`.
    UniqueLocal,
    /// `fec0::/10` (deprecated, still routed locally by some stacks).
    SiteLocal,
    /// Everything else that is not global unicast: `0/8`, `192.0.0/24`, `192.88.99/24`,
    /// `240/4`, IETF protocol assignments, discard-only, and IPv6 outside `2000::/3`.
    Reserved,
}

impl NonGlobal {
    /// A short stable label.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::Shared => "shared",
            Self::LinkLocal => "link_local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::UniqueLocal => "unique_local",
            Self::SiteLocal => "site_local",
            Self::Reserved => "reserved",
        }
    }
}

/// `None` if `ip` is a global address, else the reason it is not.
#[must_use]
pub fn classify_ip(ip: IpAddr) -> Option<NonGlobal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether `addr` lies in `base/prefix_len` (IPv4).
fn in_v4(addr: Ipv4Addr, base: [u8; 4], prefix_len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix_len).unwrap_or(0);
    (u32::from(addr) & mask) == (u32::from(Ipv4Addr::from(base)) & mask)
}

/// Whether `addr` lies in `base/prefix_len` (IPv6).
fn in_v6(addr: Ipv6Addr, base: [u16; 8], prefix_len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix_len).unwrap_or(0);
    let base = Ipv6Addr::new(
        base[0], base[1], base[2], base[3], base[4], base[5], base[6], base[7],
    );
    (u128::from(addr) & mask) == (u128::from(base) & mask)
}

/// The IPv4 special-purpose ranges, most specific first where they overlap.
const V4_RANGES: &[([u8; 4], u32, NonGlobal)] = &[
    ([0, 0, 0, 0], 32, NonGlobal::Unspecified),
    ([255, 255, 255, 255], 32, NonGlobal::Broadcast),
    ([0, 0, 0, 0], 8, NonGlobal::Reserved),
    ([10, 0, 0, 0], 8, NonGlobal::Private),
    ([100, 64, 0, 0], 10, NonGlobal::Shared),
    ([127, 0, 0, 0], 8, NonGlobal::Loopback),
    ([169, 254, 0, 0], 16, NonGlobal::LinkLocal),
    ([172, 16, 0, 0], 12, NonGlobal::Private),
    ([192, 0, 0, 0], 24, NonGlobal::Reserved),
    ([192, 0, 2, 0], 24, NonGlobal::Documentation),
    ([192, 88, 99, 0], 24, NonGlobal::Reserved),
    ([192, 168, 0, 0], 16, NonGlobal::Private),
    ([198, 18, 0, 0], 15, NonGlobal::Benchmarking),
    ([198, 51, 100, 0], 24, NonGlobal::Documentation),
    ([203, 0, 113, 0], 24, NonGlobal::Documentation),
    ([224, 0, 0, 0], 4, NonGlobal::Multicast),
    ([240, 0, 0, 0], 4, NonGlobal::Reserved),
];

fn classify_v4(addr: Ipv4Addr) -> Option<NonGlobal> {
    V4_RANGES
        .iter()
        .find(|(base, len, _)| in_v4(addr, *base, *len))
        .map(|(_, _, class)| *class)
}

/// The IPv6 special-purpose ranges that do not embed an IPv4 address.
const V6_RANGES: &[([u16; 8], u32, NonGlobal)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, NonGlobal::Unspecified),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, NonGlobal::Loopback),
    ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, NonGlobal::Reserved),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, NonGlobal::Reserved),
    ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, NonGlobal::Benchmarking),
    (
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        NonGlobal::Documentation,
    ),
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, NonGlobal::Reserved),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, NonGlobal::Documentation),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, NonGlobal::UniqueLocal),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, NonGlobal::LinkLocal),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, NonGlobal::SiteLocal),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, NonGlobal::Multicast),
];

/// The IPv4 address an IPv6 address stands for, if it is one of the embedding forms:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`,
/// 6to4 `2002:aabb:ccdd::/48`.
#[must_use]
pub fn embedded_v4(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(addr);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in_v6(addr, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6(addr, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    {
        return Some(low32);
    }
    if in_v6(addr, [0, 0, 0, 0, 0, 0, 0, 0], 96) && bits > 1 {
        return Some(low32);
    }
    if in_v6(addr, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

fn classify_v6(addr: Ipv6Addr) -> Option<NonGlobal> {
    if let Some(v4) = embedded_v4(addr) {
        return classify_v4(v4);
    }
    if let Some((_, _, class)) = V6_RANGES
        .iter()
        .find(|(base, len, _)| in_v6(addr, *base, *len))
    {
        return Some(*class);
    }
    // Global unicast is 2000::/3; nothing outside it is reachable on the internet.
    if !in_v6(addr, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Some(NonGlobal::Reserved);
    }
    None
}

/// What a URL's host says before any name is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostClass {
    /// A literal global address.
    GlobalIp(IpAddr),
    /// A literal non-global address, or a name that always means this machine (`localhost`).
    NonGlobal(NonGlobal),
    /// A name: only its resolution can tell (the shell checks it).
    Name,
}

/// Classifies a URL host as the `url` crate normalises it (`127.1`, `2130706433`, `0x7f.1`
/// and `0177.0.0.1` all arrive here as `127.0.0.1`; IPv6 in brackets).
#[must_use]
pub fn classify_host(host: &str) -> HostClass {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return classify_ip(ip).map_or(HostClass::GlobalIp(ip), HostClass::NonGlobal);
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    // RFC 6761: `localhost` and every name under it resolve to loopback.
    if name.is_empty() || name == "localhost" || name.ends_with(".localhost") {
        return HostClass::NonGlobal(NonGlobal::Loopback);
    }
    HostClass::Name
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn v4(s: &str) -> Option<NonGlobal> {
        classify_ip(s.parse().unwrap())
    }

    #[test]
    fn every_ipv4_special_range_is_refused() {
        use NonGlobal::*;
        for (addr, class) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("100.64.0.1", Shared),
            ("100.127.255.254", Shared),
            ("127.0.0.1", Loopback),
            ("127.0.0.2", Loopback),
            ("127.255.255.254", Loopback),
            ("169.254.169.254", LinkLocal),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.0.0.8", Reserved),
            ("192.0.2.1", Documentation),
            ("192.88.99.1", Reserved),
            ("192.168.1.1", Private),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.255", Broadcast),
        ] {
            assert_eq!(v4(addr), Some(class), "{addr}");
        }
        for global in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(v4(global), None, "{global}");
        }
    }

    #[test]
    fn every_ipv6_special_range_is_refused() {
        use NonGlobal::*;
        for (addr, class) in [
            ("::", Unspecified),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::127.0.0.1", Loopback),
            ("::192.168.0.1", Private),
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b:1::1", Reserved),
            ("2002:7f00:1::", Loopback),
            ("2002:a00:1::1", Private),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("2001:2::1", Benchmarking),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("fec0::1", SiteLocal),
            ("ff02::1", Multicast),
            ("4000::1", Reserved),
        ] {
            assert_eq!(v4(addr), Some(class), "{addr}");
        }
        for global in [
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "2002:808:808::",
        ] {
            assert_eq!(v4(global), None, "{global}");
        }
    }

    #[test]
    fn url_spellings_of_loopback_are_refused_after_normalisation() {
        for raw in [
            "ws://2130706433:7000",
            "ws://0x7f.1:7000",
            "ws://0177.0.0.1:7000",
            "ws://127.1:7000",
            "ws://[::1]:7000",
            "ws://[::ffff:7f00:1]:7000",
            "ws://LOCALHOST:7000",
            "ws://localhost.:7000",
            "ws://relay.localhost:7000",
            "wss://169.254.169.254",
        ] {
            let url = nostr::Url::parse(raw).unwrap();
            let host = url.host_str().unwrap();
            assert!(
                matches!(classify_host(host), HostClass::NonGlobal(_)),
                "{raw} -> {host}"
            );
        }
        assert_eq!(classify_host("relay.example.com"), HostClass::Name);
        assert!(matches!(classify_host("8.8.8.8"), HostClass::GlobalIp(_)));
    }

    proptest! {
        /// The IPv4-mapped, -compatible, NAT64 and 6to4 forms of any IPv4 address are
        /// classified exactly as the address itself.
        #[test]
        fn embedded_forms_classify_as_their_ipv4_address(bits in any::<u32>()) {
            let a = Ipv4Addr::from(bits);
            let class = classify_v4(a);
            prop_assert_eq!(classify_v6(a.to_ipv6_mapped()), class);
            let nat64 = Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(bits));
            prop_assert_eq!(classify_v6(nat64), class);
            let six_to_four = Ipv6Addr::from((0x2002_u128 << 112) | (u128::from(bits) << 80));
            prop_assert_eq!(classify_v6(six_to_four), class);
            if bits > 1 {
                prop_assert_eq!(classify_v6(a.to_ipv6_compatible()), class);
            }
        }

        /// Agrees with the standard library wherever it has an opinion: its loopback, private,
        /// link-local, multicast, broadcast, documentation and unspecified addresses are never
        /// global here.
        #[test]
        fn std_non_global_addresses_are_never_global(bits in any::<u32>(), v6 in any::<u128>()) {
            let a = Ipv4Addr::from(bits);
            if a.is_loopback() || a.is_private() || a.is_link_local() || a.is_multicast()
                || a.is_broadcast() || a.is_documentation() || a.is_unspecified()
            {
                prop_assert!(classify_v4(a).is_some(), "{}", a);
            }
            let b = Ipv6Addr::from(v6);
            if b.is_loopback() || b.is_multicast() || b.is_unspecified()
                || b.is_unique_local() || b.is_unicast_link_local()
            {
                prop_assert!(classify_v6(b).is_some(), "{}", b);
            }
        }

        /// Any host text either parses as an address and is classified as that address, or
        /// is a name; nothing panics.
        #[test]
        fn hosts_never_panic(host in "[a-zA-Z0-9.:\\[\\]-]{0,40}") {
            let _ = classify_host(&host);
        }
    }
}
