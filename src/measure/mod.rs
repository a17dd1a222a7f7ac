//! Measurement: facts about each target, gathered concurrently within bounds, each step
//! with its own deadline. One file per protocol; this one plans the steps of a target.
//!
//! The same code measures from the probe and, later, from the control vantage point,
//! so that the two sides differ only in where they stand.
//!
//! A volunteer's network loses packets, fills its NAT table, and has resolvers that go
//! down; none of that may pass for censorship. So a step that got no answer is tried
//! again before it counts (a connect from fresh source ports, `tcp`; a lookup, a
//! handshake or a fetch once more after a pause), and a step that still failed is
//! followed by a check of the probe's own network (`checks`): a blackhole fails every
//! try while the canary answers, loss and outages do not.

pub mod address;
pub mod checks;
pub mod dns;
pub mod ech;
pub mod first_bytes;
pub mod http;
pub mod limits;
pub mod meanwhile;
pub mod quic;
pub mod received;
pub mod round_trips;
pub mod tcp;
pub mod tls;
pub mod tls_variants;
pub mod unacknowledged;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Either, Shared, join_all, select};
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, oneshot};
use url::Url;

use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{
    Burst, Check, CheckTarget, DnsFacts, FirstBytes, Meanwhile, Measurement, QueryType, QuicFacts,
    Reconnect, Step, TargetFacts, TcpFacts, TlsFacts, Trigger, Vantage, answered_addresses,
    distinct,
};
use crate::input::asn::AsnDb;
use crate::input::bogon::AddressPolicy;
use crate::input::targets::ResolverSpec;
use crate::input::targets::{Target, TargetKind};
use address::{Addresses, Dial, SharedHandshake, Silence, Transport, Turn};
use checks::{Checks, Family};
use dns::{DnsIo, Resolver};
use limits::Limits;
use meanwhile::Exchanges;
use received::{Counted, Watched};
use tcp::RETRY_PAUSE;
use tls::TlsContext;

/// Annotates address answers with their ASN, when there is an ASN database.
fn annotate_asns(db: Option<&AsnDb>, facts: &mut DnsFacts) {
    let Some(db) = db else { return };
    for answer in facts.replies.iter_mut().flat_map(|r| r.answers.iter_mut()) {
        answer.asn = answer
            .address()
            .and_then(|ip| db.lookup(ip))
            .map(|info| info.asn);
    }
}

/// The failure text of a connection the address policy forbids.
pub const REFUSED_BOGON: &str = "refused: a private or reserved address";

/// How long a UDP query keeps listening after its first reply, for racing answers.
pub const DNS_WINDOW: Duration = Duration::from_millis(1000);

/// How long a connection may wait unused before a handshake is made on it: servers
/// close idle connections after seconds (nginx: 60, many CDNs less).
const IDLE_AT_MOST: Duration = Duration::from_secs(2);

/// Raced DNS answers whose addresses a target's handshakes go to besides its own, at
/// most (see `Measurer::raced_untried`): an injector's flood of forged replies must not
/// become as many handshakes.
const RACED_TRIED_AT_MOST: usize = 2;
/// How long before a failure ended a network check may have begun and still be its.
const SHARED_CHECK: Duration = Duration::from_secs(1);

/// The earliest a check shared with what happened at `at` may have begun.
fn sharing_from(at: tokio::time::Instant) -> tokio::time::Instant {
    at.checked_sub(SHARED_CHECK).unwrap_or(at)
}
/// The canary's connects a network check or a pulse makes at once: a link that loses
/// 28 % of round trips (the testbed's `lossy`, 15 % each way) leaves all six unanswered
/// at their first try once in some 2,000 (fewer: the kernel sends a SYN again within the
/// try, where the try is long enough: see [`PULSE_AT_LEAST`]); a link that is down,
/// every time.
const CHECK_CONNECTS: usize = 6;
/// The QUIC handshakes made at once to the canary after one went unanswered (see
/// [`Measurer::quic_burst`]): a run has few QUIC handshakes of its own, and a share of
/// tries left unanswered is judged two standard errors low. A path losing a quarter of
/// QUIC's tries shows it over some sixteen tries or more; twelve here, with the run's
/// own, make that more often than six (on the testbed, with 70 % of UDP to port 443
/// dropped and two tries a handshake, 2 runs of 6 read a QUIC site `blocked` with six,
/// 2 of 10 with twelve; the four tries of [`Measurer::quic_tries`] did the rest). UDP
/// flows, which a router keeps half a minute to two.
const QUIC_BURST: usize = 12;
/// The least time a pulse's connect is given (a third of the deadline, where that is
/// more): the kernel sends a SYN again a second after the first, and a connect given
/// half a second more has two chances to be answered. A failed step is judged by the
/// worst of the pulses during its last try, and a lossy run makes hundreds: with single
/// SYNs, a link losing 28 % of round trips left all six unanswered once in some 2,000
/// pulses, and read as down; with two, once in some 5 million. (More connects at once
/// would fill a small NAT table instead.)
const PULSE_AT_LEAST: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone)]
pub struct Options {
    pub vantage: Vantage,
    pub timeout: Duration,
    pub concurrency: usize,
    pub per_host: usize,
    pub resolvers: Vec<ResolverSpec>,
    /// The SNI of the control handshakes (the canary's name), also the name the
    /// resolvers are checked with after a failed lookup.
    pub control_sni: Option<String>,
    /// The port the probe's network is checked on, by a connect to the canary, after a
    /// step timed out (none: no such checks, as at the control, whose network is not
    /// the one in question).
    pub canary_port: Option<u16>,
    pub policy: AddressPolicy,
    pub dns_window: Duration,
    /// The source address of every measurement, if not the system's choice.
    pub source: Option<IpAddr>,
    /// When the ECH comparison is made.
    pub ech: ech::EchPlan,
}

/// The DNS of one host, measured once per run.
struct HostDns {
    /// Every address the first answers gave, bogons included.
    answered: Vec<IpAddr>,
    /// Addresses we may connect to, or why there are none, from the first answers.
    usable: Result<Vec<IpAddr>, StepError>,
    /// The DNS measurements with every reply of their listening windows, which close
    /// while the target's connections go on.
    complete: Shared<BoxFuture<'static, Arc<Vec<Measurement>>>>,
}

pub struct Measurer {
    options: Options,
    limits: Arc<Limits>,
    tls: TlsContext,
    ech: ech::Ech,
    asn: Option<Arc<AsnDb>>,
    resolvers: Vec<Resolver>,
    hosts: Mutex<HashMap<String, Arc<OnceCell<Arc<HostDns>>>>>,
    /// Targets still to come for each host, when the plan is known: a host's DNS is
    /// forgotten after its last target, so memory does not grow with the run. Keyed by
    /// the name's hash, not the name (a plan of 100,000 hosts held its names twice): two
    /// names with one hash (a chance in 2^64 for a pair) only keep the DNS of the one done
    /// first until the run ends.
    users: Mutex<HashMap<u64, usize>>,
    user_keys: RandomState,
    addresses: Addresses,
    checks: Checks,
    /// The run's connects answered lately, for the network checks after a silence (see
    /// `meanwhile`).
    connects: Arc<Exchanges>,
    /// The run's connects, handshakes and fetches that went through lately, a second
    /// try counted where the first was turned down, for the checks after a refusal or
    /// a reset.
    turned_down: Exchanges,
    /// The run's QUIC handshakes answered lately, and their tries, for the checks after
    /// one that went unanswered: a path that loses most UDP leaves a handshake dark at
    /// both its tries now and then, and the others' second tries say so.
    quic: Exchanges,
    /// Bounds of the checks' own lookups, apart from the run's: a check may be made by a
    /// task that holds a place on the resolver's address itself. Four lookups at once
    /// (a place of `Limits::query` a unit of concurrency), one exchange an address.
    check_limits: Limits,
    /// The canary's IPv4 address, for network checks: from its own lookups, or looked
    /// up when first needed (a failed lookup is not kept: the next check tries again).
    canary: OnceCell<SocketAddr>,
    /// Its IPv6 address, from its own AAAA lookup, for the checks and pulses of IPv6
    /// (see `checks`), once that address has answered a connect (`ipv6_carried`);
    /// until then, IPv6 is checked over IPv4, as a network is whose canary has no IPv6.
    canary_ipv6: OnceCell<SocketAddr>,
    /// Whether the canary's IPv6 address answered a connect of the run (its own target's).
    /// A network whose IPv6 never worked (a route to nowhere, a tunnel down from the
    /// start) fails every IPv6 step and the canary's too, which the analysis reads as the
    /// vantage point's (see `analyse::transport`); a check over IPv6 there would wait out
    /// a dead path after each wave of failures, for nothing it can tell; and a canary
    /// whose AAAA answer is stale would blame the probe's network for every IPv6 block.
    /// It tells of IPv6 that stops working once it did.
    ipv6_carried: AtomicBool,
    /// Held through a lookup of the canary's address for the checks: one at a time;
    /// with why the last one found none, for the checks that waited for it.
    canary_lookup: tokio::sync::Mutex<Option<StepError>>,
}

impl Measurer {
    /// A measurer with its own limits, built from `options.concurrency` and `per_host`.
    pub fn new(
        options: Options,
        tls: TlsContext,
        asn: Option<Arc<AsnDb>>,
    ) -> anyhow::Result<Measurer> {
        let limits = Arc::new(Limits::new(options.concurrency, options.per_host));
        Measurer::with_limits(options, tls, asn, limits)
    }

    /// A measurer sharing `limits` with others (the control server makes one per
    /// request, and all of them together must stay within one set of bounds).
    pub fn with_limits(
        options: Options,
        tls: TlsContext,
        asn: Option<Arc<AsnDb>>,
        limits: Arc<Limits>,
    ) -> anyhow::Result<Measurer> {
        anyhow::ensure!(
            !options.resolvers.is_empty(),
            "no resolver to measure DNS with"
        );
        let resolvers = options
            .resolvers
            .iter()
            .map(Resolver::new)
            .collect::<anyhow::Result<_>>()?;
        Ok(Measurer {
            limits,
            options,
            ech: ech::Ech::new(&tls)?,
            tls,
            asn,
            resolvers,
            hosts: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            user_keys: RandomState::new(),
            addresses: Addresses::default(),
            checks: Checks::default(),
            connects: Arc::default(),
            turned_down: Exchanges::default(),
            quic: Exchanges::default(),
            check_limits: Limits::new(4, 1),
            canary: OnceCell::new(),
            canary_ipv6: OnceCell::new(),
            ipv6_carried: AtomicBool::new(false),
            canary_lookup: tokio::sync::Mutex::new(None),
        })
    }

    /// Counts the connects answered in `connects`, shared with other measurers, and
    /// judges its checks by them: the control server's, one per request, all on one
    /// network.
    pub fn sharing_connects(self, connects: Arc<Exchanges>) -> Measurer {
        Measurer { connects, ..self }
    }

    /// Tells the measurer which targets are coming, so it can let go of each host's
    /// DNS once the last of them is measured.
    pub fn expect(&self, targets: impl IntoIterator<Item = Target>) {
        let mut users = self.users.lock().expect("host users lock poisoned");
        for target in targets {
            if let Some(host) = target.hostname() {
                *users.entry(self.user_keys.hash_one(host)).or_default() += 1;
            }
        }
    }

    fn done_with(&self, host: &str) {
        let mut users = self.users.lock().expect("host users lock poisoned");
        let key = self.user_keys.hash_one(host);
        if let Some(left) = users.get_mut(&key) {
            *left -= 1;
            if *left == 0 {
                users.remove(&key);
                self.hosts
                    .lock()
                    .expect("host cache lock poisoned")
                    .remove(host);
            }
        }
    }

    /// Forgets every host's DNS: after a measurement that is not part of the run's
    /// records, so that the run's own first lookup of a host is measured and written.
    pub fn forget_dns(&self) {
        self.hosts.lock().expect("host cache lock poisoned").clear();
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    fn dialer(&self) -> tcp::Dialer {
        tcp::Dialer {
            timeout: self.options.timeout,
            source: self.options.source,
            fresh: Some(self.limits.connects()),
            answered: Some(self.connects.clone()),
        }
    }

    /// Measures one target: its DNS, then TCP and TLS to every address found, or the
    /// connect to a fixed endpoint, or the fetch of a URL.
    pub async fn measure(&self, target: &Target) -> TargetFacts {
        self.measure_with(target, &[]).await
    }

    /// Measures a target, connecting to `extra` addresses as well as those our own DNS
    /// found: the control tests the probe's answers from where it stands, so that an
    /// answer can be shown valid (or not) even when the two resolvers disagree.
    pub async fn measure_with(&self, target: &Target, extra: &[IpAddr]) -> TargetFacts {
        self.measure_telling(target, extra, None).await
    }

    /// Measures a target, telling `answers` every address DNS gave as soon as the first
    /// answers are in (before any connection), so that a control can be asked about
    /// them while we go on.
    pub async fn measure_telling(
        &self,
        target: &Target,
        extra: &[IpAddr],
        answers: Option<oneshot::Sender<Vec<IpAddr>>>,
    ) -> TargetFacts {
        Limits::measuring(self.measure_target(target, extra, answers)).await
    }

    async fn measure_target(
        &self,
        target: &Target,
        extra: &[IpAddr],
        answers: Option<oneshot::Sender<Vec<IpAddr>>>,
    ) -> TargetFacts {
        let mut measurements = Vec::new();
        let resolved = match target.hostname() {
            Some(host) => Some(self.resolve(target, host).await),
            None => None,
        };
        if let Some(answers) = answers {
            let _ = answers.send(
                resolved
                    .as_ref()
                    .map_or(Vec::new(), |(dns, _)| dns.answered.clone()),
            );
        }
        let usable = match &resolved {
            Some((host_dns, _)) => host_dns.usable.clone(),
            None => Ok(Vec::new()),
        };
        let usable = self.with_extra(usable, extra);
        match &target.kind {
            TargetKind::Domain(domain) => {
                let addresses = usable.unwrap_or_default();
                let on = |ports: &[u16]| -> Vec<SocketAddr> {
                    addresses
                        .iter()
                        .flat_map(|ip| ports.iter().map(|port| SocketAddr::new(*ip, *port)))
                        .collect()
                };
                let tls = on(&target.tls_ports)
                    .into_iter()
                    .map(|addr| self.tls_chain(target, domain, addr));
                let tcp = on(&target.tcp_ports)
                    .into_iter()
                    .map(|addr| self.connect_only(target, addr));
                let (tls, tcp) = tokio::join!(join_all(tls), join_all(tcp));
                measurements.extend(tls.into_iter().flatten());
                measurements.extend(tcp);
            }
            TargetKind::Endpoint(addr) => match self.public_only(addr.ip()) {
                // Boxed: an endpoint's state (two connects', a read's) would otherwise
                // swell every target's future, and a debug build's stack with it.
                Ok(_) => measurements.push(Box::pin(self.endpoint(target, *addr)).await),
                Err(_) => {
                    let refused = TcpFacts::new(
                        *addr,
                        Some(StepError::new(
                            Operation::Connect,
                            Failure::unknown(REFUSED_BOGON),
                        )),
                    );
                    measurements.push(self.record(target, now(), Step::TcpConnect(refused)));
                }
            },
            TargetKind::Url(url) => {
                let addresses = match url.host() {
                    Some(url::Host::Domain(_)) => usable,
                    _ => self.addresses_for(url).await.0,
                };
                let started = now();
                // Boxed, as the exchange is: a fetch's state and its refetches' are large,
                // and every target's future, a domain's too, would otherwise make room
                // for them (in a debug build, on the stack of the task that polls it).
                let fetched = Box::pin(self.fetch(target, url, addresses, started.0)).await;
                let mut held = fetched.held;
                measurements.extend(fetched.handshakes);
                let fetch = self.record(target, started, Step::Http(fetched.facts));
                let triggers = Trigger::of(&fetch);
                for ticket in fetched.tickets {
                    ticket.end(triggers.clone());
                }
                let (again, ech) = match &fetch.step {
                    Step::Http(facts) => (
                        Box::pin(self.refetches(target, facts, &mut held)).await,
                        Box::pin(self.ech_after(target, facts, &mut held)).await,
                    ),
                    _ => (Vec::new(), None),
                };
                // QUIC does not load the server's TCP side, as in `tls_chain`.
                drop(held);
                // The first hop's handshake, if it was answered: QUIC is compared with it.
                let answered = match &fetch.step {
                    Step::Http(facts) => facts.hops.first().and_then(|hop| hop.tls.as_ref()),
                    _ => None,
                }
                .filter(|t| t.server_answered() && target.quic_ports.contains(&t.address.port()));
                let quic = match answered {
                    Some(t) => Box::pin(self.quic_pair(target, &t.server_name, t.address)).await,
                    None => Vec::new(),
                };
                measurements.push(fetch);
                measurements.extend(again);
                measurements.extend(ech);
                measurements.extend(quic);
            }
        }
        let mut dns = Arc::new(Vec::new());
        if let Some((host_dns, first)) = resolved {
            dns = host_dns.complete.clone().await;
            let raced = self.raced_untried(target, &dns, &measurements).await;
            measurements.extend(raced);
            if first {
                measurements.splice(0..0, dns.iter().cloned());
            }
            self.done_with(target.hostname().unwrap_or_default());
        }
        let triggers = match self.options.vantage {
            Vantage::Probe => self.triggers_for(&measurements).await,
            Vantage::Control => Vec::new(),
        };
        TargetFacts {
            target: target.clone(),
            measurements,
            dns,
            triggers,
        }
    }

    /// At the probe, where one copy of a query got replies with different addresses
    /// (see [`DnsFacts::raced`]): the name's TCP+TLS handshakes, on the target's TLS
    /// ports, to an address of each of those replies none of whose addresses a step tried
    /// (the target's steps went to the first answer's, before the listening window
    /// closed). Whether the site vouches for each answer tells an injector's from a
    /// relay that passes on two resolvers' answers; a plain-HTTP URL has no handshake to
    /// make.
    async fn raced_untried(
        &self,
        target: &Target,
        dns: &[Measurement],
        measurements: &[Measurement],
    ) -> Vec<Measurement> {
        let name = target.hostname().unwrap_or_default();
        let ports: Vec<u16> = match &target.kind {
            TargetKind::Domain(_) => target.tls_ports.to_vec(),
            TargetKind::Url(url) if url.scheme() == "https" => {
                url.port_or_known_default().into_iter().collect()
            }
            _ => Vec::new(),
        };
        if self.options.vantage != Vantage::Probe || ports.is_empty() {
            return Vec::new();
        }
        let tried: Vec<IpAddr> = measurements
            .iter()
            .flat_map(|m| m.step.addresses())
            .collect();
        // One address of each raced answer none of whose addresses a step tried: the
        // site vouches for an answer at any one of them.
        let answers = distinct(dns.iter().flat_map(|m| match &m.step {
            Step::Dns(f) => f.raced().flat_map(|(a, b)| [a, b]).collect(),
            _ => Vec::new(),
        }));
        let untried = answers
            .into_iter()
            .filter(|answer| !answer.iter().any(|ip| tried.contains(ip)))
            .filter_map(|answer| {
                answer
                    .into_iter()
                    .find(|ip| !self.options.policy.is_bogon(*ip))
            })
            .take(RACED_TRIED_AT_MOST);
        let chains = untried
            .flat_map(|ip| ports.iter().map(move |port| SocketAddr::new(ip, *port)))
            .map(|address| self.tls_chain(target, name, address));
        join_all(chains).await.into_iter().flatten().collect()
    }

    /// The triggers logged on the addresses `measurements` failed at, from before each
    /// failure.
    async fn triggers_for(&self, measurements: &[Measurement]) -> Vec<Trigger> {
        let mut out: Vec<Trigger> = Vec::new();
        for (address, at) in failures(measurements) {
            for trigger in self.addresses.triggers_before(address, at).await {
                if !out.contains(&trigger) {
                    out.push(trigger);
                }
            }
        }
        out
    }

    fn record(
        &self,
        target: &Target,
        started: (DateTime<Utc>, Instant),
        step: Step,
    ) -> Measurement {
        Measurement {
            vantage: self.options.vantage,
            service: target.service.clone(),
            target: target.to_string(),
            measured_at: started.0,
            runtime_ms: started.1.elapsed().as_secs_f64() * 1000.0,
            step,
        }
    }

    /// A step recorded as begun at `at`, by the wall clock.
    fn record_since(&self, target: &Target, at: DateTime<Utc>, step: Step) -> Measurement {
        Measurement {
            runtime_ms: (Utc::now() - at).as_seconds_f64() * 1000.0,
            ..self.record(target, (at, Instant::now()), step)
        }
    }

    /// The DNS of `host`, measured the first time it is asked for; the flag says
    /// whether this call measured it (and so must write it).
    async fn resolve(&self, target: &Target, host: &str) -> (Arc<HostDns>, bool) {
        let cell = self.host_cell(host);
        let mut first = false;
        let host_dns = cell
            .get_or_init(|| {
                first = true;
                async { Arc::new(self.measure_dns(target, host).await) }
            })
            .await
            .clone();
        (host_dns, first)
    }

    fn host_cell(&self, host: &str) -> Arc<OnceCell<Arc<HostDns>>> {
        let mut hosts = self.hosts.lock().expect("host cache lock poisoned");
        hosts.entry(host.to_string()).or_default().clone()
    }

    fn dns_io(&self, window: Duration) -> DnsIo<'_> {
        DnsIo {
            limits: &self.limits,
            tls: &self.tls,
            dialer: self.dialer(),
            timeout: self.options.timeout,
            window,
        }
    }

    /// What the checks' lookups are made with: their own bounds, no listening window.
    fn check_io(&self) -> DnsIo<'_> {
        DnsIo {
            limits: &self.check_limits,
            dialer: tcp::Dialer::new(self.options.timeout, self.options.source),
            ..self.dns_io(Duration::ZERO)
        }
    }

    async fn measure_dns(&self, target: &Target, host: &str) -> HostDns {
        let io = self.dns_io(self.options.dns_window);
        let is_canary = self
            .options
            .control_sni
            .as_deref()
            .is_some_and(|canary| canary.eq_ignore_ascii_case(host));
        let queries = self.resolvers.iter().enumerate().flat_map(|(i, resolver)| {
            [QueryType::A, QueryType::Aaaa].map(|qtype| {
                let io = &io;
                async move {
                    let started = now();
                    let lookup = self.lookup(io, resolver, host, qtype).await;
                    // The first resolver's, as the checks' own lookups of the canary.
                    if is_canary && i == 0 {
                        self.canary_answered(&lookup.facts.addresses);
                    }
                    let measurement = self.record(target, started, Step::Dns(lookup.facts.clone()));
                    (measurement, lookup)
                }
            })
        });
        let lookups: Vec<(Measurement, dns::Lookup)> = join_all(queries).await;
        let early: Vec<Measurement> = lookups.iter().map(|(m, _)| m.clone()).collect();
        let asn = self.asn.clone();
        let complete = async move {
            let mut complete = Vec::with_capacity(lookups.len());
            for (mut measurement, lookup) in lookups {
                let mut facts = lookup.finish().await;
                annotate_asns(asn.as_deref(), &mut facts);
                measurement.step = Step::Dns(facts);
                complete.push(measurement);
            }
            Arc::new(complete)
        };
        HostDns {
            answered: answered_addresses(&early),
            usable: self.usable_addresses(&early),
            complete: complete.boxed().shared(),
        }
    }

    /// Takes the canary's addresses for the checks and pulses from its own A and AAAA
    /// lookups, each as soon as it answers: not once both are done, which a link down
    /// for a moment may hold for seconds, with the pulses of the steps failing
    /// meanwhile waiting on them (and missing the moment the link was down).
    fn canary_answered(&self, addresses: &[IpAddr]) {
        let Some(port) = self.options.canary_port else {
            return;
        };
        for family in Family::BOTH {
            let public = addresses
                .iter()
                .find(|ip| Family::of(**ip) == family && !self.options.policy.is_bogon(**ip));
            let cell = match family {
                Family::Ipv4 => &self.canary,
                Family::Ipv6 => &self.canary_ipv6,
            };
            if let Some(ip) = public {
                let _ = cell.set(SocketAddr::new(*ip, port));
            }
        }
    }

    /// A lookup, made again once after a pause if it got no usable answer (silence, a
    /// SERVFAIL or REFUSED, a broken connection to the resolver), then, if it still
    /// failed, followed by a lookup of the canary through the same resolver.
    async fn lookup(
        &self,
        io: &DnsIo<'_>,
        resolver: &Resolver,
        host: &str,
        qtype: QueryType,
    ) -> dns::Lookup {
        let began = tokio::time::Instant::now();
        let mut lookup = resolver.lookup(io, host, qtype).await;
        if lookup
            .facts
            .error
            .as_ref()
            .is_some_and(worth_another_lookup)
        {
            tokio::time::sleep(RETRY_PAUSE).await;
            let pulse = pulse_after(&lookup.facts.error);
            let again = self.alongside(resolver.lookup(io, host, qtype), pulse);
            lookup = again.await.again_after(lookup);
            lookup.facts.tries = 2;
        }
        // An NXDOMAIN is not checked: the check's own name does not exist either, so it
        // could not tell a resolver that denies every name from one that works.
        let failed = lookup.facts.error.as_ref().is_some_and(|e| {
            !e.local && !matches!(e.failure, Failure::DnsNoAnswer | Failure::DnsNxdomain)
        });
        let failed_at = tokio::time::Instant::now();
        // A check shared with failures that ended as this one did, as a network check is:
        // one begun while this lookup still waited may have found the resolver working
        // before it stopped (a resolver that dies mid-run).
        let shared_from = sharing_from(failed_at);
        if failed
            && let Some(check) = self
                .resolver_check(resolver, host, qtype, shared_from)
                .await
        {
            let (meanwhile, before) = resolver.answered_since(began);
            lookup.facts.check = Some(Check {
                meanwhile: Some(meanwhile),
                before,
                during: self
                    .pulse_during_last_try(resolver.family(), began, failed_at)
                    .await,
                slow_quarter_ms: resolver
                    .slow_quarter()
                    .map(|took| took.as_secs_f64() * 1000.0),
                ..check
            });
        }
        lookup
    }

    /// A name under the canary's that nobody has asked for (a random label) looked up
    /// through `resolver` with `qtype`: it makes the resolver recurse, as the failed
    /// lookup needed, where the canary's own name may be answered from its cache. Any
    /// answer, NXDOMAIN included, shows the resolver works. Shared with failures of the
    /// same type for which it began at `after` or later; none without a canary, or for
    /// the canary itself.
    async fn resolver_check(
        &self,
        resolver: &Resolver,
        host: &str,
        qtype: QueryType,
        after: tokio::time::Instant,
    ) -> Option<Check> {
        let canary = self.options.control_sni.as_deref()?;
        if canary.eq_ignore_ascii_case(host) {
            return None;
        }
        let cell = self.checks.resolver(&resolver.name(), qtype, after);
        let check = cell
            .get_or_init(|| {
                let name = format!("cp-{:08x}.{canary}", rand::random::<u32>());
                async move {
                    let measured_at = Utc::now();
                    let facts = resolver.query(&self.check_io(), &name, qtype).await;
                    let error = facts.error.filter(|e| {
                        !matches!(e.failure, Failure::DnsNoAnswer | Failure::DnsNxdomain)
                    });
                    checked(CheckTarget::Resolver(name), measured_at, error)
                }
            })
            .await;
        Some(check.clone())
    }

    /// Connects to the canary once a step that began at `began` failed with `failure`
    /// (shared with the failures over within a second of it): several at once, and how
    /// many were answered at their first try (`first_tries`); with what the probe's other
    /// steps met since `began` (see `meanwhile`): after a silence, the connects answered
    /// and their tries; after a refusal or reset, the connects, handshakes and fetches
    /// that went through, and the tries that were turned down; and the pulse of the link
    /// answered least during the step's last try (`during`). None without a canary (a
    /// control has one where the probe's request names its port). Where the canary's
    /// address could not be found: for a silence, a failed check of its name, since the
    /// probe could not tell its link working, and a link down silences a step as a
    /// blackhole does (down after the targets' lookups, as the canary's own were made,
    /// and down again as the check looked it up); for a refusal or reset, which came
    /// back over the link, none.
    ///
    /// The canary is connected to over the family of the step's address, `family`, and
    /// the pulse is that family's.
    ///
    /// Where the step failed to connect to `at_connect`, the check says when that address
    /// and port first answered the run's connects, if it has (`Check::answered_at`).
    async fn network_check(
        &self,
        began: tokio::time::Instant,
        failed: &StepError,
        family: Family,
        at_connect: Option<SocketAddr>,
    ) -> Option<Check> {
        let failure = &failed.failure;
        let failed_at = tokio::time::Instant::now();
        let address = match self.canary_over(family).await? {
            Ok(address) => address,
            Err(e) if failure.is_unanswered() => {
                let canary = self.options.control_sni.clone().unwrap_or_default();
                return Some(checked(CheckTarget::Resolver(canary), Utc::now(), Some(e)));
            }
            Err(_) => return None,
        };
        // Shared only with a check begun as this failure ended (within a second, so that
        // failures ending together share one): one begun while it still waited may
        // have got through before the network failed it.
        let cell = self
            .checks
            .network(family, sharing_from(tokio::time::Instant::now()));
        let check = cell
            .get_or_init(|| async {
                let measured_at = Utc::now();
                // Several at once, so that a lossy link answers one at its first try
                // where a link that is down answers none; not counted among the run's
                // connects, nor held back by its bound on fresh ones (a try that waited
                // there would pass for one unanswered).
                let dialer = tcp::Dialer::new(self.options.timeout, self.options.source);
                let dials = join_all((0..CHECK_CONNECTS).map(|_| check_dial(&dialer, address)));
                let dials = dials.await;
                let first_tries = Burst::of(dials.iter().map(|(_, answered)| *answered));
                let error = match dials.iter().any(|(result, _)| result.is_ok()) {
                    true => None,
                    false => dials.into_iter().find_map(|(result, _)| result.err()),
                };
                Check {
                    first_tries: Some(first_tries),
                    ..checked(CheckTarget::Connect(address), measured_at, error)
                }
            })
            .await;
        // A QUIC handshake's own kind: UDP may be lost where TCP is not (a policer, a
        // firewall's UDP table).
        let others = match (failed.failed_operation, failure.is_turned_down()) {
            (Operation::QuicHandshake, _) => &self.quic,
            (_, true) => &self.turned_down,
            (_, false) => &*self.connects,
        };
        let (meanwhile, before) = others.since(began);
        Some(Check {
            meanwhile: Some(meanwhile),
            before,
            during: self.pulse_during_last_try(family, began, failed_at).await,
            slow_quarter_ms: None,
            // The probe's own: a control's connects are not what its verdicts read.
            answered_at: at_connect
                .filter(|_| self.options.vantage == Vantage::Probe)
                .and_then(|address| self.addresses.first_answer(address)),
            ..check.clone()
        })
    }

    /// Looks the canary up before any target is measured (a round trip to the resolver
    /// on a network that works). The pulses and checks of the first targets' steps
    /// connect to it: with a link down as the run began, the canary's own lookup went
    /// unanswered with theirs, the pulses due meanwhile waited for the address, and
    /// began only once the link was back, passing for its state during the steps' last
    /// tries. A lookup that fails leaves the address to be looked up when first needed;
    /// it holds the run's start for its deadline at most (one query's, or for DNS over
    /// TLS or HTTPS, its connect's, handshake's and exchange's).
    pub async fn find_canary(&self) {
        let _ = self.canary_address().await;
    }

    /// The canary's address over `family`: over IPv6, its own AAAA answer's where it had
    /// one (see [`Measurer::canary_ipv6`]), else its IPv4 address (see
    /// [`Measurer::canary_address`]).
    async fn canary_over(&self, family: Family) -> Option<Result<SocketAddr, StepError>> {
        match (family, self.canary_ipv6()) {
            (Family::Ipv6, Some(address)) => Some(Ok(address)),
            _ => self.canary_address().await,
        }
    }

    /// The canary's IPv6 address, for IPv6's checks and pulses, once it has answered a
    /// connect of the run (see [`Measurer::ipv6_carried`]).
    fn canary_ipv6(&self) -> Option<SocketAddr> {
        let carried = self.ipv6_carried.load(Ordering::Relaxed);
        self.canary_ipv6.get().copied().filter(|_| carried)
    }

    /// The canary's IPv4 address, for the network checks and pulses: from its own lookups, or
    /// looked up when first needed; or why that lookup found none. None without a
    /// canary (a control has one where the probe's request names its port).
    ///
    /// The checks that wait for a lookup under way take its outcome, a failure too:
    /// with the resolver down, each making its own in turn, the failures of a run
    /// waited out one lookup's deadline after another (a minute for 18 URLs).
    async fn canary_address(&self) -> Option<Result<SocketAddr, StepError>> {
        let port = self.options.canary_port?;
        let canary = self.options.control_sni.as_deref()?;
        if let Some(address) = self.canary.get() {
            return Some(Ok(*address));
        }
        // An answer with no public address is no address either.
        let none = || StepError::new(Operation::Resolve, Failure::DnsNoAnswer);
        let outcome = |failed: &Option<StepError>| {
            let address = self.canary.get().copied();
            Some(address.ok_or_else(|| failed.clone().unwrap_or_else(none)))
        };
        let Ok(mut failed) = self.canary_lookup.try_lock() else {
            // A lookup under way: its outcome stands.
            return outcome(&*self.canary_lookup.lock().await);
        };
        if self.canary.get().is_none() {
            let facts = self.resolvers[0]
                .query(&self.check_io(), canary, QueryType::A)
                .await;
            let found = facts
                .addresses
                .into_iter()
                .find(|ip| !self.options.policy.is_bogon(*ip));
            match found {
                Some(ip) => drop(self.canary.set(SocketAddr::new(ip, port))),
                None => *failed = Some(facts.error.unwrap_or_else(none)),
            }
        }
        outcome(&failed)
    }

    /// A pulse of the probe's link, as a step is tried again after a silence: connects
    /// to the canary made at once, each given a third of the deadline (when a dial
    /// would try again) or [`PULSE_AT_LEAST`], whichever is more, but never more than
    /// the deadline (a pulse must be over by the end of the try it was made beside).
    /// A network check right after a failure finds the link as it is then; one that
    /// was down while the step was last tried and came back just after would pass it.
    /// A lossy link answers some of the pulse's connects; a link that is down, none.
    /// One pulse at a time, a second apart at least, shared by the steps tried
    /// meanwhile; made on a task of its own, so that it ends whatever its step does.
    /// Over both families where the canary has an IPv6 address (see
    /// [`Measurer::canary_ipv6`]), each told of apart; where it has none, the IPv4 pulse
    /// stands for IPv6 too.
    async fn pulse(&self) {
        let Some(Ok(canary)) = self.canary_address().await else {
            return;
        };
        let Some(pulse) = self.checks.pulse(SHARED_CHECK) else {
            return;
        };
        let canary_ipv6 = self.canary_ipv6();
        let dialer = tcp::Dialer::new(self.pulse_deadline(), self.options.source);
        tokio::spawn(async move {
            // Each connection closed as soon as it is made: held until the slowest of
            // them was done, they would fill a small NAT table for the steps and the
            // check that come next (see `pulse_connects`).
            let ipv4 = async {
                let fared = pulse_connects(&dialer, canary).await;
                pulse.fared(Family::Ipv4, fared);
                if canary_ipv6.is_none() {
                    pulse.fared(Family::Ipv6, fared);
                }
            };
            let ipv6 = async {
                if let Some(address) = canary_ipv6 {
                    pulse.fared(Family::Ipv6, pulse_connects(&dialer, address).await);
                }
            };
            futures_util::future::join(ipv4, ipv6).await;
        });
    }

    /// What each of a pulse's connects is given (see [`Measurer::pulse`]): a third of the
    /// deadline or [`PULSE_AT_LEAST`], whichever is more, but never more than the deadline.
    fn pulse_deadline(&self) -> Duration {
        let timeout = self.options.timeout;
        (timeout / 3).max(PULSE_AT_LEAST).min(timeout)
    }

    /// `step`, with a pulse of the link (see [`Measurer::pulse`]) begun alongside it
    /// `after` it began, if given and if the step still goes on then. Not an async fn:
    /// one would hold `step` twice in its state (as its argument, and as moved on), and
    /// a target waiting must stay small; here the step is held once, on the heap.
    fn alongside<'a, T: 'a>(
        &'a self,
        step: impl Future<Output = T> + 'a,
        after: Option<Duration>,
    ) -> impl Future<Output = T> + 'a {
        let Some(after) = after else {
            return Either::Left(step);
        };
        let pulse = async move {
            tokio::time::sleep(after).await;
            Box::pin(self.pulse()).await;
            std::future::pending::<T>().await
        };
        Either::Right(select(Box::pin(step), Box::pin(pulse)).map(|done| done.factor_first().0))
    }

    /// When a step that tries again by itself after a silence (a dial's second round,
    /// QUIC's second handshake) makes that try, at the latest (a dial's pause is drawn
    /// at random, up to `RETRY_PAUSE`): when the link is pulsed alongside it.
    fn second_try(&self) -> Duration {
        self.options.timeout + RETRY_PAUSE
    }

    /// The pulse of the link answered least during the last try of a step that began
    /// at `began` and failed at `failed`: begun within a deadline (and the second by
    /// which pulses are shared) before that, those still going on then waited for (a
    /// deadline at most). Not those begun after, while its check went on: they tell of
    /// the link after the step, as the check does.
    async fn pulse_during_last_try(
        &self,
        family: Family,
        began: tokio::time::Instant,
        failed: tokio::time::Instant,
    ) -> Option<Burst> {
        let last_try = failed
            .checked_sub(self.options.timeout + SHARED_CHECK)
            .map_or(began, |at| at.max(began));
        let over = self.checks.pulses_over(family, failed);
        let _ = tokio::time::timeout(self.options.timeout, over).await;
        self.checks.worst_pulse(family, last_try, failed)
    }

    /// Every address any resolver gave, bogons excepted; when there are none, why.
    fn usable_addresses(&self, measurements: &[Measurement]) -> Result<Vec<IpAddr>, StepError> {
        let all = answered_addresses(measurements);
        let usable: Vec<IpAddr> = all
            .iter()
            .copied()
            .filter(|ip| !self.options.policy.is_bogon(*ip))
            .collect();
        if !usable.is_empty() {
            return Ok(usable);
        }
        if !all.is_empty() {
            return Err(StepError::new(Operation::Resolve, Failure::DnsBogon));
        }
        let first_failure = measurements.iter().find_map(|m| m.step.error().cloned());
        Err(first_failure.unwrap_or(StepError::new(Operation::Resolve, Failure::DnsNoAnswer)))
    }

    /// The addresses to fetch a URL's host from: the literal address, or its DNS; with
    /// the check of the resolver where its lookup failed.
    async fn addresses_for(&self, url: &Url) -> (Result<Vec<IpAddr>, StepError>, Option<Check>) {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => (self.public_only(IpAddr::V4(ip)), None),
            Some(url::Host::Ipv6(ip)) => (self.public_only(IpAddr::V6(ip)), None),
            Some(url::Host::Domain(host)) => {
                // Looked up, not inserted: a redirect must not leave an empty cell for
                // a host the plan is done with.
                let known = self
                    .hosts
                    .lock()
                    .expect("host cache lock poisoned")
                    .get(host)
                    .and_then(|cell| cell.get().cloned());
                if let Some(known) = known {
                    return (known.usable.clone(), None);
                }
                // A redirect to a host outside the plan: its DNS is part of this fetch,
                // not a measurement of its own. Its A lookup is made as a target's is,
                // again after a pause and its resolver checked where it still fails: a
                // hop's host not resolving weighs as much as a target's name. The
                // check's counts of the resolver's answers are a lookup's, not the
                // fetch's, and are left out.
                let io = self.dns_io(Duration::ZERO);
                let resolver = &self.resolvers[0];
                // Boxed: a DoH query's state is large, and every fetch's future would
                // otherwise keep room for two of them.
                let (a, aaaa) = Box::pin(async {
                    tokio::join!(
                        async {
                            self.lookup(&io, resolver, host, QueryType::A)
                                .await
                                .finish()
                                .await
                        },
                        resolver.query(&io, host, QueryType::Aaaa)
                    )
                })
                .await;
                let mut addresses = a.addresses.clone();
                addresses.extend(aaaa.addresses);
                addresses.retain(|ip| !self.options.policy.is_bogon(*ip));
                if addresses.is_empty() {
                    let e = a
                        .error
                        .unwrap_or(StepError::new(Operation::Resolve, Failure::DnsBogon));
                    let check = a.check.map(|check| Check {
                        meanwhile: None,
                        before: None,
                        slow_quarter_ms: None,
                        ..check
                    });
                    return (Err(e), check);
                }
                (Ok(addresses), None)
            }
            None => (
                Err(StepError::new(
                    Operation::Resolve,
                    Failure::unknown("URL without a host"),
                )),
                None,
            ),
        }
    }

    fn public_only(&self, ip: IpAddr) -> Result<Vec<IpAddr>, StepError> {
        if self.options.policy.is_bogon(ip) {
            Err(StepError::new(Operation::Resolve, Failure::DnsBogon))
        } else {
            Ok(vec![ip])
        }
    }

    /// A TCP connect, on its own.
    async fn connect_only(&self, target: &Target, address: SocketAddr) -> Measurement {
        self.connect_first(target, address).await.0
    }

    /// A target's first connect to `address`, in a place on its server (held, with the
    /// connection, by the caller): this target's own, or, where the one before it there
    /// went unanswered a moment ago, that one, recorded as this target's (see
    /// `address::Silence`) with no place taken.
    async fn connect_first(
        &self,
        target: &Target,
        address: SocketAddr,
    ) -> (Measurement, Option<TcpStream>, limits::Held) {
        let turn = match self.addresses.dial(address).await {
            Dial::Silent(silence) => {
                let learnt = Measurement {
                    measured_at: silence.measured_at,
                    runtime_ms: silence.runtime_ms,
                    ..self.record(target, now(), Step::TcpConnect(silence.facts.clone()))
                };
                return (learnt, None, limits::Held::default());
            }
            Dial::Mine(turn) => turn,
        };
        let host = self.limits.hosts([address.ip()]).await;
        let started = now();
        let (facts, stream) = self.connect(address).await;
        let measurement = self.record(target, started, Step::TcpConnect(facts));
        if let Step::TcpConnect(facts) = &measurement.step {
            turn.learnt(Silence::from_connect(
                measurement.measured_at,
                measurement.runtime_ms,
                facts,
            ));
        }
        (measurement, stream, host)
    }

    /// A fixed endpoint: a connect, then the first-bytes probe on its connection (see
    /// [`FirstBytes`]). The probe comes last, as a trigger does: a block it sets off
    /// cannot spoil a step made before it. Targets on the same address measured after
    /// it (a domain whose address this is) are not spared, but their failures then meet
    /// the trigger it leaves, and are `inconclusive`, not `blocked`.
    async fn endpoint(&self, target: &Target, address: SocketAddr) -> Measurement {
        let (connected, stream, _host) = self.connect_first(target, address).await;
        let (Some(stream), Step::TcpConnect(mut facts)) = (stream, connected.step.clone()) else {
            return connected;
        };
        let ticket = self.addresses.open(address.ip(), Utc::now());
        facts.first_bytes = Some(self.first_bytes(stream, address).await);
        let m = Measurement {
            step: Step::TcpConnect(facts),
            ..connected
        };
        ticket.end(Trigger::of(&m));
        m
    }

    /// The first-bytes probe, in its address's turn (as a name sent there), then a
    /// connect to the same endpoint.
    async fn first_bytes(&self, mut stream: TcpStream, address: SocketAddr) -> FirstBytes {
        let bytes = first_bytes::obfuscated_handshake(&mut rand::rng());
        let wait = self.options.timeout.min(first_bytes::WAIT);
        let turn = self.addresses.turn(address.ip()).await;
        let measured_at = Utc::now();
        let (reply, received) = turn
            .during(first_bytes::exchange(&mut stream, &bytes, wait))
            .await;
        drop(stream);
        let started = now();
        let (again, _) = self.connect(address).await;
        FirstBytes {
            measured_at,
            sent: bytes.len() as u32,
            reply,
            received,
            reconnect: Reconnect {
                measured_at: started.0,
                runtime_ms: started.1.elapsed().as_secs_f64() * 1000.0,
                tries: again.tries,
                check: again.check,
                error: again.error,
            },
        }
    }

    /// A connect, with its tries, and a network check if it timed out.
    async fn connect(&self, address: SocketAddr) -> (TcpFacts, Option<TcpStream>) {
        let began = tokio::time::Instant::now();
        let again = self.dial_again(&[address]).await;
        let dialed = again.kept;
        let mut facts = TcpFacts::new(address, dialed.result.as_ref().err().cloned());
        facts.tries = dialed.tries;
        facts.first_failure = again.first_failure;
        if let Some(failed) = worth_a_check(&facts.error) {
            let family = Family::of(address.ip());
            facts.check = self
                .network_check(began, failed, family, Some(address))
                .await;
        }
        (facts, dialed.result.ok().map(|(stream, _)| stream))
    }

    /// Counts a connect, handshake or fetch (each try of which went as far as `through`)
    /// that got through (see [`got_through`]), with the tries turned down before, for the
    /// checks after a refusal or reset; with `besides` packets: the bodies its tries read,
    /// less a connect counted already (see [`counted_connect`]).
    fn went_through<T>(&self, again: &Again<'_, T>, through: Operation, besides: f64) {
        if let Some(tries) = again.through() {
            let packets = f64::from(tries * through.packets()) + besides;
            self.turned_down
                .answered_over(tries, packets.max(0.0) as u32);
        }
    }

    /// A dial (which tries a silence again itself), made again after a pause where it
    /// was refused or reset (see [`Again`]); with the first failure, where a later try
    /// got through. If every try fails, the first failure is kept.
    async fn dial_again(&self, addresses: &[SocketAddr]) -> Again<'_, tcp::Dialed> {
        let dialed = self
            .alongside(self.dial(addresses), Some(self.second_try()))
            .await;
        let mut tries = dialed.tries;
        // A dial tries its silences itself: the family read for them is none's in particular.
        let family = addresses
            .first()
            .map_or(Family::Ipv4, |a| Family::of(a.ip()));
        let mut again =
            Again::turned_down_only(dialed, |d| d.result.as_ref().err()).on(self, family);
        while again.another().await {
            let dialed = self.dial(addresses).await;
            tries += dialed.tries;
            again.took(dialed);
        }
        again.kept.tries = tries;
        self.went_through(&again, Operation::Connect, 0.0);
        again
    }

    /// Our addresses plus the public ones among `extra`, without repeats.
    fn with_extra(
        &self,
        usable: Result<Vec<IpAddr>, StepError>,
        extra: &[IpAddr],
    ) -> Result<Vec<IpAddr>, StepError> {
        let extra: Vec<IpAddr> = extra
            .iter()
            .copied()
            .filter(|ip| !self.options.policy.is_bogon(*ip))
            .collect();
        if extra.is_empty() {
            return usable;
        }
        Ok(distinct(
            usable.unwrap_or_default().into_iter().chain(extra),
        ))
    }

    /// The control SNI to use before a handshake or fetch naming `name`, if any.
    fn control_sni_for(&self, name: &str) -> Option<&str> {
        self.options
            .control_sni
            .as_deref()
            .filter(|sni| !sni.eq_ignore_ascii_case(name))
    }

    /// The same before a TCP+TLS handshake or an HTTPS fetch: at the probe only. Those
    /// control-SNI handshakes tell the probe's analysis whether a failure singled the
    /// name out; nothing reads the control's (its facts are compared by the target's
    /// name), and each would cost the server and the control a connection and a
    /// handshake per address and request. Over QUIC the control makes its own, since
    /// where it gets no answer the name's handshake is spared a timeout.
    fn tcp_control_sni_for(&self, name: &str) -> Option<&str> {
        self.control_sni_for(name)
            .filter(|_| self.options.vantage == Vantage::Probe)
    }

    /// The control-SNI handshake to `address`, made once per run for every target on it
    /// (on `open`, a connection of the caller's, if the caller is the first), recorded as
    /// one of `target`'s measurements. A connection of the caller's that waited long for
    /// another target's handshake is closed: the server or a NAT may drop an idle
    /// connection, and its reset would be read as the name's.
    async fn shared_control_handshake(
        &self,
        target: &Target,
        sni: &str,
        address: SocketAddr,
        open: &mut Option<TcpStream>,
    ) -> Measurement {
        let waited = tokio::time::Instant::now();
        let shared = self
            .addresses
            .control_sni(Transport::Tcp, address, || async {
                let started = now();
                let (facts, _) = self.handshake(open.take(), address, sni, true).await;
                shared(started, Step::TlsHandshake(facts))
            })
            .await;
        if waited.elapsed() > IDLE_AT_MOST {
            *open = None;
        }
        self.record_shared(target, &shared)
    }

    /// A shared handshake, recorded as one of `target`'s measurements.
    fn record_shared(&self, target: &Target, shared: &SharedHandshake) -> Measurement {
        Measurement {
            vantage: self.options.vantage,
            service: target.service.clone(),
            target: target.to_string(),
            measured_at: shared.measured_at,
            runtime_ms: shared.runtime_ms,
            step: shared.step.clone(),
        }
    }

    /// QUIC handshakes to `address`'s port over UDP, made after a TCP+TLS handshake
    /// with `server_name` there was answered (before, a name the censor punishes could
    /// spoil it): the control SNI's first, once per address in the run, then the
    /// name's, in the address's turn. Where the control name got no answer, the name
    /// is not tried: the address does not speak QUIC or UDP to it is dropped, the name
    /// would only wait out the timeout again, and the control's handshakes tell which.
    /// Where the name got nothing back, the control name is tried again right after: a
    /// block of the name spares it, a path gone dark (a full connection table on the
    /// probe's router, a block of the address) does not.
    async fn quic_pair(
        &self,
        target: &Target,
        server_name: &str,
        address: SocketAddr,
    ) -> Vec<Measurement> {
        let mut out = Vec::new();
        let sni = self.control_sni_for(server_name);
        if let Some(sni) = sni {
            let shared = self
                .addresses
                .control_sni(Transport::Quic, address, || async {
                    let started = now();
                    let facts = self.quic_handshake(address, sni, true).await;
                    shared(started, Step::QuicHandshake(facts))
                })
                .await;
            out.push(self.record_shared(target, &shared));
            let answered =
                matches!(&shared.step, Step::QuicHandshake(q) if q.handshake.server_answered());
            if !answered {
                return out;
            }
        }
        let turn = self.addresses.turn(address.ip()).await;
        let sent = Utc::now();
        let facts = turn
            .during(self.quic_handshake(address, server_name, false))
            .await;
        let dark = facts.dark();
        out.push(self.record_since(target, sent, Step::QuicHandshake(facts)));
        if let Some(sni) = sni.filter(|_| dark) {
            let started = now();
            let again = self.quic_handshake(address, sni, true).await;
            out.push(self.record(target, started, Step::QuicHandshake(again)));
        }
        out
    }

    /// A QUIC handshake (made again after a pause if it timed out, as a TCP+TLS one is:
    /// see [`Measurer::quic_tries`]), followed by a network check and a burst of QUIC
    /// handshakes to the canary if it still timed out.
    async fn quic_handshake(
        &self,
        address: SocketAddr,
        server_name: &str,
        control_sni: bool,
    ) -> QuicFacts {
        let began = tokio::time::Instant::now();
        let work = self.limits.work().await;
        let handshake = quic::handshake(
            &self.tls,
            address,
            server_name,
            control_sni,
            self.options.timeout,
            self.dialer().local_for(address),
            RETRY_PAUSE,
            self.quic_tries(),
        );
        let mut facts = self.alongside(handshake, Some(self.second_try())).await;
        drop(work);
        if facts.handshake.server_answered() {
            self.quic.answered(facts.handshake.tries);
        }
        if let Some(failed) = facts
            .handshake
            .error
            .as_ref()
            .filter(|e| e.failure.is_timeout())
        {
            let family = Family::of(address.ip());
            // Where no QUIC handshake was answered lately, QUIC does not get through at
            // all (or the sites do not speak it), and the canary's would only wait out
            // its deadline. Made or not, the check says its counts are QUIC's (see
            // `Check::quic`).
            let burst = async {
                let made = match self.quic.any_answered() {
                    true => self.quic_burst(family, address.port()).await,
                    false => None,
                };
                made.unwrap_or(Burst::of([]))
            };
            let check = self.network_check(began, failed, family, None);
            let (check, quic) = futures_util::future::join(check, burst).await;
            facts.handshake.check = check.map(|check| Check {
                quic: Some(quic),
                ..check
            });
        }
        facts
    }

    /// The tries of a QUIC handshake: two, or four where one of the run's lately was
    /// answered only when made again. On a path losing QUIC's datagrams two dark tries
    /// are chance's now and then (a run has few QUIC handshakes to tell it by; see
    /// [`QUIC_BURST`]), four seldom are; a censor's drop leaves all four dark.
    fn quic_tries(&self) -> u32 {
        match self.quic.any_made_again() {
            true => Meanwhile::LOSSY_SILENT_TRIES,
            false => 2,
        }
    }

    /// QUIC handshakes with the canary's name to its address over `family`, at `port`,
    /// made at once after a QUIC handshake went unanswered (see `quic::burst`), each
    /// given what a pulse's connect is (see [`Measurer::pulse`]): some answered and some
    /// not, the path was losing QUIC's datagrams, which a censor's drop of one name or
    /// address does not do to the canary. None without a canary or its address.
    async fn quic_burst(&self, family: Family, port: u16) -> Option<Burst> {
        let canary = self.options.control_sni.as_deref()?;
        let address = SocketAddr::new(self.canary_over(family).await?.ok()?.ip(), port);
        let (each, local) = (self.pulse_deadline(), self.dialer().local_for(address));
        Some(quic::burst(&self.tls, address, canary, each, local, QUIC_BURST).await)
    }

    /// A handshake with `server_name`, on `open` if a work place is free at once, else
    /// on a connection made right after a place is taken (a connection left idle while
    /// waiting can be dropped by a NAT or the server, which would read as a reset). One
    /// that is [`worth_again`] is made again (see [`Again`]), on a new connection after a
    /// pause; if every try fails, the first failure is kept (a later one, after a
    /// censor's residual block, may only show the block), with the tries and, after a
    /// timeout or where every try was torn down, a network check.
    async fn handshake(
        &self,
        open: Option<TcpStream>,
        address: SocketAddr,
        server_name: &str,
        control_sni: bool,
    ) -> (TlsFacts, DateTime<Utc>) {
        let began = tokio::time::Instant::now();
        let besides = counted_connect(&open);
        let first = self
            .handshake_once(open, address, server_name, control_sni)
            .await;
        let sent = first.1;
        let family = Family::of(address.ip());
        let mut again = Again::new(first, |first| first.0.error.as_ref()).on(self, family);
        while again.another().await {
            let next = self.handshake_once(None, address, server_name, control_sni);
            again.took(self.alongside(next, again.pulse_after()).await);
        }
        let mut kept = self.kept_handshake(again, besides);
        // Checked after the failures made again (a silence, a refusal or reset), as those
        // are what the network alone can cause.
        if let Some(failure) = kept.error.clone().filter(|_| worth_again(&kept.error)) {
            let at_connect = failed_to_connect(&failure, address);
            kept.check = self
                .network_check(began, &failure, family, at_connect)
                .await;
        }
        (kept, sent)
    }

    /// The handshake `again` kept, with its tries and first failure; counted where it
    /// got through (see [`Measurer::went_through`], and `besides` there).
    fn kept_handshake(
        &self,
        again: Again<'_, (TlsFacts, DateTime<Utc>)>,
        besides: f64,
    ) -> TlsFacts {
        self.went_through(&again, Operation::TlsHandshake, besides);
        let (mut kept, _) = again.kept;
        kept.tries = again.tries;
        kept.first_failure = again.first_failure;
        kept
    }

    /// One handshake; one with the target's name is sent in its address's turn (see
    /// `address::Addresses::turn`). Gives the facts, and when the name was sent.
    async fn handshake_once(
        &self,
        open: Option<TcpStream>,
        address: SocketAddr,
        server_name: &str,
        control_sni: bool,
    ) -> (TlsFacts, DateTime<Utc>) {
        let (work, stream) = self.at_work(open, address).await;
        let stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                let facts = TlsFacts {
                    error: Some(error),
                    ..TlsFacts::new(address, server_name, control_sni)
                };
                return (facts, Utc::now());
            }
        };
        let timeout = self.options.timeout;
        let handshake = |stream| {
            self.tls
                .handshake(stream, address, server_name, control_sni, timeout)
        };
        let ((facts, _), sent) = self
            .in_turn_at_work(work, stream, address, !control_sni, handshake)
            .await;
        match control_sni {
            true => (facts, Utc::now()),
            false => (facts, sent.0),
        }
    }

    /// `exchange` on `stream` to `address`, its bytes received counted, in the work
    /// place `work` (let go early where the server leaves it unheard: see
    /// `Limits::during`) and, when it sends a name (`names`; not the control SNI), in
    /// the address's turn; with when it began, the turn taken.
    ///
    /// A free turn is taken at once; else the place is given back while the exchange
    /// waits its turn, and taken again after (ahead of the targets still to begin, as
    /// this one has begun). A place held in the wait for a busy address's turn, behind
    /// names a censor silences there, is one the rest of the run waits for; and no
    /// exchange then holds a place while it waits for a turn, nor a turn while it waits
    /// for a place that such an exchange holds.
    async fn in_turn_at_work<F: Future>(
        &self,
        work: limits::Permit,
        stream: TcpStream,
        address: SocketAddr,
        names: bool,
        exchange: impl FnOnce(Counted<TcpStream>) -> F,
    ) -> (F::Output, (DateTime<Utc>, Instant)) {
        let ip = address.ip();
        let (turn, work) = match (names, self.addresses.try_turn(ip)) {
            (false, _) => (Turn::none(), work),
            (true, Some(turn)) => (turn, work),
            (true, None) => {
                drop(work);
                let turn = self.addresses.turn(ip).await;
                (turn, self.limits.work().await)
            }
        };
        let watched = Watched::new(&stream);
        let exchange = exchange(watched.counted(stream));
        let began = now();
        let output = turn
            .during(self.limits.during(work, &watched, exchange))
            .await;
        (output, began)
    }

    /// A work place and a connection to `address` to use it on: `open`, if a place is
    /// free at once, else a new connection made once the place is taken.
    async fn at_work(
        &self,
        open: Option<TcpStream>,
        address: SocketAddr,
    ) -> (limits::Permit, Result<TcpStream, StepError>) {
        if let (Some(stream), Some(work)) = (open, self.limits.try_work()) {
            return (work, Ok(stream));
        }
        let work = self.limits.work().await;
        let dialed = self.dial(&[address]).await;
        (work, dialed.result.map(|(stream, _)| stream))
    }

    /// A dial to the first of `addresses` that answers, noted for the address it
    /// reached (see `address::Addresses::answered`).
    async fn dial(&self, addresses: &[SocketAddr]) -> tcp::Dialed {
        let dialed = self.dialer().dial(addresses).await;
        if let Ok((_, address)) = &dialed.result {
            self.addresses.answered(*address);
            if self
                .canary_ipv6
                .get()
                .is_some_and(|c| c.ip() == address.ip())
            {
                self.ipv6_carried.store(true, Ordering::Relaxed);
            }
        }
        dialed
    }

    /// TCP connect, at the probe the control-SNI handshake (once per address and port in
    /// the run, before any target's name is sent there), then a handshake with the
    /// target's name.
    async fn tls_chain(
        &self,
        target: &Target,
        server_name: &str,
        address: SocketAddr,
    ) -> Vec<Measurement> {
        let (connected, stream, host) = self.connect_first(target, address).await;
        let mut out = vec![connected];
        let Some(stream) = stream else {
            return out;
        };
        let mut open = Some(stream);
        let sni = self.tcp_control_sni_for(server_name);
        let mut control_failed = false;
        if let Some(sni) = sni {
            let shared = self
                .shared_control_handshake(target, sni, address, &mut open)
                .await;
            control_failed = failed_once_connected(shared.step.error()).is_some();
            out.push(shared);
        }
        let ticket = self.addresses.open(address.ip(), Utc::now());
        let (facts, sent) = self.handshake(open, address, server_name, false).await;
        let failed = failed_once_connected(facts.error.as_ref()).cloned();
        // Where the censor tears handshakes down, a variant that only timed out was lost
        // on the way and is worth a second try; where it stalls them, that is its answer.
        let torn_down = facts.error.as_ref().is_some_and(StepError::torn_down);
        let ech = ech::informative(&facts) && self.options.ech.after_handshakes();
        let answered = facts.server_answered();
        // Recorded from when the name was sent: what a trigger's time must be.
        let handshake = self.record_since(target, sent, Step::TlsHandshake(facts));
        ticket.end(Trigger::of(&handshake));
        let at = out.len();
        out.push(handshake);
        if let (Some(sni), Some(e)) = (sni, &failed) {
            out.push(self.control_handshake_after(target, sni, address, e).await);
        }
        // After the control name's handshake right after, which they could spoil.
        if failed.is_some() && self.options.vantage == Vantage::Probe {
            let control = sni.filter(|_| control_failed);
            let hellos = self
                .other_hellos(address, server_name, control, torn_down)
                .await;
            if let Step::TlsHandshake(facts) = &mut out[at].step {
                facts.hellos = hellos;
            }
        }
        if ech {
            out.push(self.ech(target, server_name, address).await);
        }
        if answered && target.quic_ports.contains(&address.port()) {
            // QUIC does not load the server's TCP side: the address's next target may go.
            drop(host);
            out.extend(self.quic_pair(target, server_name, address).await);
        }
        out
    }

    /// A control-SNI handshake to `address` right after one with a target's name failed
    /// there (`name_failed`): whether the address still answered the control name then
    /// tells a failure of the name (it did; or it stopped answering at all, as a residual
    /// block the name set off does) from a server that had stopped doing TLS with
    /// anyone. Made again where it was torn down, as any handshake is (a flaky path's
    /// reset of this one would hide that only the name was turned down), and where it
    /// went unanswered after the name's was torn down (a lossy link stalls a handshake
    /// now and then); not after the name's went unanswered, which it just waited out.
    async fn control_handshake_after(
        &self,
        target: &Target,
        sni: &str,
        address: SocketAddr,
        name_failed: &StepError,
    ) -> Measurement {
        let started = now();
        let first = self.handshake_once(None, address, sni, true).await;
        fn error(first: &(TlsFacts, DateTime<Utc>)) -> Option<&StepError> {
            first.0.error.as_ref()
        }
        let again = match name_failed.failure.is_turned_down() {
            true => Again::new(first, error),
            false => Again::turned_down_only(first, error),
        };
        let mut again = again.on(self, Family::of(address.ip()));
        while again.another().await {
            again.took(self.handshake_once(None, address, sni, true).await);
        }
        let facts = self.kept_handshake(again, 0.0);
        self.record(target, started, Step::TlsHandshake(facts))
    }
}

/// Packets to leave out of a handshake's or fetch's count in the tally of steps that went
/// through (see [`Measurer::went_through`]): where its first try is made on `open`, a
/// connection its connect step made, that step counted the connect's already.
fn counted_connect(open: &Option<TcpStream>) -> f64 {
    match open {
        Some(_) => -f64::from(Operation::Connect.packets()),
        None => 0.0,
    }
}

/// The failure of a handshake with a target's name that failed once the connection was
/// made, for a reason a control-SNI handshake can tell about (not a certificate, not the
/// probe's own).
fn failed_once_connected(error: Option<&StepError>) -> Option<&StepError> {
    error.filter(|e| {
        !e.local
            && e.failed_operation == Operation::TlsHandshake
            && !e.failure.is_certificate_error()
    })
}

/// A handshake begun at `started`, to be shared.
fn shared(started: (DateTime<Utc>, Instant), step: Step) -> SharedHandshake {
    SharedHandshake {
        measured_at: started.0,
        runtime_ms: started.1.elapsed().as_secs_f64() * 1000.0,
        step,
    }
}

/// A connect of a network check, made again where refused or reset, as a step is (one
/// flaky reset would otherwise pass for a network that fails everything); and whether
/// its first try was answered (see [`carried`]) before the dial tried again.
async fn check_dial(dialer: &tcp::Dialer, address: SocketAddr) -> (Result<(), StepError>, bool) {
    let first = dialer.dial(&[address]).await;
    let answered = first.tries == 1 && carried(&first.result);
    let mut again = Again::turned_down_only(first, |d| d.result.as_ref().err());
    while again.another().await {
        again.took(dialer.dial(&[address]).await);
    }
    (again.kept.result.map(drop), answered)
}

/// A pulse's connects to `address`, made at once, each closed as soon as it is made.
async fn pulse_connects(dialer: &tcp::Dialer, address: SocketAddr) -> Burst {
    let tries = (0..CHECK_CONNECTS).map(|_| async { carried(&dialer.connect(address).await) });
    Burst::of(join_all(tries).await)
}

/// Whether a connect's packets were carried both ways: it connected, or was refused or
/// reset.
fn carried<T>(tried: &Result<T, StepError>) -> bool {
    match tried {
        Ok(_) => true,
        Err(e) => e.failure.is_turned_down(),
    }
}

/// A check of `what`, begun at `measured_at`, that failed with `error` (if it did).
fn checked(what: CheckTarget, measured_at: DateTime<Utc>, error: Option<StepError>) -> Check {
    Check {
        checked: what,
        measured_at,
        error,
        meanwhile: None,
        before: None,
        first_tries: None,
        during: None,
        slow_quarter_ms: None,
        answered_at: None,
        quic: None,
    }
}

fn timed_out(error: &Option<StepError>) -> bool {
    error.as_ref().is_some_and(|e| e.failure.is_timeout())
}

/// When to pulse the link (see [`Measurer::pulse`]) alongside a step made again after
/// one that failed with `error`: at once, where it went unanswered.
fn pulse_after(error: &Option<StepError>) -> Option<Duration> {
    timed_out(error).then_some(Duration::ZERO)
}

/// Whether a failed connect, handshake or fetch is made again, after a pause: it went
/// unanswered (loss, or a censor's drop), or it was refused or torn down (a flaky
/// middlebox or NAT resets a flow now and then, as a censor does every time). A censor
/// fails every try, where a fault seldom strikes twice in a row. Not an error
/// of the probe's own machine, nor an answer that would only come again (a
/// certificate, an alert).
fn worth_again(error: &Option<StepError>) -> bool {
    error
        .as_ref()
        .is_some_and(|e| !e.local && (e.failure.is_timeout() || e.failure.is_turned_down()))
}

/// How many times a step that failed with `error` is made in all: one turned down three
/// times, since a path that turns one try in twenty down at random turns two in a row
/// down once in 400 steps, and three once in 8,000 (a censor turns down every one, at
/// once), or `turned_down` times on a network seen doing so; one unanswered twice, each
/// waiting out the deadline.
fn tries_for(error: Option<&StepError>, turned_down: u32) -> u32 {
    match error.is_some_and(|e| e.failure.is_turned_down()) {
        true => turned_down,
        false => 2,
    }
}

/// Whether a try was refused or reset.
fn turned_down(error: Option<&StepError>) -> bool {
    error.is_some_and(|e| e.failure.is_turned_down())
}

/// Whether a try got through: no failure, or an answer (a certificate, an alert, a
/// response) rather than a silence, a refusal or reset, or the probe's own error.
fn got_through(error: Option<&StepError>) -> bool {
    error.is_none_or(|e| !e.local && !e.failure.is_timeout() && !e.failure.is_turned_down())
}

/// A step made again after a pause each time while its last try is [`worth_again`] and
/// [`tries_for`] it leaves one: the caller makes each try while [`Again::another`] says so
/// and hands it to [`Again::took`]. (A loop of the caller's, not a closure, so that a try
/// may borrow what the caller holds.)
pub(crate) struct Again<'a, T> {
    /// The first try that got through (see [`got_through`]); where none did, the first
    /// (a later one may only meet a residual block the first set off), but for a dial
    /// silent after refusals or resets: a censor turns down every try, so tries turned
    /// down and then a dial with none turned down are a fault's, and six SYNs
    /// unanswered are what the path does (a flaky middlebox's resets in front of a
    /// censor's blackhole: two dials in three may meet one); and but for a
    /// silent first try of another step once the tries refused or reset outnumber the
    /// silent ones: loss swallows a censor's reset as any packet and makes none, while a
    /// flaky middlebox's reset now and then does not outnumber a censor's silences.
    pub kept: T,
    pub tries: u32,
    /// The first try's failure, where a later try was kept.
    pub first_failure: Option<Failure>,
    /// The tries refused or reset, and those unanswered, so far.
    turned_down: u32,
    silent: u32,
    error: fn(&T) -> Option<&StepError>,
    last: Option<StepError>,
    /// Whether a silence is tried again here (a dial tries its silences itself).
    silences: bool,
    /// The steps that went through lately, where a step refused or reset at each try
    /// is made more often on a network seen turning steps down (see [`Again::on`]).
    flaky: Option<&'a Exchanges>,
    /// The pulses of the link, where a silent step is made more often on a link seen
    /// losing packets during one of its tries (see [`Again::on`]), over the step's
    /// family; when the last try began, and whether the link was seen so.
    link: Option<(&'a Checks, Family)>,
    last_began: tokio::time::Instant,
    losing: bool,
    settled: bool,
}

impl<'a, T> Again<'a, T> {
    /// The first try, and how to read its error (and each later try's).
    pub(crate) fn new(first: T, error: fn(&T) -> Option<&StepError>) -> Again<'a, T> {
        let last = error(&first).cloned();
        Again {
            kept: first,
            tries: 1,
            first_failure: None,
            turned_down: u32::from(turned_down(last.as_ref())),
            silent: u32::from(last.as_ref().is_some_and(StepError::silent)),
            error,
            last,
            silences: true,
            flaky: None,
            link: None,
            last_began: tokio::time::Instant::now(),
            losing: false,
            settled: false,
        }
    }

    /// Made more times where refused or reset while the measurer's steps lately were
    /// turned down at a try and let through at a later one: on such a network three
    /// tries turned down may be chance (a flaky middlebox meets a fetch's many packets
    /// often), five seldom are, and a censor turns down every one. And where silent
    /// while a pulse of the link during the last try (see [`Measurer::pulse`]) went
    /// unanswered in part: on a link losing packets two silent tries are loss's now and
    /// then, four seldom are, and a censor that drops a step leaves every one silent.
    /// The pulses read are those over `family`, the step's address's.
    pub(crate) fn on(self, measurer: &'a Measurer, family: Family) -> Again<'a, T> {
        Again {
            flaky: Some(&measurer.turned_down),
            link: Some((&measurer.checks, family)),
            ..self
        }
    }

    /// The tries of a step that failed with `e` (see [`Again::on`]).
    fn tries_for(&self, e: &StepError) -> u32 {
        match e.silent() && self.losing {
            true => Meanwhile::LOSSY_SILENT_TRIES,
            false => tries_for(Some(e), self.turned_down_tries()),
        }
    }

    /// The tries of a step refused or reset at each (see [`Again::on`]).
    fn turned_down_tries(&self) -> u32 {
        match self.flaky.is_some_and(Exchanges::any_made_again) {
            true => Meanwhile::FLAKY_TURNED_DOWN_TRIES,
            false => Meanwhile::TURNED_DOWN_TRIES,
        }
    }

    /// As [`Again::new`], for a step that tries a silence again itself, or whose
    /// silence is not worth waiting out twice: only a refusal or a reset is made again.
    fn turned_down_only(first: T, error: fn(&T) -> Option<&StepError>) -> Again<'a, T> {
        Again {
            silences: false,
            ..Again::new(first, error)
        }
    }

    /// When to pulse the link alongside the try [`Again::another`] said was due: at
    /// once, where the try before it went unanswered (see [`Measurer::pulse`]).
    pub(crate) fn pulse_after(&self) -> Option<Duration> {
        pulse_after(&self.last)
    }

    /// Whether another try is due; if so, after the pause before it.
    pub(crate) async fn another(&mut self) -> bool {
        // From a pulse's sharing before the try on: one begun within it stood for this
        // try's own, as the analysis reads it (`Measurer::pulse_during_last_try`).
        let now = tokio::time::Instant::now();
        let pulse = self.link.and_then(|(checks, family)| {
            checks.worst_pulse(family, sharing_from(self.last_began), now)
        });
        self.losing |= pulse.is_some_and(Burst::lost_some);
        let due = !self.settled
            && self.last.as_ref().is_some_and(|e| {
                worth_again(&self.last)
                    && (self.silences || e.failure.is_turned_down())
                    && self.tries < self.tries_for(e)
            });
        if due {
            tokio::time::sleep(RETRY_PAUSE).await;
            self.last_began = tokio::time::Instant::now();
        }
        due
    }

    /// Takes a try made because [`Again::another`] said so.
    pub(crate) fn took(&mut self, next: T) {
        self.tries += 1;
        self.last = (self.error)(&next).cloned();
        let last = self.last.as_ref();
        self.turned_down += u32::from(turned_down(last));
        self.silent += u32::from(last.is_some_and(StepError::silent));
        let through = got_through(last);
        // A step that tries its silences itself (a dial: six SYNs unanswered) outweighs
        // the refusals before it; one silent exchange does not outweigh a reset, whose
        // packets loss may have swallowed the next time.
        let silent_after = !self.silences
            && (self.error)(&self.kept).is_some_and(|e| e.failure.is_turned_down())
            && last.is_some_and(StepError::silent);
        let outnumbered = self.silences
            && (self.error)(&self.kept).is_some_and(StepError::silent)
            && turned_down(last)
            && self.turned_down > self.silent;
        if through || silent_after || outnumbered {
            let kept = (self.error)(&self.kept).map(|e| e.failure.clone());
            self.first_failure = self.first_failure.take().or(kept);
            self.kept = next;
            self.settled = through;
        }
    }

    /// The tries the step took where the one kept got through, for the tally of those
    /// (see [`Measurer::went_through`]): it and those turned down before it.
    fn through(&self) -> Option<u32> {
        got_through((self.error)(&self.kept)).then_some(1 + self.turned_down)
    }
}

/// The failure of a step that is followed by a network check: one that went unanswered,
/// or was turned down, and not by the probe's own machine.
fn worth_a_check(error: &Option<StepError>) -> Option<&StepError> {
    error.as_ref().filter(|e| e.by_network())
}

/// `address`, where the step failed `e` connecting to it: what a network check after a
/// failure there says when it first answered (see `Check::answered_at`).
fn failed_to_connect(e: &StepError, address: SocketAddr) -> Option<SocketAddr> {
    (e.failed_operation == Operation::Connect).then_some(address)
}

/// Whether a failed lookup is made again: not for an answer (NXDOMAIN, no data), nor
/// for an error of the probe's own machine, which another lookup would only repeat.
fn worth_another_lookup(e: &StepError) -> bool {
    !e.local && !matches!(e.failure, Failure::DnsNxdomain | Failure::DnsNoAnswer)
}

/// Where `measurements` failed (to connect, or to hear back after connecting, or to
/// connect again after the first bytes), and when each such failure ended.
fn failures(measurements: &[Measurement]) -> Vec<(IpAddr, DateTime<Utc>)> {
    measurements
        .iter()
        .flat_map(|m| {
            let at_end = |ip: IpAddr| (ip, m.ended_at());
            match &m.step {
                Step::TcpConnect(t) if t.error.is_some() => vec![at_end(t.address.ip())],
                Step::TcpConnect(t) => t
                    .first_bytes
                    .iter()
                    .filter(|f| f.went_dark())
                    .map(|f| (t.address.ip(), f.reconnect.ended_at()))
                    .collect(),
                Step::TlsHandshake(t) if t.error.is_some() && !t.control_sni => {
                    vec![at_end(t.address.ip())]
                }
                // The control name's too: made after other names went to the address
                // over TCP, it may meet a block one of them set off.
                Step::QuicHandshake(q) if q.handshake.error.is_some() => {
                    vec![at_end(q.handshake.address.ip())]
                }
                // A block another target set off on the address fails those without ECH too.
                Step::Ech(f) => f
                    .handshakes
                    .iter()
                    .filter(|h| h.torn_down())
                    .map(|h| (f.address.ip(), h.ended_at()))
                    .collect(),
                Step::Http(h) if h.error.is_some() => h
                    .hops
                    .iter()
                    .filter_map(|hop| hop.address.map(|a| at_end(a.ip())))
                    .collect(),
                _ => Vec::new(),
            }
        })
        .collect()
}

/// The start of a step: the wall-clock time it is recorded with, and the instant its
/// runtime is measured from.
fn now() -> (DateTime<Utc>, Instant) {
    (Utc::now(), Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::targets::TargetKind;

    /// A step whose tries fail with `errors` in turn (`None`: through), made again as
    /// [`Again`] says: which try is kept, the tries, the first failure, and the tries
    /// counted as having got through.
    async fn made(errors: &[Option<StepError>]) -> (usize, u32, Option<Failure>, Option<u32>) {
        let mut again = Again::new((0, errors[0].clone()), |t| t.1.as_ref());
        while again.another().await {
            let next = again.tries as usize;
            again.took((next, errors[next].clone()));
        }
        let kept = again.kept.0;
        (
            kept,
            again.tries,
            again.first_failure.clone(),
            again.through(),
        )
    }

    /// A censor turns down every try; a flaky path one now and then. A try that got
    /// through takes the first's place, and so does a dial's silence after one refusal
    /// (the refusal did not come again); the probe's own error never does.
    #[tokio::test]
    async fn a_step_is_made_again_until_a_try_gets_through() {
        let at = |failure| Some(StepError::new(Operation::TlsHandshake, failure));
        let reset = || at(Failure::ConnectionReset);
        let timeout = || at(Failure::GenericTimeout);
        let through = || (1, 2, Some(Failure::ConnectionReset), Some(2));
        let cases = [
            (vec![reset(), reset(), reset()], (0, 3, None, None)),
            (vec![reset(), None], through()),
            (vec![reset(), at(Failure::SslUnknownAuthority)], through()),
            (vec![reset(), timeout()], (0, 2, None, None)),
            (
                vec![timeout(), reset(), reset()],
                (2, 3, Some(Failure::GenericTimeout), None),
            ),
            (vec![timeout(), reset(), timeout()], (0, 3, None, None)),
            (vec![timeout(), timeout()], (0, 2, None, None)),
            (
                vec![reset(), reset().map(StepError::from_probe)],
                (0, 2, None, None),
            ),
            (vec![None], (0, 1, None, Some(1))),
            (
                vec![at(Failure::SslUnknownAuthority)],
                (0, 1, None, Some(1)),
            ),
        ];
        let made = join_all(cases.iter().map(|(errors, _)| made(errors))).await;
        for ((errors, expected), made) in cases.iter().zip(made) {
            assert_eq!(&made, expected, "{errors:?}");
        }
        // A dial tries its silences itself, and its silence after refusals is kept: one
        // refusal, or two (a flaky middlebox in front of a blackhole meets two dials in
        // a row now and then; a censor that refuses never leaves a dial silent).
        let mut silent = Again::turned_down_only(timeout(), Option::as_ref);
        assert!(!silent.another().await);
        for refusals in [1, 2] {
            let refused = || at(Failure::ConnectionRefused);
            let mut dial = Again::turned_down_only(refused(), Option::as_ref);
            for _ in 1..refusals {
                assert!(dial.another().await);
                dial.took(refused());
            }
            assert!(dial.another().await);
            dial.took(timeout());
            assert!(!dial.another().await, "{refusals} refusals");
            assert_eq!(
                (dial.kept, dial.first_failure),
                (timeout(), Some(Failure::ConnectionRefused)),
                "{refusals} refusals"
            );
        }
    }

    /// A step silent at every try, with a pulse of the link during each try but the
    /// first that fared as `pulse`: the tries made.
    async fn silent_tries(pulse: Option<Burst>) -> u32 {
        let silence = || {
            Some(StepError::new(
                Operation::TlsHandshake,
                Failure::GenericTimeout,
            ))
        };
        let checks = Checks::default();
        let mut again = Again::new(silence(), Option::as_ref);
        again.link = Some((&checks, Family::Ipv4));
        while again.another().await {
            if let (Some(burst), Some(during)) = (pulse, checks.pulse(Duration::ZERO)) {
                for family in Family::BOTH {
                    during.fared(family, burst);
                }
            }
            again.took(silence());
        }
        again.tries
    }

    /// A pulse begun within the second before a try stands for the try's own (it is
    /// shared, not made again): one that lost connects there makes the step's silence
    /// worth four tries.
    #[tokio::test(start_paused = true)]
    async fn a_pulse_just_before_a_try_counts_for_it() {
        let silence = || Some(StepError::timeout(Operation::TlsHandshake));
        let checks = Checks::default();
        let pulse = checks.pulse(Duration::ZERO).expect("none before");
        pulse.fared(
            Family::Ipv4,
            Burst {
                made: 6,
                answered: 4,
            },
        );
        tokio::time::advance(SHARED_CHECK / 2).await;
        let mut again = Again::new(silence(), Option::as_ref);
        again.link = Some((&checks, Family::Ipv4));
        while again.another().await {
            again.took(silence());
        }
        assert_eq!(again.tries, Meanwhile::LOSSY_SILENT_TRIES);
    }

    /// The first try's failure stays the first's when a later try is kept and another
    /// then gets through (silent, reset, reset, through, on a network seen turning
    /// steps down at random, where a reset is tried five times).
    #[tokio::test(start_paused = true)]
    async fn the_first_failure_is_the_first_tries_whatever_is_kept_after() {
        let at = |failure| Some(StepError::new(Operation::TlsHandshake, failure));
        let went_through = Exchanges::default();
        went_through.answered(2);
        let mut again = Again::new(at(Failure::GenericTimeout), Option::as_ref);
        again.flaky = Some(&went_through);
        for next in [
            at(Failure::ConnectionReset),
            at(Failure::ConnectionReset),
            None,
        ] {
            assert!(again.another().await);
            again.took(next);
        }
        assert!(!again.another().await);
        assert_eq!(
            (again.kept, again.tries, again.first_failure),
            (None, 4, Some(Failure::GenericTimeout))
        );
    }

    /// Two silent tries are loss's now and then on a link losing packets: where a pulse
    /// during a try lost some of its connects, a silence is made four times; where it
    /// lost none, or there was none, twice.
    #[tokio::test(start_paused = true)]
    async fn a_silence_is_made_again_more_on_a_link_losing_packets() {
        let answered = |answered| Some(Burst { made: 6, answered });
        assert_eq!(silent_tries(None).await, 2);
        assert_eq!(silent_tries(answered(6)).await, 2);
        assert_eq!(
            silent_tries(answered(4)).await,
            Meanwhile::LOSSY_SILENT_TRIES
        );
        assert_eq!(
            silent_tries(answered(0)).await,
            Meanwhile::LOSSY_SILENT_TRIES
        );
    }

    fn url(service: &str, url: &str) -> Target {
        let mut target = crate::analyse::fixtures::url();
        target.service = service.into();
        target.kind = TargetKind::parse(url).unwrap();
        target
    }

    /// A measurer with one resolver, `resolver`, and a canary.
    fn with_one_resolver(resolver: SocketAddr) -> Measurer {
        let options = Options {
            vantage: Vantage::Probe,
            timeout: Duration::from_secs(3),
            concurrency: 4,
            per_host: 4,
            resolvers: vec![ResolverSpec::Udp(resolver)],
            control_sni: Some("canary.test".into()),
            canary_port: Some(443),
            policy: AddressPolicy::new(Vec::new()),
            dns_window: Duration::from_secs(1),
            source: None,
            ech: ech::EchPlan::Always,
        };
        let tls = TlsContext::new(tls::root_store(None).unwrap()).unwrap();
        Measurer::new(options, tls, None).unwrap()
    }

    /// The datagrams that reached `socket` since the last call.
    fn datagrams(socket: &std::net::UdpSocket) -> usize {
        let mut buf = [0u8; 512];
        std::iter::from_fn(|| socket.recv(&mut buf).ok()).count()
    }

    #[tokio::test(start_paused = true)]
    async fn checks_waiting_for_a_lookup_of_the_canary_take_its_failure() {
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        dead.set_nonblocking(true).unwrap();
        let unanswered = Some(Err(Failure::GenericTimeout));
        let failure = |found: Option<Result<SocketAddr, StepError>>| {
            found.map(|found| found.map_err(|e| e.failure))
        };
        let measurer = with_one_resolver(dead.local_addr().unwrap());
        assert_eq!(failure(measurer.canary_address().await), unanswered);
        let one_lookup = datagrams(&dead);
        assert!(one_lookup > 0);

        let measurer = with_one_resolver(dead.local_addr().unwrap());
        let began = tokio::time::Instant::now();
        let found = join_all((0..5).map(|_| measurer.canary_address())).await;
        let found: Vec<_> = found.into_iter().map(failure).collect();
        assert_eq!(found, vec![unanswered.clone(); 5]);
        assert_eq!(
            datagrams(&dead),
            one_lookup,
            "the five checks shared one lookup"
        );
        assert!(
            began.elapsed() < 2 * measurer.options.timeout,
            "the five waited out one deadline, not one each: {:?}",
            began.elapsed()
        );
        // A failed lookup is not kept: a check after it looks the canary up again.
        assert_eq!(failure(measurer.canary_address().await), unanswered);
        assert_eq!(datagrams(&dead), one_lookup);
        // A silent step's network check then fails, naming the canary it could not
        // find; a refused one, which the link carried, has none.
        let now = tokio::time::Instant::now;
        let check = measurer
            .network_check(
                now(),
                &StepError::timeout(Operation::Connect),
                Family::Ipv4,
                None,
            )
            .await
            .expect("a check");
        assert_eq!(check.checked, CheckTarget::Resolver("canary.test".into()));
        assert!(!check.passed());
        let refusal = StepError::new(Operation::Connect, Failure::ConnectionRefused);
        let refused = measurer.network_check(now(), &refusal, Family::Ipv4, None);
        assert_eq!(refused.await, None);
    }

    /// The canary's A answer gives the checks and pulses its address at once, while its
    /// AAAA query, lost (a link down for a moment), still waits for an answer: the
    /// pulses of steps failing meanwhile must not wait for it, and miss the moment the
    /// link was down.
    #[tokio::test]
    async fn the_canarys_address_is_known_once_its_a_query_is_answered() {
        use hickory_proto::op::ResponseCode;
        use hickory_proto::rr::RecordType;
        let canary: IpAddr = "93.184.216.34".parse().unwrap();
        let resolver = crate::lab::dns::spawn_udp(move |socket, peer, query| async move {
            if query.queries.first().map(|q| q.query_type()) == Some(RecordType::A) {
                let reply = crate::lab::dns::reply(&query, ResponseCode::NoError, &[canary]);
                let _ = socket.send_to(&reply, peer).await;
            }
        })
        .unwrap();
        let measurer = with_one_resolver(resolver);
        let target = url("canary", "https://canary.test/");
        let lookups = measurer.measure_dns(&target, "canary.test");
        tokio::pin!(lookups);
        let soon = tokio::time::sleep(measurer.options.dns_window + Duration::from_millis(500));
        tokio::select! {
            _ = &mut lookups => panic!("the AAAA query was answered, or given up at once"),
            _ = soon => {}
        }
        assert_eq!(measurer.canary.get(), Some(&SocketAddr::new(canary, 443)));
    }

    /// IPv6 failing mid-run (a tunnel down, a prefix lost): once the canary's IPv6
    /// address has answered a connect, one to an IPv6 address that goes unanswered is
    /// checked over IPv6, at the canary's AAAA answer, which is silent too; its IPv4
    /// address, which answers, vouches for IPv4's connects only. Before, IPv6 is checked
    /// over IPv4.
    #[tokio::test]
    async fn a_connect_is_checked_over_its_own_family() {
        use crate::lab::blackhole::{Blackholed, listener_at};
        let everyone = Blackholed::Everyone;
        // The canary: one port, silent at ::1 and listening at 127.0.0.1.
        let (_silent, _listening, port) = (0..20)
            .find_map(|_| {
                let silent = listener_at("[::1]:0".parse().unwrap(), everyone).ok()?;
                let port = silent.local_addr().ok()?.port();
                let listening = std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some((silent, listening, port))
            })
            .expect("a port free on both loopback addresses");
        let mut measurer = with_one_resolver("127.0.0.1:9".parse().unwrap());
        measurer.options.timeout = Duration::from_secs(1);
        measurer.options.canary_port = Some(port);
        measurer.options.policy = AddressPolicy::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        let canary: [IpAddr; 2] = ["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        measurer.canary_answered(&canary);
        let over_ipv6 = || async {
            let address = measurer.canary_over(Family::Ipv6).await;
            address.and_then(Result::ok).map(|a| a.ip())
        };
        assert_eq!(over_ipv6().await, Some(canary[0]), "no IPv6 carried yet");
        // The canary's IPv6 address answers a connect (at another port of its).
        let live = std::net::TcpListener::bind("[::1]:0").unwrap();
        let (carried, _) = measurer.connect(live.local_addr().unwrap()).await;
        assert_eq!(carried.error, None);
        assert_eq!(over_ipv6().await, Some(canary[1]));
        let dead_ipv4 = listener_at("127.0.0.1:0".parse().unwrap(), everyone).unwrap();
        let dead_ipv6 = listener_at("[::1]:0".parse().unwrap(), everyone).unwrap();
        let ((ipv4, _), (ipv6, _)) = tokio::join!(
            measurer.connect(dead_ipv4.local_addr().unwrap()),
            measurer.connect(dead_ipv6.local_addr().unwrap()),
        );
        for (facts, canary) in [(&ipv4, canary[0]), (&ipv6, canary[1])] {
            let failure = facts.error.as_ref().map(|e| &e.failure);
            assert_eq!(failure, Some(&Failure::GenericTimeout), "{facts:?}");
            let check = facts.check.as_ref().expect("a check after a silence");
            assert_eq!(check.checked, CheckTarget::Connect((canary, port).into()));
        }
        assert!(ipv4.check.as_ref().unwrap().passed(), "{ipv4:?}");
        assert!(!ipv6.check.as_ref().unwrap().passed(), "{ipv6:?}");
        // The link pulsed as the dials tried again, each family told of its own.
        let during = |facts: &TcpFacts| facts.check.as_ref().and_then(|c| c.during);
        let burst = |answered| Some(Burst { made: 6, answered });
        assert_eq!(during(&ipv4), burst(6), "{ipv4:?}");
        assert_eq!(during(&ipv6), burst(0), "{ipv6:?}");
    }

    /// A resolver that stops answering mid-run: a lookup that failed after it stopped is
    /// not vouched for by the check of another lookup, made while it still answered.
    #[tokio::test]
    async fn a_lookup_failed_after_its_resolver_stopped_gets_a_check_of_its_own() {
        use hickory_proto::op::ResponseCode;
        use std::sync::atomic::{AtomicBool, Ordering};
        let answering = Arc::new(AtomicBool::new(true));
        let up = answering.clone();
        let resolver = crate::lab::dns::spawn_udp(move |socket, peer, query| {
            let up = up.clone();
            async move {
                let name = query.queries.first().map(|q| q.name().to_string());
                let code = match name.unwrap_or_default() {
                    _ if !up.load(Ordering::SeqCst) => return,
                    name if name.starts_with("silent.") => return,
                    name if name.starts_with("servfail.") => ResponseCode::ServFail,
                    _ => ResponseCode::NXDomain,
                };
                let reply = crate::lab::dns::reply(&query, code, &[]);
                let _ = socket.send_to(&reply, peer).await;
            }
        })
        .unwrap();
        let measurer = with_one_resolver(resolver);
        let io = measurer.dns_io(measurer.options.dns_window);
        let spec = &measurer.resolvers[0];
        let silent = measurer.lookup(&io, spec, "silent.test", QueryType::A);
        let early = async {
            let early = measurer
                .lookup(&io, spec, "servfail.test", QueryType::A)
                .await;
            answering.store(false, Ordering::SeqCst);
            early
        };
        let (silent, early) = tokio::join!(silent, early);
        let early = early.facts.check.expect("a check of the early failure");
        assert!(early.passed(), "the resolver answered then: {early:?}");
        let late = silent.facts.check.expect("a check of the late failure");
        assert!(!late.passed(), "the resolver had stopped: {late:?}");
    }

    /// A redirect's host outside the plan is looked up as a target's name is: its A
    /// lookup made again after a failure, and its resolver checked; the check goes with
    /// the failure to the fetch.
    #[tokio::test]
    async fn a_redirects_host_that_fails_to_resolve_is_looked_up_again_and_checked() {
        use hickory_proto::op::ResponseCode;
        use hickory_proto::rr::RecordType;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        let resolver = crate::lab::dns::spawn_udp(move |socket, peer, query| {
            let count = count.clone();
            async move {
                let question = query.queries.first();
                let name = question.map(|q| q.name().to_string()).unwrap_or_default();
                let code = match name.starts_with("gone.") {
                    true => ResponseCode::ServFail,
                    false => ResponseCode::NXDomain,
                };
                if code == ResponseCode::ServFail
                    && question.map(|q| q.query_type()) == Some(RecordType::A)
                {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                let reply = crate::lab::dns::reply(&query, code, &[]);
                let _ = socket.send_to(&reply, peer).await;
            }
        })
        .unwrap();
        let measurer = with_one_resolver(resolver);
        let url = Url::parse("http://gone.test/").unwrap();
        let (found, check) = measurer.addresses_for(&url).await;
        assert_eq!(found.unwrap_err().failure, Failure::DnsServfail);
        let check = check.expect("the resolver checked");
        assert!(check.passed(), "{check:?}");
        assert_eq!(check.meanwhile, None, "a lookup's counts are not a fetch's");
        assert!(
            asked.load(Ordering::SeqCst) >= 2,
            "the A lookup made again: {asked:?}"
        );
    }

    /// A step that failed while a pulse begun during its last try was still going on is
    /// judged by that pulse, once it fared; not by one begun after it failed, while its
    /// check went on.
    #[tokio::test]
    async fn a_pulse_going_on_as_a_step_failed_is_its_last_tries() {
        let measurer = with_one_resolver("127.0.0.1:9".parse().unwrap());
        let checks = &measurer.checks;
        let burst = |answered| Burst { made: 6, answered };
        let began = tokio::time::Instant::now();
        let pulse = checks.pulse(Duration::ZERO).unwrap();
        let failed = tokio::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for family in Family::BOTH {
                pulse.fared(family, burst(0));
            }
        });
        let during = measurer
            .pulse_during_last_try(Family::Ipv4, began, failed)
            .await;
        assert_eq!(during, Some(burst(0)));

        let began = tokio::time::Instant::now();
        let fared = |answered| {
            let pulse = checks.pulse(Duration::ZERO).unwrap();
            for family in Family::BOTH {
                pulse.fared(family, burst(answered));
            }
        };
        fared(6);
        let failed = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        fared(0);
        let during = measurer
            .pulse_during_last_try(Family::Ipv4, began, failed)
            .await;
        assert_eq!(during, Some(burst(6)));
    }

    #[test]
    fn a_hosts_dns_is_let_go_after_its_last_target_only() {
        let options = Options {
            vantage: Vantage::Probe,
            timeout: Duration::from_secs(1),
            concurrency: 1,
            per_host: 1,
            resolvers: vec![ResolverSpec::Udp("127.0.0.1:53".parse().unwrap())],
            control_sni: None,
            canary_port: None,
            policy: AddressPolicy::new(Vec::new()),
            dns_window: Duration::from_secs(1),
            source: None,
            ech: ech::EchPlan::Always,
        };
        let tls = TlsContext::new(tls::root_store(None).unwrap()).unwrap();
        let measurer = Measurer::new(options, tls, None).unwrap();
        let targets = [
            url("a", "https://a.test/1"),
            url("a", "https://a.test/2"),
            url("b", "https://b.test/"),
        ];
        measurer.expect(targets.clone());
        let cached = |host: &str| measurer.hosts.lock().unwrap().contains_key(host);
        for host in ["a.test", "b.test"] {
            measurer.host_cell(host);
        }
        measurer.done_with("a.test");
        assert!(cached("a.test"), "one target of a.test is still to come");
        measurer.done_with("a.test");
        assert!(!cached("a.test"));
        assert!(cached("b.test"));
        measurer.done_with("b.test");
        assert!(!cached("b.test"));
    }
}
