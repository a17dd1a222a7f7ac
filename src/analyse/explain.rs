//! What else can explain a failure: the probe's own network and machine, a resolver
//! that fails the canary too, another target's trigger of a residual block.
//!
//! A target is `blocked` only on evidence that the censor, not the probe's own network
//! or the control's, produced it. Each rule here finds a failure that such evidence is
//! missing for, and says why in words that go into the verdict's evidence; the verdict
//! is then `inconclusive` (unless another layer holds real evidence).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::facts::failure::{Failure, Operation, StepError, body_packets};
use crate::facts::{
    Burst, CertificateFacts, Check, CheckTarget, DnsFacts, HttpHop, Meanwhile, Measurement,
    QueryType, QuicFacts, Step, TargetFacts, TlsFacts, Trigger,
};
use crate::input::bogon::AddressPolicy;

/// How long after a trigger a failure on the same address is taken for its echo: the
/// longest residual blocking reported for TLS and HTTP (the GFW's 90 to 180 s; Iran's
/// about a minute).
pub const RESIDUAL_WINDOW: TimeDelta = TimeDelta::seconds(180);
/// The shortest residual block reported (the GFW's of QUIC, 60 s): an answer this soon
/// after a trigger would have met any block it set off.
const SHORTEST_RESIDUAL: TimeDelta = TimeDelta::seconds(60);
/// An answer this soon after a failed step ended (the control-SNI handshake made right
/// after it) would have met a block that the failure met.
const RIGHT_AFTER: TimeDelta = TimeDelta::seconds(10);

/// A way the canary's own steps failed in the run: at an address of one family, in one
/// operation, with one failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryFailure {
    /// The family it stands for.
    ipv6: bool,
    /// The family it was seen over: the other one where the canary could not be tried
    /// over `ipv6` at all (its name gave only private addresses there, a captive
    /// portal's resolver's way), whose failure is then the best word on the network.
    seen_over_ipv6: bool,
    operation: Operation,
    failure: Failure,
}

impl CanaryFailure {
    /// The ways the canary's steps over TCP went unanswered or were turned down at every
    /// try (its QUIC is judged apart, see `quic`): its connects, handshakes and fetches,
    /// where no step of the same operation over the same family succeeded in the run
    /// (one dead node among its addresses is that node's). Its machine's own errors are
    /// not the network's, and are left out. Nothing blocks the canary (the user chose
    /// it so): a reset of it is the probe's network's (an intercepting proxy, a captive
    /// portal) or its server's, and says nothing of a target reset alike.
    ///
    /// A family over which the canary's name was answered but no step of its made (every
    /// address given was one the probe does not connect to, a private one) takes the
    /// other family's failures: a captive portal's resolver answers the canary's name
    /// with a private address over IPv4 and passes its IPv6 on, and then refuses the
    /// canary's IPv6 connects as it refuses every target's IPv4 ones. A family the
    /// canary's name has no address in stays without.
    pub fn of(canary: &TargetFacts) -> Vec<CanaryFailure> {
        let mut failed = Vec::new();
        let mut worked = Vec::new();
        let mut tried = [false; 2];
        let mut add = |address: Option<SocketAddr>, e: Option<&StepError>, done: &[Operation]| {
            let Some(address) = address else { return };
            let ipv6 = address.is_ipv6();
            tried[usize::from(ipv6)] = true;
            worked.extend(done.iter().map(|operation| (ipv6, *operation)));
            if let Some(e) = e.filter(|e| e.by_network()) {
                failed.push(CanaryFailure {
                    ipv6,
                    seen_over_ipv6: ipv6,
                    operation: e.failed_operation,
                    failure: e.failure.clone(),
                });
            }
        };
        use Operation::{Connect, HttpRoundTrip, TlsHandshake};
        for m in &canary.measurements {
            match &m.step {
                Step::TcpConnect(t) => {
                    let done: &[Operation] = if t.error.is_none() { &[Connect] } else { &[] };
                    add(Some(t.address), t.error.as_ref(), done);
                }
                Step::TlsHandshake(t) => {
                    let done: &[Operation] = match t.handshake_done {
                        true => &[Connect, TlsHandshake],
                        false => &[],
                    };
                    add(Some(t.address), t.error.as_ref(), done);
                }
                Step::Http(h) => {
                    for hop in &h.hops {
                        let tls = hop.tls.as_ref();
                        let done: &[Operation] =
                            match (hop.status.is_some(), tls.is_some_and(|t| t.handshake_done)) {
                                (true, _) => &[Connect, TlsHandshake, HttpRoundTrip],
                                (false, true) => &[Connect, TlsHandshake],
                                (false, false) => &[],
                            };
                        let e = hop.error.as_ref().or(tls.and_then(|t| t.error.as_ref()));
                        add(hop.address, e, done);
                    }
                }
                _ => {}
            }
        }
        let mut out: Vec<CanaryFailure> = Vec::new();
        for f in failed {
            if !worked.contains(&(f.ipv6, f.operation)) && !out.contains(&f) {
                out.push(f);
            }
        }
        let mut answered = [false; 2];
        for m in &canary.measurements {
            if let Step::Dns(d) = &m.step {
                for ip in &d.addresses {
                    answered[usize::from(ip.is_ipv6())] = true;
                }
            }
        }
        let untried = |ipv6: bool| answered[usize::from(ipv6)] && !tried[usize::from(ipv6)];
        let standing_in: Vec<CanaryFailure> = out
            .iter()
            .filter(|f| untried(!f.ipv6))
            .map(|f| CanaryFailure {
                ipv6: !f.ipv6,
                ..f.clone()
            })
            .collect();
        out.extend(standing_in);
        out
    }

    /// Where it was seen, in words: over its family, or over the other one.
    fn seen(&self) -> String {
        match self.seen_over_ipv6 == self.ipv6 {
            true => format!("over IPv{}", family(self.ipv6)),
            false => format!(
                "over IPv{} (it could not be tried over IPv{})",
                family(self.seen_over_ipv6),
                family(self.ipv6)
            ),
        }
    }
}

/// An IP family's version number, as the evidence names it.
fn family(ipv6: bool) -> u8 {
    if ipv6 { 6 } else { 4 }
}

/// Why a failure at `address` is no evidence against its target: the canary, which
/// nothing blocks (the user chose it so), failed the same way in the run, at every
/// address of the same family (see [`CanaryFailure::of`]). A network that loses
/// full-size packets (a path-MTU black hole), or one too slow for a handshake, fails
/// every target so, the canary first; one that tears flows down (an intercepting proxy,
/// a captive portal) tears down the canary's, and every target's at that stage of the
/// flow or a later one (a handshake torn down, then a fetch in its round trip). A link
/// down while the canary was measured would count too, and leave the run's like
/// failures `inconclusive`: the careful side.
pub fn like_the_canary(
    what: &str,
    address: SocketAddr,
    e: &StepError,
    canary: &[CanaryFailure],
) -> Option<String> {
    let ipv6 = address.is_ipv6();
    let alike = |c: &&CanaryFailure| {
        c.ipv6 == ipv6
            && match e.failure.is_turned_down() {
                true => {
                    c.failure.is_turned_down()
                        && c.operation.stage().is_some_and(|at| {
                            e.failed_operation.stage().is_some_and(|mine| at <= mine)
                        })
                }
                false => c.operation == e.failed_operation && c.failure == e.failure,
            }
    };
    let theirs = canary.iter().find(alike)?;
    Some(format!(
        "{what} failed ({} in {}), as the canary's own did {} in this run ({} in {}): the probe's own network, not the target",
        e.failure,
        e.failed_operation,
        theirs.seen(),
        theirs.failure,
        theirs.operation
    ))
}

/// How the canary's TLS went unreached over one family in the run, where its plain
/// TCP did not: none of its handshakes there completed, its connects or handshakes on
/// its TLS ports failed (the first as this), and a connect of its to another port (80)
/// went through. That is what a captive portal before its login does, which answers
/// plain HTTP and refuses the rest; a link down or losing full-size packets as the
/// canary was measured, or a censor that blocks the canary's address, is not this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryUnreached {
    ipv6: bool,
    operation: Operation,
    failure: Failure,
}

impl CanaryUnreached {
    pub fn of(canary: &TargetFacts) -> Vec<CanaryUnreached> {
        let tls_port = |address: &SocketAddr| canary.target.tls_ports.contains(&address.port());
        [false, true]
            .into_iter()
            .filter_map(|ipv6| {
                let mut first = None;
                let mut plain = false;
                for m in &canary.measurements {
                    let (address, e, done) = match &m.step {
                        Step::TcpConnect(t) => (t.address, t.error.as_ref(), false),
                        Step::TlsHandshake(t) => (t.address, t.error.as_ref(), t.handshake_done),
                        _ => continue,
                    };
                    if address.is_ipv6() != ipv6 {
                        continue;
                    }
                    if !tls_port(&address) {
                        plain |= e.is_none();
                        continue;
                    }
                    if done {
                        return None;
                    }
                    first = first.or(e.filter(|e| e.by_network()));
                }
                first.filter(|_| plain).map(|e| CanaryUnreached {
                    ipv6,
                    operation: e.failed_operation,
                    failure: e.failure.clone(),
                })
            })
            .collect()
    }
}

/// Why a page unlike the control's, from `address`, is no evidence against its target:
/// the canary's TLS could not be reached over the same family in this run, though its
/// plain TCP could (see [`CanaryUnreached`]), so something on the probe's network
/// stands between it and the sites, and a page in place of a site's is that thing's as
/// likely as a censor's: a
/// captive portal before its login answers every plain HTTP request with its own page
/// (511, as RFC 6585 asks, or a redirect to it) and refuses the rest; a network out of
/// credit sends every request to its operator's notice. A known blockpage is judged
/// before this, and stands.
pub fn page_where_the_canary_failed(
    url: &str,
    address: SocketAddr,
    canary: &[CanaryUnreached],
) -> Option<String> {
    let ipv6 = address.is_ipv6();
    let theirs = canary.iter().find(|c| c.ipv6 == ipv6)?;
    Some(format!(
        "{url} gave a page unlike the control's, while the canary's TLS could not be reached over IPv{} in this run ({} in {}), though its plain TCP could: something on the probe's network (a captive portal, an operator's notice) stands in front of the sites, and a page in place of the site's is its own as likely as a censor's",
        family(ipv6),
        theirs.failure,
        theirs.operation
    ))
}

/// Why a target of which nothing but TCP connects got through (a fixed endpoint) is no
/// `ok`: in this run the canary's connects got through and its flows were torn down
/// after (see [`CanaryFailure::of`]), over the same family. A middlebox that takes every
/// connection and resets it (an intercepting proxy, a captive portal) answers any
/// connect, a blackholed address's too.
pub fn connects_only(measurements: &[Measurement], canary: &[CanaryFailure]) -> Option<String> {
    let mut connected = None;
    for m in measurements {
        match &m.step {
            Step::TcpConnect(t) if t.error.is_none() => connected = Some(t.address),
            Step::TlsHandshake(t) if t.server_answered() => return None,
            Step::Http(h) if h.hops.iter().any(|hop| hop.status.is_some()) => return None,
            Step::QuicHandshake(q) if q.handshake.server_answered() => return None,
            _ => {}
        }
    }
    let address = connected?;
    let torn = canary.iter().find(|c| {
        c.ipv6 == address.is_ipv6()
            && c.failure.is_turned_down()
            && c.operation.stage().is_some_and(|at| at > 0)
    })?;
    Some(format!(
        "TCP connects to {address} succeeded, but the canary's own flows were torn down after connecting in this run ({} in {}): a middlebox of the probe's network may have taken the connects, which then say nothing of the target",
        torn.failure, torn.operation
    ))
}

/// What the canary's own lookups said of each resolver and record type, at the start
/// of the run. Written (in an export) as a list of [`ResolverHealthEntry`], one per
/// resolver and type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(into = "Vec<ResolverHealthEntry>", from = "Vec<ResolverHealthEntry>")]
pub struct ResolverHealth {
    failed: HashMap<(String, QueryType), StepError>,
    /// The addresses each resolver answered the canary with (see
    /// [`answered_like_the_canary`]).
    answered: HashMap<(String, QueryType), Vec<IpAddr>>,
}

/// What the canary's lookup of one type through one resolver said: how it failed, or
/// the addresses it answered.
#[derive(Serialize, Deserialize)]
pub struct ResolverHealthEntry {
    resolver: String,
    query_type: QueryType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed: Option<StepError>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    answered: Vec<IpAddr>,
}

impl From<ResolverHealth> for Vec<ResolverHealthEntry> {
    fn from(mut health: ResolverHealth) -> Vec<ResolverHealthEntry> {
        let mut keys: Vec<(String, QueryType)> = health.failed.keys().cloned().collect();
        keys.extend(health.answered.keys().cloned());
        keys.sort_by(|(r1, q1), (r2, q2)| (r1, q1.as_str()).cmp(&(r2, q2.as_str())));
        keys.dedup();
        keys.into_iter()
            .map(|key| ResolverHealthEntry {
                failed: health.failed.remove(&key),
                answered: health.answered.remove(&key).unwrap_or_default(),
                resolver: key.0,
                query_type: key.1,
            })
            .collect()
    }
}

impl From<Vec<ResolverHealthEntry>> for ResolverHealth {
    fn from(entries: Vec<ResolverHealthEntry>) -> ResolverHealth {
        let mut health = ResolverHealth::default();
        for e in entries {
            let key = (e.resolver, e.query_type);
            if let Some(failed) = e.failed {
                health.failed.insert(key.clone(), failed);
            }
            if !e.answered.is_empty() {
                health.answered.insert(key, e.answered);
            }
        }
        health
    }
}

impl ResolverHealth {
    /// From the canary's DNS measurements (the probe's, or the control's).
    pub fn of(canary_dns: &[Measurement]) -> ResolverHealth {
        let mut health = ResolverHealth::default();
        for m in canary_dns {
            let Step::Dns(f) = &m.step else { continue };
            let key = (f.resolver.clone(), f.query_type);
            match f.error.as_ref().filter(|e| !answered(e)) {
                Some(e) => {
                    health.failed.insert(key, e.clone());
                }
                None => health
                    .answered
                    .entry(key)
                    .or_default()
                    .extend(f.all_addresses()),
            }
        }
        health
    }

    /// How the canary's lookup of this type through this resolver failed, if it did.
    pub fn failure(&self, resolver: &str, qtype: QueryType) -> Option<&StepError> {
        self.failed.get(&(resolver.to_string(), qtype))
    }

    /// The resolvers that failed the canary, each with its first failure.
    pub fn failed(&self) -> Vec<(String, StepError)> {
        let mut out: Vec<(String, StepError)> = Vec::new();
        let mut keys: Vec<&(String, QueryType)> = self.failed.keys().collect();
        keys.sort_by_key(|(resolver, qtype)| (resolver.clone(), qtype.as_str()));
        for key in keys {
            if !out.iter().any(|(r, _)| *r == key.0) {
                out.push((key.0.clone(), self.failed[key].clone()));
            }
        }
        out
    }
}

/// Why an answer that would show a forgery (a bogon, one inconsistent with the
/// control's) is no block of the name: its resolver answered the canary with the very
/// same addresses, and nothing blocks the canary (the user chose it so). A resolver
/// that answers every name alike is the probe's own network's: a captive portal before
/// its login, a company's or a school's filtering resolver.
pub fn answered_like_the_canary(f: &DnsFacts, health: &ResolverHealth) -> Option<String> {
    let canarys = health.answered.get(&(f.resolver.clone(), f.query_type))?;
    let ours = f.all_addresses();
    let alike = !ours.is_empty() && ours.iter().all(|ip| canarys.contains(ip));
    alike.then(|| {
        format!(
            "{} answered {} for {} as it answered the canary: a resolver that answers every name alike is the probe's own network's (a captive portal before its login, a filtering resolver), not a block of this name",
            f.resolver,
            spaced(&ours),
            f.hostname
        )
    })
}

/// Why a private or reserved address a resolver answered for a name is no censor's
/// forgery: the resolver answered the canary, which nothing blocks, with such an address
/// too, for the same record type. A resolver that answers names with addresses of its own is the
/// probe's own network's: a proxy's "fake IP" DNS (an address of 198.18.0.0/15 for each
/// name), a captive portal's, a filtering resolver's. Not where an answer is a known
/// blockpage's address: that names its censor.
pub fn private_like_the_canary(
    f: &DnsFacts,
    health: &ResolverHealth,
    policy: &AddressPolicy,
) -> Option<String> {
    let ours = f.all_addresses();
    if ours
        .iter()
        .any(|ip| super::fingerprints::dns_blockpage(*ip).is_some())
    {
        return None;
    }
    let canarys = health
        .answered
        .get(&(f.resolver.clone(), f.query_type))?
        .iter()
        .find(|ip| policy.proves_forgery(**ip))?;
    Some(format!(
        "{} answered {} for {}, and the canary, which nothing blocks, with {canarys}, a private or reserved address too: a resolver that answers with addresses of its own is the probe's own network's (a proxy's fake-IP DNS, a captive portal, a filtering resolver), not a block of this name",
        f.resolver,
        spaced(&ours),
        f.hostname
    ))
}

/// Addresses as the evidence lists them: separated by spaces.
fn spaced(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A lookup that got an answer from its resolver, if only "no such record".
fn answered(e: &StepError) -> bool {
    e.failure == Failure::DnsNoAnswer
}

/// Why a failed lookup is no evidence against the name: the probe's own error, or an
/// answer that came after the deadline, to it or to a lookup of the name's other type
/// through the same resolver (`answered_late`; see `overdue`), or a resolver that failed the
/// canary too (at the start of the run, or right after), or one that was dropping most
/// queries meanwhile (see `dropping_queries`), or so slow that its answers came near
/// the run's `deadline` (see `slow_resolver`). A check right after that the resolver
/// passed outweighs the start of the run: it had recovered by then.
pub fn lookup(
    f: &DnsFacts,
    e: &StepError,
    health: &ResolverHealth,
    deadline: Option<Duration>,
    answered_late: Option<&DnsFacts>,
) -> Option<String> {
    if e.local {
        return Some(own_error(e));
    }
    if let Some(why) = answered_late.and_then(|late| overdue(f, e, late)) {
        return Some(why);
    }
    if let Some(check) = f.check.as_ref().filter(|c| c.passed()) {
        return dropping_queries(f, e, check).or_else(|| slow_resolver(f, e, check, deadline?));
    }
    if let Some(canary) = health.failure(&f.resolver, f.query_type) {
        return Some(format!(
            "{} {} lookup of {} failed ({}), and the resolver did not answer the canary either ({})",
            f.resolver,
            f.query_type.as_str(),
            f.hostname,
            e.failure,
            canary.failure
        ));
    }
    let check = f.check.as_ref().filter(|c| !c.passed())?;
    Some(format!(
        "{} {} lookup of {} failed ({}), and the resolver did not answer a lookup of {} (under the canary's name) either right after ({})",
        f.resolver,
        f.query_type.as_str(),
        f.hostname,
        e.failure,
        check.checked,
        failure_of(check)
    ))
}

/// Why a lookup that timed out is no sign: the resolver did answer the name, after the
/// deadline, as the probe went on with it: this query (`late` is `f`), or the name's
/// query of the other type (`late`). The name was not left unanswered, as a censor that
/// drops its queries leaves it; the resolver (overloaded, its recursion for the name
/// slow) was too slow for the deadline. Its fast answers to other names do not tell
/// that apart (see `slow_resolver`): a resolver answers names it has cached at once.
fn overdue(f: &DnsFacts, e: &StepError, late: &DnsFacts) -> Option<String> {
    let reply = late.overdue.as_ref().filter(|_| e.failure.is_timeout())?;
    let answer = match reply.addresses().next() {
        Some(address) => format!("{}, {address}", reply.rcode),
        None => reply.rcode.clone(),
    };
    let query = match late.query_type == f.query_type {
        true => "it".to_string(),
        false => format!("its {} query", late.query_type.as_str()),
    };
    Some(format!(
        "{} {} lookup of {} failed ({}), but the resolver answered {query} {:.1} s after the query was sent ({answer}), past the deadline: a resolver too slow for the deadline, not a name it leaves unanswered",
        f.resolver,
        f.query_type.as_str(),
        f.hostname,
        e.failure,
        reply.arrival_ms / 1000.0
    ))
}

/// Why a lookup none of whose copies was answered is no sign, though the resolver
/// answered its check: the probe's link was down as it was made again (a pulse of the
/// link found it so: see `measure::Measurer::pulse`), or the resolver, or the way to
/// it, was leaving so many of its
/// other lookups' copies unanswered meanwhile (see `failing`) that all of this one's
/// going unanswered is no surprise. A censor that drops the queries naming a target
/// leaves the other names' answered at their first copy.
fn dropping_queries(f: &DnsFacts, e: &StepError, check: &Check) -> Option<String> {
    if !e.failure.is_timeout() {
        return None;
    }
    if let Some(pulse) = check.during.filter(|pulse| pulse.none_answered()) {
        return Some(format!(
            "{} {} lookup of {} failed ({}) while the probe's link was down: {} connects to the canary, made at once as a step was tried again meanwhile, went unanswered too, though the resolver answered right after: the probe's own network, not the name",
            f.resolver,
            f.query_type.as_str(),
            f.hostname,
            e.failure,
            pulse.made
        ));
    }
    let (counted, when, unanswered) = judged(check, |m| failing(m, f.sent))?;
    Some(format!(
        "{} {} lookup of {} failed ({}) while the resolver was dropping queries: the {} lookups it had answered {when} took {} copies of the query, {:.0} % of them unanswered, a rate at which all {} copies of a lookup go unanswered once in {:.0}: the resolver or the way to it, not the name",
        f.resolver,
        f.query_type.as_str(),
        f.hostname,
        e.failure,
        counted.answered,
        counted.tries,
        unanswered * 100.0,
        f.sent,
        1.0 / unanswered.powi(f.sent as i32)
    ))
}

/// Why a lookup that timed out is no sign, though the resolver answered its check: a
/// quarter of the resolver's answers of late took half the `deadline` or more. A
/// resolver that slow so often (overloaded, or far away over a congested link) answers
/// a query now and then after its deadline, every copy too late; a censor that drops a
/// name's queries leaves the other names' answered as fast as ever.
fn slow_resolver(f: &DnsFacts, e: &StepError, check: &Check, deadline: Duration) -> Option<String> {
    if !e.failure.is_timeout() {
        return None;
    }
    let deadline_ms = deadline.as_secs_f64() * 1000.0;
    let slow = check
        .slow_quarter_ms
        .filter(|ms| *ms >= deadline_ms / 2.0)?;
    Some(format!(
        "{} {} lookup of {} failed ({}) while the resolver was slow: a quarter of its answers of late took {:.1} s or more, against a deadline of {:.1} s, so that a query it answered a little slower went unanswered in time: the resolver or the way to it, not the name",
        f.resolver,
        f.query_type.as_str(),
        f.hostname,
        e.failure,
        slow / 1000.0,
        deadline_ms / 1000.0
    ))
}

/// Why a failed connect, handshake or fetch is no evidence against the target: the
/// probe's own error, a network that could not reach the canary either right after;
/// after a silence, one that reached it only at a later try (a link down as the step
/// ended, back as the check went on), or whose link a pulse found down during the
/// step's last try (see `measure::Measurer::pulse`), or one that left so many of its
/// other connects meanwhile unanswered at first (see `failing`) that a target's every
/// try going unanswered is no sign.
pub fn step(what: &str, e: &StepError, check: Option<&Check>) -> Option<String> {
    step_tried(what, e, check, Meanwhile::TURNED_DOWN_TRIES, &[])
}

/// A certificate refused for its dates alone (see [`TlsFacts::valid_but_for_dates`]),
/// at `at` by the probe's clock: no interceptor's, whatever the control was shown, but
/// nothing the probe's check vouched for either. What the control was shown for the
/// name tells whose clock is off or whether the site's certificate is out of date.
pub fn dates_only(
    t: &TlsFacts,
    at: DateTime<Utc>,
    control: Option<&TargetFacts>,
) -> Option<String> {
    if !t.valid_but_for_dates {
        return None;
    }
    let ours = t.certificate.as_ref();
    let dates = ours.map_or(String::new(), |c| {
        format!(" (valid from {} to {})", c.not_before, c.not_after)
    });
    let theirs = || {
        control
            .into_iter()
            .flat_map(TargetFacts::tcp_tls)
            .filter(|c| !c.control_sni && c.server_name == t.server_name && c.handshake_done)
    };
    let sha256 = |c: Option<&CertificateFacts>| c.map(|c| c.sha256.clone());
    let accepted = || theirs().filter(|c| c.error.is_none());
    let control_said = if accepted().any(|c| sha256(c.certificate.as_ref()) == sha256(ours)) {
        ", and the control accepted the same certificate: the two clocks differ (a probe's is the one most often wrong)"
    } else if accepted().next().is_some() {
        ", and the control accepted another certificate for the name: a clock off (a probe's, most often), or a certificate out of date on this path"
    } else if theirs().any(|c| c.valid_but_for_dates) {
        ", as the control refused it for its dates: the site's certificate is out of date"
    } else {
        ""
    };
    Some(format!(
        "the certificate {} presented for {} was refused for its dates alone{dates}, by the probe's clock at {}{control_said}; its issuer and name are the site's, and an interceptor's would fail on them",
        t.address,
        t.server_name,
        at.format("%Y-%m-%d %H:%M:%S UTC")
    ))
}

/// What intercepts the probe's own TLS connections, as a handshake with the canary's
/// name showed it: nothing blocks the canary (the user chose it so), so a certificate
/// it refused is a middlebox's of the probe's own network. Either one from an authority
/// no one trusts, minted for each name (a company's TLS-inspecting proxy, an
/// antivirus's HTTPS scanning), told by its authority; or one certificate shown for
/// every name (a captive portal's or a proxy's own, valid for its own name only), told
/// by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interceptor {
    issuer: String,
    /// The certificate sent after the leaf (the interceptor's CA's, as a rule), when one
    /// was: two authorities of the same name are told apart by it.
    ca: Option<String>,
    /// Refused as from an authority no one trusts. Contexts written before the other
    /// kind was known hold this kind alone.
    #[serde(default = "unknown_authority")]
    unknown_authority: bool,
    /// The leaf's SHA-256 (absent from contexts written before it was kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    leaf: String,
}

fn unknown_authority() -> bool {
    true
}

impl Interceptor {
    /// The interceptor the canary's handshakes met, if any.
    pub fn of(canary: &TargetFacts) -> Option<Interceptor> {
        canary
            .tcp_tls()
            .filter(|t| !t.control_sni)
            .find_map(Interceptor::shown)
    }

    /// Who showed the certificate `t` finished with and refused (for more than its
    /// dates: a wrong clock intercepts nothing).
    fn shown(t: &TlsFacts) -> Option<Interceptor> {
        let failure = &t.error.as_ref()?.failure;
        let refused = failure.is_certificate_error() && !t.valid_but_for_dates;
        let certificate = t
            .certificate
            .as_ref()
            .filter(|_| t.handshake_done && refused)?;
        Some(Interceptor {
            issuer: certificate.issuer.clone(),
            ca: certificate.chain.get(1).cloned(),
            unknown_authority: *failure == Failure::SslUnknownAuthority,
            leaf: certificate.sha256.clone(),
        })
    }

    /// Whether `other` is this interceptor at work: the same certificate, or one from the
    /// same untrusted authority.
    fn is(&self, other: &Interceptor) -> bool {
        let authority = self.unknown_authority
            && other.unknown_authority
            && (&self.issuer, &self.ca) == (&other.issuer, &other.ca);
        authority || (!self.leaf.is_empty() && self.leaf == other.leaf)
    }
}

/// Why a certificate from the canary's interceptor (see [`Interceptor`]) is no block of
/// the target: what intercepts the canary's TLS intercepts every target's. One from an
/// authority of another name, or another certificate, stands as evidence.
pub fn intercepted_like_the_canary(t: &TlsFacts, canary: Option<&Interceptor>) -> Option<String> {
    let theirs = Interceptor::shown(t)?;
    let how = match theirs.unknown_authority {
        true => format!(
            "is from {}, an authority no one trusts, as the canary's was",
            theirs.issuer
        ),
        false => format!(
            "(issued by {}) is the very one the canary's name was shown",
            theirs.issuer
        ),
    };
    canary.filter(|canary| canary.is(&theirs)).map(|_| {
        format!(
            "the certificate {} presented for {} {how}: something on the probe's own network answers its TLS connections (a company's proxy, an antivirus, a captive portal), not this target's alone",
            t.address, t.server_name
        )
    })
}

/// As [`step`], for a step made `tries` times (a refusal or reset is made again more
/// often on a network seen doing so: `measure::Again::on`), whose tries were torn down
/// in their bodies after `cut_after` bytes, for a fetch (see `HttpFacts::cut_after`),
/// which met that many more packets.
pub fn step_tried(
    what: &str,
    e: &StepError,
    check: Option<&Check>,
    tries: u32,
    cut_after: &[u64],
) -> Option<String> {
    if e.local {
        return Some(format!("{what} failed: {}", own_error(e)));
    }
    network_failed(THE_PROBES, what, e, check?, tries, cut_after)
}

/// Whose network a check tells of, as the evidence names it.
const THE_PROBES: &str = "the probe's";
const THE_CONTROLS: &str = "the control's";

/// Why a failure that `check` followed is `whose` own network's, not the target's (see
/// [`step`]): the probe's, or the control's, checked alike.
fn network_failed(
    whose: &str,
    what: &str,
    e: &StepError,
    check: &Check,
    tries: u32,
    cut_after: &[u64],
) -> Option<String> {
    if !check.passed() {
        let tried = match &check.checked {
            CheckTarget::Connect(address) => format!("a connect to the canary at {address}"),
            CheckTarget::Resolver(canary) => {
                format!("a lookup of the canary {canary}, to check the network,")
            }
        };
        return Some(format!(
            "{what} failed ({}), and {tried} right after failed too ({}): {whose} own network, not the target",
            e.failure,
            failure_of(check)
        ));
    }
    if e.failure.is_turned_down() {
        return turned_down_at_random(whose, what, e, check, tries.max(1), cut_after);
    }
    let silent = e.failure.is_timeout();
    if let Some(first) = check
        .first_tries
        .filter(|first| silent && first.none_answered())
    {
        return Some(format!(
            "{what} failed ({}), and the {} connects to the canary at {} made at once right after went unanswered at their first try too (it answered a later one): {whose} network was down as the step ended, not the target",
            e.failure, first.made, check.checked
        ));
    }
    if let Some(pulse) = check.during.filter(|pulse| silent && pulse.none_answered()) {
        return Some(format!(
            "{what} failed ({}) while {whose} link was down: {} connects to the canary at {}, made at once as a step was tried again meanwhile, went unanswered too, though the canary answered right after: {whose} own network, not the target",
            e.failure, pulse.made, check.checked
        ));
    }
    // A body's read is not made again: its silence is a stall's, judged as such.
    let exchange = matches!(
        e.failed_operation,
        Operation::TlsHandshake | Operation::HttpRoundTrip
    );
    if let Some(pulse) = check.during.filter(|pulse| {
        silent && exchange && tries < Meanwhile::LOSSY_SILENT_TRIES && pulse.lost_some()
    }) {
        return Some(format!(
            "{what} failed ({}) at {tries} tries while {whose} link was losing packets: {} of the {} connects to the canary at {}, made at once during its last try, went unanswered at first, and on such a link that many silent tries are loss's now and then (a censor's drop leaves {} silent as well)",
            e.failure,
            pulse.lost(),
            pulse.made,
            check.checked,
            Meanwhile::LOSSY_SILENT_TRIES
        ));
    }
    // A QUIC handshake's check counts QUIC handshakes (`quic` set); an earlier
    // version's counted connects, judged as such below.
    if let (Some(made), Operation::QuicHandshake) = (check.quic, e.failed_operation) {
        // The run's QUIC handshakes meanwhile and just before, with those made at once to
        // the canary right after, all together: the canary's alone cannot tell a link
        // losing one datagram in four from one losing most, nor a path losing the
        // canary's alone from one losing all. None of the canary's answered is no loss:
        // it does not answer QUIC there.
        let burst = match made.none_answered() {
            true => Meanwhile::default(),
            false => Meanwhile {
                answered: made.answered,
                tries: made.made,
                packets: 0,
            },
        };
        let counted = [check.meanwhile, check.before, Some(burst)]
            .into_iter()
            .flatten()
            .fold(Meanwhile::default(), Meanwhile::and);
        let dark = failing(counted, tries)?;
        return Some(format!(
            "{what} failed ({}) at {tries} tries while {whose} path was losing QUIC's datagrams: its QUIC handshakes answered meanwhile and just before, with the {} made at once to the canary right after, took {} tries, {:.0} % of them unanswered, a rate at which all {tries} tries of a handshake go unanswered once in {:.0} (a censor's drop of one name's or address's QUIC leaves the others alone): {whose} own network, not the target",
            e.failure,
            burst.tries,
            counted.tries,
            dark * 100.0,
            1.0 / dark.powi(tries as i32)
        ));
    }
    let (counted, when, unanswered) = judged(check, |m| failing(m, Meanwhile::CONNECT_TRIES))?;
    Some(format!(
        "{what} failed ({}) while {whose} network was failing new connections: the {} connects it had answered {when} took {} tries, {:.0} % of them unanswered at first, a rate at which all {} tries of a connect go unanswered once in {:.0}: {whose} own network, not the target, however the canary fared",
        e.failure,
        counted.answered,
        counted.tries,
        unanswered * 100.0,
        Meanwhile::CONNECT_TRIES,
        1.0 / unanswered.powi(Meanwhile::CONNECT_TRIES as i32)
    ))
}

/// The tries of a step that failed as `e`, the one kept, like it: all of them but a
/// first that went unanswered where a later refusal or reset was kept (see
/// `measure::Again`), whose silence says nothing of how often the network turns a
/// step down.
pub fn tries_like(e: &StepError, tries: u32, first_failure: Option<&Failure>) -> u32 {
    let silent_first = e.failure.is_turned_down() && first_failure.is_some_and(Failure::is_timeout);
    tries - u32::from(silent_first && tries > 1)
}

/// Why a transfer that stopped dead is no sign of a freeze: some of the connects to the
/// canary made at once, right after it or during its last try, went unanswered at their
/// first try. The link was losing packets then, and a lossy link stalls transfers for
/// seconds often enough that stalls in a row are no sign (under 25 % loss each way, the
/// testbed's large file stopped dead for 2 s or more in about half its transfers, with
/// either name); a freeze leaves the rest of the link alone.
pub fn losing_packets(what: &str, check: Option<&Check>) -> Option<String> {
    let seen = loss_seen(check?)?;
    Some(format!(
        "{what} stopped while the probe's link was losing packets: {seen}, and a lossy link stalls transfers for seconds often enough that stalls in a row are no sign of a freeze"
    ))
}

/// Why an HTTPS round trip silent at every try, over sessions whose TLS handshakes with
/// the target's own name went through, is no sign on a link seen losing packets both
/// during its last try and right after (see [`losing_packets`]): the name passed, and
/// the request inside TLS is hidden, so nothing singled the target out; and on such a
/// link a response's first record, a dozen full-size packets behind a fresh
/// connection's window, misses the deadline try after try now and then (the testbed's
/// `all lossy-heavy`, 30 % loss each way: once in ten runs, for its 48 KiB page). Loss
/// seen once is not enough: a link losing one packet in fifty loses a connect of six
/// now and then.
pub fn silent_over_its_session(what: &str, check: Option<&Check>) -> Option<String> {
    let check = check?;
    let lossy = |burst: Option<Burst>| burst.filter(|b| b.lost_some());
    let (during, after) = (lossy(check.during)?, lossy(check.first_tries)?);
    Some(format!(
        "{what} got no response at any try, though its TLS handshakes with the target's own name went through, while the probe's link was losing packets: {} of the {} connects to the canary at {} made at once during its last try, and {} of the {} made at once right after, went unanswered at first; nothing singled the name out, and on such a link a response's first record misses the deadline at try after try now and then",
        during.lost(),
        during.made,
        check.checked,
        after.lost(),
        after.made
    ))
}

/// Some of the connects to the canary made at once, right after a step or during its
/// last try, went unanswered at their first try, in words.
fn loss_seen(check: &Check) -> Option<String> {
    let (burst, when) = [
        (check.first_tries, "made at once right after"),
        (check.during, "made at once during its last try"),
    ]
    .into_iter()
    .find_map(|(burst, when)| Some((burst.filter(|b| b.lost_some())?, when)))?;
    Some(format!(
        "{} of the {} connects to the canary at {} {when} went unanswered at first",
        burst.lost(),
        burst.made,
        check.checked
    ))
}

/// Why a step refused or torn down at every try is no sign: the probe's other connects,
/// handshakes and fetches meanwhile were turned down at a try, and went through at a
/// later one, so often that all `tries` of one step like it (three, or seven on a
/// network seen doing so) fail so once in a thousand or more often. A censor turns a target down at every try, and leaves the
/// others alone; a flaky middlebox or NAT turns any flow down now and then, and the
/// more packets a flow met, the more often: a fetch's try more often than a connect's,
/// a long transfer (`cut_after`: torn down in its body) far more often than a short
/// one. So the rate is one per packet the counted tries met, and the step's tries are
/// weighed by theirs (see [`Operation::packets`]).
fn turned_down_at_random(
    whose: &str,
    what: &str,
    e: &StepError,
    check: &Check,
    tries: u32,
    cut_after: &[u64],
) -> Option<String> {
    let packets: Vec<f64> = (0..tries as usize)
        .map(|i| {
            let body = cut_after.get(i).map_or(0.0, |bytes| body_packets(*bytes));
            f64::from(e.failed_operation.packets()) + body
        })
        .collect();
    // The rate at which tries, or packets, were turned down, and the chance that all
    // of the step's tries fail at it. An earlier version's run counted tries only.
    let odds = |m: Meanwhile| {
        let turned = f64::from(m.tries.saturating_sub(m.answered));
        let (rate, exposed) = match m.packets {
            0 => (turned / f64::from(m.tries), vec![1.0; packets.len()]),
            counted => (turned / f64::from(counted), packets.clone()),
        };
        let all_fail = exposed
            .iter()
            .map(|k| 1.0 - (1.0 - rate).powf(*k))
            .product::<f64>();
        (rate, all_fail)
    };
    // Judged as seen: a censor's work seldom counts here (its target fails every try,
    // and no step that failed is counted), so a rate high by chance is still a network
    // that turns flows down now and then; but over a few tries, one step's luck (or a
    // censor's that lets a try through) would make it.
    let judge = |m: Meanwhile| {
        let (rate, all_fail) = odds(m);
        (m.tries >= TURNED_DOWN_SAMPLE && all_fail >= 0.001).then_some((rate, all_fail))
    };
    let (counted, when, (rate_seen, all_fail)) = judged(check, judge)?;
    let turned = counted.unanswered().unwrap_or_default();
    let rate = match counted.packets {
        0 => format!(
            "a rate at which all {tries} tries of a step fail once in {:.0}",
            1.0 / all_fail
        ),
        _ => {
            let listed = |items: Vec<String>| items.join(", ");
            let met = match cut_after {
                [] => format!("{:.0} packets each", packets[0]),
                bytes => format!(
                    "{} packets, torn down in the body after {} bytes",
                    listed(packets.iter().map(|k| format!("{k:.0}")).collect()),
                    listed(bytes.iter().map(u64::to_string).collect())
                ),
            };
            format!(
                "one in {:.0} of the some {} packets they met; at that rate all {tries} tries of this step ({met}) fail once in {:.0}",
                1.0 / rate_seen,
                counted.packets,
                1.0 / all_fail
            )
        }
    };
    Some(format!(
        "{what} failed ({}) while {whose} network was turning connections down at random: of the {} tries its {} other connects, handshakes and fetches that went through {when} took, {:.1} % were refused or reset and went through when made again, {rate}: {whose} own network, not the target",
        e.failure,
        counted.tries,
        counted.answered,
        turned * 100.0,
    ))
}

/// The counts of a check that `judge` finds failing, when they were made, and the share
/// it found: those made while the failed step went on, which tell of the network then;
/// or, where they do not, those with the latest before (`Check::before`), more of
/// them, which tell of a network failing for longer.
fn judged<T>(
    check: &Check,
    judge: impl Fn(Meanwhile) -> Option<T>,
) -> Option<(Meanwhile, &'static str, T)> {
    let meanwhile = check.meanwhile?;
    let with_before = check
        .before
        .map(|before| (meanwhile.and(before), "meanwhile and just before"));
    std::iter::once((meanwhile, "meanwhile"))
        .chain(with_before)
        .find_map(|(counted, when)| Some((counted, when, judge(counted)?)))
}

/// The fewest tries over which a share of tries turned down is judged.
const TURNED_DOWN_SAMPLE: u32 = 30;

/// How many standard errors under the share seen an unanswered share is judged.
const LOW: f64 = 2.0;

/// The share of the probe's tries (connects, or copies of a resolver's queries) left
/// unanswered at first meanwhile, where it is so high that all `tries` of one exchange
/// go unanswered often enough (once in a thousand: 32 % of a connect's six tries) for
/// that to be no sign of a block: a full NAT table, a firewall's limit on new flows, a
/// saturated link (which the testbed put at 44 to 70 % of connects), a resolver
/// dropping half its queries. A censor's blackhole leaves the other addresses'
/// connects alone; a lossy link (one round trip in four lost) left 17 to 31 %. The
/// share is judged [`LOW`] standard errors under what was seen (at the low end of what
/// so many tries can tell), so that a lossy link's, high by chance in a
/// short span, does not pass for a failing network.
fn failing(meanwhile: Meanwhile, tries: u32) -> Option<f64> {
    // Fewer tries than one exchange makes tell nothing of the network.
    let share = meanwhile
        .unanswered()
        .filter(|_| tries > 0 && meanwhile.tries >= tries)?;
    let error = (share * (1.0 - share) / f64::from(meanwhile.tries)).sqrt();
    let low = (share - LOW * error).max(0.0);
    (low.powi(tries as i32) >= 0.001).then_some(share)
}

/// Why the control's failure says nothing of the target: its own error, or its own
/// network failing, as its check after the failure tells (its resolver failing the
/// canary too, or what [`step`] reads of a probe's check: the canary unreachable right
/// after, its link down during the step, its connects meanwhile failing). A control
/// overloaded, or behind a full connection table, fails targets that are up.
pub fn at_control(e: &StepError, check: Option<&Check>) -> Option<String> {
    if e.local {
        return Some(format!(
            "the control could not measure it: its own error ({})",
            e.failure
        ));
    }
    let check = check?;
    let why = match (&check.checked, check.passed()) {
        (CheckTarget::Resolver(name), false) if e.failed_operation == Operation::Resolve => {
            format!(
                "its resolver did not answer a lookup of {name} (under the canary's name) either ({})",
                failure_of(check)
            )
        }
        // The canary's own name not found: the control knows it not (a name of the
        // probe's network, split DNS), which says nothing of its network.
        (CheckTarget::Resolver(_), false)
            if check.error.as_ref().is_some_and(|e| {
                matches!(e.failure, Failure::DnsNxdomain | Failure::DnsNoAnswer)
            }) =>
        {
            return None;
        }
        (CheckTarget::Resolver(canary), false) => format!(
            "a lookup of the canary {canary}, to check its network, failed ({})",
            failure_of(check)
        ),
        (CheckTarget::Connect(address), false) => format!(
            "its connect to the canary at {address} failed too ({})",
            failure_of(check)
        ),
        // How a resolver answered the run's other lookups is judged apart (see
        // `lookup`), for the probe's own resolvers only.
        (CheckTarget::Resolver(_), true) => return None,
        (CheckTarget::Connect(_), true) => network_failed(
            THE_CONTROLS,
            &format!("its {}", operation_named(e.failed_operation)),
            e,
            check,
            Meanwhile::TURNED_DOWN_TRIES,
            &[],
        )?,
    };
    Some(format!("the control could not measure it: {why}"))
}

/// An operation as the evidence names it.
fn operation_named(operation: Operation) -> &'static str {
    match operation {
        Operation::Resolve => "lookup",
        Operation::Connect => "connect",
        Operation::TlsHandshake => "TLS handshake",
        Operation::QuicHandshake => "QUIC handshake",
        Operation::HttpRoundTrip => "fetch",
        Operation::Read => "read of the body",
    }
}

/// A trigger by another target on the same address before `until` (see
/// [`silent_after_trigger`]), and not long before: the failure may be the residual block
/// it set off. Not when the address answered this target after the trigger (`answers`,
/// from its own facts, the control-SNI handshake made right after a failure included)
/// while such a block would still hold (before the failure, right after the failed step
/// `ended`, or within the shortest block reported): on the failing port, or on any port
/// when the trigger was on another one (a block of the whole address is disproved by
/// any answer; one of the trigger's port, only by an answer there). Of several, the
/// earliest is named: what a residual block makes fail is logged as a trigger too, and
/// the first set the block off.
pub fn residual(
    failed: SocketAddr,
    until: DateTime<Utc>,
    ended: DateTime<Utc>,
    target: &str,
    triggers: &[Trigger],
    answers: &[(SocketAddr, DateTime<Utc>)],
) -> Option<String> {
    let candidates = triggers.iter().filter(|t| {
        let disproved = answers.iter().any(|(address, answered)| {
            address.ip() == failed.ip()
                && *answered > t.at
                && (*answered <= ended + RIGHT_AFTER || *answered - t.at <= SHORTEST_RESIDUAL)
                && (address.port() == failed.port() || t.address.port() != failed.port())
        });
        t.address.ip() == failed.ip()
            && t.target != target
            && t.at < until
            && until - t.at <= RESIDUAL_WINDOW
            && !disproved
    });
    let trigger = candidates.min_by_key(|t| t.at)?;
    Some(format!(
        "{} stopped answering after {}, {:.0} s before: residual blocking set off by another target; nothing can be said of this one",
        failed.ip(),
        trigger.what(),
        (until - trigger.at).as_seconds_f64()
    ))
}

/// A failure to hear from `address` (a connect, handshake or request that timed out or
/// was refused at connect) in the step `m`, that a residual block set off by another
/// target may explain (see [`residual`]). A reset is not taken for one: the residual
/// blocks reported for TLS (Iran's, the GFW's of ESNI) drop, and a reset answering this
/// target's own name is evidence about that name.
///
/// `sent` is when the step sent its name (names go to an address in turn, so only one
/// sent before can have set off what this one met); a connect sends none, and is tried
/// until its end, so for a connect that failed the whole step counts.
pub fn silent_after_trigger(
    probe: &TargetFacts,
    m: &Measurement,
    address: SocketAddr,
    e: &StepError,
    sent: DateTime<Utc>,
) -> Option<String> {
    let at_connect = e.failed_operation == Operation::Connect;
    if !at_connect && !e.failure.is_timeout() {
        return None;
    }
    let until = match at_connect {
        true => m.ended_at(),
        false => sent,
    };
    let answers = answers(&probe.measurements);
    residual(
        address,
        until,
        m.ended_at(),
        &m.target,
        &probe.triggers,
        &answers,
    )
}

/// Why a connect that failed at `address`, in the step `m`, is no sign of a blocked
/// address: the address and port had answered the probe's connects in the run by the
/// time of the failure's check (`Check::answered_at`: another target's, or an earlier
/// one's). A censor's block of an address holds from the run's start; a server that
/// turns away a client after a burst of connections (a rate limit, a ban by a firewall)
/// starts so, and so does one that goes down. Not where a name was sent there since
/// (a trigger, this target's too): a block it set off is judged as such (see
/// [`residual`]), and the target whose name it was keeps its verdict.
pub fn answered_before(
    probe: &TargetFacts,
    m: &Measurement,
    address: SocketAddr,
    check: Option<&Check>,
) -> Option<String> {
    let answered = check?.answered_at?;
    let triggered = probe
        .triggers
        .iter()
        .any(|t| t.address.ip() == address.ip() && t.at >= answered && t.at < m.ended_at());
    (!triggered).then(|| {
        format!(
            "{address} had answered the probe's connects in the run (first at {}), then failed this one: a server turning away a client after many connections (a rate limit, a ban) or going down does that, where a censor's block of an address holds from the start",
            answered.format("%H:%M:%S%.3f")
        )
    })
}

/// Where a target's own measurements got through to a server, and when each began: a
/// connect, a handshake the server answered, a response, a network check.
pub fn answers(measurements: &[Measurement]) -> Vec<(SocketAddr, DateTime<Utc>)> {
    let check = |c: &Option<Check>| {
        c.as_ref()
            .filter(|c| c.passed())
            .and_then(|c| match c.checked {
                CheckTarget::Connect(address) => Some((address, c.measured_at)),
                CheckTarget::Resolver(_) => None,
            })
    };
    let mut out = Vec::new();
    for m in measurements {
        match &m.step {
            Step::TcpConnect(t) => {
                out.extend(t.error.is_none().then_some((t.address, m.measured_at)));
                out.extend(check(&t.check));
                for again in t.first_bytes.iter().map(|f| &f.reconnect) {
                    out.extend(
                        again
                            .error
                            .is_none()
                            .then_some((t.address, again.measured_at)),
                    );
                    out.extend(check(&again.check));
                }
            }
            Step::TlsHandshake(t) | Step::QuicHandshake(QuicFacts { handshake: t, .. }) => {
                out.extend(t.server_answered().then_some((t.address, m.measured_at)));
                out.extend(check(&t.check));
            }
            Step::Http(h) => {
                let answered = |hop: &HttpHop| {
                    hop.status.is_some() || hop.tls.as_ref().is_some_and(TlsFacts::server_answered)
                };
                for hop in h.hops.iter().filter(|hop| answered(hop)) {
                    out.extend(hop.address.map(|address| (address, m.measured_at)));
                }
                out.extend(check(&h.check));
            }
            Step::Ech(f) => out.extend(
                f.handshakes
                    .iter()
                    .filter(|h| h.handshake_done)
                    .map(|h| (f.address, h.measured_at)),
            ),
            Step::Dns(_) => {}
        }
    }
    out
}

fn own_error(e: &StepError) -> String {
    format!(
        "the probe's own machine failed ({} in {}), not the network",
        e.failure, e.failed_operation
    )
}

fn failure_of(check: &Check) -> String {
    check
        .error
        .as_ref()
        .map_or("no error".into(), |e| e.failure.to_string())
}

/// Every trigger among a run's measurements, by address (for offline analysis, which
/// finds what the live run was told by the measurer).
pub fn triggers_by_address<'a>(
    measurements: impl IntoIterator<Item = &'a Measurement>,
) -> HashMap<IpAddr, Vec<Trigger>> {
    let mut out: HashMap<IpAddr, Vec<Trigger>> = HashMap::new();
    for m in measurements {
        for trigger in Trigger::of(m) {
            out.entry(trigger.address.ip()).or_default().push(trigger);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, Utc};

    use super::super::fixtures::*;
    use super::super::{Blocking, Context, Outcome, Verdict};
    use super::{Interceptor, ResolverHealth, intercepted_like_the_canary};
    use crate::facts::failure::Operation;
    use crate::facts::failure::{Failure, StepError};
    use crate::facts::{
        Burst, Check, CheckTarget, DnsReply, Meanwhile, Measurement, QueryType, Sent, Step, Trigger,
    };

    /// A reset kept after a silent first try is judged by its resets alone: the silence
    /// is no try turned down.
    #[test]
    fn a_silent_first_try_is_not_counted_among_those_turned_down() {
        let at = |failure| StepError::new(Operation::TlsHandshake, failure);
        let (reset, timeout) = (Failure::ConnectionReset, Failure::GenericTimeout);
        let tries_like =
            |e, tries, first: Option<&Failure>| super::tries_like(&at(e), tries, first);
        assert_eq!(tries_like(reset.clone(), 3, Some(&timeout)), 2);
        assert_eq!(tries_like(reset.clone(), 3, None), 3);
        assert_eq!(tries_like(reset.clone(), 3, Some(&reset)), 3);
        assert_eq!(tries_like(timeout.clone(), 2, Some(&timeout)), 2);
    }

    /// A run whose canary's A lookup through `system` failed with `failure`.
    fn canary_failed(failure: Failure) -> Context {
        Context {
            resolvers: ResolverHealth::of(&[failed_lookup(failure)]),
            ..Context::default()
        }
    }

    #[test]
    fn a_resolver_that_fails_the_canary_too_leaves_its_failures_inconclusive() {
        let resolved = || vec![lookup(&[(FB, None)])];
        let silent = || vec![failed_lookup(Failure::GenericTimeout)];
        let down = compare_in(
            &canary_failed(Failure::GenericTimeout),
            domain(&[]),
            (silent(), vec![]),
            (resolved(), vec![]),
        );
        assert_eq!(kind(&down), (Verdict::Inconclusive, None));
        assert!(
            down.verdict
                .evidence
                .contains("did not answer the canary either"),
            "{}",
            down.verdict.evidence
        );
        // The same failure, the resolver having answered the canary: blocking.
        let censored = compare(domain(&[]), (silent(), vec![]), (resolved(), vec![]));
        assert_eq!(
            kind(&censored),
            (Verdict::Blocked, Some(Blocking::DnsFailure))
        );
        // A resolver that stopped answering the canary right after the lookup failed.
        let outage = compare(
            domain(&[]),
            (
                vec![checked(
                    failed_lookup(Failure::DnsServfail),
                    Some(Failure::GenericTimeout),
                )],
                vec![],
            ),
            (resolved(), vec![]),
        );
        assert_eq!(kind(&outage), (Verdict::Inconclusive, None));
        assert!(
            outage.verdict.evidence.contains("right after"),
            "{}",
            outage.verdict.evidence
        );
        let answered = compare(
            domain(&[]),
            (
                vec![checked(failed_lookup(Failure::DnsServfail), None)],
                vec![],
            ),
            (resolved(), vec![]),
        );
        assert_eq!(
            kind(&answered),
            (Verdict::Blocked, Some(Blocking::DnsFailure))
        );
    }

    /// A lookup none of whose six copies was answered, though the resolver answered its
    /// check: a censor dropping the name's queries, unless the resolver was leaving
    /// most other lookups' copies unanswered too.
    #[test]
    fn a_resolver_dropping_most_queries_leaves_a_silent_lookup_inconclusive() {
        let resolved = || vec![lookup(&[(FB, None)])];
        let silent = |failure, answered, tries| {
            let mut m = checked(failed_lookup(failure), None);
            if let Step::Dns(d) = &mut m.step {
                d.replies.clear();
                d.sent = 6;
                d.check.as_mut().unwrap().meanwhile = Some(Meanwhile {
                    answered,
                    tries,
                    ..Default::default()
                });
            }
            compare(domain(&[]), (vec![m], vec![]), (resolved(), vec![]))
        };
        // Two copies in three unanswered, over 120: all six of one lookup's go
        // unanswered once in 11 lookups.
        let dropping = silent(Failure::GenericTimeout, 40, 120);
        assert_eq!(kind(&dropping), (Verdict::Inconclusive, None));
        evidence_of(
            &dropping,
            &[
                "system A lookup of facebook.com failed (generic_timeout_error) while the resolver was dropping queries: the 40 lookups it had answered meanwhile took 120 copies of the query, 67 % of them unanswered, a rate at which all 6 copies of a lookup go unanswered once in 11",
            ],
        );
        // One copy in seven unanswered (a lossy link): the name's queries dropped.
        let lossy = silent(Failure::GenericTimeout, 60, 70);
        assert_eq!(kind(&lossy), (Verdict::Blocked, Some(Blocking::DnsFailure)));
        // Too few copies meanwhile to tell.
        let few = silent(Failure::GenericTimeout, 1, 4);
        assert_eq!(kind(&few), (Verdict::Blocked, Some(Blocking::DnsFailure)));
        // A lookup the resolver answered, if with a failure, was not dropped.
        let refused = silent(Failure::DnsServfail, 40, 120);
        assert_eq!(
            kind(&refused),
            (Verdict::Blocked, Some(Blocking::DnsFailure))
        );
        // A lookup made again while a pulse of the link found it down: the link's, though
        // the resolver answered right after.
        let pulsed = |answered| {
            let mut m = checked(failed_lookup(Failure::GenericTimeout), None);
            if let Step::Dns(d) = &mut m.step {
                d.replies.clear();
                d.check.as_mut().unwrap().during = Some(Burst { made: 6, answered });
            }
            compare(domain(&[]), (vec![m], vec![]), (resolved(), vec![]))
        };
        let link_down = pulsed(0);
        assert_eq!(kind(&link_down), (Verdict::Inconclusive, None));
        evidence_of(
            &link_down,
            &[
                "failed (generic_timeout_error) while the probe's link was down: 6 connects to the canary",
            ],
        );
        assert_eq!(
            kind(&pulsed(1)),
            (Verdict::Blocked, Some(Blocking::DnsFailure))
        );
    }

    /// A lookup none of whose copies was answered in time, though the resolver answered
    /// its check: a censor dropping the name's queries, unless a quarter of the
    /// resolver's answers of late took half the deadline or more.
    #[test]
    fn a_resolver_answering_near_the_deadline_leaves_a_silent_lookup_inconclusive() {
        let resolved = || vec![lookup(&[(FB, None)])];
        let deadline = Context {
            deadline: Some(Duration::from_secs(3)),
            ..Context::default()
        };
        let silent = |failure, slow_quarter_ms, context: &Context| {
            let mut m = checked(failed_lookup(failure), None);
            if let Step::Dns(d) = &mut m.step {
                d.replies.clear();
                d.check.as_mut().unwrap().slow_quarter_ms = slow_quarter_ms;
            }
            compare_in(
                context,
                domain(&[]),
                (vec![m], vec![]),
                (resolved(), vec![]),
            )
        };
        let slow = silent(Failure::GenericTimeout, Some(1600.0), &deadline);
        assert_eq!(kind(&slow), (Verdict::Inconclusive, None));
        evidence_of(
            &slow,
            &[
                "system A lookup of facebook.com failed (generic_timeout_error) while the resolver was slow: a quarter of its answers of late took 1.6 s or more, against a deadline of 3.0 s",
            ],
        );
        let dropped = (Verdict::Blocked, Some(Blocking::DnsFailure));
        // Its answers quick: the name's queries dropped.
        assert_eq!(
            kind(&silent(Failure::GenericTimeout, Some(40.0), &deadline)),
            dropped
        );
        // Not timed, or the deadline unknown: nothing tells.
        assert_eq!(
            kind(&silent(Failure::GenericTimeout, None, &deadline)),
            dropped
        );
        assert_eq!(
            kind(&silent(
                Failure::GenericTimeout,
                Some(1600.0),
                &Context::default()
            )),
            dropped
        );
        // A lookup the resolver answered, if with a failure, was not too slow.
        assert_eq!(
            kind(&silent(Failure::DnsServfail, Some(1600.0), &deadline)),
            dropped
        );
    }

    /// A lookup that timed out though the resolver answered its check: a censor
    /// dropping the name's queries, unless the resolver's answer to it, or to the name's
    /// query of the other type, came after all, past the deadline (its fast answers to
    /// other names notwithstanding), as it answers a name it resolved.
    #[test]
    fn an_answer_past_the_deadline_leaves_a_silent_lookup_inconclusive() {
        const SERVER: &str = "198.18.0.53:53";
        let resolved = || vec![lookup(&[(FB, None)])];
        let reply = |arrival_ms, address: &str| {
            let Step::Dns(mut d) = lookup(&[(address, None)]).step else {
                unreachable!()
            };
            DnsReply {
                arrival_ms,
                ..d.replies.remove(0)
            }
        };
        let answer = |arrival_ms| reply(arrival_ms, FB);
        // The failed A lookup, and the AAAA one where `overdue_aaaa` is set.
        let silent = |failure, overdue: Option<DnsReply>, overdue_aaaa: Option<DnsReply>| {
            let mut m = checked(failed_lookup(failure), None);
            if let Step::Dns(d) = &mut m.step {
                d.replies.clear();
                d.resolver_address = Some(SERVER.into());
                d.check.as_mut().unwrap().slow_quarter_ms = Some(20.0);
                d.overdue = overdue;
            }
            let mut aaaa = m.clone();
            if let Step::Dns(d) = &mut aaaa.step {
                d.query_type = QueryType::Aaaa;
                d.overdue = overdue_aaaa.clone();
            }
            let ours = match overdue_aaaa {
                Some(_) => vec![m, aaaa],
                None => vec![m],
            };
            compare(domain(&[]), (ours, vec![]), (resolved(), vec![]))
        };
        let late = silent(Failure::GenericTimeout, Some(answer(4500.0)), None);
        assert_eq!(kind(&late), (Verdict::Inconclusive, None));
        evidence_of(
            &late,
            &[
                "system A lookup of facebook.com failed (generic_timeout_error), but the resolver answered it 4.5 s after the query was sent (NoError, 157.240.1.35), past the deadline",
            ],
        );
        let other_type = silent(Failure::GenericTimeout, None, Some(answer(5100.0)));
        assert_eq!(kind(&other_type), (Verdict::Inconclusive, None));
        evidence_of(
            &other_type,
            &["but the resolver answered its AAAA query 5.1 s after the query was sent"],
        );
        let dropped = (Verdict::Blocked, Some(Blocking::DnsFailure));
        assert_eq!(kind(&silent(Failure::GenericTimeout, None, None)), dropped);
        // No answer of a name resolved: a late failure (the resolver's own queries
        // upstream unanswered), a censor's blockpage address, a reply from elsewhere.
        let servfail = DnsReply {
            rcode: "ServFail".into(),
            answers: Vec::new(),
            ..answer(9000.0)
        };
        let elsewhere = DnsReply {
            source: "203.0.113.9:53".into(),
            ..answer(4500.0)
        };
        for overdue in [servfail, reply(4500.0, "10.10.34.34"), elsewhere] {
            let judged = silent(Failure::GenericTimeout, Some(overdue.clone()), None);
            assert_eq!(kind(&judged), dropped, "{overdue:?}");
        }
        // A lookup the resolver answered in time, with a failure, is judged by that.
        assert_eq!(
            kind(&silent(Failure::DnsServfail, Some(answer(4500.0)), None)),
            dropped
        );
    }

    #[test]
    fn one_record_type_failing_is_not_the_target_failing() {
        let reachable = || {
            vec![
                tcp(FB_443, None),
                tls(FB_443, true, None),
                tls(FB_443, false, None),
            ]
        };
        let broken_aaaa = || {
            vec![
                lookup(&[(FB, None)]),
                failed_lookup_of(QueryType::Aaaa, Failure::DnsRefused),
            ]
        };
        // AAAA refused on both sides, everything else fine: reachable, not down.
        let both = compare(
            domain(&[]),
            (broken_aaaa(), reachable()),
            (broken_aaaa(), reachable()),
        );
        assert_eq!(
            kind(&both),
            (Verdict::Ok, None),
            "{}",
            both.verdict.evidence
        );
        // At the probe only: still reachable, not blocked.
        let probe = compare(
            domain(&[]),
            (broken_aaaa(), reachable()),
            (vec![lookup(&[(FB, None)])], reachable()),
        );
        assert_eq!(
            kind(&probe),
            (Verdict::Ok, None),
            "{}",
            probe.verdict.evidence
        );
        // Both types failing is the name failing.
        let name = compare(
            domain(&[]),
            (
                vec![
                    failed_lookup(Failure::DnsRefused),
                    failed_lookup_of(QueryType::Aaaa, Failure::DnsRefused),
                ],
                vec![],
            ),
            (vec![lookup(&[(FB, None)])], reachable()),
        );
        assert_eq!(kind(&name), (Verdict::Blocked, Some(Blocking::DnsFailure)));
    }

    #[test]
    fn down_needs_the_control_to_miss_the_target_itself() {
        let dns = || vec![lookup(&[(FB, None), ("157.240.1.36", None)])];
        let dead = "157.240.1.36:443";
        // One of two addresses dead for both: the target was reached all the same.
        let half = || {
            vec![
                tcp(FB_443, None),
                tls(FB_443, false, None),
                tcp(dead, Some(Failure::ConnectionRefused)),
            ]
        };
        let one = compare(domain(&[]), (dns(), half()), (dns(), half()));
        assert_eq!(kind(&one), (Verdict::Ok, None), "{}", one.verdict.evidence);
        assert!(
            one.verdict.evidence.contains("at both vantage points"),
            "{}",
            one.verdict.evidence
        );
        // Both dead for both: down.
        let refused = || {
            vec![
                tcp(FB_443, Some(Failure::ConnectionRefused)),
                tcp(dead, Some(Failure::ConnectionRefused)),
            ]
        };
        let all = compare(domain(&[]), (dns(), refused()), (dns(), refused()));
        assert_eq!(kind(&all), (Verdict::Down, None));
    }

    /// A connect that timed out, whose check could not find the canary's address (its
    /// lookup failed): the probe could not tell its network working, and a link down
    /// as the check looked the canary up fails a connect as a blackhole does.
    #[test]
    fn a_failure_the_canary_could_not_be_found_for_is_not_censorship() {
        let mut m = checked(timed_out_connect(), Some(Failure::GenericTimeout));
        if let Step::TcpConnect(t) = &mut m.step {
            t.check.as_mut().unwrap().checked = CheckTarget::Resolver("canary.test".into());
        }
        let dns = || vec![lookup(&[(FB, None)])];
        let control = (dns(), vec![tcp(FB_443, None)]);
        let lost = compare(domain(&[]), (dns(), vec![m]), control);
        assert_eq!(kind(&lost), (Verdict::Inconclusive, None));
        evidence_of(
            &lost,
            &[
                "and a lookup of the canary canary.test, to check the network, right after failed too (generic_timeout_error): the probe's own network",
            ],
        );
    }

    #[test]
    fn the_probes_own_errors_and_dead_links_are_not_censorship() {
        let dns = || vec![lookup(&[(FB, None)])];
        let control = || (dns(), vec![tcp(FB_443, None)]);
        let own = compare(
            domain(&[]),
            (dns(), vec![tcp(FB_443, Some(Failure::TooManyOpenFiles))]),
            control(),
        );
        assert_eq!(kind(&own), (Verdict::Inconclusive, None));
        assert!(
            own.verdict.evidence.contains("the probe's own machine"),
            "{}",
            own.verdict.evidence
        );
        let no_route = {
            let mut m = tcp(FB_443, Some(Failure::NetworkUnreachable));
            if let Step::TcpConnect(t) = &mut m.step {
                t.error = t.error.take().map(StepError::from_probe);
            }
            m
        };
        let unrouted = compare(domain(&[]), (dns(), vec![no_route]), control());
        assert_eq!(kind(&unrouted), (Verdict::Inconclusive, None));
        // A timeout after which the canary could not be reached either: the link.
        let dead_link = compare(
            domain(&[]),
            (
                dns(),
                vec![checked(timed_out_connect(), Some(Failure::GenericTimeout))],
            ),
            control(),
        );
        assert_eq!(kind(&dead_link), (Verdict::Inconclusive, None));
        assert!(
            dead_link
                .verdict
                .evidence
                .contains("the probe's own network"),
            "{}",
            dead_link.verdict.evidence
        );
        // The canary answered right after: a blackhole.
        let blackhole = compare(
            domain(&[]),
            (dns(), vec![checked(timed_out_connect(), None)]),
            control(),
        );
        assert_eq!(
            kind(&blackhole),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
        // The canary answered, but none of the check's connects at its first try (the
        // link was down as the connect ended, and came back as the check went on), or
        // none of a pulse's as the connect was tried again (it came back between the
        // two). One answered at once is enough for a blackhole.
        let answered_at_first = |right_after, pulsed| {
            let mut m = checked(timed_out_connect(), None);
            if let Step::TcpConnect(t) = &mut m.step {
                let check = t.check.as_mut().unwrap();
                check.first_tries = Some(Burst {
                    made: 6,
                    answered: right_after,
                });
                check.during = Some(Burst {
                    made: 6,
                    answered: pulsed,
                });
            }
            compare(domain(&[]), (dns(), vec![m]), control())
        };
        let back_later: &[&str] = &[
            "the 6 connects to the canary at",
            "went unanswered at their first try too",
            "the probe's network was down as the step ended",
        ];
        let came_back: &[&str] = &[
            "while the probe's link was down: 6 connects to the canary at",
            "went unanswered too",
        ];
        for ((right_after, pulsed), evidence) in [((0, 6), back_later), ((6, 0), came_back)] {
            let outcome = answered_at_first(right_after, pulsed);
            assert_eq!(kind(&outcome), (Verdict::Inconclusive, None));
            evidence_of(&outcome, evidence);
        }
        for (right_after, pulsed) in [(1, 6), (6, 2)] {
            assert_eq!(
                kind(&answered_at_first(right_after, pulsed)),
                (Verdict::Blocked, Some(Blocking::TcpBlackhole))
            );
        }
        // The canary answered, but the probe's other connects meanwhile took three tries
        // each on the whole (a full NAT table): all of one connect's going unanswered
        // comes once in eleven there.
        let around = |answered, tries, before: Option<Meanwhile>| {
            let mut m = checked(timed_out_connect(), None);
            if let Step::TcpConnect(t) = &mut m.step {
                let check = t.check.as_mut().unwrap();
                check.meanwhile = Some(Meanwhile {
                    answered,
                    tries,
                    ..Default::default()
                });
                check.before = before;
            }
            compare(domain(&[]), (dns(), vec![m]), control())
        };
        let meanwhile = |answered, tries| around(answered, tries, None);
        let full = meanwhile(40, 120);
        assert_eq!(kind(&full), (Verdict::Inconclusive, None));
        evidence_of(
            &full,
            &[
                "the 40 connects it had answered meanwhile took 120 tries, 67 % of them unanswered at first, a rate at which all 6 tries of a connect go unanswered once in 11",
            ],
        );
        // One try in four unanswered (a lossy link): one connect in 4,096 loses all six.
        let lossy = meanwhile(30, 40);
        assert_eq!(
            kind(&lossy),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
        // Too few tries meanwhile to tell: none, or 36 % of 14, which a lossy link gives
        // by chance.
        let few = meanwhile(1, 5);
        assert_eq!(kind(&few), (Verdict::Blocked, Some(Blocking::TcpBlackhole)));
        let short = meanwhile(9, 14);
        assert_eq!(
            kind(&short),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
        // A like share over many tries (37 % of 400): a failing network.
        let long = meanwhile(250, 400);
        assert_eq!(kind(&long), (Verdict::Inconclusive, None));
        // Too few meanwhile, and so many before as well (half of 100 tries): a network
        // failing for longer than the step.
        let half = Some(Meanwhile {
            answered: 50,
            tries: 100,
            ..Default::default()
        });
        let longer = around(9, 14, half);
        assert_eq!(kind(&longer), (Verdict::Inconclusive, None));
        evidence_of(
            &longer,
            &["the 59 connects it had answered meanwhile and just before took 114 tries"],
        );
        // A share the tries before do not bear out (one in ten of 100).
        let tenth = Some(Meanwhile {
            answered: 90,
            tries: 100,
            ..Default::default()
        });
        assert_eq!(
            kind(&around(9, 14, tenth)),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
    }

    /// A handshake reset at every try, while the control name's went through: a
    /// censor's reset, unless the probe's other steps meanwhile were reset at a try and
    /// went through at a later one so often, over enough tries, that all of one step's
    /// come by chance.
    #[test]
    fn resets_on_a_network_that_resets_at_random_are_no_sign() {
        let dns = || vec![lookup(&[(FB, None)])];
        let control = || (dns(), vec![tcp(FB_443, None), tls(FB_443, false, None)]);
        let reset = |meanwhile: Option<Meanwhile>| {
            let before = tls(FB_443, true, None);
            let mut m = checked(tls(FB_443, false, Some(Failure::ConnectionReset)), None);
            if let Step::TlsHandshake(t) = &mut m.step {
                t.tries = Meanwhile::TURNED_DOWN_TRIES;
                t.check.as_mut().unwrap().meanwhile = meanwhile;
            }
            let after = tls(FB_443, true, None);
            let probe = vec![tcp(FB_443, None), before, m, after];
            compare(domain(&[]), (dns(), probe), control())
        };
        let sni = reset(None);
        assert_eq!(kind(&sni), (Verdict::Blocked, Some(Blocking::TlsReset)));
        // Twelve tries in a hundred turned down, and through when made again.
        let flaky = reset(Some(Meanwhile {
            answered: 88,
            tries: 100,
            ..Default::default()
        }));
        assert_eq!(kind(&flaky), (Verdict::Inconclusive, None));
        evidence_of(
            &flaky,
            &[
                "failed (connection_reset) while the probe's network was turning connections down at random: of the 100 tries its 88 other connects, handshakes and fetches that went through meanwhile took, 12.0 % were refused or reset and went through when made again, a rate at which all 3 tries of a step fail once in 579",
            ],
        );
        // Five in a hundred: all three of one step's come once in 8,000.
        let rare = reset(Some(Meanwhile {
            answered: 95,
            tries: 100,
            ..Default::default()
        }));
        assert_eq!(kind(&rare), (Verdict::Blocked, Some(Blocking::TlsReset)));
        // Two other steps, one of them reset once: too few tries to tell.
        let few = reset(Some(Meanwhile {
            answered: 2,
            tries: 3,
            ..Default::default()
        }));
        assert_eq!(kind(&few), (Verdict::Blocked, Some(Blocking::TlsReset)));
        // Counted by the packets the tries met: one in 50 turned down, where a
        // handshake's try meets seven, fails all three once in 436.
        let per_packet = |answered| {
            reset(Some(Meanwhile {
                answered,
                tries: 120,
                packets: 1000,
            }))
        };
        let flaky = per_packet(100);
        assert_eq!(kind(&flaky), (Verdict::Inconclusive, None));
        evidence_of(
            &flaky,
            &[
                "one in 50 of the some 1000 packets they met; at that rate all 3 tries of this step (7 packets each) fail once in 436",
            ],
        );
        // One in 200: all three once in 24,000.
        let rare = per_packet(115);
        assert_eq!(kind(&rare), (Verdict::Blocked, Some(Blocking::TlsReset)));
    }

    /// The canary's own IPv4 handshake timed out in the run (a path-MTU black hole drops
    /// every server's first flight): so does a target's, which is no sign, while an IPv6
    /// one's stays evidence.
    #[test]
    fn a_failure_the_canary_met_too_is_the_probes_networks() {
        let dns = || vec![lookup(&[(FB, None)])];
        let timed_out = |address| {
            vec![
                tcp(address, None),
                tls(address, true, Some(Failure::GenericTimeout)),
                tls(address, false, Some(Failure::GenericTimeout)),
            ]
        };
        let answered = |address| vec![tcp(address, None), tls(address, false, None)];
        // A target's handshakes to `address` timed out, the control's went through, in
        // a run whose canary's steps were `canary`.
        let judged = |canary: Vec<Measurement>, address| {
            let mut context = Context::default();
            context.learn_from_canary(&facts(&domain(&[]), dns(), canary));
            compare_in(
                &context,
                domain(&[]),
                (dns(), timed_out(address)),
                (dns(), answered(address)),
            )
        };
        let canary_v4 = "198.18.0.10:443";
        let like = judged(timed_out(canary_v4), FB_443);
        assert_eq!(kind(&like), (Verdict::Inconclusive, None));
        evidence_of(
            &like,
            &[
                "failed (generic_timeout_error in tls_handshake), as the canary's own did over IPv4 in this run (generic_timeout_error in tls_handshake)",
            ],
        );
        let v6 = judged(timed_out(canary_v4), "[2a03:2880::1]:443");
        assert_eq!(kind(&v6), (Verdict::Blocked, Some(Blocking::TlsFailure)));
        // One of the canary's two IPv4 addresses timed out, the other answered: a dead
        // node of its own, which says nothing of the network.
        let mut one_node = timed_out(canary_v4);
        one_node.extend(answered("198.18.0.11:443"));
        let node = judged(one_node, FB_443);
        assert_eq!(kind(&node), (Verdict::Blocked, Some(Blocking::TlsFailure)));
        let unlike = judged(answered(canary_v4), FB_443);
        assert_eq!(
            kind(&unlike),
            (Verdict::Blocked, Some(Blocking::TlsFailure))
        );
    }

    /// A captive portal's resolver answers the canary's name with a private address
    /// over IPv4, which the probe does not connect to, and passes its IPv6 on; the
    /// portal refuses the canary's IPv6 connects as it refuses a target's IPv4 ones. The
    /// canary's failure over the other family then stands for the one it could not be
    /// tried over; where its name has no IPv4 address at all, it stands for nothing.
    #[test]
    fn a_family_the_canary_could_not_be_tried_over_takes_the_others_failures() {
        let refused = |address| tcp(address, Some(Failure::ConnectionRefused));
        let judged = |canary_dns: Measurement| {
            let canary = vec![refused("[2001:db8::10]:443"), refused("[2001:db8::10]:80")];
            compare_in(
                &canary_context(vec![canary_dns], canary),
                domain(&[]),
                (vec![lookup(&[(FB, None)])], vec![refused(FB_443)]),
                (
                    vec![lookup(&[(FB, None)])],
                    vec![tcp(FB_443, None), tls(FB_443, false, None)],
                ),
            )
        };
        inconclusive_saying(
            &judged(lookup(&[("10.10.10.10", None), ("2001:db8::10", None)])),
            &["as the canary's own did over IPv6 (it could not be tried over IPv4) in this run"],
        );
        let no_ipv4 = judged(lookup(&[("2001:db8::10", None)]));
        assert_eq!(
            kind(&no_ipv4),
            (Verdict::Blocked, Some(Blocking::TcpRefused))
        );
    }

    /// An intercepting proxy or a captive portal accepts every connection and tears
    /// the flows down: the canary's handshake was reset at every try, so a target's
    /// handshake or fetch reset alike is the network's; a refused connect, earlier in
    /// the flow than anything the canary met, is still a sign.
    #[test]
    fn a_network_that_tears_down_the_canarys_flows_tears_down_the_targets() {
        let dns = || vec![lookup(&[(FB, None)])];
        let reset = |address| {
            vec![
                tcp(address, None),
                tls(address, false, Some(Failure::ConnectionReset)),
            ]
        };
        let mut context = Context::default();
        context.learn_from_canary(&facts(&domain(&[]), dns(), reset("198.18.0.10:443")));
        let answered = || (dns(), vec![tcp(FB_443, None), tls(FB_443, false, None)]);
        let torn = compare_in(&context, domain(&[]), (dns(), reset(FB_443)), answered());
        assert_eq!(kind(&torn), (Verdict::Inconclusive, None));
        evidence_of(
            &torn,
            &["as the canary's own did over IPv4 in this run (connection_reset in tls_handshake)"],
        );
        let refused = compare_in(
            &context,
            domain(&[]),
            (dns(), vec![tcp(FB_443, Some(Failure::ConnectionRefused))]),
            answered(),
        );
        assert_eq!(
            kind(&refused),
            (Verdict::Blocked, Some(Blocking::TcpRefused))
        );
        // A canary that went through: the same reset is the target's.
        let mut clean = Context::default();
        clean.learn_from_canary(&facts(
            &domain(&[]),
            dns(),
            vec![
                tcp("198.18.0.10:443", None),
                tls("198.18.0.10:443", false, None),
            ],
        ));
        let blocked = compare_in(&clean, domain(&[]), (dns(), reset(FB_443)), answered());
        assert_eq!(
            kind(&blocked).0,
            Verdict::Blocked,
            "{}",
            blocked.verdict.evidence
        );
        // Such a middlebox answers every connect, a blackholed address's too: a fixed
        // endpoint that only connected is no `ok` there.
        let connected = || (vec![], vec![tcp(DC_443, None)]);
        let taken = compare_in(&context, endpoint(), connected(), connected());
        assert_eq!(kind(&taken), (Verdict::Inconclusive, None));
        evidence_of(
            &taken,
            &["a middlebox of the probe's network may have taken the connects"],
        );
        let reached = compare_in(&clean, endpoint(), connected(), connected());
        assert_eq!(
            kind(&reached),
            (Verdict::Ok, None),
            "{}",
            reached.verdict.evidence
        );
    }

    #[test]
    fn the_controls_own_errors_are_not_measured_never_down() {
        let dns = || vec![lookup(&[(FB, None)])];
        let starved = compare(
            domain(&[]),
            (dns(), vec![timed_out_connect()]),
            (dns(), vec![tcp(FB_443, Some(Failure::TooManyOpenFiles))]),
        );
        assert_eq!(kind(&starved), (Verdict::Inconclusive, None));
        assert!(
            starved
                .verdict
                .evidence
                .contains("the control could not measure it"),
            "{}",
            starved.verdict.evidence
        );
        let their_resolver = compare(
            domain(&[]),
            (vec![failed_lookup(Failure::DnsNxdomain)], vec![]),
            (
                vec![checked(
                    failed_lookup(Failure::GenericTimeout),
                    Some(Failure::GenericTimeout),
                )],
                vec![],
            ),
        );
        assert_eq!(kind(&their_resolver), (Verdict::Inconclusive, None));
        // The control failing for real, at every step: down.
        let down = compare(
            domain(&[]),
            (dns(), vec![timed_out_connect()]),
            (dns(), vec![timed_out_connect()]),
        );
        assert_eq!(kind(&down), (Verdict::Down, None));
    }

    /// A control overloaded, or behind a limit on new flows, fails targets that are up:
    /// its check after a failed connect tells, as a probe's does, and the target is not
    /// called down for everyone.
    #[test]
    fn the_controls_own_network_failing_is_no_outage_of_the_target() {
        let dns = || vec![lookup(&[(FB, None)])];
        let at_control = |check: Check| {
            let mut m = timed_out_connect();
            if let Step::TcpConnect(t) = &mut m.step {
                t.check = Some(check);
            }
            compare(
                domain(&[]),
                (dns(), vec![timed_out_connect()]),
                (dns(), vec![m]),
            )
        };
        let canary = || Check {
            checked: CheckTarget::Connect("93.184.216.34:443".parse().unwrap()),
            ..check(None)
        };
        let cases = [
            (
                "its connects made at once right after all unanswered at first",
                Check {
                    first_tries: Some(Burst {
                        made: 6,
                        answered: 0,
                    }),
                    ..canary()
                },
                "the control's network was down as the step ended",
            ),
            (
                "its other connects meanwhile answered at a later try",
                Check {
                    meanwhile: Some(Meanwhile {
                        answered: 27,
                        tries: 90,
                        packets: 0,
                    }),
                    ..canary()
                },
                "while the control's network was failing new connections",
            ),
            (
                "the canary unreachable right after",
                Check {
                    error: Some(StepError::timeout(Operation::Connect)),
                    ..canary()
                },
                "its connect to the canary at 93.184.216.34:443 failed too",
            ),
        ];
        for (case, check, said) in cases {
            let outcome = at_control(check);
            assert_eq!(kind(&outcome), (Verdict::Inconclusive, None), "{case}");
            let evidence = &outcome.verdict.evidence;
            assert!(
                evidence.contains("the control could not measure it") && evidence.contains(said),
                "{case}: {evidence}"
            );
        }
        // Its network sound (its other connects answered at once): down after all.
        let sound = Check {
            meanwhile: Some(Meanwhile {
                answered: 90,
                tries: 90,
                packets: 0,
            }),
            ..canary()
        };
        assert_eq!(kind(&at_control(sound)), (Verdict::Down, None));
        // The canary's name unknown to the control: nothing said of its network.
        let unknown = Check {
            checked: CheckTarget::Resolver("canary.example".into()),
            error: Some(StepError::new(Operation::Resolve, Failure::DnsNxdomain)),
            ..check(None)
        };
        assert_eq!(kind(&at_control(unknown)), (Verdict::Down, None));
    }

    /// A domain's `steps` at facebook.com's address, with `triggers` logged there,
    /// judged against a control that connected to it.
    fn judge_connect(steps: Vec<Measurement>, triggers: Vec<Trigger>) -> Outcome {
        let dns = || vec![lookup(&[(FB, None)])];
        let mut ours = facts(&domain(&[]), dns(), steps);
        ours.triggers = triggers;
        let theirs = facts(&domain(&[]), dns(), vec![tcp(FB_443, None)]).into_control();
        super::super::judge(
            &ours,
            super::super::Control::Measured(&theirs),
            &Context::default(),
        )
    }

    /// A connect that failed at an address and port that had answered the probe's
    /// connects in the run: a server that began to turn the probe away (a rate limit, a
    /// ban), not a block of the address, which holds from the start.
    #[test]
    fn an_address_that_answered_in_the_run_is_no_blackhole() {
        let judge_triggered = |failure, answered_at: Option<DateTime<Utc>>, triggers| {
            let mut connect = checked(tcp(FB_443, Some(failure)), None);
            if let Step::TcpConnect(t) = &mut connect.step {
                t.check.as_mut().unwrap().answered_at = answered_at;
            }
            judge_connect(vec![connect], triggers)
        };
        let judge_with = |failure, answered_at| judge_triggered(failure, answered_at, vec![]);
        let first = Utc::now() - TimeDelta::seconds(60);
        let banned = judge_with(Failure::GenericTimeout, Some(first));
        assert_eq!(kind(&banned), (Verdict::Inconclusive, None));
        evidence_of(
            &banned,
            &[&format!(
                "157.240.1.35:443 had answered the probe's connects in the run (first at {}), then failed this one",
                first.format("%H:%M:%S%.3f")
            )],
        );
        let refused = judge_with(Failure::ConnectionRefused, Some(first));
        assert_eq!(kind(&refused), (Verdict::Inconclusive, None));
        // Never answered: a block from the start. Or this target's name sent there since
        // (a failed handshake): a block it set off, which its target keeps.
        let blackhole = (Verdict::Blocked, Some(Blocking::TcpBlackhole));
        assert_eq!(kind(&judge_with(Failure::GenericTimeout, None)), blackhole);
        let own = Trigger {
            address: FB_443.parse().unwrap(),
            sent: Sent::Name("facebook.com".into()),
            target: "facebook.com".into(),
            at: Utc::now() - TimeDelta::seconds(10),
            failure: Failure::ConnectionReset,
        };
        let triggered = judge_triggered(Failure::GenericTimeout, Some(first), vec![own]);
        assert_eq!(kind(&triggered), blackhole);
    }

    #[test]
    fn a_neighbours_trigger_explains_a_connect_failure_on_its_address() {
        let ip: IpAddr = FB.parse().unwrap();
        let trigger = |target: &str, port: u16, seconds_before: i64| Trigger {
            address: SocketAddr::new(ip, port),
            sent: Sent::Name("forbidden.test".into()),
            target: target.into(),
            at: Utc::now() - TimeDelta::seconds(seconds_before),
            failure: Failure::GenericTimeout,
        };
        let judge_with = |triggers: Vec<Trigger>, also: Vec<Measurement>| {
            let mut steps = vec![at(timed_out_connect(), 0)];
            steps.extend(also);
            judge_connect(steps, triggers)
        };
        let explained = judge_with(vec![trigger("forbidden.test", 443, 10)], vec![]);
        assert_eq!(kind(&explained), (Verdict::Inconclusive, None));
        assert!(
            explained
                .verdict
                .evidence
                .contains("residual blocking set off by another target")
                && explained.verdict.evidence.contains("forbidden.test"),
            "{}",
            explained.verdict.evidence
        );
        let blackhole = (Verdict::Blocked, Some(Blocking::TcpBlackhole));
        // Its own trigger, one long past, or one after the failure explain nothing.
        for triggers in [
            vec![trigger("facebook.com", 443, 10)],
            vec![trigger("forbidden.test", 443, 600)],
            vec![trigger("forbidden.test", 443, -10)],
        ] {
            assert_eq!(kind(&judge_with(triggers, vec![])), blackhole);
        }
        // The address answering this target after the trigger disproves a block of the
        // whole address (the trigger on another port), but not one of the trigger's port.
        let answered_on_80 = || vec![at(tcp("157.240.1.35:80", None), -5)];
        let other_port = judge_with(vec![trigger("forbidden.test", 8443, 10)], answered_on_80());
        assert_eq!(kind(&other_port), blackhole);
        let same_port = judge_with(vec![trigger("forbidden.test", 443, 10)], answered_on_80());
        assert_eq!(kind(&same_port), (Verdict::Inconclusive, None));
    }

    /// A context written before the portal's kind of interceptor was known names an
    /// untrusted authority: read back, it is still that, and still told by it.
    #[test]
    fn an_interceptor_of_an_older_context_is_an_untrusted_authority() {
        let older: Interceptor =
            serde_json::from_str(r#"{"issuer":"CN=Office Proxy CA","ca":null}"#).unwrap();
        let m = issued_by(mitm(FB_443), "CN=Office Proxy CA");
        let Step::TlsHandshake(t) = &m.step else {
            unreachable!()
        };
        assert!(intercepted_like_the_canary(t, Some(&older)).is_some());
        let other = issued_by(mitm(FB_443), "CN=Ministry CA");
        let Step::TlsHandshake(t) = &other.step else {
            unreachable!()
        };
        assert_eq!(intercepted_like_the_canary(t, Some(&older)), None);
    }
}
