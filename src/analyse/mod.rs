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
    pub const COUNT: usize = 15;
    const NAMES: [(Blocking, &'static str); Blocking::COUNT] = [
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

    /// Every kind, in DESIGN.md's order.
    pub fn all() -> impl Iterator<Item = Blocking> {
        Blocking::NAMES.iter().map(|(b, _)| *b)
    }

    /// The kind's place in [`Blocking::all`].
    pub fn index(self) -> usize {
        Blocking::NAMES
            .iter()
            .position(|(b, _)| *b == self)
            .expect("every kind is named")
    }

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

impl FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown verdict {s:?}"))
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

/// What the control vantage point had to say about a target.
#[derive(Debug, Clone, Copy)]
pub enum Control<'a> {
    /// A run without a control.
    None,
    /// A control was to be asked but gave nothing (unreachable, refused, timed out).
    Unavailable(&'a str),
    Measured(&'a TargetFacts),
}

/// What the control saw at the step where the probe had a problem.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlSaw {
    Success(String),
    Failure(String),
    NotMeasured(String),
}

/// Something wrong at the probe, in one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub finding: Finding,
    /// The probe's facts alone show interference (a forged answer, a blockpage, a
    /// reset only for the target's name).
    pub strong: bool,
    /// The control's side of the same step; `None` when it cannot matter (a bogon
    /// answer is never right, whatever the control saw) or there is no control.
    pub control: Option<ControlSaw>,
}

impl Problem {
    /// Evidence no control can overturn.
    fn proven(finding: Finding) -> Problem {
        Problem {
            finding,
            strong: true,
            control: None,
        }
    }

    fn strong(finding: Finding, control: Option<ControlSaw>) -> Problem {
        Problem {
            finding,
            strong: true,
            control,
        }
    }

    fn weak(finding: Finding, control: Option<ControlSaw>) -> Problem {
        Problem {
            finding,
            strong: false,
            control,
        }
    }
}

/// A target's outcome, before the run-wide "no network" check.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: TargetVerdict,
    /// At least one connection to the target got through: the probe has a network.
    pub reached: bool,
}

/// The problems of a target, layer by layer in the order a browser meets them.
pub fn problems(
    probe: &TargetFacts,
    control: Option<&TargetFacts>,
    context: &Context,
) -> Vec<Problem> {
    let mut out = match probe.target.kind {
        TargetKind::Endpoint(_) => Vec::new(),
        _ => dns::problems(probe, control, &context.policy),
    };
    match probe.target.kind {
        TargetKind::Url(_) => out.extend(http::problems(probe, control)),
        _ => out.extend(transport::problems(probe, control)),
    }
    out
}

/// Judges a target.
///
/// - Without a control: `ok`, or `anomaly` with the first problem.
/// - With a control that could not be asked: `anomaly` on strong evidence,
///   `inconclusive` on a mere failure, `ok` when nothing failed.
/// - With the control's facts: `blocked` on evidence no control can overturn, or where
///   the probe failed a step the control passed; `down` where the control failed the
///   same step; `inconclusive` where the control did not measure it.
pub fn judge(facts: &TargetFacts, control: Control<'_>, context: &Context) -> Outcome {
    let measured = match control {
        Control::Measured(c) => Some(c),
        _ => None,
    };
    let problems = problems(facts, measured, context);
    let (verdict, finding) = match control {
        Control::None => match problems.into_iter().next() {
            Some(p) => (Verdict::Anomaly, Some(p.finding)),
            None => (Verdict::Ok, None),
        },
        Control::Unavailable(why) => {
            match problems.iter().find(|p| p.strong).or(problems.first()) {
                Some(p) if p.strong => (Verdict::Anomaly, Some(p.finding.clone())),
                Some(p) => (
                    Verdict::Inconclusive,
                    Some(Finding::new(
                        p.finding.blocking,
                        format!(
                            "{}; the control could not confirm it: {why}",
                            p.finding.evidence
                        ),
                    )),
                ),
                None => (Verdict::Ok, None),
            }
        }
        Control::Measured(_) => decide(problems),
    };
    let (blocking, evidence) = match finding {
        Some(f) if matches!(verdict, Verdict::Blocked | Verdict::Anomaly) => {
            (Some(f.blocking), f.evidence)
        }
        Some(f) => (None, f.evidence),
        None => (None, ok_evidence(&facts.measurements)),
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

/// The verdict from problems compared with the control: the first blocking problem
/// wins; then strong evidence the control did not cover; then an outage; then what
/// could not be compared.
fn decide(problems: Vec<Problem>) -> (Verdict, Option<Finding>) {
    let with = |p: &Problem, said: &str| {
        Finding::new(
            p.finding.blocking,
            format!("{}; {said}", p.finding.evidence),
        )
    };
    if let Some(p) = problems
        .iter()
        .find(|p| matches!(p.control, None | Some(ControlSaw::Success(_))))
    {
        return match &p.control {
            Some(ControlSaw::Success(said)) => (Verdict::Blocked, Some(with(p, said))),
            _ => (Verdict::Blocked, Some(p.finding.clone())),
        };
    }
    let unmeasured = |p: &&Problem| matches!(p.control, Some(ControlSaw::NotMeasured(_)));
    if let Some(p) = problems.iter().filter(unmeasured).find(|p| p.strong) {
        return (Verdict::Anomaly, Some(p.finding.clone()));
    }
    let down = problems.iter().find_map(|p| match &p.control {
        Some(ControlSaw::Failure(said)) => Some((p, said)),
        _ => None,
    });
    if let Some((p, said)) = down {
        let evidence = format!("down for everyone: {}; {said}", p.finding.evidence);
        return (
            Verdict::Down,
            Some(Finding::new(p.finding.blocking, evidence)),
        );
    }
    let unknown = problems.iter().find_map(|p| match &p.control {
        Some(ControlSaw::NotMeasured(said)) => Some((p, said)),
        _ => None,
    });
    match unknown {
        Some((p, said)) => (Verdict::Inconclusive, Some(with(p, said))),
        None => (Verdict::Ok, None),
    }
}

/// Judges a target from the probe's facts alone.
pub fn probe_only(facts: &TargetFacts, context: &Context) -> Outcome {
    judge(facts, Control::None, context)
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
            dropped_replies: 0,
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

    fn facts(target: &Target, dns: Vec<Measurement>, rest: Vec<Measurement>) -> TargetFacts {
        let mut measurements = dns.clone();
        measurements.extend(rest);
        TargetFacts {
            target: target.clone(),
            measurements,
            dns: Arc::new(dns),
        }
    }

    fn judge(target: Target, dns: Vec<Measurement>, rest: Vec<Measurement>) -> Outcome {
        probe_only(&facts(&target, dns, rest), &Context::default())
    }

    /// Judges the probe's facts against the control's.
    fn compare(
        target: Target,
        probe: (Vec<Measurement>, Vec<Measurement>),
        control: (Vec<Measurement>, Vec<Measurement>),
    ) -> Outcome {
        let theirs = facts(&target, control.0, control.1);
        judge_with(
            &facts(&target, probe.0, probe.1),
            Control::Measured(&theirs),
        )
    }

    fn judge_with(ours: &TargetFacts, control: Control<'_>) -> Outcome {
        super::judge(ours, control, &Context::default())
    }

    fn failed_lookup(failure: Failure) -> Measurement {
        let mut m = lookup(&[]);
        if let Step::Dns(d) = &mut m.step {
            d.replies[0].rcode = if failure == Failure::DnsNxdomain {
                "NXDomain"
            } else {
                "ServFail"
            }
            .into();
            d.error = Some(StepError::new(Operation::Resolve, failure));
        }
        m
    }

    fn mitm(address: &str) -> Measurement {
        let mut m = tls(address, false, None);
        if let Step::TlsHandshake(t) = &mut m.step {
            t.error = Some(StepError::new(
                Operation::TlsHandshake,
                Failure::SslUnknownAuthority,
            ));
        }
        m
    }

    fn url() -> Target {
        Target {
            kind: TargetKind::Url("https://facebook.com/".parse().unwrap()),
            ..domain(&[])
        }
    }

    fn fetch(
        status: u16,
        body: u64,
        title: &str,
        transfer_ms: f64,
        error: Option<StepError>,
    ) -> Measurement {
        measurement(Step::Http(crate::facts::HttpFacts {
            url: "https://facebook.com/".into(),
            hops: vec![crate::facts::HttpHop {
                url: "https://facebook.com/".into(),
                address: Some("157.240.1.35:443".parse().unwrap()),
                tls: None,
                status: (status > 0).then_some(status),
                headers: vec![("content-type".into(), "text/html".into())],
                body_length: body,
                body_truncated: false,
                title: Some(title.into()),
                body_prefix: format!("<title>{title}</title>"),
                transfer_ms,
                error: error.clone(),
            }],
            error,
        }))
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

    const FB: &str = "157.240.1.35";
    const FB_443: &str = "157.240.1.35:443";

    #[test]
    fn dns_consistency_with_the_control() {
        // The same address at both: consistent.
        let same = compare(
            domain(&[]),
            (vec![lookup(&[(FB, None)])], vec![tcp(FB_443, None)]),
            (vec![lookup(&[(FB, None)])], vec![]),
        );
        assert_eq!(kind(&same), (Verdict::Ok, None));
        // A CDN: different addresses, but ours carries a valid certificate for the name.
        let cdn = compare(
            domain(&[]),
            (
                vec![lookup(&[("157.240.9.9", None)])],
                vec![
                    tcp("157.240.9.9:443", None),
                    tls("157.240.9.9:443", true, None),
                    tls("157.240.9.9:443", false, None),
                ],
            ),
            (vec![lookup(&[(FB, None)])], vec![]),
        );
        assert_eq!(kind(&cdn), (Verdict::Ok, None), "{}", cdn.verdict.evidence);
        // The same CDN through a URL, whose only handshake is the fetch's own.
        let mut fetched = fetch(200, 5000, "Facebook", 5.0, None);
        if let (Step::Http(h), Step::TlsHandshake(t)) =
            (&mut fetched.step, tls("157.240.9.9:443", false, None).step)
        {
            h.hops[0].address = Some(t.address);
            h.hops[0].tls = Some(t);
        }
        let cdn_url = compare(
            url(),
            (vec![lookup(&[("157.240.9.9", None)])], vec![fetched]),
            (vec![lookup(&[(FB, None)])], vec![]),
        );
        assert_eq!(
            kind(&cdn_url),
            (Verdict::Ok, None),
            "{}",
            cdn_url.verdict.evidence
        );
        // Different addresses in a common ASN: consistent.
        let asn = compare(
            domain(&[]),
            (vec![lookup(&[("157.240.9.9", Some(32934))])], vec![]),
            (vec![lookup(&[(FB, Some(32934))])], vec![]),
        );
        assert_eq!(kind(&asn), (Verdict::Ok, None));
        // An address nothing vouches for: hijack.
        let lie = compare(
            domain(&[]),
            (vec![lookup(&[("93.184.216.34", Some(15133))])], vec![]),
            (vec![lookup(&[(FB, Some(32934))])], vec![]),
        );
        assert_eq!(kind(&lie), (Verdict::Blocked, Some(Blocking::DnsHijack)));
        // A bogon is never consistent, even if the control got it too.
        let bogon = compare(
            domain(&[]),
            (vec![lookup(&[("10.10.34.34", None)])], vec![]),
            (vec![lookup(&[("10.10.34.34", None)])], vec![]),
        );
        assert_eq!(kind(&bogon), (Verdict::Blocked, Some(Blocking::DnsHijack)));
    }

    #[test]
    fn dns_failures_are_blocking_only_where_the_control_resolved() {
        let nx = compare(
            domain(&[]),
            (vec![failed_lookup(Failure::DnsNxdomain)], vec![]),
            (vec![lookup(&[(FB, None)])], vec![]),
        );
        assert_eq!(kind(&nx), (Verdict::Blocked, Some(Blocking::DnsNxdomain)));
        let gone = compare(
            domain(&[]),
            (vec![failed_lookup(Failure::DnsNxdomain)], vec![]),
            (vec![failed_lookup(Failure::DnsNxdomain)], vec![]),
        );
        assert_eq!(kind(&gone), (Verdict::Down, None));
        assert!(
            gone.verdict.evidence.contains("down for everyone"),
            "{}",
            gone.verdict.evidence
        );
        let servfail = compare(
            domain(&[]),
            (vec![failed_lookup(Failure::DnsServfail)], vec![]),
            (vec![lookup(&[(FB, None)])], vec![]),
        );
        assert_eq!(
            kind(&servfail),
            (Verdict::Blocked, Some(Blocking::DnsFailure))
        );
    }

    #[test]
    fn connect_failures_compare_with_the_same_address_at_the_control() {
        let dns = || vec![lookup(&[(FB, None)])];
        let blocked = compare(
            domain(&[]),
            (dns(), vec![tcp(FB_443, Some(Failure::GenericTimeout))]),
            (dns(), vec![tcp(FB_443, None)]),
        );
        assert_eq!(
            kind(&blocked),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
        let down = compare(
            domain(&[]),
            (dns(), vec![tcp(FB_443, Some(Failure::GenericTimeout))]),
            (dns(), vec![tcp(FB_443, Some(Failure::GenericTimeout))]),
        );
        assert_eq!(kind(&down), (Verdict::Down, None));
        let reset = compare(
            domain(&[]),
            (dns(), vec![tcp(FB_443, Some(Failure::ConnectionReset))]),
            (dns(), vec![tcp(FB_443, None)]),
        );
        assert_eq!(kind(&reset), (Verdict::Blocked, Some(Blocking::TcpReset)));
        // The control has no IPv6 route: nothing to compare, nothing concluded.
        let v6 = "[2a03:2880::1]:443";
        let unknown = compare(
            domain(&[]),
            (dns(), vec![tcp(v6, Some(Failure::GenericTimeout))]),
            (dns(), vec![tcp(v6, Some(Failure::NetworkUnreachable))]),
        );
        assert_eq!(kind(&unknown), (Verdict::Inconclusive, None));
    }

    #[test]
    fn tls_failures_compare_with_the_control() {
        let dns = || vec![lookup(&[(FB, None)])];
        let ok_control = || {
            (
                dns(),
                vec![
                    tcp(FB_443, None),
                    tls(FB_443, true, None),
                    tls(FB_443, false, None),
                ],
            )
        };
        let reset = compare(
            domain(&[]),
            (
                dns(),
                vec![
                    tcp(FB_443, None),
                    tls(FB_443, true, None),
                    tls(FB_443, false, Some(Failure::ConnectionReset)),
                ],
            ),
            ok_control(),
        );
        assert_eq!(kind(&reset), (Verdict::Blocked, Some(Blocking::TlsReset)));
        let both = compare(
            domain(&[]),
            (
                dns(),
                vec![
                    tcp(FB_443, None),
                    tls(FB_443, true, None),
                    tls(FB_443, false, Some(Failure::ConnectionReset)),
                ],
            ),
            (
                dns(),
                vec![
                    tcp(FB_443, None),
                    tls(FB_443, true, None),
                    tls(FB_443, false, Some(Failure::ConnectionReset)),
                ],
            ),
        );
        assert_eq!(kind(&both), (Verdict::Down, None));
        let mitm_blocked = compare(
            domain(&[]),
            (dns(), vec![tcp(FB_443, None), mitm(FB_443)]),
            ok_control(),
        );
        assert_eq!(
            kind(&mitm_blocked),
            (Verdict::Blocked, Some(Blocking::TlsMitm))
        );
        let bad_everywhere = compare(
            domain(&[]),
            (dns(), vec![tcp(FB_443, None), mitm(FB_443)]),
            (dns(), vec![tcp(FB_443, None), mitm(FB_443)]),
        );
        assert_eq!(kind(&bad_everywhere), (Verdict::Down, None));
    }

    #[test]
    fn http_compares_pages_and_rates() {
        let dns = || vec![lookup(&[(FB, None)])];
        let page = |status, body, title: &str, ms| fetch(status, body, title, ms, None);
        let same = compare(
            url(),
            (dns(), vec![page(200, 5000, "Facebook - log in", 5.0)]),
            (dns(), vec![page(200, 5100, "Facebook - log in", 5.0)]),
        );
        assert_eq!(kind(&same), (Verdict::Ok, None));
        // A dynamic page: its length varies a lot, its title does not.
        let dynamic = compare(
            url(),
            (dns(), vec![page(200, 2000, "Facebook - log in", 5.0)]),
            (dns(), vec![page(200, 9000, "Facebook - log in", 5.0)]),
        );
        assert_eq!(kind(&dynamic), (Verdict::Ok, None));
        let other = compare(
            url(),
            (dns(), vec![page(403, 300, "Forbidden", 5.0)]),
            (dns(), vec![page(200, 9000, "Facebook - log in", 5.0)]),
        );
        assert_eq!(kind(&other), (Verdict::Blocked, Some(Blocking::HttpDiff)));
        let slow = compare(
            url(),
            (dns(), vec![page(200, 400_000, "Video", 20_000.0)]),
            (dns(), vec![page(200, 400_000, "Video", 400.0)]),
        );
        assert_eq!(kind(&slow), (Verdict::Blocked, Some(Blocking::Throttled)));
        assert!(
            slow.verdict.evidence.contains("kB/s"),
            "{}",
            slow.verdict.evidence
        );
        // Fast at the probe, only faster at the control: not throttling.
        let fast = compare(
            url(),
            (dns(), vec![page(200, 400_000, "Video", 40.0)]),
            (dns(), vec![page(200, 400_000, "Video", 1.0)]),
        );
        assert_eq!(
            kind(&fast),
            (Verdict::Ok, None),
            "{}",
            fast.verdict.evidence
        );
        // Cut off by the deadline while crawling: throttling, not a failure.
        let cut = fetch(
            200,
            150_000,
            "Video",
            10_000.0,
            Some(StepError::timeout(Operation::Read)),
        );
        let crawled = compare(
            url(),
            (dns(), vec![cut]),
            (dns(), vec![page(200, 400_000, "Video", 400.0)]),
        );
        assert_eq!(
            kind(&crawled),
            (Verdict::Blocked, Some(Blocking::Throttled))
        );
        let failed = fetch(
            0,
            0,
            "",
            0.0,
            Some(StepError::new(Operation::Read, Failure::ConnectionReset)),
        );
        let reset = compare(
            url(),
            (dns(), vec![failed.clone()]),
            (dns(), vec![page(200, 9000, "Facebook", 5.0)]),
        );
        assert_eq!(
            kind(&reset),
            (Verdict::Blocked, Some(Blocking::HttpFailure))
        );
        let down = compare(url(), (dns(), vec![failed.clone()]), (dns(), vec![failed]));
        assert_eq!(kind(&down), (Verdict::Down, None));
    }

    #[test]
    fn without_an_answer_from_the_control_only_strong_evidence_stands() {
        let dns = || vec![lookup(&[(FB, None)])];
        let weak = facts(
            &domain(&[]),
            dns(),
            vec![tcp(FB_443, Some(Failure::GenericTimeout))],
        );
        let outcome = judge_with(&weak, Control::Unavailable("connection refused"));
        assert_eq!(kind(&outcome), (Verdict::Inconclusive, None));
        assert!(
            outcome.verdict.evidence.contains("connection refused"),
            "{}",
            outcome.verdict.evidence
        );
        let strong = facts(
            &domain(&[]),
            dns(),
            vec![
                tcp(FB_443, None),
                tls(FB_443, true, None),
                tls(FB_443, false, Some(Failure::ConnectionReset)),
            ],
        );
        let outcome = judge_with(&strong, Control::Unavailable("connection refused"));
        assert_eq!(kind(&outcome), (Verdict::Anomaly, Some(Blocking::TlsReset)));
        let fine = facts(&domain(&[]), dns(), vec![tcp(FB_443, None)]);
        assert_eq!(
            kind(&judge_with(&fine, Control::Unavailable("x"))),
            (Verdict::Ok, None)
        );
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
