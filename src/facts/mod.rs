//! The facts a measurement records: what was sent, what came back, how long it took,
//! and how it failed. No opinions live here; `analyse` reads these records, from
//! memory during a run or from `measurements.jsonl` long after it.

mod ech;
pub mod failure;
mod hello;
pub mod scrub;
mod target;

pub use ech::{EchFacts, EchHandshake, EchOffer};
pub use hello::{Hello, HelloTry};
pub use target::TargetFacts;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::facts::failure::{Failure, Operation, StepError};

/// Which side of the comparison a measurement was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vantage {
    Probe,
    Control,
}

impl Vantage {
    pub fn as_str(self) -> &'static str {
        match self {
            Vantage::Probe => "probe",
            Vantage::Control => "control",
        }
    }
}

/// One measurement: a vantage point, a target, and one step against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub vantage: Vantage,
    pub service: Arc<str>,
    /// The target this measurement was made for (its verdict row's `target`).
    pub target: String,
    pub measured_at: DateTime<Utc>,
    pub runtime_ms: f64,
    #[serde(flatten)]
    pub step: Step,
}

impl Measurement {
    /// When the step ended.
    pub fn ended_at(&self) -> DateTime<Utc> {
        after_ms(self.measured_at, self.runtime_ms)
    }
}

/// The time `ms` milliseconds after `at`: when a step begun at `at` that took so long
/// ended.
pub(crate) fn after_ms(at: DateTime<Utc>, ms: f64) -> DateTime<Utc> {
    // Saturating: a time past the calendar's end is read (a hostile import's), not made.
    at.checked_add_signed(chrono::TimeDelta::microseconds((ms * 1000.0) as i64))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    Dns(DnsFacts),
    TcpConnect(TcpFacts),
    TlsHandshake(TlsFacts),
    Http(HttpFacts),
    /// Handshakes with and without ECH (see [`EchFacts`]).
    Ech(EchFacts),
    QuicHandshake(QuicFacts),
}

impl Step {
    /// The addresses the step was made to: none for a lookup, each hop's for a fetch.
    pub fn addresses(&self) -> Vec<IpAddr> {
        match self {
            Step::TcpConnect(t) => vec![t.address.ip()],
            Step::TlsHandshake(t) | Step::QuicHandshake(QuicFacts { handshake: t, .. }) => {
                vec![t.address.ip()]
            }
            Step::Ech(f) => vec![f.address.ip()],
            Step::Http(h) => h
                .hops
                .iter()
                .filter_map(|hop| hop.address)
                .map(|a| a.ip())
                .collect(),
            Step::Dns(_) => Vec::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Step::Dns(_) => "dns",
            Step::TcpConnect(_) => "tcp_connect",
            Step::TlsHandshake(_) => "tls_handshake",
            Step::Http(_) => "http",
            Step::Ech(_) => "ech",
            Step::QuicHandshake(_) => "quic_handshake",
        }
    }

    pub fn error(&self) -> Option<&StepError> {
        match self {
            Step::Dns(f) => f.error.as_ref(),
            Step::TcpConnect(f) => f.error.as_ref(),
            Step::TlsHandshake(f) => f.error.as_ref(),
            Step::Http(f) => f.error.as_ref(),
            // The first failure of a handshake offering ECH: what the step is about.
            Step::Ech(f) => f
                .handshakes
                .iter()
                .filter(|h| h.ech != EchOffer::None)
                .find_map(|h| h.error.as_ref()),
            Step::QuicHandshake(f) => f.handshake.error.as_ref(),
        }
    }

    /// The tries the step took, and the check of the probe's own network after it.
    pub fn tries_and_check(&self) -> (u32, Option<&Check>) {
        match self {
            Step::Dns(f) => (f.tries, f.check.as_ref()),
            Step::TcpConnect(f) => (f.tries, f.check.as_ref()),
            Step::TlsHandshake(f) => (f.tries, f.check.as_ref()),
            Step::Http(f) => (f.tries, f.check.as_ref()),
            Step::Ech(f) => (f.handshakes.len() as u32, None),
            Step::QuicHandshake(f) => (f.handshake.tries, f.handshake.check.as_ref()),
        }
    }
}

/// Whether a step of `measurements` failed because the measuring machine ran out of
/// something it frees within moments (see [`Failure::is_exhaustion`]): those say
/// nothing of the target.
pub fn ran_out(measurements: &[Measurement]) -> bool {
    measurements
        .iter()
        .any(|m| m.step.error().is_some_and(|e| e.failure.is_exhaustion()))
}

/// Every address any DNS measurement among `measurements` was answered, without repeats.
pub fn answered_addresses(measurements: &[Measurement]) -> Vec<IpAddr> {
    distinct(measurements.iter().flat_map(|m| match &m.step {
        Step::Dns(facts) => facts.all_addresses(),
        _ => Vec::new(),
    }))
}

/// `items` in their order, each once (a few addresses: no hashing needed).
pub fn distinct<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut kept = Vec::new();
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

/// One query (a name and a record type) to one resolver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsFacts {
    /// The resolver as configured (`system`, `udp://8.8.8.8:53`, ...).
    pub resolver: String,
    /// The server actually asked, when there is one address to name.
    pub resolver_address: Option<String>,
    pub hostname: String,
    pub query_type: QueryType,
    /// Every reply that arrived for this query, in arrival order, including late ones
    /// (an injector's forged answer usually wins the race; the real one follows), up to
    /// `measure::dns::MAX_REPLIES` that match the query and as many that do not.
    pub replies: Vec<DnsReply>,
    /// Replies beyond those bounds, counted but not kept: a flood of forged datagrams
    /// must not grow the probe's memory, nor push the real answer out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_replies: u64,
    /// Datagrams the query went out in (over UDP): resent while unanswered, and during
    /// the listening window after the first reply, so that neither a forged reply nor
    /// the real one lost on the way hides an injection. Replies with the same answer as
    /// another are copies; different answers are the injection.
    #[serde(default = "one")]
    pub sent: u32,
    /// The addresses of the first reply that matched the query, which is what an
    /// ordinary client would have used.
    pub addresses: Vec<IpAddr>,
    /// Lookups made: a failed one is made again once, since loss and a resolver's
    /// passing trouble fail one lookup while a censor fails every one.
    #[serde(default = "one")]
    pub tries: u32,
    /// After a failed lookup: the canary looked up through the same resolver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// Where no copy of a UDP query was answered by its deadline: the first reply to it
    /// that came after, while the probe went on with the name (made the lookup again,
    /// checked the resolver), its `arrival_ms` counted from the start of the try it
    /// answered. A slow resolver's answer comes late; a censor's silence for a name
    /// does not end. None where none came, or in an earlier version's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdue: Option<DnsReply>,
    #[serde(flatten)]
    pub error: Option<StepError>,
}

impl DnsFacts {
    /// Every address in every matching reply, without repeats.
    pub fn all_addresses(&self) -> Vec<IpAddr> {
        distinct(
            self.replies
                .iter()
                .filter(|r| r.matches_query)
                .flat_map(DnsReply::addresses),
        )
    }

    /// The addresses of pairs of matching replies to one copy of the query (one ID) that
    /// give different addresses, both some, in arrival order: an injector racing the
    /// resolver gives those, and so does a relay that asks two resolvers and passes on
    /// both answers. A truncated reply holds a part of the whole answer: it races another
    /// only where they share no address.
    pub fn raced(&self) -> impl Iterator<Item = (BTreeSet<IpAddr>, BTreeSet<IpAddr>)> {
        let matching: Vec<&DnsReply> = self.replies.iter().filter(|r| r.matches_query).collect();
        let set = |r: &DnsReply| r.addresses().collect::<BTreeSet<IpAddr>>();
        let mut pairs = Vec::new();
        for (i, a) in matching.iter().enumerate() {
            for b in &matching[i + 1..] {
                let (x, y) = (set(a), set(b));
                let differ = match a.truncated || b.truncated {
                    true => x.is_disjoint(&y),
                    false => x != y,
                };
                if a.id == b.id && !x.is_empty() && !y.is_empty() && differ {
                    pairs.push((x, y));
                }
            }
        }
        pairs.into_iter()
    }
}

fn is_zero<N: Default + PartialEq>(n: &N) -> bool {
    *n == N::default()
}

fn one() -> u32 {
    1
}

/// A check of the probe's own network made right after a step failed, as Censored
/// Planet's Satellite and Hyperquack sandwich each test between control tests: the
/// canary looked up through the same resolver, or connected to. When the check fails
/// too, the step's failure was the probe's own network's, whatever else it looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub checked: CheckTarget,
    pub measured_at: DateTime<Utc>,
    #[serde(flatten)]
    pub error: Option<StepError>,
    /// The probe's other exchanges of the same kind while the step that failed went
    /// on: its connects for a connect check (its QUIC handshakes where a QUIC
    /// handshake failed), its lookups through the same resolver for a resolver check. A canary reached once says little of a network or a
    /// resolver that drops most of what it is sent, and these say how much it dropped
    /// then. None where not counted (an earlier version's run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meanwhile: Option<Meanwhile>,
    /// The latest of those exchanges before the failed step began, where the ones
    /// meanwhile took fewer than a hundred tries: a short failure on a slow network sees
    /// few, and what fails a network lasts longer. None where there were none, or
    /// enough meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Meanwhile>,
    /// For a connect check: its connects to the canary, made at once, and how many were
    /// answered at their first try (within a third of the deadline, before the dial tried
    /// again). A link that was down as the failed step ended answers none of them at
    /// first, though it may answer a later try once it is back; a lossy one loses some.
    /// None for a resolver's check, or in an earlier version's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_tries: Option<Burst>,
    /// The pulse of the link answered least during the failed step's last try (see
    /// `measure::Measurer::pulse`): connects to the canary made at once, as this step or
    /// another was tried again after a silence, each given a third of the deadline or
    /// 1.5 s, whichever is more, up to the deadline (a third only before 2026-12-06). None
    /// answered: the link was down then, even where it was back for the check after.
    /// None where there was no pulse then (no step tried again after a silence), or in an
    /// earlier version's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub during: Option<Burst>,
    /// For a QUIC handshake that went unanswered: QUIC handshakes with the canary's name
    /// to its address (over the step's family, at the step's port), made at once right
    /// after, and how many were answered at their one try. Some unanswered while others
    /// were answered: the path was losing QUIC's datagrams then (a policer, a lossy
    /// link), which a censor's drop of one name's or address's QUIC does not do to the
    /// canary. Made none (`made` 0) where no QUIC handshake was answered lately, or the
    /// canary's address is unknown; None in an earlier version's run, whose counts
    /// (`meanwhile`, `before`) are then its connects'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic: Option<Burst>,
    /// For a resolver's check: how long a quarter of the resolver's recent answers to a
    /// query's first copy took or longer (their upper quartile, of up to 64, once a few
    /// were timed), in milliseconds. A resolver that takes much of the deadline to
    /// answer so often lets a lookup's deadline pass now and then, all its copies
    /// answered too late; one slow answer (a SERVFAIL after the resolver's own
    /// recursion timed out) does not move it. None for a connect check, or in an
    /// earlier version's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_quarter_ms: Option<f64>,
    /// For a connect check after a connect that failed: when the same address and port
    /// first answered a connect of the probe's in the run (another target's, or an
    /// earlier one's), where it had by the time of the check. One that answered and
    /// then stopped was not blocked from the start. None where it had not, for a
    /// resolver's check, or in an earlier version's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
}

/// Connects to the canary made at once, and how many of them were answered (connected,
/// or refused or reset: the link carried them) within the time each was given (a third
/// of the deadline at a check's first tries; for a pulse, see `during`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Burst {
    pub made: u32,
    pub answered: u32,
}

impl Burst {
    /// Of connects made at once, whether each was answered.
    pub fn of(answered: impl IntoIterator<Item = bool>) -> Burst {
        answered.into_iter().fold(
            Burst {
                made: 0,
                answered: 0,
            },
            |burst, answered| Burst {
                made: burst.made + 1,
                answered: burst.answered + u32::from(answered),
            },
        )
    }

    /// None of the connects answered: the link was down then.
    pub fn none_answered(self) -> bool {
        self.answered == 0
    }

    /// Some of the connects went unanswered: the link was losing packets then (or was
    /// down, where none answered).
    pub fn lost_some(self) -> bool {
        self.lost() > 0
    }

    /// How many of the connects went unanswered at their first try.
    pub fn lost(self) -> u32 {
        self.made.saturating_sub(self.answered)
    }
}

/// The probe's exchanges answered during a span of time (see `measure::meanwhile`),
/// and the tries they took: connects, each try after whose first was made because the
/// ones before it went a third of the deadline unanswered; or a resolver's lookups,
/// each copy of the query after the first sent because the ones before it went a
/// sixth of the deadline unanswered; or connects, handshakes and fetches that went
/// through, each try after the first made because the one before was refused or reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meanwhile {
    /// Written `connects` before lookups were counted too (runs of 2026-12-04).
    #[serde(alias = "connects")]
    pub answered: u32,
    pub tries: u32,
    /// For connects, handshakes and fetches: about how many packets their tries met (see
    /// [`Operation::packets`]), over which a flaky path's resets fall. Zero where not
    /// counted (lookups, connects unanswered, runs before 2026-12-05).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub packets: u32,
}

impl Meanwhile {
    /// The tries one connect makes at most before it is given up (`measure::tcp`).
    pub const CONNECT_TRIES: u32 = 6;
    /// The tries of a connect, handshake or fetch refused or reset (`measure`).
    pub const TURNED_DOWN_TRIES: u32 = 3;
    /// The same, on a network seen turning steps down at random (`measure::Again::on`).
    /// Seven: a handshake meets more packets than its count says (a ClientHello in two
    /// segments, the acknowledgements of a long chain), and at five tries the testbed's
    /// `reset-flaky` (3 % of the probe's packets reset) still reset one handshake at
    /// every try in one of four suite runs on 2026-12-07, read `blocked tls-reset`; each
    /// try more makes that some five times rarer, where a censor turns down every try.
    pub const FLAKY_TURNED_DOWN_TRIES: u32 = 7;
    /// The tries of a handshake or fetch silent at each, on a link seen losing packets
    /// during its last try (`measure::Again::on`), and of a QUIC handshake where one of
    /// the run's was answered only when made again (`Measurer::quic_tries`); two
    /// elsewhere.
    pub const LOSSY_SILENT_TRIES: u32 = 4;

    /// These and `other` together.
    pub fn and(self, other: Meanwhile) -> Meanwhile {
        Meanwhile {
            answered: self.answered + other.answered,
            tries: self.tries + other.tries,
            packets: self.packets + other.packets,
        }
    }

    /// The share of the tries that went unanswered at first; none without tries.
    pub fn unanswered(&self) -> Option<f64> {
        (self.tries > 0)
            .then(|| f64::from(self.tries.saturating_sub(self.answered)) / f64::from(self.tries))
    }
}

/// What a check asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", from = "CheckTargetRead")]
pub enum CheckTarget {
    /// A name under the canary's (a random label, which the resolver must recurse
    /// for), looked up through the resolver that failed.
    Resolver(String),
    /// The canary's address, connected to.
    Connect(SocketAddr),
}

/// A check target as written, now or by earlier versions (a bare string: the canary's
/// name, or its `IP:PORT`).
#[derive(Deserialize)]
#[serde(untagged)]
enum CheckTargetRead {
    Tagged(CheckTargetTagged),
    Bare(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum CheckTargetTagged {
    Resolver(String),
    Connect(SocketAddr),
}

impl From<CheckTargetRead> for CheckTarget {
    fn from(read: CheckTargetRead) -> CheckTarget {
        match read {
            CheckTargetRead::Tagged(CheckTargetTagged::Resolver(name)) => {
                CheckTarget::Resolver(name)
            }
            CheckTargetRead::Tagged(CheckTargetTagged::Connect(address)) => {
                CheckTarget::Connect(address)
            }
            CheckTargetRead::Bare(text) => match text.parse() {
                Ok(address) => CheckTarget::Connect(address),
                Err(_) => CheckTarget::Resolver(text),
            },
        }
    }
}

impl std::fmt::Display for CheckTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckTarget::Resolver(name) => f.write_str(name),
            CheckTarget::Connect(address) => write!(f, "{address}"),
        }
    }
}

impl Check {
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }

    /// Whether the link was up through the failed step's end: the check passed, and
    /// neither its connects nor a pulse during the step's last try went all unanswered
    /// at first.
    pub fn link_up(&self) -> bool {
        let down = |burst: Option<Burst>| burst.is_some_and(Burst::none_answered);
        self.passed() && !down(self.first_tries) && !down(self.during)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QueryType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
}

impl QueryType {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryType::A => "A",
            QueryType::Aaaa => "AAAA",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsReply {
    /// Who the datagram came from (for UDP; the server for TCP and DoH).
    pub source: String,
    /// Milliseconds from sending the query to this reply's arrival.
    pub arrival_ms: f64,
    pub id: u16,
    /// The ID and question match the query: a reply an ordinary client would accept.
    pub matches_query: bool,
    pub rcode: String,
    pub answers: Vec<DnsAnswer>,
    /// The server cut the reply short to fit a datagram (the TC flag): its answers are
    /// partial, and a stub resolver asks again over TCP (see `measure::dns`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl DnsReply {
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.answers.iter().filter_map(|a| a.address())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// A, AAAA, CNAME, ...
    pub answer_type: String,
    /// The address or name the record carries.
    pub data: String,
    pub ttl: u32,
    /// The ASN of an address answer, when an ASN database was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
}

impl DnsAnswer {
    pub fn address(&self) -> Option<IpAddr> {
        match self.answer_type.as_str() {
            "A" | "AAAA" => self.data.parse().ok(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpFacts {
    pub address: SocketAddr,
    /// Connection attempts made, each from a fresh source port (see `measure::tcp`).
    #[serde(default = "one")]
    pub tries: u32,
    /// The first try's failure, where a try made again went through: a reset, a
    /// refusal or a silence that did not hold (a flaky path, or a censor that lets some
    /// tries through), or, for a connect, one refusal or reset followed by a silence,
    /// which is kept (see `measure::Again`). None where the first try was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<Failure>,
    /// After a connect that timed out, or was turned down at every try: a connect to the
    /// canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// After a connect to a fixed endpoint that worked: the first-bytes probe made on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bytes: Option<FirstBytes>,
    #[serde(flatten)]
    pub error: Option<StepError>,
}

impl TcpFacts {
    pub fn new(address: SocketAddr, error: Option<StepError>) -> TcpFacts {
        TcpFacts {
            address,
            tries: 1,
            first_failure: None,
            check: None,
            first_bytes: None,
            error,
        }
    }
}

/// Bytes that are neither TLS, HTTP nor DNS (random, as an MTProto obfuscated handshake
/// looks) sent on a connection to an endpoint, what came back, and a connect to the same
/// endpoint right after. A protocol filter (Iran's, 2020 on) lets only what starts like
/// DNS, HTTP or TLS through, and drops everything after other bytes for a minute: the
/// endpoint took the first connection and not the next. A server that dislikes the
/// bytes closes the connection, and takes the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstBytes {
    /// When the bytes were sent.
    pub measured_at: DateTime<Utc>,
    /// How many were sent.
    pub sent: u32,
    pub reply: Reply,
    /// Bytes of the answer read, when the server answered.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub received: u64,
    /// The connect to the same endpoint made right after, its tries as any connect's.
    pub reconnect: Reconnect,
}

impl FirstBytes {
    /// The endpoint took no connection after the bytes (every try unanswered), and not
    /// for a fault of the probe's own machine.
    pub fn went_dark(&self) -> bool {
        self.reconnect
            .error
            .as_ref()
            .is_some_and(StepError::unanswered)
    }
}

/// What came back within a short wait after the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Some bytes.
    Answered,
    /// The server closed the connection (FIN).
    Closed,
    /// A reset.
    Reset,
    /// Nothing: a server waiting for more (an MTProto server does), or a filter that
    /// dropped the bytes.
    Silent,
    /// The write or the read failed otherwise (an ICMP error, the probe's own machine).
    Failed,
}

impl Reply {
    pub fn as_str(self) -> &'static str {
        match self {
            Reply::Answered => "answered",
            Reply::Closed => "closed",
            Reply::Reset => "reset",
            Reply::Silent => "silent",
            Reply::Failed => "failed",
        }
    }
}

/// The connect made right after the first bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconnect {
    pub measured_at: DateTime<Utc>,
    pub runtime_ms: f64,
    #[serde(default = "one")]
    pub tries: u32,
    /// After a reconnect that timed out: a connect to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    #[serde(flatten)]
    pub error: Option<StepError>,
}

impl Reconnect {
    pub fn ended_at(&self) -> DateTime<Utc> {
        after_ms(self.measured_at, self.runtime_ms)
    }
}

/// A TLS handshake. A certificate that does not verify does not abort the handshake:
/// it is recorded (as the `ssl_*` failure) with the chain, so that interception can be
/// shown rather than only suspected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsFacts {
    pub address: SocketAddr,
    pub server_name: String,
    /// True when this handshake used the control SNI (the canary's name) instead of the
    /// target's, to tell SNI filtering from IP blocking.
    pub control_sni: bool,
    /// The handshake finished, whether or not the certificate is valid for the name.
    pub handshake_done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateFacts>,
    /// How long a handshake that finished took, from its ClientHello (the wait for
    /// a work place and the connect apart): a path slow for every name shows here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_ms: Option<f64>,
    /// Handshakes made, each on a new connection: one that timed out is made again once,
    /// or three times on a link seen losing packets during a try, one torn down twice
    /// more, or four times on a network seen turning steps down at random (see
    /// `measure::Again`).
    #[serde(default = "one")]
    pub tries: u32,
    /// The first try's failure, where a try made again went through: a reset, a
    /// refusal or a silence that did not hold (a flaky path, or a censor that lets some
    /// tries through), or where a silence was followed by more resets than silences, one
    /// of which is kept (see `measure::Again`). None where the first try was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<Failure>,
    /// After a handshake that timed out, or was torn down at every try: a connect to the
    /// canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// After a handshake with the target's name that failed once connected: the same
    /// handshake with other ClientHellos, and with the control SNI too where that one
    /// failed before (see [`Hello`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hellos: Vec<HelloTry>,
    /// The certificate was refused for its dates alone: at a time within its validity
    /// the chain is valid for the name. Its issuer and name are then the site's own, and
    /// what was wrong is a clock (the probe's, most often: a device without a
    /// battery-backed one, a network that blocks time servers) or a certificate out of
    /// date, for everyone. No interceptor's certificate is ever this.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub valid_but_for_dates: bool,
    #[serde(flatten)]
    pub error: Option<StepError>,
}

impl TlsFacts {
    /// A handshake not yet made, or that failed before it began.
    pub fn new(address: SocketAddr, server_name: &str, control_sni: bool) -> TlsFacts {
        TlsFacts {
            address,
            server_name: server_name.to_string(),
            control_sni,
            handshake_done: false,
            tls_version: None,
            cipher_suite: None,
            alpn: None,
            certificate: None,
            handshake_ms: None,
            tries: 1,
            first_failure: None,
            check: None,
            hellos: Vec::new(),
            valid_but_for_dates: false,
            error: None,
        }
    }

    /// The handshake finished with a certificate that vouches for the name: valid, or
    /// valid but for its dates (the name is the site's all the same).
    pub fn vouches_for_name(&self) -> bool {
        self.handshake_done && (self.error.is_none() || self.valid_but_for_dates)
    }

    /// The server spoke TLS back to us: the handshake finished, or it refused with a
    /// TLS alert. Either way nothing tore the connection down.
    pub fn server_answered(&self) -> bool {
        self.handshake_done
            || matches!(&self.error, Some(e) if e.failure == Failure::SslFailedHandshake)
    }
}

/// A QUIC handshake (HTTP/3's transport: TLS 1.3 carried in UDP) to the address and with
/// the name of a TCP+TLS handshake, so that the two transports can be compared: a censor
/// may drop UDP to an address, or read the name in the QUIC Initial, and leave TCP be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuicFacts {
    #[serde(flatten)]
    pub handshake: TlsFacts,
    /// The UDP port the handshake was sent from: a censor's state is kept per flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_port: Option<u16>,
    /// Datagrams that came back from the address, over every try. None at all is what
    /// a path that drops the flow leaves; loss leaves some, whatever else it spoils.
    /// Unknown (absent) for a handshake imported from elsewhere without the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagrams_received: Option<u64>,
}

impl QuicFacts {
    /// Nothing came back: the handshake failed, and not one datagram is known to have
    /// arrived.
    pub fn dark(&self) -> bool {
        !self.handshake.server_answered() && self.datagrams_received == Some(0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateFacts {
    pub subject: String,
    pub issuer: String,
    pub san: Vec<String>,
    /// Absent from files written before it was recorded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub not_before: String,
    pub not_after: String,
    pub sha256: String,
    /// The peer's chain as base64 DER, leaf first (kept for target-SNI handshakes only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

/// An HTTP GET, following redirects hop by hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpFacts {
    pub url: String,
    pub hops: Vec<HttpHop>,
    /// Set on the control-SNI twin of a slow or stalled transfer: the same URL fetched
    /// again from the same address with this name (the canary's) as SNI instead of the
    /// URL's host, to tell a throttle or a freeze keyed on the name from a slow path or
    /// one keyed on the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_sni: Option<String>,
    /// Set on a fetch of the URL made again with the target's own name: right after a
    /// control-SNI twin that ran far faster (whether the first transfer's slowness
    /// held), or after the site answered with an error of its own (5xx; whether it
    /// answers otherwise the next time).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub again: bool,
    /// Times the fetch was made: one that timed out, or was torn down, before any
    /// response is made again (see `measure::Again`: a silence once, or three times on a
    /// link seen losing packets during a try).
    #[serde(default = "one")]
    pub tries: u32,
    /// The first try's failure, where a try made again went through: a reset, a
    /// refusal or a silence that did not hold (a flaky path, or a censor that lets some
    /// tries through), or, for a connect, one refusal or reset followed by a silence,
    /// which is kept, or, for the fetch, a silence followed by more resets than
    /// silences, one of which is kept (see `measure::Again`). None where the first try
    /// was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<Failure>,
    /// The bytes of the body each try torn down in its body (reset, or closed early) had
    /// read, in the order of the tries: how exposed the fetch was to a path that tears
    /// flows down at random, which meets a long transfer far more often than a short
    /// step (see `analyse::explain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cut_after: Vec<u64>,
    /// After a fetch that timed out (before the response, or in its body's read), or was
    /// turned down at every try: a connect to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    #[serde(flatten)]
    pub error: Option<StepError>,
}

impl HttpFacts {
    /// The last hop that produced a response.
    pub fn final_response(&self) -> Option<&HttpHop> {
        self.hops.iter().rev().find(|h| h.status.is_some())
    }

    /// Whether the fetch failed at the lookup of its URL's own name (its first hop):
    /// that lookup is the target's DNS, measured, checked and judged there.
    pub fn own_name_unresolved(&self) -> bool {
        self.hops.len() == 1
            && self
                .error
                .as_ref()
                .is_some_and(|e| e.failed_operation == Operation::Resolve)
    }
}

/// How many times faster than the target's transfer another must run for the target's to
/// count as held back: the control's page against the probe's, and the control-SNI twin
/// against the transfer it stands beside. `measure` makes a second twin when the first
/// falls short of it, and `analyse` judges by it.
pub const THROTTLE_RATIO: f64 = 4.0;

/// A body's arrivals are counted in windows this long for its active and peak rates
/// (see [`HttpHop::active_rate`]). `measure` counts them, and `analyse` judges by them.
pub const RATE_WINDOW: Duration = Duration::from_millis(250);
/// Windows with data a body needs for an active and a peak rate.
pub const RATED_WINDOWS: usize = 3;
/// Milliseconds a body must last to have [`RATED_WINDOWS`] windows: one that lasted as
/// long and has no rates came in fewer, in bursts between silences.
pub const RATED_SPAN_MS: f64 = RATED_WINDOWS as f64 * RATE_WINDOW.as_secs_f64() * 1000.0;

/// A transfer that stopped dead had brought at least this much first: more than two
/// full-size segments at Ethernet's MSS (1460 bytes), and a server sends a body in
/// full-size segments, so full-size packets passed. A path MTU black hole (the probe's
/// network dropping every full-size packet, the ICMP that would say so filtered) stops
/// a transfer at its first full-size segment, past at most the head and a short first
/// write. Russia's freeze comes after about 16 KB of the server's data: some 10 KB of
/// body, past the handshake's certificates. Bytes of the body, or, for a round trip
/// that froze before its head, the TLS records after the handshake. `measure` twins a
/// round trip that froze after so many, and `analyse` judges by it.
pub const STALL_BYTES: u64 = 4 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpHop {
    pub url: String,
    /// When the hop's request (its TLS handshake first, for HTTPS) began: when the name
    /// was sent to the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    pub address: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFacts>,
    pub status: Option<u16>,
    /// Response headers as sent, in order (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// Body bytes read (up to the cap).
    pub body_length: u64,
    pub body_truncated: bool,
    pub title: Option<String>,
    /// The start of the body, as text, for blockpage fingerprints.
    pub body_prefix: String,
    /// Milliseconds from the first body byte to the end of the read (the last byte, or
    /// the deadline that cut it off), for transfer rates.
    pub transfer_ms: f64,
    /// Bytes per second while the body flowed: in the typical quarter second in which
    /// data came (the median), so that loss's stalls and the bursts after them do not
    /// weigh. Loss stalls a transfer between bursts at the path's speed; a throttle caps
    /// that speed. Absent for a body that came in fewer than three quarter seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_rate: Option<f64>,
    /// Bytes per second in the fastest quarter second of the body but one (data held
    /// behind a lost packet comes in one release). A throttle caps it too (but for its
    /// burst allowance); loss does not, between its stalls. Absent for a body that came
    /// in fewer than three quarter seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rate: Option<f64>,
    /// Milliseconds the body's read lasted, from the response head to the deadline,
    /// when the deadline ended it; or, when it ended an HTTPS round trip before any
    /// response head, from the request to the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_ms: Option<f64>,
    /// Milliseconds at the end of that read in which nothing came: from the last body
    /// byte (or the head, when none came; for a round trip, the last byte the connection
    /// received, or the request) to the deadline. A transfer that stopped dead (no
    /// reset, no FIN: a censor's freeze) is silent for most of its read; a slow one (a
    /// throttle, loss) kept moving until the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_ms: Option<f64>,
    /// Raw bytes (TLS records) the connection received after the TLS handshake, when
    /// the deadline ended the round trip before a response head was read. Servers send
    /// the head in one record with the start of the body, so a freeze in that record
    /// leaves no head to decrypt: many bytes here show the response was flowing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_after_handshake: Option<u64>,
    /// Over HTTPS, where the fetch failed: whether the server ended its TLS session (a
    /// `close_notify` alert) before the response, or its body, was whole. Only the
    /// holder of the session's keys can send one: a censor's FIN or reset cannot pass for
    /// it, so it is the site's (or its CDN's) close, as a rule its own, though a censor
    /// could provoke it (a FIN forged toward the server).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub close_notify: bool,
    /// The body's first reads (at most [`READ_EVENTS`]), as OONI's throttling
    /// measurements keep them (dd-007): how the transfer moved, read by read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<ReadEvent>,
    #[serde(flatten)]
    pub error: Option<StepError>,
}

/// The reads of a body that are kept: OONI's first 64 read events.
pub const READ_EVENTS: usize = 64;

/// One read of a body: when it ended, in milliseconds from the hop's start
/// (`started_at`), and the bytes it brought.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReadEvent {
    pub t_ms: f64,
    pub bytes: u64,
}

impl HttpHop {
    /// A hop to `url` before anything of it is known.
    pub fn new(url: &str) -> HttpHop {
        HttpHop {
            url: url.to_string(),
            started_at: None,
            address: None,
            tls: None,
            status: None,
            headers: Vec::new(),
            body_length: 0,
            body_truncated: false,
            title: None,
            body_prefix: String::new(),
            transfer_ms: 0.0,
            active_rate: None,
            peak_rate: None,
            read_ms: None,
            silent_ms: None,
            received_after_handshake: None,
            close_notify: false,
            reads: Vec::new(),
            error: None,
        }
    }

    /// The status, where the server answered with an error of its own: 5xx, but 511
    /// Network Authentication Required, which a captive portal answers for the network
    /// (RFC 6585), not the site.
    pub fn server_error(&self) -> Option<u16> {
        self.status.filter(|s| *s >= 500 && *s != 511)
    }

    /// Whether its status is a redirect that a fetch follows.
    pub fn redirects(&self) -> bool {
        matches!(self.status, Some(301 | 302 | 303 | 307 | 308))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A handshake or request that failed after its connection was made (reset, closed or
/// stalled), or first bytes after which the endpoint went dark: the moment at which a
/// censor with residual blocking (the GFW for 90 to 180 s, Iran for about a minute)
/// begins to block the whole address, whatever comes next. A later failure of another
/// target on the same address may be its echo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub address: SocketAddr,
    /// What was sent.
    pub sent: Sent,
    /// The target it was made for.
    pub target: String,
    /// When the step began (its measurement's `measured_at`).
    pub at: DateTime<Utc>,
    pub failure: Failure,
}

/// What a trigger sent to its address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sent {
    /// A ClientHello or a request naming this.
    Name(String),
    /// The first-bytes probe's bytes (see [`FirstBytes`]).
    FirstBytes,
}

impl Trigger {
    /// What happened, for evidence: "a handshake naming X failed at IP:PORT (failure)".
    pub fn what(&self) -> String {
        match &self.sent {
            Sent::Name(name) => format!(
                "a handshake naming {name} failed at {} ({})",
                self.address, self.failure
            ),
            Sent::FirstBytes => format!(
                "bytes that were neither TLS nor HTTP were sent to {}, which then took no connection ({})",
                self.address, self.failure
            ),
        }
    }

    /// The triggers a probe's measurement holds: a handshake with the target's own name,
    /// or a fetch's hop, failed after connecting; first bytes after which the endpoint
    /// went dark.
    pub fn of(m: &Measurement) -> Vec<Trigger> {
        if m.vantage != Vantage::Probe {
            return Vec::new();
        }
        let trigger = |address: SocketAddr, name: &str, e: &StepError| {
            let after_connect = matches!(
                e.failed_operation,
                Operation::TlsHandshake | Operation::HttpRoundTrip | Operation::Read
            );
            (after_connect && (e.failure.is_reset_or_eof() || e.failure.is_timeout())).then(|| {
                Trigger {
                    address,
                    sent: Sent::Name(name.to_string()),
                    target: m.target.clone(),
                    at: m.measured_at,
                    failure: e.failure.clone(),
                }
            })
        };
        match &m.step {
            Step::TlsHandshake(t) if !t.control_sni => t
                .error
                .as_ref()
                .and_then(|e| trigger(t.address, &t.server_name, e))
                .into_iter()
                .collect(),
            Step::Http(h) if h.control_sni.is_none() => h
                .hops
                .iter()
                .filter_map(|hop| {
                    let address = hop.address?;
                    let host = url::Url::parse(&hop.url).ok()?.host_str()?.to_string();
                    let e = hop
                        .error
                        .as_ref()
                        .or(hop.tls.as_ref().and_then(|t| t.error.as_ref()))?;
                    let at = hop.started_at.unwrap_or(m.measured_at);
                    trigger(address, &host, e).map(|t| Trigger { at, ..t })
                })
                .collect(),
            Step::TcpConnect(t) => t
                .first_bytes
                .as_ref()
                .filter(|f| f.went_dark())
                .and_then(|f| {
                    Some(Trigger {
                        address: t.address,
                        sent: Sent::FirstBytes,
                        target: m.target.clone(),
                        at: f.measured_at,
                        failure: f.reconnect.error.as_ref()?.failure.clone(),
                    })
                })
                .into_iter()
                .collect(),
            // A ClientHello with ECH may set off a block too.
            Step::Ech(f) => f
                .handshakes
                .iter()
                .filter(|h| h.torn_down())
                .filter_map(|h| {
                    Some(Trigger {
                        address: f.address,
                        sent: Sent::Name(f.server_name.clone()),
                        target: m.target.clone(),
                        at: h.measured_at,
                        failure: h.error.as_ref()?.failure.clone(),
                    })
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Burst, CheckTarget};

    #[test]
    fn a_burst_counts_its_connects_and_those_answered() {
        let burst = Burst::of([true, false, false, true, false, false]);
        assert_eq!(
            burst,
            Burst {
                made: 6,
                answered: 2
            }
        );
        assert!(!burst.none_answered());
        assert!(Burst::of([false; 6]).none_answered());
    }

    #[test]
    fn check_targets_are_read_as_written_now_and_before() {
        let read = |json: &str| serde_json::from_str::<CheckTarget>(json).unwrap();
        let name = CheckTarget::Resolver("cp-1.example.com".into());
        let address = CheckTarget::Connect("192.0.2.1:443".parse().unwrap());
        for written in [&name, &address] {
            assert_eq!(&read(&serde_json::to_string(written).unwrap()), written);
        }
        // Earlier versions wrote a bare string.
        assert_eq!(
            read("\"example.com\""),
            CheckTarget::Resolver("example.com".into())
        );
        assert_eq!(read("\"192.0.2.1:443\""), address);
    }
}
