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

    #[test]
    fn blocking_names_round_trip() {
        for (kind, name) in Blocking::NAMES {
            assert_eq!(kind.to_string(), name);
            assert_eq!(name.parse::<Blocking>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
    }
}
