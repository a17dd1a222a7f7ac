//! Known censorship fingerprints: blockpage addresses in DNS answers, and patterns in
//! blockpages served over HTTP.
//!
//! A small table on purpose: only fingerprints that are specific to a censor and have
//! no known false positives. Source: ooni/blocking-fingerprints (commit 171641e,
//! 2024-10, columns `location_found`, `pattern_type`, `pattern`), cross-checked with
//! Citizen Lab's filtering-annotations. A match proves interference; the absence of a
//! match proves nothing.

use std::net::IpAddr;

use crate::facts::HttpHop;

/// A censor's own address handed out in place of the real one.
pub struct DnsFingerprint {
    pub address: &'static str,
    pub name: &'static str,
}

pub const DNS: &[DnsFingerprint] = &[
    DnsFingerprint {
        address: "10.10.34.34",
        name: "Iran's national blockpage (dns.ir)",
    },
    DnsFingerprint {
        address: "10.10.34.35",
        name: "Iran's national blockpage (dns.ir)",
    },
    DnsFingerprint {
        address: "10.10.34.36",
        name: "Iran's national blockpage (dns.ir)",
    },
    DnsFingerprint {
        address: "d0::11",
        name: "Iran's national blockpage (dns.ir, IPv6)",
    },
    DnsFingerprint {
        address: "95.167.13.50",
        name: "Rostelecom's blockpage (Russia)",
    },
    DnsFingerprint {
        address: "95.167.13.51",
        name: "Rostelecom's blockpage (Russia)",
    },
    DnsFingerprint {
        address: "195.175.254.2",
        name: "Turkey's BTK blockpage",
    },
];

pub fn dns_blockpage(ip: IpAddr) -> Option<&'static str> {
    DNS.iter()
        .find(|f| f.address.parse::<IpAddr>().ok() == Some(ip))
        .map(|f| f.name)
}

enum Where {
    Body,
    Header(&'static str),
}

struct HttpFingerprint {
    found_in: Where,
    /// A substring, matched case-sensitively as in the source table.
    pattern: &'static str,
    name: &'static str,
}

const HTTP: &[HttpFingerprint] = &[
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "iframe src=\"http://10.10",
        name: "Iran's national blockpage (iframe to 10.10.34.34)",
    },
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "peyvandha.ir",
        name: "Iran's national blockpage (peyvandha.ir)",
    },
    HttpFingerprint {
        found_in: Where::Header("location"),
        pattern: "warning.rt.ru",
        name: "Rostelecom's blockpage (Russia)",
    },
    HttpFingerprint {
        found_in: Where::Header("location"),
        pattern: "vk.com/blank.php?rkn=",
        name: "VK's Roskomnadzor notice (Russia)",
    },
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "eais.rkn.gov.ru",
        name: "Roskomnadzor's registry notice (Russia)",
    },
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "Telekomünikasyon İletişim Başkanlığı",
        name: "Turkey's BTK blockpage",
    },
    HttpFingerprint {
        found_in: Where::Body,
        pattern: "Güvenli İnternet Uyarı",
        name: "TTNet's blockpage (Turkey)",
    },
];

/// The name of the blockpage a response matches, if any. HTTP 451 (RFC 7725) is a
/// blockpage by definition.
pub fn http_blockpage(hop: &HttpHop) -> Option<&'static str> {
    if hop.status == Some(451) {
        return Some("HTTP 451 Unavailable For Legal Reasons");
    }
    HTTP.iter()
        .find(|f| match f.found_in {
            Where::Body => hop.body_prefix.contains(f.pattern),
            Where::Header(name) => hop.header(name).is_some_and(|v| v.contains(f.pattern)),
        })
        .map(|f| f.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(status: u16, headers: &[(&str, &str)], body: &str) -> HttpHop {
        HttpHop {
            url: "http://x.test/".into(),
            address: None,
            tls: None,
            status: Some(status),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body_length: body.len() as u64,
            body_truncated: false,
            title: None,
            body_prefix: body.into(),
            transfer_ms: 0.0,
            error: None,
        }
    }

    #[test]
    fn blockpages_match_and_ordinary_pages_do_not() {
        let iran = r#"<html><head><title>M1-6</title></head><body><iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy " style="width: 100%"></iframe></body></html>"#;
        assert!(
            http_blockpage(&hop(200, &[], iran))
                .unwrap()
                .contains("Iran")
        );
        assert!(
            http_blockpage(&hop(302, &[("location", "http://warning.rt.ru/?id=1")], ""))
                .unwrap()
                .contains("Russia")
        );
        assert!(http_blockpage(&hop(451, &[], "")).is_some());
        assert!(
            http_blockpage(&hop(
                200,
                &[],
                "<html><title>Telegram Web</title><iframe src=\"https://t.me\">"
            ))
            .is_none()
        );
        assert!(
            http_blockpage(&hop(302, &[("location", "https://www.facebook.com/")], "")).is_none()
        );
    }

    #[test]
    fn dns_fingerprints_parse_and_match() {
        for f in DNS {
            assert!(f.address.parse::<IpAddr>().is_ok(), "{}", f.address);
        }
        assert!(dns_blockpage("10.10.34.35".parse().unwrap()).is_some());
        assert!(dns_blockpage("149.154.167.51".parse().unwrap()).is_none());
    }
}
