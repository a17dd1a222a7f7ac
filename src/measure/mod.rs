//! Measurement: facts about each target, gathered concurrently within bounds, each step
//! with its own deadline. One file per protocol; this one plans the steps of a target.
//!
//! The same code measures from the probe and, later, from the control vantage point,
//! so that the two sides differ only in where they stand.

pub mod dns;
pub mod http;
pub mod limits;
pub mod tcp;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared, join_all};
use tokio::sync::{OnceCell, oneshot};
use url::Url;

use crate::asn::AsnDb;
use crate::bogon::AddressPolicy;
use crate::facts::{
    DnsFacts, Measurement, QueryType, Step, TcpFacts, TlsFacts, Vantage, answered_addresses,
};
use crate::failure::{Failure, Operation, StepError};
use crate::plan::{Target, TargetKind};
use crate::targets::ResolverSpec;
use dns::{DnsIo, Resolver};
use limits::Limits;
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

#[derive(Debug, Clone)]
pub struct Options {
    pub vantage: Vantage,
    pub timeout: Duration,
    pub concurrency: usize,
    pub per_host: usize,
    pub resolvers: Vec<ResolverSpec>,
    /// The SNI of the control handshakes (the canary's name).
    pub control_sni: Option<String>,
    pub policy: AddressPolicy,
    pub dns_window: Duration,
    /// The source address of every measurement, if not the system's choice.
    pub source: Option<IpAddr>,
}

/// Everything measured for one target.
#[derive(Debug, Clone)]
pub struct TargetFacts {
    pub target: Target,
    /// The measurements made for this target, to be written to disk.
    pub measurements: Vec<Measurement>,
    /// The DNS measurements of the target's host, which a URL shares with the domain
    /// target of the same host (measured once, written once, read by both verdicts).
    pub dns: Arc<Vec<Measurement>>,
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
    asn: Option<Arc<AsnDb>>,
    resolvers: Vec<Resolver>,
    hosts: Mutex<HashMap<String, Arc<OnceCell<Arc<HostDns>>>>>,
    /// Targets still to come for each host, when the plan is known: a host's DNS is
    /// forgotten after its last target, so memory does not grow with the run.
    users: Mutex<HashMap<String, usize>>,
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
            tls,
            asn,
            resolvers,
            hosts: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
        })
    }

    /// Tells the measurer which targets are coming, so it can let go of each host's
    /// DNS once the last of them is measured.
    pub fn expect(&self, targets: &[Target]) {
        let mut users = self.users.lock().expect("host users lock poisoned");
        for host in targets.iter().filter_map(Target::hostname) {
            *users.entry(host.to_string()).or_default() += 1;
        }
    }

    fn done_with(&self, host: &str) {
        let mut users = self.users.lock().expect("host users lock poisoned");
        if let Some(left) = users.get_mut(host) {
            *left -= 1;
            if *left == 0 {
                users.remove(host);
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
        tcp::Dialer::new(self.options.timeout, self.options.source)
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
            TargetKind::Endpoint(addr) => {
                let started = (Utc::now(), Instant::now());
                let step = match self.public_only(addr.ip()) {
                    Ok(_) => self.connect(*addr).await,
                    Err(_) => TcpFacts {
                        address: *addr,
                        error: Some(StepError::new(
                            Operation::Connect,
                            Failure::unknown(REFUSED_BOGON),
                        )),
                    },
                };
                measurements.push(self.record(target, started, Step::TcpConnect(step)));
            }
            TargetKind::Url(url) => {
                let addresses = match url.host() {
                    Some(url::Host::Domain(_)) => usable,
                    _ => self.addresses_for(url).await,
                };
                let started = (Utc::now(), Instant::now());
                let facts = self.fetch(url, addresses).await;
                measurements.push(self.record(target, started, Step::Http(facts)));
            }
        }
        let mut dns = Arc::new(Vec::new());
        if let Some((host_dns, first)) = resolved {
            dns = host_dns.complete.clone().await;
            if first {
                measurements.splice(0..0, dns.iter().cloned());
            }
            self.done_with(target.hostname().unwrap_or_default());
        }
        TargetFacts {
            target: target.clone(),
            measurements,
            dns,
        }
    }

    fn record(
        &self,
        target: &Target,
        started: (chrono::DateTime<Utc>, Instant),
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

    async fn measure_dns(&self, target: &Target, host: &str) -> HostDns {
        let io = DnsIo {
            limits: &self.limits,
            tls: &self.tls,
            dialer: self.dialer(),
            timeout: self.options.timeout,
            window: self.options.dns_window,
        };
        let queries = self.resolvers.iter().flat_map(|resolver| {
            [QueryType::A, QueryType::Aaaa].map(|qtype| {
                let io = &io;
                async move {
                    let started = (Utc::now(), Instant::now());
                    let lookup = resolver.lookup(io, host, qtype).await;
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

    /// The addresses to fetch a URL's host from: the literal address, or its DNS.
    async fn addresses_for(&self, url: &Url) -> Result<Vec<IpAddr>, StepError> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.public_only(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.public_only(IpAddr::V6(ip)),
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
                    return known.usable.clone();
                }
                // A redirect to a host outside the plan: its DNS is part of this fetch,
                // not a measurement of its own.
                let io = DnsIo {
                    limits: &self.limits,
                    tls: &self.tls,
                    dialer: self.dialer(),
                    timeout: self.options.timeout,
                    window: Duration::ZERO,
                };
                let resolver = &self.resolvers[0];
                // Boxed: a DoH query's state is large, and every fetch's future would
                // otherwise keep room for two of them.
                let (a, aaaa) = Box::pin(async {
                    tokio::join!(
                        resolver.query(&io, host, QueryType::A),
                        resolver.query(&io, host, QueryType::Aaaa)
                    )
                })
                .await;
                let mut addresses = a.addresses.clone();
                addresses.extend(aaaa.addresses);
                addresses.retain(|ip| !self.options.policy.is_bogon(*ip));
                if addresses.is_empty() {
                    return Err(a
                        .error
                        .unwrap_or(StepError::new(Operation::Resolve, Failure::DnsBogon)));
                }
                Ok(addresses)
            }
            None => Err(StepError::new(
                Operation::Resolve,
                Failure::unknown("URL without a host"),
            )),
        }
    }

    fn public_only(&self, ip: IpAddr) -> Result<Vec<IpAddr>, StepError> {
        if self.options.policy.is_bogon(ip) {
            Err(StepError::new(Operation::Resolve, Failure::DnsBogon))
        } else {
            Ok(vec![ip])
        }
    }

    async fn connect_only(&self, target: &Target, address: SocketAddr) -> Measurement {
        let started = (Utc::now(), Instant::now());
        let facts = self.connect(address).await;
        self.record(target, started, Step::TcpConnect(facts))
    }

    async fn connect(&self, address: SocketAddr) -> TcpFacts {
        let _permit = self.limits.host(address.ip()).await;
        let error = self.dialer().connect(address).await.err();
        TcpFacts { address, error }
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
        let mut all = usable.unwrap_or_default();
        for ip in extra {
            if !all.contains(&ip) {
                all.push(ip);
            }
        }
        Ok(all)
    }

    /// TCP connect, a handshake with the control SNI on that connection, then a
    /// handshake with the target's SNI on a second one. The control SNI goes first:
    /// some censors punish a forbidden SNI by blocking the address for minutes, which
    /// would otherwise make the control handshake fail too and hide SNI filtering.
    async fn tls_chain(
        &self,
        target: &Target,
        server_name: &str,
        address: SocketAddr,
    ) -> Vec<Measurement> {
        let timeout = self.options.timeout;
        let _host = self.limits.host(address.ip()).await;
        let started = (Utc::now(), Instant::now());
        let first = self.dialer().connect(address).await;
        let connect = self.record(
            target,
            started,
            Step::TcpConnect(TcpFacts {
                address,
                error: first.as_ref().err().cloned(),
            }),
        );
        let Ok(first) = first else {
            return vec![connect];
        };
        let mut out = vec![connect];
        let control = self
            .options
            .control_sni
            .as_deref()
            .filter(|sni| *sni != server_name);
        let target_stream = match control {
            Some(sni) => {
                let started = (Utc::now(), Instant::now());
                let work = self.limits.work().await;
                let (facts, _) = self.tls.handshake(first, address, sni, true, timeout).await;
                drop(work);
                out.push(self.record(target, started, Step::TlsHandshake(facts)));
                self.dialer().connect(address).await
            }
            None => Ok(first),
        };
        let started = (Utc::now(), Instant::now());
        let facts = match target_stream {
            Ok(stream) => {
                let _work = self.limits.work().await;
                self.tls
                    .handshake(stream, address, server_name, false, timeout)
                    .await
                    .0
            }
            Err(error) => TlsFacts {
                address,
                server_name: server_name.to_string(),
                control_sni: false,
                handshake_done: false,
                tls_version: None,
                cipher_suite: None,
                alpn: None,
                certificate: None,
                error: Some(error),
            },
        };
        out.push(self.record(target, started, Step::TlsHandshake(facts)));
        out
    }
}
