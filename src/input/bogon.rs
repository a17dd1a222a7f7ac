//! Addresses that no public service lives at: private, loopback, link-local, reserved
//! and documentation ranges (after netxlite's bogon list).
//!
//! A DNS answer in one of them is a lie, and the probe never connects to one: a
//! censor's answer of 192.168.1.1 must not make a volunteer's probe poke at their own
//! router. Labs, whose hosts live in such ranges, exempt them with `treat_as_public`.

use std::net::IpAddr;
use std::sync::LazyLock;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// NAT64 for a network's own use (RFC 8215): where the IPv4 address sits depends on the
/// network's prefix length, so it cannot be told whether it is a bogon. Never connected
/// to, but no proof of a forged answer either: a DNS64 resolver of the probe's own
/// network synthesises such addresses for every IPv4-only name.
const LOCAL_NAT64: &str = "64:ff9b:1::/48";

static BOGONS: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
        "::/127",
        LOCAL_NAT64,
        "100::/64",
        "2001:2::/48",
        "2001:10::/28",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ]
    .iter()
    .map(|net| net.parse().expect("bogon table holds valid CIDRs"))
    .collect()
});

/// Decides whether an address is a bogon, given the lab ranges to treat as public.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AddressPolicy {
    treat_as_public: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(treat_as_public: Vec<IpNet>) -> AddressPolicy {
        AddressPolicy { treat_as_public }
    }

    pub fn is_bogon(&self, ip: IpAddr) -> bool {
        let ip = embedded_v4(ip).unwrap_or(ip);
        if self.treat_as_public.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        BOGONS.iter().any(|net| net.contains(&ip))
    }

    /// True when `ip`, found in a DNS answer, proves the answer forged: a bogon other
    /// than a local-use NAT64 address.
    pub fn proves_forgery(&self, ip: IpAddr) -> bool {
        let local_nat64: IpNet = LOCAL_NAT64.parse().expect("a valid network");
        self.is_bogon(ip) && !local_nat64.contains(&ip)
    }
}

/// The IPv4 address inside an IPv4-mapped or -compatible, 6to4, Teredo or NAT64 IPv6
/// address, which is where packets to it really go (a NAT64 gateway forwards
/// `64:ff9b::10.0.0.1` to 10.0.0.1, on the gateway's network).
fn embedded_v4(ip: IpAddr) -> Option<IpAddr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4.into());
    }
    let s = v6.segments();
    let from =
        |hi: u16, lo: u16| IpAddr::from([(hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8]);
    match s[..6] {
        // IPv4-compatible (deprecated); `::` and `::1` are IPv6's own.
        [0, 0, 0, 0, 0, 0] if v6.to_bits() > 1 => Some(from(s[6], s[7])),
        [0x2002, ..] => Some(from(s[1], s[2])),
        [0x2001, 0, ..] => Some(from(!s[6], !s[7])),
        [0x64, 0xff9b, 0, 0, 0, 0] => Some(from(s[6], s[7])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        let policy = AddressPolicy::default();
        for bogon in [
            "10.10.34.34",
            "127.0.0.1",
            "192.168.1.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "2002:0a00:0001::1",
            "2001:0:a0b:c0d::80ff:fffe",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::8.8.8.8",
            "198.18.0.1",
        ] {
            assert!(policy.is_bogon(bogon.parse().unwrap()), "{bogon}");
        }
        for public in [
            "149.154.167.51",
            "8.8.8.8",
            "2a03:2880:f12f:83:face:b00c:0:25de",
            "2002:959a:a733::1",
            "64:ff9b::149.154.167.51",
        ] {
            assert!(!policy.is_bogon(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn a_local_nat64_answer_is_refused_but_proves_nothing() {
        let policy = AddressPolicy::default();
        let synthesised = "64:ff9b:1::8.8.8.8".parse().unwrap();
        assert!(policy.is_bogon(synthesised));
        assert!(!policy.proves_forgery(synthesised));
        assert!(policy.proves_forgery("10.10.34.34".parse().unwrap()));
        assert!(policy.proves_forgery("64:ff9b::10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn lab_ranges_can_be_treated_as_public() {
        let policy = AddressPolicy::new(vec!["198.18.0.0/15".parse().unwrap()]);
        assert!(!policy.is_bogon("198.19.0.7".parse().unwrap()));
        assert!(policy.is_bogon("10.10.34.34".parse().unwrap()));
    }
}
