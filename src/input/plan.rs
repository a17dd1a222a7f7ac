//! The plan: services expanded into targets, one verdict row each.
//!
//! A target is a domain (resolved, then connected to on its TLS and TCP ports), a
//! fixed endpoint `IP:PORT` (connected to), or a URL (fetched). The canary is a domain
//! target of its own, planned first, because its fate decides whether the probe has a
//! network at all. It measures QUIC wherever any target does: whether the probe's QUIC
//! reaches the canary tells a network that drops all QUIC from a block of one address.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use crate::input::settings::{QUIC_PORTS, TCP_PORTS, TLS_PORTS};
use crate::input::targets::{
    self, CANARY_SERVICE, KindName, Service, Settings, Target, TargetKind,
};

/// Expands the services into targets, the canary first, without repeats. Each service
/// is let go of once expanded: a list of 100,000 is not held twice.
pub fn plan(settings: &Settings, services: Vec<Service>) -> TargetList {
    let ports = |given: &Option<Vec<u16>>, default: &[u16]| -> Arc<[u16]> {
        given.as_deref().unwrap_or(default).into()
    };
    let default_tls = ports(&settings.tls_ports, TLS_PORTS);
    let default_tcp = ports(&settings.tcp_ports, TCP_PORTS);
    let default_quic = ports(&settings.quic_ports, QUIC_PORTS);
    let mut targets = TargetList::default();
    let mut seen = HashSet::new();
    let mut quic = BTreeSet::new();
    let mut push = |target: Target| {
        if seen.insert(target.to_string()) {
            quic.extend(target.quic_ports.iter().copied());
            targets.push(&target);
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
        let shape = Shape {
            service: service.name.into(),
            tls_ports: service.tls_ports.map_or(default_tls.clone(), Arc::from),
            tcp_ports: service.tcp_ports.map_or(default_tcp.clone(), Arc::from),
            quic_ports: service.quic_ports.map_or(default_quic.clone(), Arc::from),
            asns: service.asns.into(),
        };
        let target = |kind| shape.target(kind);
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
    // The canary's QUIC at every port a target planned has it on.
    targets.set_canary_quic_ports(quic.into_iter().collect());
    targets.shrink_to_fit();
    targets
}

/// A run's targets, held compactly. A run keeps its plan to its end (to take each next
/// target from, and for run.json), and a [`Target`] is 168 bytes with its URL parsed:
/// a plan of them was the part of the probe's memory that grew most with a list of
/// 100,000. Here a target is its name, its kind and the place of its service's shape
/// (name, ports, ASNs) in a list of them, 16 bytes and its name; it is made whole
/// again, its URL parsed anew, when it is taken.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetList {
    shapes: Vec<Shape>,
    /// The targets' names, one after another.
    names: String,
    entries: Vec<Entry>,
    /// The kinds that their name would not give back as they were, kept whole: none
    /// of a planned target's, whose names were read from their text, but an imported
    /// measurement's may be odd.
    whole: BTreeMap<usize, TargetKind>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    /// Where the name ends in `names`; it starts where the one before ends.
    end: usize,
    /// Its place in `shapes`.
    shape: u32,
    kind: KindName,
}

/// What a service's targets have in common.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    service: Arc<str>,
    tls_ports: Arc<[u16]>,
    tcp_ports: Arc<[u16]>,
    quic_ports: Arc<[u16]>,
    asns: Arc<[u32]>,
}

impl Shape {
    fn of(target: &Target) -> Shape {
        Shape {
            service: target.service.clone(),
            tls_ports: target.tls_ports.clone(),
            tcp_ports: target.tcp_ports.clone(),
            quic_ports: target.quic_ports.clone(),
            asns: target.asns.clone(),
        }
    }

    /// The target of this shape and `kind`.
    fn target(&self, kind: TargetKind) -> Target {
        Target {
            service: self.service.clone(),
            kind,
            tls_ports: self.tls_ports.clone(),
            tcp_ports: self.tcp_ports.clone(),
            quic_ports: self.quic_ports.clone(),
            asns: self.asns.clone(),
        }
    }
}

impl TargetList {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a target at the end. Consecutive targets of one service share its shape.
    pub fn push(&mut self, target: &Target) {
        let shape = Shape::of(target);
        if self.shapes.last() != Some(&shape) {
            self.shapes.push(shape);
        }
        let start = self.names.len();
        write!(self.names, "{target}").expect("writing to a String cannot fail");
        let kind = match target.kind {
            TargetKind::Domain(_) => KindName::Domain,
            TargetKind::Endpoint(_) => KindName::Endpoint,
            TargetKind::Url(_) => KindName::Url,
        };
        if named(kind, &self.names[start..]).as_ref() != Some(&target.kind) {
            self.whole.insert(self.entries.len(), target.kind.clone());
        }
        self.entries.push(Entry {
            end: self.names.len(),
            shape: u32::try_from(self.shapes.len() - 1)
                .expect("fewer services than a list in memory could hold"),
            kind,
        });
    }

    /// Gives back the room left for more targets: the list is kept to the run's end,
    /// and grown by doubling it may hold half as much again as it needs.
    pub fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.entries.shrink_to_fit();
        self.shapes.shrink_to_fit();
    }

    /// The QUIC ports of the canary, if it is the first target (as a plan's is).
    fn set_canary_quic_ports(&mut self, ports: Arc<[u16]>) {
        if !self.is_empty() && self.is_canary(0) {
            let shape = self.entries[0].shape as usize;
            self.shapes[shape].quic_ports = ports;
        }
    }

    /// The `i`th target's name, as result rows name it.
    pub fn name(&self, i: usize) -> &str {
        let start = i
            .checked_sub(1)
            .map_or(0, |before| self.entries[before].end);
        &self.names[start..self.entries[i].end]
    }

    /// The `i`th target's service.
    pub fn service(&self, i: usize) -> &str {
        &self.shape(i).service
    }

    pub fn is_canary(&self, i: usize) -> bool {
        self.service(i) == CANARY_SERVICE
    }

    /// The `i`th target, whole.
    pub fn get(&self, i: usize) -> Target {
        let kind = match self.whole.get(&i) {
            Some(kind) => kind.clone(),
            None => named(self.entries[i].kind, self.name(i))
                .expect("a name that gave its kind back when pushed gives it again"),
        };
        self.shape(i).target(kind)
    }

    /// Every target, whole, in order.
    pub fn iter(&self) -> impl Iterator<Item = Target> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Every target's name, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.name(i))
    }

    fn shape(&self, i: usize) -> &Shape {
        &self.shapes[self.entries[i].shape as usize]
    }
}

/// The target of that kind a name stands for, read without the checks of a targets
/// file: the name was written from a target that passed them, or was recorded.
fn named(kind: KindName, name: &str) -> Option<TargetKind> {
    match kind {
        KindName::Domain => Some(TargetKind::Domain(name.to_string())),
        KindName::Endpoint => name.parse::<SocketAddr>().ok().map(TargetKind::Endpoint),
        KindName::Url => Url::parse(name).ok().map(TargetKind::Url),
    }
}

impl FromIterator<Target> for TargetList {
    fn from_iter<I: IntoIterator<Item = Target>>(targets: I) -> TargetList {
        let mut list = TargetList::default();
        for target in targets {
            list.push(&target);
        }
        list
    }
}

/// Written as the list of whole targets it stands for: run.json is the same as before.
impl Serialize for TargetList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Read one target at a time, without a list of whole ones in between.
impl<'de> Deserialize<'de> for TargetList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TargetList, D::Error> {
        struct Targets;
        impl<'de> Visitor<'de> for Targets {
            type Value = TargetList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of targets")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TargetList, A::Error> {
                let mut list = TargetList::default();
                while let Some(target) = seq.next_element::<Target>()? {
                    list.push(&target);
                }
                list.shrink_to_fit();
                Ok(list)
            }
        }
        deserializer.deserialize_seq(Targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::targets::TargetsFile;
    use std::path::Path;

    fn planned(targets_toml: &str) -> TargetList {
        let file = TargetsFile::parse(targets_toml, Path::new("t.toml")).unwrap();
        plan(&file.settings, file.services)
    }

    #[test]
    fn canary_first_then_services_in_order_with_their_ports() {
        let targets: Vec<Target> = planned(
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
        )
        .iter()
        .collect();
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

    #[test]
    fn the_canary_has_quic_where_a_planned_target_has_it() {
        let targets = planned(
            r#"
[settings]
canary = "canary.test"
[[service]]
name = "a"
domains = ["a.test"]
quic_ports = [443]
[[service]]
name = "b"
domains = ["a.test", "canary.test"]
quic_ports = [8443]
"#,
        );
        // b's targets repeat a's and the canary: none of them is planned on 8443.
        assert_eq!(targets.len(), 2);
        assert_eq!(*targets.get(0).quic_ports, [443]);
    }

    #[test]
    fn a_target_list_gives_back_the_targets_it_was_given() {
        let list = planned(
            r#"
[settings]
canary = "canary.test"
[[service]]
name = "a"
domains = ["a.test"]
endpoints = ["127.0.0.1:9", "[::1]:443"]
urls = ["https://a.test/x?y=1", "http://[::1]:8080/", "https://b.test"]
asns = [64496]
[[service]]
name = "b"
urls = ["https://b.test/other"]
"#,
        );
        let targets: Vec<Target> = list.iter().collect();
        assert_eq!(targets.len(), 8);
        assert_eq!(list.len(), 8);
        // A URL is kept as its normal form, which reads back as the same URL.
        assert_eq!(list.name(6), "https://b.test/");
        assert_eq!(targets[6].service.as_ref(), "a");
        assert_eq!(*targets[6].asns, [64496]);
        assert_eq!(list.service(7), "b");
        assert!(list.is_canary(0) && !list.is_canary(1));
        // The service's shape is one for all its targets, as in a plan made whole.
        assert!(Arc::ptr_eq(&targets[1].asns, &targets[5].asns));
        // run.json holds the whole targets, as a list of them would be written.
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, serde_json::to_string(&targets).unwrap());
        let read: TargetList = serde_json::from_str(&json).unwrap();
        assert_eq!(read.iter().collect::<Vec<_>>(), targets);
        assert_eq!(list.names().collect::<Vec<_>>()[3], "[::1]:443");
    }

    #[test]
    fn a_kind_its_name_would_not_give_back_is_kept_whole() {
        let odd = std::net::SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 443, 7, 0);
        let target = Target {
            service: "imported".into(),
            kind: TargetKind::Endpoint(odd.into()),
            tls_ports: targets::empty(),
            tcp_ports: targets::empty(),
            quic_ports: targets::empty(),
            asns: targets::empty(),
        };
        let list: TargetList = [target.clone()].into_iter().collect();
        assert_eq!(list.get(0), target);
        assert_eq!(list.name(0), "[::1]:443");
    }
}
