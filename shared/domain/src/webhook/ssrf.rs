//! The SSRF guard: webhook deliveries must reach the public internet only,
//! never the Lambda's own network, the instance metadata service
//! (169.254.169.254) or anything else private or special-purpose.
//!
//! Used twice: on IP literals when an endpoint is saved, and on every
//! address a host name resolves to right before each delivery (a name can
//! be pointed at a private address after it was saved).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 0.0.0.0/8 ("this network"; 0.0.0.0 reaches the local host), ::.
    Unspecified,
    /// 10/8, 172.16/12, 192.168/16, fec0::/10 (deprecated site-local).
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedAddressSpace,
    /// 169.254/16 (with the metadata service), fe80::/10.
    LinkLocal,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, network benchmarking.
    Benchmarking,
    /// fc00::/7.
    UniqueLocal,
    /// 192.0.0/24, 192.88.99/24, 240/4, 100::/64, 2001::/32 (Teredo),
    /// 64:ff9b:1::/48 (local NAT64) and other special-purpose blocks.
    Reserved,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Blocked::Loopback => "a loopback address",
            Blocked::Unspecified => "an unspecified address",
            Blocked::Private => "a private network address",
            Blocked::SharedAddressSpace => "a carrier-grade NAT address",
            Blocked::LinkLocal => "a link-local address",
            Blocked::Multicast => "a multicast address",
            Blocked::Broadcast => "the broadcast address",
            Blocked::Documentation => "a documentation address",
            Blocked::Benchmarking => "a benchmarking address",
            Blocked::UniqueLocal => "a unique local address",
            Blocked::Reserved => "a reserved address",
        })
    }
}

/// `Ok` for a public address. With `allow_loopback` (local development and
/// tests, where receivers listen on 127.0.0.1) loopback passes too, and
/// nothing else that is blocked.
pub fn check_ip(ip: IpAddr, allow_loopback: bool) -> Result<(), Blocked> {
    match classify(ip) {
        None => Ok(()),
        Some(Blocked::Loopback) if allow_loopback => Ok(()),
        Some(blocked) => Err(blocked),
    }
}

/// The reason `ip` is not public, if it is not.
pub fn classify(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Most specific first: the first match wins.
const V4_BLOCKS: &[(Ipv4Addr, u8, Blocked)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, Blocked::Unspecified),
    (Ipv4Addr::new(10, 0, 0, 0), 8, Blocked::Private),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        Blocked::SharedAddressSpace,
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, Blocked::Loopback),
    (Ipv4Addr::new(169, 254, 0, 0), 16, Blocked::LinkLocal),
    (Ipv4Addr::new(172, 16, 0, 0), 12, Blocked::Private),
    (Ipv4Addr::new(192, 0, 0, 0), 24, Blocked::Reserved),
    (Ipv4Addr::new(192, 0, 2, 0), 24, Blocked::Documentation),
    (Ipv4Addr::new(192, 88, 99, 0), 24, Blocked::Reserved),
    (Ipv4Addr::new(192, 168, 0, 0), 16, Blocked::Private),
    (Ipv4Addr::new(198, 18, 0, 0), 15, Blocked::Benchmarking),
    (Ipv4Addr::new(198, 51, 100, 0), 24, Blocked::Documentation),
    (Ipv4Addr::new(203, 0, 113, 0), 24, Blocked::Documentation),
    (Ipv4Addr::new(224, 0, 0, 0), 4, Blocked::Multicast),
    (Ipv4Addr::new(255, 255, 255, 255), 32, Blocked::Broadcast),
    (Ipv4Addr::new(240, 0, 0, 0), 4, Blocked::Reserved),
];

/// Checked after the IPv4-embedding forms (see [`embedded_v4`]).
const V6_BLOCKS: &[(Ipv6Addr, u8, Blocked)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, Blocked::Unspecified),
    (Ipv6Addr::LOCALHOST, 128, Blocked::Loopback),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        Blocked::Reserved,
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        Blocked::Reserved,
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        32,
        Blocked::Reserved,
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        Blocked::Documentation,
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        Blocked::Documentation,
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        Blocked::UniqueLocal,
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        Blocked::LinkLocal,
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        Blocked::Private,
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        Blocked::Multicast,
    ),
];

fn classify_v4(ip: Ipv4Addr) -> Option<Blocked> {
    let bits = u32::from(ip);
    V4_BLOCKS
        .iter()
        .find(|(net, len, _)| prefix_matches_v4(bits, u32::from(*net), *len))
        .map(|(_, _, blocked)| *blocked)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Blocked> {
    if ip == Ipv6Addr::UNSPECIFIED {
        return Some(Blocked::Unspecified);
    }
    if ip == Ipv6Addr::LOCALHOST {
        return Some(Blocked::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let bits = u128::from(ip);
    V6_BLOCKS
        .iter()
        .find(|(net, len, _)| prefix_matches_v6(bits, u128::from(*net), *len))
        .map(|(_, _, blocked)| *blocked)
}

/// The IPv4 address inside an IPv6 address that carries one to an IPv4
/// host: IPv4-mapped `::ffff:0:0/96`, IPv4-translated `::ffff:0:0:0/96`,
/// IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16`.
/// Such an address is judged by the IPv4 address it reaches.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    let prefix96 = |net: Ipv6Addr| prefix_matches_v6(bits, u128::from(net), 96);
    if prefix96(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0))
        || prefix96(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0))
        || prefix96(Ipv6Addr::UNSPECIFIED)
        || prefix96(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0))
    {
        return Some(low32);
    }
    if ip.segments()[0] == 0x2002 {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

fn prefix_matches_v4(bits: u32, net: u32, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    bits & mask == net & mask
}

fn prefix_matches_v6(bits: u128, net: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    bits & mask == net & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(ip: &str, allow_loopback: bool) -> Result<(), Blocked> {
        check_ip(ip.parse().unwrap(), allow_loopback)
    }

    #[test]
    fn blocked_examples() {
        use Blocked::*;
        for (ip, reason) in [
            ("0.0.0.0", Unspecified),
            ("0.255.1.2", Unspecified),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("169.254.169.254", LinkLocal),
            ("169.254.0.1", LinkLocal),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.0.0.8", Reserved),
            ("192.0.2.10", Documentation),
            ("192.88.99.1", Reserved),
            ("192.168.1.1", Private),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("198.51.100.7", Documentation),
            ("203.0.113.200", Documentation),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("100::1", Reserved),
            ("2001::1", Reserved),
            ("64:ff9b:1::1", Reserved),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:0:10.1.2.3", Private),
            ("::10.1.2.3", Private),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::192.168.0.1", Private),
            ("2002:a9fe:a9fe::1", LinkLocal),
            ("2002:7f00:1::", Loopback),
        ] {
            assert_eq!(check(ip, false), Err(reason), "{ip}");
            assert!(!reason.to_string().is_empty());
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::8.8.8.8",
        ] {
            assert_eq!(check(ip, false), Ok(()), "{ip}");
        }
    }

    #[test]
    fn allow_loopback_lets_only_loopback_through() {
        for ip in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(check(ip, true), Ok(()), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::",
            "fe80::1",
            "fd00::1",
        ] {
            assert!(check(ip, true).is_err(), "{ip}");
        }
    }

    proptest! {
        #[test]
        fn ipv4_forms_in_ipv6_judged_like_the_ipv4(bits in any::<u32>()) {
            let v4 = Ipv4Addr::from(bits);
            let expected = check_ip(IpAddr::V4(v4), false);
            let mapped = v4.to_ipv6_mapped();
            let nat64 = Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(bits));
            let six_to_four = Ipv6Addr::from((0x2002_u128 << 112) | (u128::from(bits) << 80) | 1);
            for v6 in [mapped, nat64, six_to_four] {
                prop_assert_eq!(check_ip(IpAddr::V6(v6), false), expected, "{}", v6);
            }
        }

        #[test]
        fn blocked_ranges_stay_blocked_when_mapped(
            block in proptest::sample::select(V4_BLOCKS),
            host in any::<u32>(),
        ) {
            let (net, len, reason) = block;
            let host_mask = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            let v4 = Ipv4Addr::from(u32::from(net) | (host & host_mask));
            // A more specific block can take precedence (broadcast inside 240/4).
            let v4_reason = classify_v4(v4).unwrap();
            prop_assert!(v4_reason == reason || (reason == Blocked::Reserved && v4_reason == Blocked::Broadcast));
            prop_assert_eq!(check_ip(IpAddr::V6(v4.to_ipv6_mapped()), false), Err(v4_reason));
            prop_assert_eq!(check_ip(IpAddr::V6(v4.to_ipv6_mapped()), true).is_ok(), v4_reason == Blocked::Loopback);
        }
    }
}
