//! Analysis: the recorded facts of a target turned into a verdict.
//!
//! Opinions live here and only here; they read `TargetFacts`, which can come from a
//! run in progress or from `measurements.jsonl` years later. Each layer has its file
//! (dns, transport for TCP and TLS, http); this one orders them and decides the run's
//! "no network" case.

pub mod dns;
pub mod fingerprints;
pub mod http;
pub mod transport;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bogon::AddressPolicy;
use crate::facts::{Measurement, Step};
use crate::measure::TargetFacts;
use crate::plan::TargetKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Blocked,
    Anomaly,
    Down,
    Inconclusive,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Ok,
        Verdict::Blocked,
        Verdict::Anomaly,
        Verdict::Down,
        Verdict::Inconclusive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Blocked => "blocked",
            Verdict::Anomaly => "anomaly",
            Verdict::Down => "down",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a target is blocked, in DESIGN.md's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blocking {
    DnsHijack,
    DnsNxdomain,
    DnsFailure,
    DnsInjection,
    TcpBlackhole,
    TcpReset,
    TcpRefused,
    TlsReset,
    TlsTimeout,
    TlsMitm,
    TlsFailure,
    HttpBlockpage,
    HttpDiff,
    HttpFailure,
    Throttled,
}

impl Blocking {
    const NAMES: [(Blocking, &'static str); 15] = [
        (Blocking::DnsHijack, "dns-hijack"),
        (Blocking::DnsNxdomain, "dns-nxdomain"),
        (Blocking::DnsFailure, "dns-failure"),
        (Blocking::DnsInjection, "dns-injection"),
        (Blocking::TcpBlackhole, "tcp-blackhole"),
        (Blocking::TcpReset, "tcp-reset"),
        (Blocking::TcpRefused, "tcp-refused"),
        (Blocking::TlsReset, "tls-reset"),
        (Blocking::TlsTimeout, "tls-timeout"),
        (Blocking::TlsMitm, "tls-mitm"),
        (Blocking::TlsFailure, "tls-failure"),
        (Blocking::HttpBlockpage, "http-blockpage"),
        (Blocking::HttpDiff, "http-diff"),
        (Blocking::HttpFailure, "http-failure"),
        (Blocking::Throttled, "throttled"),
    ];

    pub fn as_str(self) -> &'static str {
        Blocking::NAMES
            .iter()
            .find(|(b, _)| *b == self)
            .map(|(_, name)| *name)
            .expect("every kind is named")
    }
}

impl fmt::Display for Blocking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Blocking {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Blocking::NAMES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(b, _)| *b)
            .ok_or_else(|| format!("unknown blocking kind {s:?}"))
    }
}

/// Evidence of interference found in one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub blocking: Blocking,
    pub evidence: String,
}

impl Finding {
    pub fn new(blocking: Blocking, evidence: impl Into<String>) -> Finding {
        Finding {
            blocking,
            evidence: evidence.into(),
        }
    }
}

/// A target's verdict, as a row of verdicts.csv (without the run's columns).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetVerdict {
    pub service: String,
    pub target: String,
    pub verdict: Verdict,
    pub blocking: Option<Blocking>,
    pub evidence: String,
}

/// What analysis needs besides the facts.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub policy: AddressPolicy,
}

/// The probe-only outcome of one target, before the run-wide "no network" check.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: TargetVerdict,
    /// At least one connection to the target got through: the probe has a network.
    pub reached: bool,
}

/// Judges a target from the probe's facts alone: `ok`, or `anomaly` with the first
/// layer (DNS, then TCP/TLS, then HTTP) that shows interference.
pub fn probe_only(facts: &TargetFacts, context: &Context) -> Outcome {
    let finding = match &facts.target.kind {
        TargetKind::Domain(_) => dns::finding(&facts.dns, &facts.target, context)
            .or_else(|| transport::finding(&facts.measurements)),
        TargetKind::Endpoint(_) => transport::finding(&facts.measurements),
        TargetKind::Url(_) => dns::finding(&facts.dns, &facts.target, context)
            .or_else(|| http::finding(&facts.measurements)),
    };
    let (verdict, blocking, evidence) = match finding {
        Some(f) => (Verdict::Anomaly, Some(f.blocking), f.evidence),
        None => (Verdict::Ok, None, ok_evidence(&facts.measurements)),
    };
    Outcome {
        verdict: TargetVerdict {
            service: facts.target.service.clone(),
            target: facts.target.to_string(),
            verdict,
            blocking,
            evidence,
        },
        reached: reached(&facts.measurements),
    }
}

/// The verdict of every target when neither the canary nor any target could be
/// reached: the probe has no network, and that says nothing about censorship.
pub fn no_network(outcome: &Outcome) -> TargetVerdict {
    TargetVerdict {
        verdict: Verdict::Inconclusive,
        blocking: None,
        evidence: format!(
            "no network: neither the canary nor any target could be reached ({})",
            outcome.verdict.evidence
        ),
        ..outcome.verdict.clone()
    }
}

/// True when some connection got through to the target.
fn reached(measurements: &[Measurement]) -> bool {
    measurements.iter().any(|m| match &m.step {
        Step::TcpConnect(t) => t.error.is_none(),
        Step::TlsHandshake(t) => t.server_answered(),
        Step::Http(h) => h.hops.iter().any(|hop| hop.status.is_some()),
        Step::Dns(_) => false,
    })
}

/// One sentence of what succeeded.
fn ok_evidence(measurements: &[Measurement]) -> String {
    let (mut tcp, mut tls, mut http) = (0, 0, None);
    for m in measurements {
        match &m.step {
            Step::TcpConnect(t) if t.error.is_none() => tcp += 1,
            Step::TlsHandshake(t) if t.handshake_done && !t.control_sni => tls += 1,
            Step::Http(h) => http = h.final_response().and_then(|r| r.status),
            _ => {}
        }
    }
    match http {
        Some(status) => format!("fetched with HTTP status {status}, no sign of interference"),
        None if tls > 0 => {
            format!("{tcp} TCP connects and {tls} TLS handshakes with valid certificates succeeded")
        }
        None => format!("{tcp} TCP connects succeeded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{DnsAnswer, DnsFacts, DnsReply, QueryType, TcpFacts, TlsFacts, Vantage};
    use crate::failure::{Failure, Operation, StepError};
    use crate::plan::Target;
    use std::net::SocketAddr;
    use std::sync::Arc;

    #[test]
    fn blocking_names_round_trip() {
        for (kind, name) in Blocking::NAMES {
            assert_eq!(kind.to_string(), name);
            assert_eq!(name.parse::<Blocking>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
    }

    fn domain(asns: &[u32]) -> Target {
        Target {
            service: "facebook".into(),
            kind: TargetKind::Domain("facebook.com".into()),
            tls_ports: vec![443],
            tcp_ports: vec![],
            asns: asns.to_vec(),
        }
    }

    fn measurement(step: Step) -> Measurement {
        Measurement {
            vantage: Vantage::Probe,
            service: "facebook".into(),
            target: "facebook.com".into(),
            measured_at: chrono::Utc::now(),
            runtime_ms: 1.0,
            step,
        }
    }

    fn lookup(answers: &[(&str, Option<u32>)]) -> Measurement {
        let answers: Vec<DnsAnswer> = answers
            .iter()
            .map(|(ip, asn)| DnsAnswer {
                answer_type: "A".into(),
                data: ip.to_string(),
                ttl: 60,
                asn: *asn,
            })
            .collect();
        measurement(Step::Dns(DnsFacts {
            resolver: "system".into(),
            resolver_address: None,
            hostname: "facebook.com".into(),
            query_type: QueryType::A,
            addresses: answers.iter().filter_map(|a| a.address()).collect(),
            replies: vec![DnsReply {
                source: "198.18.0.53:53".into(),
                arrival_ms: 3.0,
                id: 1,
                matches_query: true,
                rcode: "NoError".into(),
                answers,
            }],
            error: None,
        }))
    }

    fn tcp(address: &str, failure: Option<Failure>) -> Measurement {
        measurement(Step::TcpConnect(TcpFacts {
            address: address.parse().unwrap(),
            error: failure.map(|f| StepError::new(Operation::Connect, f)),
        }))
    }

    fn tls(address: &str, control_sni: bool, failure: Option<Failure>) -> Measurement {
        measurement(Step::TlsHandshake(TlsFacts {
            address: address.parse::<SocketAddr>().unwrap(),
            server_name: if control_sni {
                "example.com"
            } else {
                "facebook.com"
            }
            .into(),
            control_sni,
            handshake_done: failure.is_none(),
            tls_version: None,
            cipher_suite: None,
            alpn: None,
            certificate: None,
            error: failure.map(|f| StepError::new(Operation::TlsHandshake, f)),
        }))
    }

    fn judge(target: Target, dns: Vec<Measurement>, rest: Vec<Measurement>) -> Outcome {
        let mut measurements = dns.clone();
        measurements.extend(rest);
        let facts = TargetFacts {
            target,
            measurements,
            dns: Arc::new(dns),
        };
        probe_only(&facts, &Context::default())
    }

    fn kind(outcome: &Outcome) -> (Verdict, Option<Blocking>) {
        (outcome.verdict.verdict, outcome.verdict.blocking)
    }

    #[test]
    fn answers_outside_the_expected_asns_are_a_hijack() {
        let ok = judge(
            domain(&[32934]),
            vec![lookup(&[("157.240.1.35", Some(32934))])],
            vec![tcp("157.240.1.35:443", None)],
        );
        assert_eq!(kind(&ok), (Verdict::Ok, None));
        let bad = judge(
            domain(&[32934]),
            vec![lookup(&[("93.184.216.34", Some(15133))])],
            vec![],
        );
        assert_eq!(kind(&bad), (Verdict::Anomaly, Some(Blocking::DnsHijack)));
        assert!(
            bad.verdict.evidence.contains("AS15133"),
            "{}",
            bad.verdict.evidence
        );
        // Without an ASN database the answers carry no ASN, and nothing is concluded.
        let unknown = judge(
            domain(&[32934]),
            vec![lookup(&[("93.184.216.34", None)])],
            vec![],
        );
        assert_eq!(unknown.verdict.verdict, Verdict::Ok);
    }

    #[test]
    fn a_probe_without_ipv6_is_not_blocked_on_ipv6() {
        let outcome = judge(
            domain(&[]),
            vec![lookup(&[("157.240.1.35", None)])],
            vec![
                tcp("157.240.1.35:443", None),
                tcp("[2a03:2880::1]:443", Some(Failure::NetworkUnreachable)),
            ],
        );
        assert_eq!(kind(&outcome), (Verdict::Ok, None));
        let v4 = judge(
            domain(&[]),
            vec![lookup(&[("157.240.1.35", None)])],
            vec![tcp("157.240.1.35:443", Some(Failure::NetworkUnreachable))],
        );
        assert_eq!(kind(&v4), (Verdict::Anomaly, Some(Blocking::TcpBlackhole)));
        assert!(!v4.reached);
    }

    #[test]
    fn sni_filtering_needs_the_control_sni_to_succeed() {
        let a = "157.240.1.35:443";
        let sni = judge(
            domain(&[]),
            vec![lookup(&[("157.240.1.35", None)])],
            vec![
                tcp(a, None),
                tls(a, true, None),
                tls(a, false, Some(Failure::ConnectionReset)),
            ],
        );
        assert_eq!(kind(&sni), (Verdict::Anomaly, Some(Blocking::TlsReset)));
        assert!(sni.verdict.evidence.contains("example.com"));
        let both = judge(
            domain(&[]),
            vec![lookup(&[("157.240.1.35", None)])],
            vec![
                tcp(a, None),
                tls(a, true, Some(Failure::ConnectionReset)),
                tls(a, false, Some(Failure::ConnectionReset)),
            ],
        );
        assert_eq!(kind(&both), (Verdict::Anomaly, Some(Blocking::TlsFailure)));
        let stall = judge(
            domain(&[]),
            vec![lookup(&[("157.240.1.35", None)])],
            vec![
                tcp(a, None),
                tls(a, true, None),
                tls(a, false, Some(Failure::GenericTimeout)),
            ],
        );
        assert_eq!(kind(&stall), (Verdict::Anomaly, Some(Blocking::TlsTimeout)));
        assert!(stall.reached);
    }

    #[test]
    fn no_network_is_inconclusive_and_says_why() {
        let outcome = judge(
            domain(&[]),
            vec![lookup(&[("157.240.1.35", None)])],
            vec![tcp("157.240.1.35:443", Some(Failure::GenericTimeout))],
        );
        let verdict = no_network(&outcome);
        assert_eq!(
            (verdict.verdict, verdict.blocking),
            (Verdict::Inconclusive, None)
        );
        assert!(verdict.evidence.starts_with("no network"));
    }
}
