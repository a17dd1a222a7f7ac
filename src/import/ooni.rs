//! One OONI measurement as our facts: the probe's from its test keys, the control's
//! from Web Connectivity's test helper (or from censorprobe's own export), so that the
//! same rules judge OONI's data as our runs.
//!
//! Nothing is invented: a fact OONI did not record (a transfer's rate, a control-SNI
//! handshake, the resolver's health) stays absent, and the rules that need it say so.
//! Where OONI records a fact in another shape (the test helper's summary of the
//! control's fetch, a getaddrinfo answer holding both A and AAAA records) it is put in
//! ours without adding to it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use url::Url;

use super::archival::{
    Answer, Connect, Envelope, ExportedFacts, Handshake, HelperControl, Query, TestKeys,
    Transaction,
};
use crate::analyse::{Context, Control};
use crate::facts::TargetFacts;
use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{
    DnsAnswer, DnsFacts, DnsReply, HttpFacts, HttpHop, Measurement, QueryType, QuicFacts, Step,
    TcpFacts, TlsFacts, Vantage,
};
use crate::input::bogon::AddressPolicy;
use crate::input::targets::{self, Target, TargetKind};
use crate::measure::http::{BODY_PREFIX, title_of};
use crate::measure::tls::certificate_facts;

/// The longest step an export may hold: a day. A run's steps end within its deadline's
/// few multiples; a time past this is no run's.
const MAX_RUNTIME_MS: f64 = 86_400_000.0;

/// Facebook's own network: OONI's facebook_messenger test calls an answer outside it
/// inconsistent.
const FACEBOOK_ASN: u32 = 32934;

/// What OONI's control said of one measurement.
pub enum ControlFacts {
    /// A censorprobe run without a control, exported.
    None,
    Measured(Box<TargetFacts>),
    /// The test has no control (telegram, facebook_messenger) or its helper failed.
    Unavailable(String),
}

impl ControlFacts {
    /// The control as analysis takes it.
    pub fn as_control(&self) -> Control<'_> {
        match self {
            ControlFacts::None => Control::None,
            ControlFacts::Measured(facts) => Control::Measured(facts),
            ControlFacts::Unavailable(why) => Control::Unavailable(why),
        }
    }
}

/// One OONI measurement, read.
pub struct Imported {
    pub target: Target,
    pub measured_at: DateTime<Utc>,
    pub probe_cc: String,
    pub probe_asn: String,
    pub probe: TargetFacts,
    pub control: ControlFacts,
    pub measurement_uid: Option<String>,
    pub report_id: Option<String>,
    /// What judging it needs besides the facts: from censorprobe's export, its run's
    /// context; else the lab networks a censorprobe run took for public and what its
    /// canary showed of QUIC and IPv6, from the annotations (none in OONI's data).
    pub context: Context,
    /// Whether `context` and the probe's triggers are what its run knew, carried whole
    /// by censorprobe's export (its `x_censorprobe_facts`), not pieced together here.
    pub carried: bool,
}

/// Why a measurement was left out.
#[derive(Debug, thiserror::Error)]
pub enum Skip {
    #[error("not a JSON object of an OONI measurement: {0}")]
    Malformed(String),
    #[error(
        "test {0:?} is not one censorprobe reads (web_connectivity, telegram, facebook_messenger, and its own exports)"
    )]
    UnknownTest(String),
    #[error("web_connectivity {0} is newer than the 0.5 this censorprobe reads")]
    NewerFormat(String),
    #[error("{0}")]
    Unusable(String),
}

/// Reads one measurement (one JSON text).
pub fn read(text: &str) -> Result<Imported, Skip> {
    let mut envelope: Envelope =
        serde_json::from_str(text).map_err(|e| Skip::Malformed(e.to_string()))?;
    let test_name = envelope.test_name.clone().unwrap_or_default();
    let version = envelope.test_version.clone().unwrap_or_default();
    let (kind, service) = match test_name.as_str() {
        "web_connectivity" => {
            if !known_version(&version) {
                return Err(Skip::NewerFormat(version));
            }
            let input = envelope.input.as_deref().unwrap_or_default();
            let url = targets::parse_url(input).map_err(Skip::Unusable)?;
            (TargetKind::Url(url), "web".into())
        }
        "censorprobe_domain" | "censorprobe_endpoint" => {
            let input = envelope.input.as_deref().unwrap_or_default();
            let kind = TargetKind::parse(input).map_err(Skip::Unusable)?;
            let service = annotation(&envelope, "censorprobe_service");
            (kind, service.unwrap_or("web").into())
        }
        "telegram" => (
            TargetKind::Domain("web.telegram.org".into()),
            "telegram".into(),
        ),
        "facebook_messenger" => (TargetKind::Domain("facebook.com".into()), "facebook".into()),
        other => return Err(Skip::UnknownTest(other.to_string())),
    };
    let target = Target {
        service,
        asns: match test_name.as_str() {
            "facebook_messenger" => Arc::new([FACEBOOK_ASN]),
            _ => targets::empty(),
        },
        kind,
        tls_ports: targets::empty(),
        tcp_ports: targets::empty(),
        quic_ports: targets::empty(),
    };
    let start = envelope
        .measurement_start_time
        .as_deref()
        .and_then(ooni_time)
        .ok_or_else(|| Skip::Unusable("no measurement_start_time".into()))?;
    let mut keys = envelope.test_keys.take().unwrap_or_default();
    let (target, probe, control, context, carried) = match keys.x_censorprobe_facts.take() {
        Some(exported) => {
            let (target, probe, control, context) = exported_facts(&target, exported)?;
            (target, probe, control, context, true)
        }
        None => {
            let (probe, control, context) = from_shapes(&target, &keys, start, &envelope);
            (target, probe, control, context, false)
        }
    };
    Ok(Imported {
        target,
        measured_at: start,
        probe_cc: envelope.probe_cc.unwrap_or_else(|| "ZZ".into()),
        probe_asn: envelope.probe_asn.unwrap_or_else(|| "AS0".into()),
        probe,
        control,
        context,
        carried,
        measurement_uid: envelope.measurement_uid.filter(|id| !id.is_empty()),
        report_id: envelope.report_id.filter(|id| !id.is_empty()),
    })
}

/// The facts of a measurement from OONI's shapes (OONI's data, an older export of
/// ours): the probe's, the control's from its test helper or from our `x_control`, and
/// what the annotations of our export say of the run's network.
fn from_shapes(
    target: &Target,
    keys: &TestKeys,
    start: DateTime<Utc>,
    envelope: &Envelope,
) -> (TargetFacts, ControlFacts, Context) {
    let clock = Clock {
        start,
        target: target.to_string(),
        service: target.service.clone(),
    };
    let probe = facts(target, keys, &clock, Vantage::Probe);
    let control = match (&keys.x_control, &keys.control, &keys.control_failure) {
        (Some(ours), _, _) => {
            ControlFacts::Measured(Box::new(facts(target, ours, &clock, Vantage::Control)))
        }
        (None, _, Some(failure)) => {
            ControlFacts::Unavailable(format!("OONI's test helper failed ({failure})"))
        }
        (None, Some(helper), None) => {
            ControlFacts::Measured(Box::new(helper_facts(target, helper, &clock)))
        }
        (None, None, None) if envelope.software_name.as_deref() == Some("censorprobe") => {
            ControlFacts::None
        }
        (None, None, None) => ControlFacts::Unavailable(format!(
            "OONI's {} test has no control",
            envelope.test_name.as_deref().unwrap_or_default()
        )),
    };
    let context = Context {
        policy: AddressPolicy::new(
            annotation(envelope, "censorprobe_treat_as_public")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|net| net.parse().ok())
                .collect(),
        ),
        // Only censorprobe's own export says what its canary showed; OONI's data does
        // not, so an address dark to QUIC or IPv6 there is no evidence.
        quic: annotation(envelope, "censorprobe_probe_quic").and_then(|q| q.parse().ok()),
        ipv6: annotation(envelope, "censorprobe_probe_ipv6") == Some("true"),
        ..Context::default()
    };
    (probe, control, context)
}

/// censorprobe's own facts as its export wrote them (see [`ExportedFacts`]): the target
/// as the run planned it, which must be the line's input; its lookups apart from its
/// other steps, as a run holds them; the control's likewise, or why it had none; the
/// context the run judged it in. Every step is this measurement's, named for its
/// target, and ends within the calendar.
fn exported_facts(
    input: &Target,
    exported: ExportedFacts,
) -> Result<(Target, TargetFacts, ControlFacts, Context), Skip> {
    let target = exported.target;
    let name = target.to_string();
    if name != input.to_string() {
        return Err(Skip::Unusable(format!(
            "x_censorprobe_facts: the target {target} is not the measurement's input {input}"
        )));
    }
    let split = |mut steps: Vec<Measurement>, vantage: Vantage| {
        for m in &mut steps {
            if m.vantage != vantage {
                return Err(Skip::Unusable(format!(
                    "x_censorprobe_facts: a {:?} measurement among the {vantage:?}'s",
                    m.vantage
                )));
            }
            if !(0.0..=MAX_RUNTIME_MS).contains(&m.runtime_ms) {
                return Err(Skip::Unusable(format!(
                    "x_censorprobe_facts: a step of {} ms",
                    m.runtime_ms
                )));
            }
            // Each is this measurement's, as the rows written for it say: a lookup
            // shared with another target of the host names that target.
            m.target.clone_from(&name);
            m.service = target.service.clone();
        }
        let (dns, rest) = steps
            .into_iter()
            .partition(|m| matches!(m.step, Step::Dns(_)));
        Ok(TargetFacts::new(&target, rest, dns))
    };
    let mut probe = split(exported.probe, Vantage::Probe)?;
    probe.triggers = exported.triggers;
    let control = match (exported.control, exported.control_unavailable) {
        (Some(steps), _) => ControlFacts::Measured(Box::new(split(steps, Vantage::Control)?)),
        (None, Some(why)) => ControlFacts::Unavailable(why),
        (None, None) => ControlFacts::None,
    };
    Ok((target, probe, control, exported.context))
}

/// Web Connectivity 0.4 (test helper summaries) and 0.5 (the same, with TLS).
fn known_version(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    matches!(
        (parts.next().flatten(), parts.next().flatten()),
        (Some(0), Some(0..=5))
    )
}

fn annotation<'e>(envelope: &'e Envelope, key: &str) -> Option<&'e str> {
    envelope.annotations.get(key)?.as_str()
}

/// "2024-02-12 20:33:47", UTC.
fn ooni_time(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// Turns OONI's seconds since the measurement's start into our measurements.
struct Clock {
    start: DateTime<Utc>,
    target: String,
    service: Arc<str>,
}

impl Clock {
    fn measurement(
        &self,
        vantage: Vantage,
        t0: Option<f64>,
        t: Option<f64>,
        step: Step,
    ) -> Measurement {
        let t0 = t0.unwrap_or(0.0).max(0.0);
        let runtime_ms = t.map_or(0.0, |t| ((t - t0) * 1000.0).max(0.0));
        Measurement {
            vantage,
            service: self.service.clone(),
            target: self.target.clone(),
            measured_at: crate::facts::after_ms(self.start, t0 * 1000.0),
            runtime_ms,
            step,
        }
    }
}

fn error(operation: Operation, s: Option<&str>) -> Option<StepError> {
    s.map(|s| StepError::new(operation, Failure::from_ooni(s)))
}

/// The probe's facts (or the control's, in censorprobe's export) from the event lists.
fn facts(target: &Target, keys: &TestKeys, clock: &Clock, vantage: Vantage) -> TargetFacts {
    let dns = lookups(
        &keys.queries,
        &keys.x_dns_duplicate_responses,
        clock,
        vantage,
    );
    let hosts = request_hosts(target, &keys.requests);
    let mut measurements: Vec<Measurement> = keys
        .tcp_connect
        .iter()
        .filter_map(|c| {
            let step = Step::TcpConnect(TcpFacts::new(
                connect_address(c)?,
                error(Operation::Connect, c.status.failure.as_deref()),
            ));
            Some(clock.measurement(vantage, c.t0, c.t, step))
        })
        .collect();
    measurements.extend(keys.tls_handshakes.iter().filter_map(|h| {
        let facts = handshake(h, &hosts, Operation::TlsHandshake)?;
        Some(clock.measurement(vantage, h.t0, h.t, Step::TlsHandshake(facts)))
    }));
    measurements.extend(keys.quic_handshakes.iter().filter_map(|h| {
        let extra = h.x_censorprobe.as_ref();
        let facts = QuicFacts {
            handshake: handshake(h, &hosts, Operation::QuicHandshake)?,
            local_port: extra.and_then(|x| x.local_port),
            datagrams_received: extra.and_then(|x| x.datagrams_received),
        };
        Some(clock.measurement(vantage, h.t0, h.t, Step::QuicHandshake(facts)))
    }));
    for (requests, fetch) in fetches(target, keys, &hosts) {
        let first = requests.iter().filter_map(|r| r.t0).reduce(f64::min);
        let last = requests.iter().filter_map(|r| r.t).reduce(f64::max);
        measurements.push(clock.measurement(vantage, first, last, Step::Http(fetch)));
    }
    TargetFacts::new(target, measurements, dns)
}

/// The host names the target's fetch asked for: handshakes with any other name were
/// made with a control SNI (censorprobe's export; OONI makes none).
fn request_hosts(target: &Target, requests: &[Transaction]) -> Vec<String> {
    let mut hosts: Vec<String> = target.hostname().map(str::to_string).into_iter().collect();
    hosts.extend(requests.iter().filter_map(|r| {
        let url = Url::parse(r.request.url.as_deref()?).ok()?;
        url.host_str().map(str::to_string)
    }));
    hosts
}

fn connect_address(c: &Connect) -> Option<SocketAddr> {
    let ip: IpAddr = c.ip.as_deref()?.parse().ok()?;
    Some(SocketAddr::new(ip, c.port?))
}

fn handshake(h: &Handshake, hosts: &[String], operation: Operation) -> Option<TlsFacts> {
    let address: SocketAddr = h.address.as_deref()?.parse().ok()?;
    let server_name = h.server_name.clone().unwrap_or_default();
    let control_sni = !hosts.is_empty() && !hosts.contains(&server_name);
    let mut facts = TlsFacts::new(address, &server_name, control_sni);
    let error = error(operation, h.failure.as_deref());
    facts.handshake_done = error
        .as_ref()
        .is_none_or(|e| e.failure.is_certificate_error());
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    facts.tls_version = non_empty(&h.tls_version);
    facts.cipher_suite = non_empty(&h.cipher_suite);
    facts.alpn = non_empty(&h.negotiated_protocol);
    let chain: Vec<Vec<u8>> = h.peer_certificates.iter().map(|c| c.bytes()).collect();
    facts.certificate = chain
        .first()
        .map(|leaf| certificate_facts(leaf, &chain[1..]));
    facts.error = error;
    Some(facts)
}

/// DNS lookups, one per name and record type: a getaddrinfo answer with A and AAAA
/// records in one is two lookups, as ours are. Late duplicate responses are replies to
/// the same query.
fn lookups(
    queries: &[Query],
    duplicates: &[Query],
    clock: &Clock,
    vantage: Vantage,
) -> Vec<Measurement> {
    let mut out: Vec<Measurement> = Vec::new();
    for q in queries {
        let Some(hostname) = q.hostname.clone() else {
            continue;
        };
        let asked = match q.query_type.as_deref() {
            Some("A") => QueryType::A,
            Some("AAAA") => QueryType::Aaaa,
            Some("ANY") => QueryType::A,
            _ => continue,
        };
        let (resolver, resolver_address) = resolver(q);
        for query_type in [QueryType::A, QueryType::Aaaa] {
            let answers: Vec<DnsAnswer> = q
                .answers
                .iter()
                .filter(|a| answered_type(a) != Some(other(query_type)))
                .filter_map(answer)
                .collect();
            let addresses: Vec<IpAddr> = answers.iter().filter_map(|a| a.address()).collect();
            let has_own = addresses.iter().any(|ip| is_type(*ip, query_type));
            if query_type != asked && !has_own {
                continue;
            }
            let facts = Lookup {
                resolver: resolver.clone(),
                resolver_address: resolver_address.clone(),
                hostname: hostname.clone(),
                query_type,
                arrival_ms: arrival_ms(q),
            }
            .facts(answers, q.failure.as_deref());
            out.push(clock.measurement(vantage, q.t0, q.t, Step::Dns(facts)));
        }
    }
    for d in duplicates {
        let (resolver, resolver_address) = resolver(d);
        let answers: Vec<DnsAnswer> = d.answers.iter().filter_map(answer).collect();
        if answers.is_empty() {
            continue;
        }
        let first = out.iter_mut().find_map(|m| match &mut m.step {
            Step::Dns(f)
                if Some(&f.hostname) == d.hostname.as_ref()
                    && f.resolver == resolver
                    && Some(f.query_type.as_str()) == d.query_type.as_deref() =>
            {
                Some(f)
            }
            _ => None,
        });
        if let Some(f) = first {
            f.replies
                .push(reply(&resolver_address, arrival_ms(d), answers));
        }
    }
    out
}

fn other(t: QueryType) -> &'static str {
    match t {
        QueryType::A => "AAAA",
        QueryType::Aaaa => "A",
    }
}

fn is_type(ip: IpAddr, t: QueryType) -> bool {
    ip.is_ipv4() == (t == QueryType::A)
}

fn answered_type(a: &Answer) -> Option<&str> {
    a.answer_type.as_deref()
}

fn answer(a: &Answer) -> Option<DnsAnswer> {
    let data = a.ipv4.clone().or(a.ipv6.clone()).or(a.hostname.clone())?;
    Some(DnsAnswer {
        answer_type: a.answer_type.clone().unwrap_or_default(),
        data,
        ttl: a.ttl.unwrap_or(0),
        asn: a.asn.filter(|asn| *asn != 0),
    })
}

/// One lookup of one record type, whoever made it (the probe's queries, the test
/// helper's summary).
struct Lookup {
    resolver: String,
    resolver_address: Option<String>,
    hostname: String,
    query_type: QueryType,
    arrival_ms: f64,
}

impl Lookup {
    /// Its facts: the reply recorded, when it gave addresses of the type, else the
    /// failure (no failure and no address: no answer).
    fn facts(self, answers: Vec<DnsAnswer>, failure: Option<&str>) -> DnsFacts {
        let addresses: Vec<IpAddr> = answers
            .iter()
            .filter_map(|a| a.address())
            .filter(|ip| is_type(*ip, self.query_type))
            .collect();
        let error = match (failure, addresses.is_empty()) {
            (Some(f), _) => error(Operation::Resolve, Some(f)),
            (None, true) => Some(StepError::new(Operation::Resolve, Failure::DnsNoAnswer)),
            (None, false) => None,
        };
        let replies = match addresses.is_empty() {
            true => Vec::new(),
            false => vec![reply(&self.resolver_address, self.arrival_ms, answers)],
        };
        DnsFacts {
            resolver: self.resolver,
            resolver_address: self.resolver_address,
            hostname: self.hostname,
            query_type: self.query_type,
            replies,
            dropped_replies: 0,
            sent: 1,
            addresses,
            tries: 1,
            check: None,
            overdue: None,
            error,
        }
    }
}

/// Milliseconds from a query to its answer, where OONI timed both.
fn arrival_ms(q: &Query) -> f64 {
    match (q.t0, q.t) {
        (Some(t0), Some(t)) => ((t - t0) * 1000.0).max(0.0),
        _ => 0.0,
    }
}

/// The reply OONI recorded, under one ID for all (OONI sends a query once: its late
/// duplicates answer the same ID).
fn reply(resolver_address: &Option<String>, arrival_ms: f64, answers: Vec<DnsAnswer>) -> DnsReply {
    DnsReply {
        source: resolver_address.clone().unwrap_or_default(),
        arrival_ms,
        id: 0,
        matches_query: true,
        rcode: "NoError".into(),
        answers,
        truncated: false,
    }
}

/// The resolver as we name it (`system`, `udp://IP:PORT`, `doh://HOST/PATH`).
fn resolver(q: &Query) -> (String, Option<String>) {
    let address = q.resolver_address.clone().filter(|a| !a.is_empty());
    let engine = q.engine.as_deref().unwrap_or("system");
    let name = match (engine, &address) {
        ("doh", Some(a)) => format!("doh://{}", a.trim_start_matches("https://")),
        ("udp" | "tcp" | "dot", Some(a)) => format!("{engine}://{a}"),
        _ => "system".to_string(),
    };
    (name, address)
}

/// The fetches, each with its requests: OONI's one fetch, or the several of
/// censorprobe's export (the first, its control-SNI twin, the target's name again).
fn fetches<'k>(
    target: &Target,
    keys: &'k TestKeys,
    hosts: &[String],
) -> Vec<(Vec<&'k Transaction>, HttpFacts)> {
    let mut groups: Vec<Vec<&Transaction>> = Vec::new();
    for r in &keys.requests {
        let index = r.x_censorprobe.as_ref().map_or(0, |x| x.fetch);
        while groups.len() <= index {
            groups.push(Vec::new());
        }
        groups[index].push(r);
    }
    // No request at all: OONI's experiment failure may still say how the fetch failed.
    if groups.is_empty() {
        groups.push(Vec::new());
    }
    groups
        .into_iter()
        .enumerate()
        .filter_map(|(index, requests)| {
            // OONI's experiment failure is its one fetch's.
            let failed = (index == 0)
                .then_some(keys.http_experiment_failure.as_deref())
                .flatten();
            let facts = fetch(target, keys, &requests, failed, hosts)?;
            Some((requests, facts))
        })
        .collect()
}

/// One fetch: its requests (final response first) as hops in order, and the hop that
/// failed when OONI recorded only the experiment's failure (a connect refused after a
/// redirect, a timeout before any request).
fn fetch(
    target: &Target,
    keys: &TestKeys,
    requests: &[&Transaction],
    failed: Option<&str>,
    hosts: &[String],
) -> Option<HttpFacts> {
    let TargetKind::Url(url) = &target.kind else {
        return None;
    };
    let mut hops: Vec<HttpHop> = requests
        .iter()
        .rev()
        .filter_map(|r| hop(r, keys, hosts))
        .collect();
    let ours = requests.iter().find_map(|r| r.x_censorprobe.as_ref());
    if let Some(failed) = failed.filter(|_| ours.is_none()) {
        let next = match hops.last() {
            None => Some(url.clone()),
            Some(last) if last.error.is_none() => redirect(last),
            Some(_) => None,
        };
        if let Some(next) = next {
            let mut hop = HttpHop::new(next.as_str());
            let (operation, address) = failed_step(keys, failed, None, false);
            hop.address = address;
            hop.error = error(operation, Some(failed));
            hops.push(hop);
        }
    }
    let last = hops.last()?;
    let fetch_error = requests
        .first()
        .and_then(|r| r.x_censorprobe.as_ref()?.fetch_error.clone());
    Some(HttpFacts {
        url: hops[0].url.clone(),
        error: fetch_error.or(last.error.clone()),
        hops,
        control_sni: ours.and_then(|x| x.control_sni.clone()),
        again: ours.is_some_and(|x| x.again),
        tries: 1,
        first_failure: None,
        cut_after: Vec::new(),
        check: None,
    })
}

fn redirect(hop: &HttpHop) -> Option<Url> {
    let status = hop.status?;
    if !(300..400).contains(&status) {
        return None;
    }
    let location = hop.header("location")?;
    Url::parse(&hop.url).ok()?.join(location).ok()
}

fn hop(r: &Transaction, keys: &TestKeys, hosts: &[String]) -> Option<HttpHop> {
    let url = Url::parse(r.request.url.as_deref()?).ok()?;
    let mut hop = HttpHop::new(url.as_str());
    let port = url.port_or_known_default();
    hop.address = r
        .address
        .as_deref()
        .and_then(|a| a.parse().ok())
        .or_else(|| {
            // The connect of the same transaction, or failing that the one the fetch used.
            let same =
                |c: &&Connect| r.transaction_id.is_some() && c.transaction_id == r.transaction_id;
            let fetched = |c: &&Connect| c.tags.iter().any(|t| t == "fetch_body=true");
            let candidates = keys.tcp_connect.iter().filter(|c| c.port == port);
            candidates
                .clone()
                .find(same)
                .or_else(|| candidates.clone().find(fetched))
                .and_then(connect_address)
        });
    let ours = r.x_censorprobe.as_ref();
    if url.scheme() == "https" {
        let host = ours
            .and_then(|x| x.control_sni.as_deref())
            .or(url.host_str())
            .unwrap_or_default();
        hop.tls = keys
            .tls_handshakes
            .iter()
            .filter(|h| h.server_name.as_deref() == Some(host))
            .find(|h| {
                h.address
                    .as_deref()
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                    == hop.address
            })
            .and_then(|h| handshake(h, hosts, Operation::TlsHandshake));
    }
    let response = &r.response;
    hop.status = response
        .code
        .filter(|c| *c > 0)
        .and_then(|c| u16::try_from(c).ok());
    if url.scheme() == "https" && hop.tls.is_none() && hop.status.is_some() {
        // Web Connectivity before 0.5 records no handshake of its fetch. Its client
        // verifies certificates (the test never turns that off) and tries addresses
        // in turn: a response over HTTPS came over a valid session for the host, from
        // the first address that took a connect.
        hop.address = hop.address.or_else(|| {
            keys.tcp_connect
                .iter()
                .filter(|c| c.port == port && c.status.failure.is_none())
                .find_map(connect_address)
        });
        hop.tls = hop.address.map(|address| {
            let mut tls = TlsFacts::new(address, url.host_str().unwrap_or_default(), false);
            tls.handshake_done = true;
            tls
        });
    }
    hop.headers = match response.headers_list.is_empty() {
        true => response.headers.clone(),
        false => response.headers_list.clone(),
    };
    let body = response
        .body
        .as_ref()
        .map(|b| b.bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    hop.title = title_of(&text);
    hop.body_prefix = text.chars().take(BODY_PREFIX).collect();
    hop.body_length = body.len() as u64;
    hop.body_truncated = response.body_is_truncated.unwrap_or(false);
    if let Some(failed) = r.failure.as_deref() {
        let (operation, address) = failed_step(keys, failed, hop.address, hop.status.is_some());
        hop.address = hop.address.or(address);
        let operation = ours.and_then(|x| x.failed_operation).unwrap_or(operation);
        hop.error = error(operation, Some(failed));
    }
    if let Some(x) = ours {
        hop.started_at = x.started_at;
        hop.body_length = x.body_length.unwrap_or(hop.body_length);
        hop.transfer_ms = x.transfer_ms.unwrap_or_default();
        hop.active_rate = x.active_rate;
        hop.peak_rate = x.peak_rate;
        hop.read_ms = x.read_ms;
        hop.silent_ms = x.silent_ms;
        hop.received_after_handshake = x.received_after_handshake;
        hop.close_notify = x.close_notify;
    }
    Some(hop)
}

/// The step a fetch's failure happened in: the connect or handshake that failed with
/// it (to the hop's address when known), else reading the body once a response came,
/// else the round trip.
fn failed_step(
    keys: &TestKeys,
    failed: &str,
    address: Option<SocketAddr>,
    responded: bool,
) -> (Operation, Option<SocketAddr>) {
    if failed.starts_with("dns_") || failed.starts_with("android_dns") {
        return (Operation::Resolve, None);
    }
    let here = |a: Option<SocketAddr>| address.is_none() || a == address;
    if let Some(c) = keys
        .tcp_connect
        .iter()
        .find(|c| c.status.failure.as_deref() == Some(failed) && here(connect_address(c)))
    {
        return (Operation::Connect, connect_address(c));
    }
    if let Some(h) = keys.tls_handshakes.iter().find(|h| {
        let a = h.address.as_deref().and_then(|a| a.parse().ok());
        h.failure.as_deref() == Some(failed) && here(a)
    }) {
        let a = h.address.as_deref().and_then(|a| a.parse().ok());
        return (Operation::TlsHandshake, a);
    }
    match responded {
        true => (Operation::Read, address),
        false => (Operation::HttpRoundTrip, address),
    }
}

/// The control's facts from Web Connectivity's test helper: its lookup (the ASN of
/// each address from `ip_info`), its connects and handshakes, and its fetch as one hop
/// with the status, length, title and headers it summarised.
fn helper_facts(target: &Target, helper: &HelperControl, clock: &Clock) -> TargetFacts {
    let vantage = Vantage::Control;
    let mut dns = Vec::new();
    if let (Some(d), Some(hostname)) = (&helper.dns, target.hostname()) {
        let asn = |ip: &IpAddr| {
            helper
                .ip_info
                .as_ref()
                .and_then(|info| info.get(&ip.to_string()))
                .and_then(|i| i.asn)
                .filter(|asn| *asn != 0)
        };
        let addresses: Vec<IpAddr> = d.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        for query_type in [QueryType::A, QueryType::Aaaa] {
            let own: Vec<IpAddr> = addresses
                .iter()
                .copied()
                .filter(|ip| is_type(*ip, query_type))
                .collect();
            if query_type == QueryType::Aaaa && own.is_empty() {
                continue;
            }
            let answers = own
                .iter()
                .map(|ip| DnsAnswer {
                    answer_type: query_type.as_str().to_string(),
                    data: ip.to_string(),
                    ttl: 0,
                    asn: asn(ip),
                })
                .collect();
            let facts = Lookup {
                resolver: "OONI test helper".into(),
                resolver_address: None,
                hostname: hostname.to_string(),
                query_type,
                arrival_ms: 0.0,
            }
            .facts(answers, d.failure.as_deref());
            dns.push(clock.measurement(vantage, None, None, Step::Dns(facts)));
        }
    }
    let mut measurements = Vec::new();
    for (endpoint, status) in helper.tcp_connect.iter().flatten() {
        let Ok(address) = endpoint.parse::<SocketAddr>() else {
            continue;
        };
        let error = failed(status.status, status.failure.as_deref(), Operation::Connect);
        let step = Step::TcpConnect(TcpFacts::new(address, error));
        measurements.push(clock.measurement(vantage, None, None, step));
    }
    for (endpoint, status) in helper.tls_handshake.iter().flatten() {
        let Ok(address) = endpoint.parse::<SocketAddr>() else {
            continue;
        };
        let name = status
            .server_name
            .clone()
            .or(target.hostname().map(str::to_string))
            .unwrap_or_default();
        let mut facts = TlsFacts::new(address, &name, false);
        facts.error = failed(
            status.status,
            status.failure.as_deref(),
            Operation::TlsHandshake,
        );
        facts.handshake_done = facts
            .error
            .as_ref()
            .is_none_or(|e| e.failure.is_certificate_error());
        measurements.push(clock.measurement(vantage, None, None, Step::TlsHandshake(facts)));
    }
    if let (Some(http), TargetKind::Url(url)) = (&helper.http_request, &target.kind) {
        let mut hop = HttpHop::new(url.as_str());
        hop.status = http
            .status_code
            .filter(|c| *c > 0)
            .and_then(|c| u16::try_from(c).ok());
        hop.headers = http.headers.clone();
        hop.body_length = http.body_length.unwrap_or(0).max(0) as u64;
        hop.title = http.title.clone().filter(|t| !t.is_empty());
        hop.error = error(Operation::HttpRoundTrip, http.failure.as_deref());
        let step = Step::Http(HttpFacts {
            url: url.to_string(),
            error: hop.error.clone(),
            hops: vec![hop],
            control_sni: None,
            again: false,
            tries: 1,
            first_failure: None,
            cut_after: Vec::new(),
            check: None,
        });
        measurements.push(clock.measurement(vantage, None, None, step));
    }
    TargetFacts::new(target, measurements, dns)
}

/// A test helper's status: failed when false, with its failure when it gave one.
fn failed(status: Option<bool>, failure: Option<&str>, operation: Operation) -> Option<StepError> {
    match (status, failure) {
        (_, Some(f)) => error(operation, Some(f)),
        (Some(false), None) => Some(StepError::new(
            operation,
            Failure::Unknown("the test helper gave no reason".into()),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::analyse::fixtures::{FB_443, checked, domain, kind, tcp, timed_out_connect};
    use crate::analyse::{self, Blocking, Control, Verdict};

    /// A line as censorprobe's export writes it for facebook.com, whose connect timed
    /// out at the probe where the control connected; with the probe's facts whole, or
    /// not (as an older export, or one whose facts a tool dropped).
    fn line(probe: &Measurement, whole: bool) -> String {
        let mut control = tcp(FB_443, None);
        control.vantage = Vantage::Control;
        let connect = |success: bool| {
            json!([{"ip": "157.240.1.35", "port": 443, "t0": 0.0, "t": 1.0,
                    "status": {"success": success, "failure": (!success).then_some("generic_timeout_error")}}])
        };
        let mut keys = json!({
            "queries": [], "tls_handshakes": [], "requests": [],
            "tcp_connect": connect(false),
            "x_control": {"queries": [], "tls_handshakes": [], "requests": [], "tcp_connect": connect(true)},
        });
        if whole {
            keys["x_censorprobe_facts"] = json!({
                "target": domain(&[]), "context": Context::default(),
                "probe": [probe], "control": [control],
            });
        }
        json!({
            "test_name": "censorprobe_domain", "input": "facebook.com",
            "software_name": "censorprobe",
            "measurement_start_time": "2026-12-07 17:00:00",
            "annotations": {"censorprobe_service": "facebook"},
            "test_keys": keys,
        })
        .to_string()
    }

    fn judged(line: &str) -> (Verdict, Option<Blocking>) {
        let imported = read(line).unwrap_or_else(|e| panic!("{e}"));
        let control = match &imported.control {
            ControlFacts::Measured(facts) => Control::Measured(facts),
            _ => panic!("the control's facts were not read"),
        };
        kind(&analyse::judge(&imported.probe, control, &imported.context))
    }

    #[test]
    fn the_exports_own_facts_are_judged_with_the_check_of_the_probes_network() {
        // The check after the timeout found the probe's link down.
        let down = checked(timed_out_connect(), Some(Failure::GenericTimeout));
        assert_eq!(judged(&line(&down, true)), (Verdict::Inconclusive, None));
        // OONI's shapes alone have no place for the check: the same line without the
        // facts reads as a blackhole, which is why the export carries them.
        assert_eq!(
            judged(&line(&down, false)),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
        // The check passed: the facts say a blackhole, and the import says so too.
        let up = checked(timed_out_connect(), None);
        assert_eq!(
            judged(&line(&up, true)),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
        let imported = read(&line(&up, true)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(imported.probe.measurements, [up], "read back as written");
    }

    /// Facts that are not the line's, or not a run's, leave it out with a reason; a
    /// time past the calendar in OONI's shapes is read, not a crash.
    #[test]
    fn exported_facts_that_cannot_be_a_runs_leave_the_line_out() {
        let refused = |edit: &dyn Fn(&mut serde_json::Value), said: &str| {
            let mut m: serde_json::Value =
                serde_json::from_str(&line(&timed_out_connect(), true)).unwrap();
            edit(&mut m["test_keys"]["x_censorprobe_facts"]);
            let err = read(&m.to_string())
                .err()
                .expect("a line left out")
                .to_string();
            assert!(err.contains(said), "{err}");
        };
        refused(
            &|f| f["target"]["value"] = json!("other.example"),
            "not the measurement's input",
        );
        refused(&|f| f["probe"][0]["runtime_ms"] = json!(1e300), "a step of");
        refused(&|f| f["probe"][0]["runtime_ms"] = json!(-1.0), "a step of");
        refused(
            &|f| f["probe"][0]["vantage"] = json!("control"),
            "a Control measurement among the Probe's",
        );
        refused(
            &|f| {
                f.as_object_mut().unwrap().remove("context");
            },
            "context",
        );

        let mut far: serde_json::Value =
            serde_json::from_str(&line(&timed_out_connect(), false)).unwrap();
        far["test_keys"]["tcp_connect"][0]["t0"] = json!(1e300);
        read(&far.to_string()).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A run whose control gave nothing for the target: so it reads after import too.
    #[test]
    fn a_control_that_gave_nothing_is_carried() {
        let mut m: serde_json::Value =
            serde_json::from_str(&line(&timed_out_connect(), true)).unwrap();
        let facts = &mut m["test_keys"]["x_censorprobe_facts"];
        facts.as_object_mut().unwrap().remove("control");
        facts["control_unavailable"] = json!("the control timed out");
        let imported = read(&m.to_string()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&imported.control, ControlFacts::Unavailable(why) if why == "the control timed out")
        );
        assert!(imported.carried);
    }
}
