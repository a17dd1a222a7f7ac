//! The plan: services expanded into targets, one verdict row each.
//!
//! A target is a domain (resolved, then connected to on its TLS and TCP ports), a
//! fixed endpoint `IP:PORT` (connected to), or a URL (fetched). The canary is a domain
//! target of its own, planned first, because its fate decides whether the probe has a
//! network at all. It measures QUIC wherever any target does: whether the probe's QUIC
//! reaches the canary tells a network that drops all QUIC from a block of one address.

use std::collections::HashSet;
use std::sync::Arc;

use crate::input::settings::{QUIC_PORTS, TCP_PORTS, TLS_PORTS};
use crate::input::targets::{self, CANARY_SERVICE, Service, Settings, Target, TargetKind};

/// Expands the services into targets, the canary first, without repeats. Each service
/// is let go of once expanded: a list of 100,000 is not held twice.
pub fn plan(settings: &Settings, services: Vec<Service>) -> Vec<Target> {
    let ports = |given: &Option<Vec<u16>>, default: &[u16]| -> Arc<[u16]> {
        given.as_deref().unwrap_or(default).into()
    };
    let default_tls = ports(&settings.tls_ports, TLS_PORTS);
    let default_tcp = ports(&settings.tcp_ports, TCP_PORTS);
    let default_quic = ports(&settings.quic_ports, QUIC_PORTS);
    let planned = services
        .iter()
        .map(|s| s.domains.len() + s.endpoints.len() + s.urls.len())
        .sum::<usize>();
    let mut targets: Vec<Target> = Vec::with_capacity(planned + 1);
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
            quic_ports: default_quic.clone(),
            asns: targets::empty(),
        });
    }
    for service in services {
        // Made once per service, and shared by each of its targets.
        let name: Arc<str> = service.name.into();
        let tls_ports = service.tls_ports.map_or(default_tls.clone(), Arc::from);
        let tcp_ports = service.tcp_ports.map_or(default_tcp.clone(), Arc::from);
        let quic_ports = service.quic_ports.map_or(default_quic.clone(), Arc::from);
        let asns: Arc<[u32]> = service.asns.into();
        let target = |kind| Target {
            service: name.clone(),
            kind,
            tls_ports: tls_ports.clone(),
            tcp_ports: tcp_ports.clone(),
            quic_ports: quic_ports.clone(),
            asns: asns.clone(),
        };
        for domain in service.domains {
            push(target(TargetKind::Domain(domain)));
        }
        for endpoint in service.endpoints {
            push(target(TargetKind::Endpoint(endpoint)));
        }
        for url in service.urls {
            push(target(TargetKind::Url(url)));
        }
    }
    let mut quic: Vec<u16> = targets
        .iter()
        .flat_map(|t| t.quic_ports.iter().copied())
        .collect();
    quic.sort_unstable();
    quic.dedup();
    if let Some(canary) = targets.first_mut().filter(|t| t.is_canary()) {
        canary.quic_ports = quic.into();
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::targets::TargetsFile;
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
[[service]]
name = "b"
domains = ["b.test"]
quic_ports = [443]
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let targets = plan(&file.settings, file.services);
        let names: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            names,
            [
                "canary.test",
                "a.test",
                "127.0.0.1:9",
                "http://a.test:8080/x",
                "b.test"
            ]
        );
        // QUIC only where asked, and at the canary wherever it is asked.
        assert!(targets[1].quic_ports.is_empty());
        assert_eq!(*targets[4].quic_ports, [443]);
        assert_eq!(*targets[0].quic_ports, [443]);
        assert!(targets[0].is_canary());
        assert_eq!(*targets[0].tls_ports, [443]);
        assert_eq!(*targets[1].tls_ports, [8443]);
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
