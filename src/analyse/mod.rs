//! Analysis: the recorded facts of a target turned into a verdict.
//!
//! Opinions live here and only here; they read `TargetFacts`, which can come from a
//! run in progress or from `measurements.jsonl` years later. Each layer has its file
//! (dns, transport for TCP and TLS, http); `explain` finds what else than a censor can
//! account for a failure (the probe's own network, a resolver failing the canary too,
//! another target's trigger); this one orders them and decides the run's "no network"
//! case.
//!
//! The rule everything here follows: a target is `blocked` only on evidence that the
//! censor, not the probe's own network or the control's, produced it. When that cannot
//! be told, the verdict is `inconclusive`, and the evidence says why.

pub mod dns;
pub mod ech;
pub mod explain;
pub mod fingerprints;
#[doc(hidden)]
pub mod fixtures;
pub mod hello;
pub mod http;
pub mod quic;
pub mod rules;
pub mod transport;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::facts::TargetFacts;
use crate::facts::failure::StepError;
use crate::facts::{Check, Measurement, QuicFacts, Step};
use crate::input::bogon::AddressPolicy;
use crate::input::targets::TargetKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

    /// The verdict's place in [`Verdict::ALL`], for tables of counts.
    pub fn index(self) -> usize {
        self as usize
    }

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

/// How a target is blocked, in docs/design.md's vocabulary. Each kind's rule in full
/// (its layer, what fires it, the function that decides it, and whether it needs the
/// control) is [`Blocking::rule`], in `rules.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blocking {
    /// DNS: a forged answer (a known blockpage address, a bogon the control did not
    /// get: proof alone), or one consistent with nothing the control knows.
    DnsHijack,
    /// DNS: NXDOMAIN where the control resolved the name.
    DnsNxdomain,
    /// DNS: SERVFAIL, REFUSED or silence from a resolver that answers the canary, where
    /// the control resolved the name.
    DnsFailure,
    /// DNS: two different answers to one query, an injector racing the resolver. Proof
    /// alone.
    DnsInjection,
    /// TCP: every try of a connect went unanswered, where the control connected.
    TcpBlackhole,
    /// TCP: the connect was reset, where the control's was not.
    TcpReset,
    /// TCP: the connect was refused, where the control's was not.
    TcpRefused,
    /// TCP: the endpoint took a connection, and after bytes that were neither TLS nor
    /// HTTP sent on it took no more (a protocol filter, Iran's), where the control
    /// connected again after the same bytes.
    ProtocolFiltered,
    /// TLS: the handshake with the target's name reset while the control name went
    /// through to the same address; `blocked` where the control's handshake worked, a
    /// sign (`anomaly`) where the control could not say.
    TlsReset,
    /// TLS: the same, the handshake stalling.
    TlsTimeout,
    /// TLS: a certificate not valid for the name, where the control's was (a sign
    /// where the control could not say).
    TlsMitm,
    /// TLS: any other handshake failure, where the control's handshake worked.
    TlsFailure,
    /// TLS: an HTTPS transfer that stopped dead (no reset, no FIN) after full-size
    /// packets had passed, where the control read the whole body: a freeze, by address
    /// (Russia's of foreign hosting since 2025) when the control-SNI twins from the same
    /// address froze too, by name when one read on and the name froze again.
    TlsStall,
    /// TLS: the probe's own ClientHello blocked, not the site: handshakes with the
    /// default ClientHello failed with the target's name and with the control name to
    /// the same address, and another ClientHello passed with both. Never `blocked`: an
    /// `anomaly` at most, since the site answered another ClientHello.
    TlsFingerprint,
    /// TLS: handshakes offering ECH reset or stalled, every one, while the same without
    /// ECH (same name, same address, in random order with them) went through, where the
    /// control's with ECH went through; a sign where the control could not say.
    EchBlocked,
    /// HTTP: a known blockpage. Proof alone, unless served over a valid session for
    /// the name (then the site's own answer).
    HttpBlockpage,
    /// HTTP: a page unlike the control's, over plain HTTP.
    HttpDiff,
    /// HTTP: the fetch failed where the control's worked.
    HttpFailure,
    /// HTTP: capped far below the control's rate and below the same address's with the
    /// control SNI, and still capped with its own name again, moving until the end; a
    /// body stalled with no twin to compare, recorded without its silence, is a sign
    /// only.
    Throttled,
    /// QUIC: handshakes over UDP got no answer where TCP+TLS with the same name to the
    /// same address was answered: by name where the control name's QUIC handshake there
    /// was answered, by address where only the control's QUIC handshakes were.
    QuicBlocked,
}

impl Blocking {
    pub const COUNT: usize = 20;
    const NAMES: [(Blocking, &'static str); Blocking::COUNT] = [
        (Blocking::DnsHijack, "dns-hijack"),
        (Blocking::DnsNxdomain, "dns-nxdomain"),
        (Blocking::DnsFailure, "dns-failure"),
        (Blocking::DnsInjection, "dns-injection"),
        (Blocking::TcpBlackhole, "tcp-blackhole"),
        (Blocking::TcpReset, "tcp-reset"),
        (Blocking::TcpRefused, "tcp-refused"),
        (Blocking::ProtocolFiltered, "protocol-filtered"),
        (Blocking::TlsReset, "tls-reset"),
        (Blocking::TlsTimeout, "tls-timeout"),
        (Blocking::TlsMitm, "tls-mitm"),
        (Blocking::TlsFailure, "tls-failure"),
        (Blocking::TlsStall, "tls-stall"),
        (Blocking::TlsFingerprint, "tls-fingerprint"),
        (Blocking::EchBlocked, "ech-blocked"),
        (Blocking::HttpBlockpage, "http-blockpage"),
        (Blocking::HttpDiff, "http-diff"),
        (Blocking::HttpFailure, "http-failure"),
        (Blocking::Throttled, "throttled"),
        (Blocking::QuicBlocked, "quic-blocked"),
    ];

    /// Every kind, in docs/design.md's order.
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

/// Where on the path a kind of blocking works, as a report groups them: which layer a
/// censor's equipment acts on tells a researcher what it must look like (a DNS forger,
/// an address filter, SNI-reading DPI, an HTTP proxy, a shaper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Technique {
    Dns,
    /// TCP and IP: addresses and ports, and protocol filters on the first bytes.
    Tcp,
    /// The TLS or QUIC handshake: SNI, certificates, ECH, ClientHello fingerprints.
    Tls,
    Http,
    /// Transfers slowed or frozen once they began.
    Throttling,
}

impl Technique {
    pub const ALL: [Technique; 5] = [
        Technique::Dns,
        Technique::Tcp,
        Technique::Tls,
        Technique::Http,
        Technique::Throttling,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Technique::Dns => "DNS",
            Technique::Tcp => "TCP/IP",
            Technique::Tls => "TLS",
            Technique::Http => "HTTP",
            Technique::Throttling => "throttling",
        }
    }

    /// The technique's place in [`Technique::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl Blocking {
    pub fn technique(self) -> Technique {
        use Blocking::*;
        match self {
            DnsHijack | DnsNxdomain | DnsFailure | DnsInjection => Technique::Dns,
            TcpBlackhole | TcpReset | TcpRefused | ProtocolFiltered => Technique::Tcp,
            TlsReset | TlsTimeout | TlsMitm | TlsFailure | TlsFingerprint | EchBlocked
            | QuicBlocked => Technique::Tls,
            HttpBlockpage | HttpDiff | HttpFailure => Technique::Http,
            TlsStall | Throttled => Technique::Throttling,
        }
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
    /// Whether a control's facts for the target were there to judge it against (the
    /// `controlled` column): a verdict made without them rests on the probe's facts
    /// alone, and a researcher weighs it so.
    pub controlled: bool,
}

/// What analysis needs besides the facts. An export carries it (see
/// `output::ooni`), so that an import judges as the run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Context {
    pub policy: AddressPolicy,
    /// What the canary's lookups said of each resolver (empty when unknown).
    pub resolvers: explain::ResolverHealth,
    /// Whether the probe reached the canary over IPv6: its IPv6 works, and a target's
    /// IPv6 address it cannot reach is evidence like any other.
    pub ipv6: bool,
    /// What the probe's QUIC handshakes to the canary got: an answer (QUIC works from
    /// the probe's network, and an address whose QUIC it cannot reach is evidence), none
    /// (`Some(false)`), or none was made (`None`: no QUIC asked for, no canary, or the
    /// canary not reached over TCP+TLS).
    pub quic: Option<bool>,
    /// The run's deadline for a step (`--timeout`), when known: what a slow step is
    /// measured against.
    #[serde(with = "seconds")]
    pub deadline: Option<std::time::Duration>,
    /// How the canary's own steps failed: the same failure at a target is the probe's
    /// network's (see `explain::like_the_canary`).
    pub canary_failed: Vec<explain::CanaryFailure>,
    /// What intercepts the probe's own TLS connections, as the canary's handshakes met
    /// it (see `explain::intercepted_like_the_canary`).
    pub canary_intercepted: Option<explain::Interceptor>,
    /// Over which families the canary's TLS could not be reached (see
    /// `explain::page_where_the_canary_failed`).
    pub canary_unreached: Vec<explain::CanaryUnreached>,
    /// Whether the canary's handshakes offering ECH were torn down where those without
    /// it went through (see `ech::canary`).
    pub canary_ech_torn_down: bool,
}

impl Context {
    /// Takes in what the canary's measurements say of the probe's network.
    pub fn learn_from_canary(&mut self, canary: &TargetFacts) {
        self.resolvers = explain::ResolverHealth::of(&canary.dns);
        self.ipv6 = transport::reached_over(canary, true);
        self.quic = quic::canary(canary);
        self.canary_failed = explain::CanaryFailure::of(canary);
        self.canary_intercepted = explain::Interceptor::of(canary);
        self.canary_unreached = explain::CanaryUnreached::of(canary);
        self.canary_ech_torn_down = ech::canary(canary);
    }

    /// The context to judge `facts` in: this one, but for a canary, what its own
    /// measurements say of the network (the same as a run learns from it; an imported
    /// canary's run is not the run that holds it).
    pub fn for_target(&self, facts: &TargetFacts) -> std::borrow::Cow<'_, Context> {
        match facts.target.is_canary() {
            true => {
                let mut context = self.clone();
                context.learn_from_canary(facts);
                std::borrow::Cow::Owned(context)
            }
            false => std::borrow::Cow::Borrowed(self),
        }
    }
}

/// A deadline written as seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let secs = Option::<f64>::deserialize(d)?;
        secs.map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
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

impl ControlSaw {
    /// The control's step that failed with `e` and was checked by `check`: not measured
    /// where the control's own machine or network explains the failure (see
    /// `explain::at_control`), else a failure, which `said` tells.
    pub fn failed(e: Option<&StepError>, check: Option<&Check>, said: String) -> ControlSaw {
        match e.and_then(|e| explain::at_control(e, check)) {
            Some(why) => ControlSaw::NotMeasured(why),
            None => ControlSaw::Failure(said),
        }
    }
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
    /// What accounts for the failure other than interference with this target (see
    /// `explain`): the problem can then make the verdict `inconclusive`, no more.
    pub explained: Option<String>,
    /// False for a difference no censor made (a CDN's challenge page): `anomaly` at
    /// most, with no blocking kind.
    pub interference: bool,
}

impl Problem {
    /// Evidence no control can overturn.
    fn proven(finding: Finding) -> Problem {
        Problem::strong(finding, None)
    }

    fn strong(finding: Finding, control: Option<ControlSaw>) -> Problem {
        Problem {
            finding,
            strong: true,
            control,
            explained: None,
            interference: true,
        }
    }

    fn weak(finding: Finding, control: Option<ControlSaw>) -> Problem {
        Problem {
            strong: false,
            ..Problem::strong(finding, control)
        }
    }

    /// A failure that something else than interference accounts for.
    fn explained(finding: Finding, why: String) -> Problem {
        Problem {
            explained: Some(why),
            ..Problem::weak(finding, None)
        }
    }

    /// A difference that is not interference (see `interference`).
    fn not_interference(finding: Finding, control: Option<ControlSaw>) -> Problem {
        Problem {
            interference: false,
            ..Problem::weak(finding, control)
        }
    }

    /// The problem, or, when `why` says something else accounts for it, that.
    fn unless(self, why: Option<String>) -> Problem {
        match why {
            Some(why) => Problem::explained(self.finding, why),
            None => self,
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
        _ => dns::problems(probe, control, context),
    };
    match probe.target.kind {
        TargetKind::Url(_) => out.extend(http::problems(probe, control, context)),
        _ => out.extend(transport::problems(probe, control, context)),
    }
    out.extend(ech::problems(probe, control, context));
    // Last: a browser falls back from QUIC to TCP, so a block of TCP or TLS is the one
    // that users meet, and the finding that counts.
    out.extend(quic::problems(probe, control, context));
    out
}

/// Judges a target.
///
/// Problems that something else accounts for (`Problem::explained`) count only when
/// nothing else does, and then for `inconclusive`. Of the others:
/// - Without a control: `anomaly` with the first problem, `ok` without any.
/// - With a control that could not be asked: `anomaly` on strong evidence,
///   `inconclusive` on a mere failure, `ok` when nothing failed.
/// - With the control's facts: `blocked` on evidence no control can overturn, or where
///   the probe failed a step the control passed; `down` where the control failed the
///   same step and could not reach the target at all (a step that failed at both while
///   the control reached the target otherwise, a missing AAAA record say, is no
///   problem of the target's); `inconclusive` where the control did not measure it.
pub fn judge(facts: &TargetFacts, control: Control<'_>, context: &Context) -> Outcome {
    let measured = match control {
        Control::Measured(c) => Some(c),
        _ => None,
    };
    let controlled = measured.is_some();
    let problems = problems(facts, measured, context);
    let (unexplained, explained): (Vec<Problem>, Vec<Problem>) =
        problems.into_iter().partition(|p| p.explained.is_none());
    let decision = match control {
        Control::None => unexplained
            .first()
            .map(|p| Decision::of(Verdict::Anomaly, p)),
        Control::Unavailable(why) => {
            match unexplained
                .iter()
                .find(|p| p.strong)
                .or(unexplained.first())
            {
                Some(p) if p.strong => Some(Decision::of(Verdict::Anomaly, p)),
                Some(p) => Some(Decision::with(
                    Verdict::Inconclusive,
                    p,
                    &format!("the control could not confirm it: {why}"),
                )),
                None => None,
            }
        }
        Control::Measured(theirs) => decide(&unexplained, reached_target(theirs)),
    };
    let decision = decision.or_else(|| {
        explained.first().map(|p| Decision {
            verdict: Verdict::Inconclusive,
            problem: p,
            evidence: p.explained.clone().unwrap_or_default(),
        })
    });
    let reached = reached(&facts.measurements);
    // Nothing went wrong, and nothing got through either (every failure was left out,
    // as an IPv6 address without a route is): no ground for `ok`.
    if decision.is_none() && !reached {
        return Outcome {
            verdict: TargetVerdict {
                service: facts.target.service.to_string(),
                target: facts.target.to_string(),
                verdict: Verdict::Inconclusive,
                blocking: None,
                evidence:
                    "nothing got through to the target, and no failure was evidence either way"
                        .into(),
                controlled,
            },
            reached,
        };
    }
    let (verdict, blocking, evidence) = match decision {
        Some(d) => {
            let flagged = matches!(d.verdict, Verdict::Blocked | Verdict::Anomaly);
            let kind = (flagged && d.problem.interference).then_some(d.problem.finding.blocking);
            (d.verdict, kind, d.evidence)
        }
        None => match explain::connects_only(&facts.measurements, &context.canary_failed) {
            Some(why) => (Verdict::Inconclusive, None, why),
            None => (
                Verdict::Ok,
                None,
                ok_evidence(&facts.measurements, &unexplained),
            ),
        },
    };
    Outcome {
        verdict: TargetVerdict {
            service: facts.target.service.to_string(),
            target: facts.target.to_string(),
            verdict,
            blocking,
            evidence,
            controlled,
        },
        reached,
    }
}

/// A verdict, the problem it rests on, and the evidence to write.
struct Decision<'a> {
    verdict: Verdict,
    problem: &'a Problem,
    evidence: String,
}

impl<'a> Decision<'a> {
    fn of(verdict: Verdict, problem: &'a Problem) -> Decision<'a> {
        Decision {
            verdict,
            problem,
            evidence: problem.finding.evidence.clone(),
        }
    }

    /// The problem's evidence, and what else was seen.
    fn with(verdict: Verdict, problem: &'a Problem, said: &str) -> Decision<'a> {
        Decision {
            verdict,
            problem,
            evidence: format!("{}; {said}", problem.finding.evidence),
        }
    }
}

/// The verdict from problems compared with the control: the first blocking problem
/// wins; then strong evidence the control did not cover, and differences no censor
/// made; then an outage, if the control could not reach the target; then what could not
/// be compared. None: nothing the target did wrong (`ok`).
fn decide(problems: &[Problem], control_reached: bool) -> Option<Decision<'_>> {
    let interference = || problems.iter().filter(|p| p.interference);
    for p in interference() {
        match &p.control {
            Some(ControlSaw::Success(said)) => {
                return Some(Decision::with(Verdict::Blocked, p, said));
            }
            None => return Some(Decision::of(Verdict::Blocked, p)),
            _ => {}
        }
    }
    let unmeasured = |p: &&Problem| matches!(p.control, Some(ControlSaw::NotMeasured(_)));
    if let Some(p) = interference().filter(unmeasured).find(|p| p.strong) {
        return Some(Decision::of(Verdict::Anomaly, p));
    }
    if let Some(p) = problems.iter().find(|p| !p.interference) {
        return Some(Decision::of(Verdict::Anomaly, p));
    }
    let down = problems.iter().find_map(|p| match &p.control {
        Some(ControlSaw::Failure(said)) if !control_reached => Some((p, said)),
        _ => None,
    });
    if let Some((p, said)) = down {
        return Some(Decision {
            verdict: Verdict::Down,
            problem: p,
            evidence: format!("down for everyone: {}; {said}", p.finding.evidence),
        });
    }
    problems.iter().find_map(|p| match &p.control {
        Some(ControlSaw::NotMeasured(said)) => Some(Decision::with(Verdict::Inconclusive, p, said)),
        _ => None,
    })
}

/// Whether the control got through to the target itself, as a user would: a page that
/// is not a server error for a URL; for a domain, a handshake with its name and a
/// certificate that vouches for it on a TLS port (a connect, if it has none); for an
/// endpoint, a connect.
/// A step that failed at both while this holds (a missing AAAA record, one dead address
/// of several) says nothing of the target; when it does not hold, the target is down.
fn reached_target(control: &TargetFacts) -> bool {
    let steps = || control.measurements.iter().map(|m| &m.step);
    match &control.target.kind {
        TargetKind::Url(_) => steps().any(|step| match step {
            Step::Http(h) if h.control_sni.is_none() => h
                .final_response()
                .and_then(|r| r.status)
                .is_some_and(|status| status < 500),
            _ => false,
        }),
        TargetKind::Domain(_) if !control.target.tls_ports.is_empty() => {
            steps().any(|step| match step {
                Step::TlsHandshake(t) => !t.control_sni && t.vouches_for_name(),
                _ => false,
            })
        }
        _ => steps().any(|step| matches!(step, Step::TcpConnect(t) if t.error.is_none())),
    }
}

/// Judges a target from the probe's facts alone.
pub fn probe_only(facts: &TargetFacts, context: &Context) -> Outcome {
    judge(facts, Control::None, context)
}

/// Whether a target's outcome shows the probe has a network: it reached the target,
/// or the control answered, which stands outside the probe's network and answered
/// through it. A run none of whose targets shows one has no network (`no_network`).
pub fn shows_network(outcome: &Outcome, control_answered: bool) -> bool {
    outcome.reached || control_answered
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
        Step::TlsHandshake(t) | Step::QuicHandshake(QuicFacts { handshake: t, .. }) => {
            t.server_answered()
        }
        Step::Http(h) => h.hops.iter().any(|hop| hop.status.is_some()),
        Step::Ech(f) => f.handshakes.iter().any(|h| h.handshake_done),
        Step::Dns(_) => false,
    })
}

/// One sentence of what succeeded, and of the steps that failed at both vantage points
/// while the target was reached all the same.
fn ok_evidence(measurements: &[Measurement], shared: &[Problem]) -> String {
    let reached = reached_evidence(measurements);
    match shared.first() {
        Some(p) => format!(
            "{reached}; {} at both vantage points, which says nothing of the target",
            p.finding.evidence
        ),
        None => reached,
    }
}

fn reached_evidence(measurements: &[Measurement]) -> String {
    let (mut tcp, mut tls, mut http) = (0, 0, None);
    for m in measurements {
        match &m.step {
            Step::TcpConnect(t) if t.error.is_none() => tcp += 1,
            Step::TlsHandshake(t) if t.handshake_done && !t.control_sni => tls += 1,
            Step::Http(h) if h.control_sni.is_none() => {
                http = h.final_response().and_then(|r| r.status)
            }
            _ => {}
        }
    }
    match http {
        Some(status) => format!("fetched with HTTP status {status}, no sign of interference"),
        None if tls > 0 => format!(
            "{} and {} with valid certificates succeeded",
            counted(tcp, "TCP connect", "TCP connects"),
            counted(tls, "TLS handshake", "TLS handshakes")
        ),
        None => format!("{} succeeded", counted(tcp, "TCP connect", "TCP connects")),
    }
}

/// "1 run", "2 runs": a count with its noun, singular or plural.
pub fn counted(n: usize, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::{Blocking, Context, Control, Verdict, no_network};
    use crate::facts::Step;
    use crate::facts::failure::{Failure, Operation, StepError};

    #[test]
    fn index_is_the_place_in_all() {
        for (i, verdict) in Verdict::ALL.into_iter().enumerate() {
            assert_eq!(verdict.index(), i, "{verdict:?}");
        }
        for (i, technique) in super::Technique::ALL.into_iter().enumerate() {
            assert_eq!(technique.index(), i, "{technique:?}");
        }
    }

    #[test]
    fn blocking_names_round_trip() {
        for (kind, name) in Blocking::NAMES {
            assert_eq!(kind.to_string(), name);
            assert_eq!(name.parse::<Blocking>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        }
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
        // An ISP-hosted cache of the service's, in the ISP's AS, vouched for by a valid
        // TLS session for the name.
        let cache = judge(
            domain(&[32934]),
            vec![lookup(&[("93.184.216.34", Some(15133))])],
            vec![
                tcp("93.184.216.34:443", None),
                tls("93.184.216.34:443", false, None),
            ],
        );
        assert_eq!(kind(&cache), (Verdict::Ok, None));
        // Without an ASN database the answers carry no ASN, and nothing is concluded.
        let unknown = judge(
            domain(&[32934]),
            vec![lookup(&[("93.184.216.34", None)])],
            vec![tcp("93.184.216.34:443", None)],
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
        // IPv6 routed but going nowhere, while IPv4 reached the target: broken IPv6.
        let six = "[2a03:2880::1]:443";
        let broken = compare(
            domain(&[]),
            (
                vec![lookup(&[(FB, None)])],
                vec![tcp(FB_443, None), tcp(six, Some(Failure::GenericTimeout))],
            ),
            (
                vec![lookup(&[(FB, None)])],
                vec![tcp(FB_443, None), tcp(six, None)],
            ),
        );
        assert_eq!(kind(&broken), (Verdict::Ok, None));
        // The same where the probe reached the canary over IPv6: its IPv6 works, and the
        // target's address it could not reach is evidence.
        let works = Context {
            ipv6: true,
            ..Context::default()
        };
        let singled = compare_in(
            &works,
            domain(&[]),
            (
                vec![lookup(&[(FB, None)])],
                vec![tcp(FB_443, None), tcp(six, Some(Failure::GenericTimeout))],
            ),
            (
                vec![lookup(&[(FB, None)])],
                vec![tcp(FB_443, None), tcp(six, None)],
            ),
        );
        assert_eq!(
            kind(&singled),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
        // One IPv6 address reached and another not: that one is evidence.
        let other = "[2a03:2880::2]:443";
        let partial = compare(
            domain(&[]),
            (
                vec![lookup(&[(FB, None)])],
                vec![
                    tcp(FB_443, None),
                    tcp(six, None),
                    tcp(other, Some(Failure::GenericTimeout)),
                ],
            ),
            (
                vec![lookup(&[(FB, None)])],
                vec![tcp(FB_443, None), tcp(six, None), tcp(other, None)],
            ),
        );
        assert_eq!(
            kind(&partial),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
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
        // The control name's handshake right after took most of the 3 s deadline (a
        // saturated link): the name's may have run out of time on the same path.
        let slow_after = |handshake_ms| {
            let mut after = at(tls(a, true, None), 5);
            if let Step::TlsHandshake(t) = &mut after.step {
                t.handshake_ms = Some(handshake_ms);
            }
            let context = Context {
                deadline: Some(std::time::Duration::from_secs(3)),
                ..Context::default()
            };
            let steps = vec![
                tcp(a, None),
                tls(a, true, None),
                tls(a, false, Some(Failure::GenericTimeout)),
                after,
            ];
            let probe = facts(&domain(&[]), vec![lookup(&[("157.240.1.35", None)])], steps);
            super::judge(&probe, Control::None, &context)
        };
        let slow = slow_after(2_400.0);
        assert_eq!(kind(&slow), (Verdict::Inconclusive, None));
        evidence_of(
            &slow,
            &[
                "right after took 2400 ms, half the deadline of 3000 ms or more: the path was slow for any name then",
            ],
        );
        let quick = slow_after(80.0);
        assert_eq!(kind(&quick), (Verdict::Anomaly, Some(Blocking::TlsTimeout)));
    }

    #[test]
    fn a_name_is_singled_out_only_while_the_address_still_answers_the_control_name() {
        // The control-SNI handshake made right after the target's failed, with `failure`
        // at `operation`.
        let after = |failure: Option<Failure>, operation: Operation| {
            let mut m = at(tls(FB_443, true, failure), 5);
            if let Step::TlsHandshake(t) = &mut m.step
                && let Some(e) = &mut t.error
            {
                e.failed_operation = operation;
            }
            m
        };
        let with_after = |m: crate::facts::Measurement| {
            judge(
                domain(&[]),
                vec![lookup(&[(FB, None)])],
                vec![
                    tcp(FB_443, None),
                    at(tls(FB_443, true, None), -5),
                    tls(FB_443, false, Some(Failure::ConnectionReset)),
                    m,
                ],
            )
        };
        let answered = with_after(after(None, Operation::TlsHandshake));
        assert_eq!(
            kind(&answered),
            (Verdict::Anomaly, Some(Blocking::TlsReset))
        );
        assert!(answered.verdict.evidence.contains("before and right after"));
        // The address stopped taking connections: a residual block the name set off.
        let silenced = with_after(after(Some(Failure::GenericTimeout), Operation::Connect));
        assert_eq!(
            kind(&silenced),
            (Verdict::Anomaly, Some(Blocking::TlsReset))
        );
        // The server stopped doing TLS with any name: nothing singles the name out.
        let broken = with_after(after(
            Some(Failure::ConnectionReset),
            Operation::TlsHandshake,
        ));
        assert_eq!(
            kind(&broken),
            (Verdict::Anomaly, Some(Blocking::TlsFailure))
        );
        assert!(!broken.verdict.evidence.contains("control name"));
    }

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
            (
                vec![lookup(&[("157.240.9.9", Some(32934))])],
                vec![tcp("157.240.9.9:443", None)],
            ),
            (vec![lookup(&[(FB, Some(32934))])], vec![]),
        );
        assert_eq!(kind(&asn), (Verdict::Ok, None));
        // Nothing failed, and nothing was reached either: no ground for ok.
        let unreached = compare(
            domain(&[]),
            (vec![lookup(&[("157.240.9.9", Some(32934))])], vec![]),
            (vec![lookup(&[(FB, Some(32934))])], vec![]),
        );
        assert_eq!(kind(&unreached), (Verdict::Inconclusive, None));
        // An address nothing vouches for: hijack.
        let lie = compare(
            domain(&[]),
            (vec![lookup(&[("93.184.216.34", Some(15133))])], vec![]),
            (vec![lookup(&[(FB, Some(32934))])], vec![]),
        );
        assert_eq!(kind(&lie), (Verdict::Blocked, Some(Blocking::DnsHijack)));
        // Its connect timed out, the canary answered: a hijack leading nowhere.
        let nowhere = |meanwhile| {
            let mut m = checked(
                tcp("93.184.216.34:443", Some(Failure::GenericTimeout)),
                None,
            );
            if let Step::TcpConnect(t) = &mut m.step {
                t.check.as_mut().unwrap().meanwhile = meanwhile;
            }
            compare(
                domain(&[]),
                (vec![lookup(&[("93.184.216.34", Some(15133))])], vec![m]),
                (vec![lookup(&[(FB, Some(32934))])], vec![tcp(FB_443, None)]),
            )
        };
        let led_nowhere = nowhere(None);
        assert_eq!(
            kind(&led_nowhere),
            (Verdict::Blocked, Some(Blocking::DnsHijack))
        );
        // The probe's network failing most new connections then (a full NAT table): the
        // answer, a CDN's other node as well as a censor's, was never put to the test.
        let failing = nowhere(Some(crate::facts::Meanwhile {
            answered: 30,
            tries: 90,
            ..Default::default()
        }));
        assert_eq!(kind(&failing), (Verdict::Inconclusive, None));
        evidence_of(
            &failing,
            &[
                "the probe could not try the answer: the connection to 93.184.216.34:443 failed (generic_timeout_error) while the probe's network was failing new connections",
            ],
        );
        // A plain-HTTP page from the address just like the control's: the site's.
        let mut served = fetch(200, 5000, "Facebook", 5.0, None);
        if let Step::Http(h) = &mut served.step {
            h.hops[0].address = Some("93.184.216.34:443".parse().unwrap());
        }
        let theirs = || {
            (
                vec![lookup(&[(FB, None)])],
                vec![fetch(200, 5100, "Facebook", 5.0, None)],
            )
        };
        let page_vouched = compare(
            url(),
            (vec![lookup(&[("93.184.216.34", None)])], vec![served]),
            theirs(),
        );
        assert_eq!(
            kind(&page_vouched),
            (Verdict::Ok, None),
            "{}",
            page_vouched.verdict.evidence
        );
        // An AAAA answer the probe could try on no IPv6 address: not judged.
        let aaaa = |ip: &str| {
            let mut m = lookup(&[(ip, None)]);
            if let Step::Dns(d) = &mut m.step {
                d.query_type = crate::facts::QueryType::Aaaa;
            }
            m
        };
        let untried = compare(
            domain(&[]),
            (
                vec![lookup(&[(FB, None)]), aaaa("2a01:4f8::1")],
                vec![tcp(FB_443, None)],
            ),
            (
                vec![lookup(&[(FB, None)]), aaaa("2a03:2880::1")],
                vec![tcp(FB_443, None)],
            ),
        );
        assert_eq!(
            kind(&untried),
            (Verdict::Ok, None),
            "{}",
            untried.verdict.evidence
        );
        // A known blockpage address is never consistent, even if the control got it
        // too (a censor's poison leaks into resolvers abroad).
        let bogon = compare(
            domain(&[]),
            (vec![lookup(&[("10.10.34.34", None)])], vec![]),
            (vec![lookup(&[("10.10.34.34", None)])], vec![]),
        );
        assert_eq!(kind(&bogon), (Verdict::Blocked, Some(Blocking::DnsHijack)));
        // A bogon the control got too is the site's own record: broken for everyone.
        let own = compare(
            domain(&[]),
            (vec![lookup(&[("127.0.0.1", None)])], vec![]),
            (vec![lookup(&[("127.0.0.1", None)])], vec![]),
        );
        assert_ne!(kind(&own).0, Verdict::Blocked, "{}", own.verdict.evidence);
        let alone = compare(
            domain(&[]),
            (vec![lookup(&[("127.0.0.1", None)])], vec![]),
            (vec![lookup(&[(FB, None)])], vec![]),
        );
        assert_eq!(kind(&alone), (Verdict::Blocked, Some(Blocking::DnsHijack)));
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
        // One of the site's addresses shows everyone a certificate for another name (a
        // default host), the other its own: the site's fault there, not an interceptor's.
        const OTHER: &str = "157.240.1.36:443";
        let one_bad = |bad: crate::facts::Measurement| {
            (
                vec![lookup(&[(FB, None), ("157.240.1.36", None)])],
                vec![
                    tcp(FB_443, None),
                    tls(FB_443, false, None),
                    tcp(OTHER, None),
                    bad,
                ],
            )
        };
        let default_host = || issued_by(mitm(OTHER), "CN=Default Host");
        let site_bad = compare(
            domain(&[]),
            one_bad(default_host()),
            one_bad(default_host()),
        );
        assert_eq!(kind(&site_bad), (Verdict::Ok, None));
        // Another certificate there than the one the control refused: another party's.
        let other_party = compare(
            domain(&[]),
            one_bad(issued_by(mitm(OTHER), "CN=Ministry CA")),
            one_bad(default_host()),
        );
        assert_eq!(
            kind(&other_party),
            (Verdict::Blocked, Some(Blocking::TlsMitm))
        );
        // Where the control was shown a valid one at that address, the probe's was
        // another's.
        let intercepted = compare(
            domain(&[]),
            one_bad(mitm(OTHER)),
            one_bad(tls(OTHER, false, None)),
        );
        assert_eq!(
            kind(&intercepted),
            (Verdict::Blocked, Some(Blocking::TlsMitm))
        );
    }

    #[test]
    fn a_certificate_refused_for_its_dates_alone_is_no_interception() {
        let dns = || vec![lookup(&[(FB, None)])];
        let probe = |only_dates| {
            (
                dns(),
                vec![tcp(FB_443, None), out_of_date(FB_443, "aa", only_dates)],
            )
        };
        let control = |tls| (dns(), vec![tcp(FB_443, None), tls]);
        let dates = "refused for its dates alone (valid from Jan  1 00:00:00 2026 +00:00 to Apr  1 00:00:00 2026 +00:00), by the probe's clock at";
        // The control accepted the same certificate, or another for the name: a clock
        // is off (the probe's, as a rule), and the probe learnt nothing of the target.
        let mut same = out_of_date(FB_443, "aa", true);
        if let Step::TlsHandshake(t) = &mut same.step {
            t.error = None;
            t.valid_but_for_dates = false;
        }
        for (theirs, said) in [
            (same, "the control accepted the same certificate"),
            (
                tls(FB_443, false, None),
                "the control accepted another certificate for the name",
            ),
            (
                out_of_date(FB_443, "aa", true),
                "the site's certificate is out of date",
            ),
        ] {
            let outcome = compare(domain(&[]), probe(true), control(theirs));
            assert_eq!(kind(&outcome), (Verdict::Inconclusive, None), "{said}");
            evidence_of(
                &outcome,
                &[dates, said, "an interceptor's would fail on them"],
            );
        }
        let alone = judge(domain(&[]), dns(), probe(true).1);
        assert_eq!(kind(&alone), (Verdict::Inconclusive, None));
        evidence_of(&alone, &[dates]);
        // A URL's fetch stopped at such a handshake the same.
        let page = || {
            let theirs = over_valid_tls(fetch(200, 4_000, "Facebook", 40.0, None));
            (dns(), vec![theirs])
        };
        let fetched = |only_dates| {
            let stopped =
                fetched_out_of_date(fetch(200, 4_000, "Facebook", 40.0, None), "aa", only_dates);
            compare(url(), (dns(), vec![stopped]), page())
        };
        let url_dated = fetched(true);
        assert_eq!(kind(&url_dated), (Verdict::Inconclusive, None));
        evidence_of(&url_dated, &[dates, "the control accepted"]);
        // Out of date and wrong besides (an unknown issuer, another name): what an
        // interceptor shows, whatever its dates.
        assert_eq!(
            kind(&compare(
                domain(&[]),
                probe(false),
                control(tls(FB_443, false, None))
            )),
            (Verdict::Blocked, Some(Blocking::TlsMitm))
        );
        assert_eq!(
            kind(&fetched(false)),
            (Verdict::Blocked, Some(Blocking::TlsMitm))
        );
    }

    #[test]
    fn a_resolver_that_answers_the_canary_alike_is_the_probes_own_network() {
        // A captive portal's resolver answers every name, the canary's too, with its
        // own address.
        let context = canary_context(vec![lookup(&[("10.10.10.10", None)])], Vec::new());
        let control = || (vec![lookup(&[(FB, None)])], vec![tcp(FB_443, None)]);
        let judged = |answer: &str| {
            let ours = vec![lookup(&[(answer, None)])];
            compare_in(&context, domain(&[]), (ours, Vec::new()), control())
        };
        inconclusive_saying(
            &judged("10.10.10.10"),
            &["answered 10.10.10.10 for facebook.com as it answered the canary"],
        );
        // A public address the control did not get, the same: the portal's.
        let public = canary_context(vec![lookup(&[("192.0.9.9", None)])], Vec::new());
        let ours = vec![lookup(&[("192.0.9.9", None)])];
        let outcome = compare_in(&public, domain(&[]), (ours, Vec::new()), control());
        inconclusive_saying(&outcome, &[]);
        // Another private address than the canary's, the same: a resolver that answers
        // the canary with one of its own (here a proxy's fake-IP DNS, an address of
        // 198.18.0.0/15 for each name) gives no evidence with such answers.
        inconclusive_saying(
            &judged("10.0.0.1"),
            &[
                "and the canary, which nothing blocks, with 10.10.10.10, a private or reserved address too",
            ],
        );
        let fake_ip = canary_context(vec![lookup(&[("198.18.0.3", None)])], Vec::new());
        let ours = vec![lookup(&[("198.18.0.7", None)])];
        let outcome = compare_in(&fake_ip, domain(&[]), (ours, Vec::new()), control());
        inconclusive_saying(&outcome, &["fake-IP"]);
        // A known blockpage's address stands as evidence, as does a private address
        // where the canary got its own.
        assert_eq!(
            kind(&judged("10.10.34.34")),
            (Verdict::Blocked, Some(Blocking::DnsHijack))
        );
        let honest = canary_context(vec![lookup(&[("192.0.9.9", None)])], Vec::new());
        let ours = vec![lookup(&[("10.0.0.1", None)])];
        let outcome = compare_in(&honest, domain(&[]), (ours, Vec::new()), control());
        assert_eq!(
            kind(&outcome),
            (Verdict::Blocked, Some(Blocking::DnsHijack))
        );
    }

    #[test]
    fn an_interceptor_of_the_canarys_tls_too_is_the_probes_own_network() {
        let dns = || vec![lookup(&[(FB, None)])];
        let office = "CN=Office Proxy CA";
        let shown = |issuer| vec![tcp(FB_443, None), issued_by(mitm(FB_443), issuer)];
        let context = canary_context(dns(), shown(office));
        let control = || (dns(), vec![tcp(FB_443, None), tls(FB_443, false, None)]);
        let judged = |issuer| compare_in(&context, domain(&[]), (dns(), shown(issuer)), control());
        inconclusive_saying(
            &judged(office),
            &["is from CN=Office Proxy CA, an authority no one trusts, as the canary's was"],
        );
        // Another issuer than the canary's interceptor: a block of the target.
        assert_eq!(
            kind(&judged("CN=Ministry CA")),
            (Verdict::Blocked, Some(Blocking::TlsMitm))
        );
        // A URL's fetch over such a handshake, the same.
        let fetched = |issuer| {
            let page = || fetch(200, 4_000, "Facebook", 40.0, None);
            let m = issued_by(
                fetched_refused(page(), Failure::SslUnknownAuthority),
                issuer,
            );
            compare_in(
                &context,
                url(),
                (dns(), vec![m]),
                (dns(), vec![over_valid_tls(page())]),
            )
        };
        inconclusive_saying(&fetched(office), &[]);
        assert_eq!(
            kind(&fetched("CN=Ministry CA")),
            (Verdict::Blocked, Some(Blocking::TlsMitm))
        );
    }

    #[test]
    fn a_portals_certificate_shown_for_the_canary_too_is_the_probes_own_network() {
        let dns = || vec![lookup(&[(FB, None)])];
        // A captive portal's own certificate, valid for its name alone, shown to every
        // connection on port 443 (the canary's too).
        let shown = |leaf| {
            let mut m = issued_by(mitm(FB_443), leaf);
            if let Step::TlsHandshake(t) = &mut m.step {
                t.error = Some(StepError::new(
                    Operation::TlsHandshake,
                    Failure::SslInvalidHostname,
                ));
            }
            vec![tcp(FB_443, None), m]
        };
        let context = canary_context(dns(), shown("CN=Portal"));
        let control = || (dns(), vec![tcp(FB_443, None), tls(FB_443, false, None)]);
        let judged = |leaf| compare_in(&context, domain(&[]), (dns(), shown(leaf)), control());
        inconclusive_saying(
            &judged("CN=Portal"),
            &["is the very one the canary's name was shown"],
        );
        // A CDN's node the control was not sent to: the handshake that would have
        // vouched for it met the portal, and its answer is untested, not forged.
        let node = "157.240.9.9";
        let mut at_node = shown("CN=Portal");
        for m in &mut at_node {
            match &mut m.step {
                Step::TcpConnect(t) => t.address = format!("{node}:443").parse().unwrap(),
                Step::TlsHandshake(t) => t.address = format!("{node}:443").parse().unwrap(),
                _ => {}
            }
        }
        let probe = (vec![lookup(&[(node, None)])], at_node);
        let outcome = compare_in(&context, domain(&[]), probe, control());
        inconclusive_saying(&outcome, &["the probe could not try the answer"]);
        // Another certificate than the canary's: a block of the target, from another
        // issuer or from the same one.
        assert_eq!(
            kind(&judged("CN=Ministry")),
            (Verdict::Blocked, Some(Blocking::TlsMitm))
        );
        let mut reissued = shown("CN=Portal");
        if let Step::TlsHandshake(t) = &mut reissued[1].step {
            t.certificate.as_mut().unwrap().sha256 = "another leaf".into();
        }
        let outcome = compare_in(&context, domain(&[]), (dns(), reissued), control());
        assert_eq!(kind(&outcome), (Verdict::Blocked, Some(Blocking::TlsMitm)));
    }

    #[test]
    fn a_body_stalled_after_the_response_is_a_sign_unless_the_probe_lost_its_network() {
        let dns = || vec![lookup(&[(FB, None)])];
        let their_page = || (dns(), vec![fetch(200, 400_000, "Video", 400.0, None)]);
        // No twin could be made: a throttle or a stall, flagged, never proven.
        let sign = compare(url(), (dns(), vec![stalled()]), their_page());
        assert_eq!(
            kind(&sign),
            (Verdict::Anomaly, Some(Blocking::Throttled)),
            "{}",
            sign.verdict.evidence
        );
        // The probe's connect to the canary right after failed too: its own network.
        let mut own = stalled();
        if let Step::Http(h) = &mut own.step {
            h.check = Some(crate::facts::Check {
                checked: crate::facts::CheckTarget::Connect("198.18.0.2:443".parse().unwrap()),
                measured_at: chrono::Utc::now(),
                error: Some(StepError::timeout(Operation::Connect)),
                meanwhile: None,
                before: None,
                first_tries: None,
                during: None,
                slow_quarter_ms: None,
                answered_at: None,
                quic: None,
            });
        }
        let lost = compare(url(), (dns(), vec![own]), their_page());
        assert_eq!(kind(&lost), (Verdict::Inconclusive, None));
        assert!(
            lost.verdict.evidence.contains("the probe's own network"),
            "{}",
            lost.verdict.evidence
        );
        // Its round trip timed out, and fetched again with its own name after a fast
        // twin it came whole (a slow link that had stalled): the name was not stopped.
        let mut timed_out = fetch(200, 0, "Video", 0.0, None);
        if let Step::Http(h) = &mut timed_out.step {
            let error = StepError::timeout(Operation::HttpRoundTrip);
            h.hops[0].status = None;
            h.hops[0].error = Some(error.clone());
            h.error = Some(error);
        }
        let whole = compare(
            url(),
            (
                dns(),
                vec![timed_out, twin(400_000, 400.0), again(400_000, 900.0)],
            ),
            their_page(),
        );
        assert_eq!(kind(&whole), (Verdict::Inconclusive, None));
        evidence_of(
            &whole,
            &["fetched again with its own name right after it came whole (400000 bytes)"],
        );
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
        // Slow at the probe, fast at the control and with the control SNI from the
        // same address, and slow again with its own name: a throttle keyed on the name.
        let slow = || page(200, 400_000, "Video", 20_000.0);
        let their_page = || (dns(), vec![page(200, 400_000, "Video", 400.0)]);
        let throttled = compare(
            url(),
            (
                dns(),
                vec![slow(), twin(400_000, 500.0), again(400_000, 20_000.0)],
            ),
            their_page(),
        );
        assert_eq!(
            kind(&throttled),
            (Verdict::Blocked, Some(Blocking::Throttled))
        );
        assert!(
            throttled
                .verdict
                .evidence
                .contains("kB/s from the same address with the control SNI"),
            "{}",
            throttled.verdict.evidence
        );
        // Without the fetch after the twin, a path congested for a while is not ruled
        // out.
        let unsure = compare(
            url(),
            (dns(), vec![slow(), twin(400_000, 500.0)]),
            their_page(),
        );
        assert_eq!(kind(&unsure), (Verdict::Inconclusive, None));
        assert!(
            unsure
                .verdict
                .evidence
                .contains("no fetch with its own name")
        );
        // Still capped with its own name after the twin (A/B/A): a throttle.
        let held = compare(
            url(),
            (
                dns(),
                vec![slow(), twin(400_000, 500.0), again(400_000, 21_000.0)],
            ),
            their_page(),
        );
        assert_eq!(kind(&held), (Verdict::Blocked, Some(Blocking::Throttled)));
        assert!(held.verdict.evidence.contains("with its own name again"));
        // A burst at its start (the throttle's bucket refilled during the twin) does not
        // make it uncapped: what counts is how it flowed, and its fastest quarter second
        // but one. It shows the cap where the first transfer came in too few bursts to.
        let mut burst = again(400_000, 6_000.0);
        if let Step::Http(h) = &mut burst.step {
            h.hops[0].peak_rate = Some(120_000.0);
            h.hops[0].active_rate = Some(50_000.0);
        }
        let bursty = compare(
            url(),
            (dns(), vec![slow(), twin(400_000, 500.0), burst]),
            their_page(),
        );
        assert_eq!(kind(&bursty), (Verdict::Blocked, Some(Blocking::Throttled)));
        // Fast with its own name too right after the twin: a path that was congested
        // for the first transfer, not a throttle.
        let recovered = compare(
            url(),
            (
                dns(),
                vec![slow(), twin(400_000, 500.0), again(400_000, 600.0)],
            ),
            their_page(),
        );
        assert_eq!(kind(&recovered), (Verdict::Inconclusive, None));
        assert!(
            recovered.verdict.evidence.contains("no longer capped"),
            "{}",
            recovered.verdict.evidence
        );
        // As slow with the control SNI: a slow path (a lossy link), not a throttle.
        let path = compare(
            url(),
            (dns(), vec![slow(), twin(400_000, 19_000.0)]),
            their_page(),
        );
        assert_eq!(kind(&path), (Verdict::Inconclusive, None));
        assert!(
            path.verdict
                .evidence
                .contains("as slow with the control SNI"),
            "{}",
            path.verdict.evidence
        );
        // Slow on average, but at the path's speed while it flowed: loss, not a cap.
        let mut stalled = slow();
        if let Step::Http(h) = &mut stalled.step {
            h.hops[0].peak_rate = Some(5_000_000.0);
        }
        let lossy = compare(
            url(),
            (dns(), vec![stalled, twin(400_000, 500.0)]),
            their_page(),
        );
        assert_eq!(
            kind(&lossy),
            (Verdict::Ok, None),
            "{}",
            lossy.verdict.evidence
        );
        // The first transfer too short to show a peak, the one after the twin at the
        // path's speed in bursts: loss, not a cap.
        let mut bursts = again(400_000, 6_000.0);
        if let Step::Http(h) = &mut bursts.step {
            h.hops[0].peak_rate = Some(5_000_000.0);
        }
        let short = page(200, 70_000, "Video", 700.0);
        let lossy_again = compare(
            url(),
            (dns(), vec![short, twin(400_000, 500.0), bursts]),
            their_page(),
        );
        assert_eq!(
            kind(&lossy_again),
            (Verdict::Ok, None),
            "{}",
            lossy_again.verdict.evidence
        );
        // No twin to compare with: nothing said.
        let alone = compare(url(), (dns(), vec![slow()]), their_page());
        assert_eq!(kind(&alone), (Verdict::Inconclusive, None));
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
            (
                dns(),
                vec![cut, twin(400_000, 500.0), again(400_000, 20_000.0)],
            ),
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

    #[test]
    fn counts_read_in_the_singular_and_the_plural() {
        assert_eq!(super::counted(1, "run", "runs"), "1 run");
        assert_eq!(super::counted(0, "run", "runs"), "0 runs");
        assert_eq!(
            super::counted(2, "TCP connect", "TCP connects"),
            "2 TCP connects"
        );
    }
}
