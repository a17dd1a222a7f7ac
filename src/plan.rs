//! The plan: services expanded into targets, one verdict row each.
//!
//! A target is a domain (resolved, then connected to on its TLS and TCP ports), a
//! fixed endpoint `IP:PORT` (connected to), or a URL (fetched). The canary is a domain
//! target of its own, planned first, because its fate decides whether the probe has a
//! network at all.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::targets::{self, Service, Settings};

pub const CANARY_SERVICE: &str = "canary";
const DEFAULT_TLS_PORTS: [u16; 1] = [443];
const DEFAULT_TCP_PORTS: [u16; 1] = [80];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum TargetKind {
    Domain(String),
    Endpoint(SocketAddr),
    Url(Url),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub service: String,
    #[serde(flatten)]
    pub kind: TargetKind,
    /// Ports a domain gets a TCP connect and TLS handshakes on.
    pub tls_ports: Vec<u16>,
    /// Ports a domain gets a TCP connect on.
    pub tcp_ports: Vec<u16>,
    /// ASNs the service's addresses are expected in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asns: Vec<u32>,
}

impl TargetKind {
    /// Reads a target as it is named in result rows: a URL, an `IP:PORT` endpoint, or a
    /// domain.
    pub fn parse(name: &str) -> Result<TargetKind, String> {
        if name.contains("://") {
            return targets::parse_url(name).map(TargetKind::Url);
        }
        if let Ok(endpoint) = name.parse::<SocketAddr>() {
            return targets::parse_endpoint(name).map(|_| TargetKind::Endpoint(endpoint));
        }
        targets::parse_domain(name).map(TargetKind::Domain)
    }
}

impl Target {
    /// The host name a target's DNS is about, if it has one.
    pub fn hostname(&self) -> Option<&str> {
        match &self.kind {
            TargetKind::Domain(d) => Some(d),
            TargetKind::Url(u) => match u.host() {
                Some(url::Host::Domain(d)) => Some(d),
                _ => None,
            },
            TargetKind::Endpoint(_) => None,
        }
    }

    /// The address a target names itself, if it does: an endpoint, or a URL's host.
    pub fn literal_address(&self) -> Option<IpAddr> {
        match &self.kind {
            TargetKind::Endpoint(address) => Some(address.ip()),
            TargetKind::Url(url) => match url.host()? {
                url::Host::Ipv4(ip) => Some(ip.into()),
                url::Host::Ipv6(ip) => Some(ip.into()),
                url::Host::Domain(_) => None,
            },
            TargetKind::Domain(_) => None,
        }
    }

    pub fn is_canary(&self) -> bool {
        self.service == CANARY_SERVICE
    }
}

/// How a target is named in result rows.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TargetKind::Domain(d) => f.write_str(d),
            TargetKind::Endpoint(e) => write!(f, "{e}"),
            TargetKind::Url(u) => f.write_str(u.as_str()),
        }
    }
}

/// Expands the services into targets, the canary first, without repeats.
pub fn plan(settings: &Settings, services: &[Service]) -> Vec<Target> {
    let default_tls = settings
        .tls_ports
        .clone()
        .unwrap_or(DEFAULT_TLS_PORTS.to_vec());
    let default_tcp = settings
        .tcp_ports
        .clone()
        .unwrap_or(DEFAULT_TCP_PORTS.to_vec());
    let mut targets: Vec<Target> = Vec::new();
    let mut seen = HashSet::new();
    let mut push = |target: Target| {
        if seen.insert(target.to_string()) {
            targets.push(target);
        }
    };
    if let Some(canary) = &settings.canary {
        push(Target {
            service: CANARY_SERVICE.into(),
            kind: TargetKind::Domain(canary.clone()),
            tls_ports: default_tls.clone(),
            tcp_ports: default_tcp.clone(),
            asns: Vec::new(),
        });
    }
    for service in services {
        let target = |kind| Target {
            service: service.name.clone(),
            kind,
            tls_ports: service.tls_ports.clone().unwrap_or(default_tls.clone()),
            tcp_ports: service.tcp_ports.clone().unwrap_or(default_tcp.clone()),
            asns: service.asns.clone(),
        };
        for domain in &service.domains {
            push(target(TargetKind::Domain(domain.clone())));
        }
        for endpoint in &service.endpoints {
            push(target(TargetKind::Endpoint(*endpoint)));
        }
        for url in &service.urls {
            push(target(TargetKind::Url(url.clone())));
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::TargetsFile;
    use std::path::Path;

    #[test]
    fn canary_first_then_services_in_order_with_their_ports() {
        let file = TargetsFile::parse(
            r#"
[settings]
canary = "canary.test"
tcp_ports = []
[[service]]
name = "a"
domains = ["a.test", "canary.test"]
endpoints = ["127.0.0.1:9"]
urls = ["http://a.test:8080/x"]
tls_ports = [8443]
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let targets = plan(&file.settings, &file.services);
        let names: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            names,
            [
                "canary.test",
                "a.test",
                "127.0.0.1:9",
                "http://a.test:8080/x"
            ]
        );
        assert!(targets[0].is_canary());
        assert_eq!(targets[0].tls_ports, [443]);
        assert_eq!(targets[1].tls_ports, [8443]);
        assert!(targets[1].tcp_ports.is_empty());
        assert_eq!(targets[3].hostname(), Some("a.test"));
        for target in &targets {
            assert_eq!(TargetKind::parse(&target.to_string()).unwrap(), target.kind);
        }
        assert!(
            TargetKind::parse("1.2.3.4")
                .unwrap_err()
                .contains("endpoints")
        );
    }
}
