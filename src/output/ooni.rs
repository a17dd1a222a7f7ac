//! `censorprobe export --ooni RUN_DIR`: a run as OONI measurements (ooni/spec
//! data-formats), one JSON line per target, so that our facts can be read with OONI's
//! tools and beside the largest public censorship data set.
//!
//! The envelope is df-000; the test keys use the shapes every OONI experiment shares
//! (df-002 `queries`, df-005 `tcp_connect`, df-006 `tls_handshakes`, df-001
//! `requests`), the probe's facts at the top and the control's, when the run had a
//! live control, under `x_control` in the same shapes. Our verdict rides along as
//! `x_censorprobe_verdict` and `x_censorprobe_blocking` (OONI's `x_` keys are
//! experimental ones), and our facts themselves, whole, as `x_censorprobe_facts`: the
//! network checks, retries, late answers, other targets' triggers and the canary's
//! findings that OONI's shapes have no place for, without which `import --ooni` would
//! judge a failure of the probe's own network as censorship. The probe's address never
//! appears: `probe_ip` is 127.0.0.1, as in every published OONI measurement, and
//! addresses in failure texts are scrubbed (as they are measured, and again as they
//! are read back).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use hickory_proto::op::ResponseCode;
use serde::Serialize;

use crate::analyse::{Context, Control};
use crate::error::InputError;
use crate::facts::TargetFacts;
use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::scrub::scrub_addresses;
use crate::facts::{
    DnsFacts, DnsReply, HttpFacts, HttpHop, Measurement, Step, TlsFacts, Trigger, Vantage,
};
use crate::input::targets::{Target, TargetKind};
use crate::measure::http::BROWSER_HEADERS;
use crate::rundir::recorded::{RecordedRun, Unit};
use crate::rundir::rows::{VerdictRow, read_verdicts};
use crate::rundir::{self, RunInfo, VERDICTS_CSV};

/// The default file name, inside the run's directory.
pub const OONI_JSONL: &str = "ooni.jsonl";
const DATA_FORMAT_VERSION: &str = "0.2.0";
/// What OONI publishes as every probe's address.
const PROBE_IP: &str = "127.0.0.1";

/// What an export wrote.
pub struct Exported {
    pub path: PathBuf,
    pub measurements: usize,
}

/// Writes one OONI measurement per measured target of the run in `run_dir` to `out`
/// (default `RUN_DIR/ooni.jsonl`), replacing an earlier export.
pub fn export(run_dir: &Path, out: Option<&Path>) -> anyhow::Result<Exported> {
    let run = RecordedRun::load(run_dir).map_err(InputError)?;
    let verdicts = verdicts_by_target(&run_dir.join(VERDICTS_CSV)).map_err(InputError)?;
    let path = out.map_or_else(|| run_dir.join(OONI_JSONL), Path::to_path_buf);
    // Written aside, then renamed: a failed export never leaves a torn file.
    let measurements = rundir::replace_with(&path, |writer| {
        let mut measurements = 0;
        for unit in &run.units {
            // A target a killed run never reached has nothing to say.
            let Some(probe) = run.facts(unit, Vantage::Probe) else {
                continue;
            };
            let control = run.facts(unit, Vantage::Control);
            let verdict = verdicts.get(&(unit.origin.run_id.clone(), unit.target.to_string()));
            let measurement = measurement(&run, unit, &probe, control.as_ref(), verdict);
            serde_json::to_writer(&mut *writer, &measurement)?;
            writer.write_all(b"\n")?;
            measurements += 1;
        }
        Ok(measurements)
    })?;
    Ok(Exported { path, measurements })
}

/// The columns of verdicts.csv the export carries, found by name.
/// The run's verdicts by origin and target.
fn verdicts_by_target(path: &Path) -> anyhow::Result<HashMap<(String, String), VerdictRow>> {
    let mut verdicts = HashMap::new();
    for row in read_verdicts(path)? {
        let (_, row) = row?;
        verdicts.insert((row.run_id.clone(), row.target.clone()), row);
    }
    Ok(verdicts)
}

/// df-000, the envelope of every OONI measurement.
#[derive(Serialize)]
struct OoniMeasurement<'a> {
    annotations: BTreeMap<&'static str, String>,
    data_format_version: &'static str,
    input: String,
    measurement_start_time: String,
    probe_asn: String,
    probe_cc: String,
    probe_ip: &'static str,
    report_id: String,
    software_name: String,
    software_version: String,
    test_keys: TestKeys<'a>,
    test_name: &'static str,
    test_runtime: f64,
    test_start_time: String,
    test_version: String,
}

#[derive(Serialize)]
struct TestKeys<'a> {
    #[serde(flatten)]
    probe: Archival,
    x_censorprobe_verdict: Option<String>,
    x_censorprobe_blocking: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x_control: Option<Archival>,
    x_censorprobe_facts: ExportedFacts<'a>,
}

/// The target's facts as the run judged them: the target itself (its ports and its
/// service's networks), what the run's canary showed of the probe's network, its
/// measurements as measurements.jsonl holds them (its host's shared lookups included),
/// the other targets' triggers on its addresses, and the control's measurements, or
/// why there were none. `import --ooni` judges these where they are present, the OONI
/// shapes only where they are not (OONI's own data, an older export).
#[derive(Serialize)]
struct ExportedFacts<'a> {
    target: &'a Target,
    context: Cow<'a, Context>,
    probe: Vec<&'a Measurement>,
    #[serde(skip_serializing_if = "<[Trigger]>::is_empty")]
    triggers: &'a [Trigger],
    #[serde(skip_serializing_if = "Option::is_none")]
    control: Option<Vec<&'a Measurement>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_unavailable: Option<&'a str>,
}

/// The event lists OONI's experiments share, each in time order but `requests`, which
/// OONI keeps final response first.
#[derive(Serialize, Default)]
struct Archival {
    queries: Vec<DnsQuery>,
    /// Matching replies after the first, under the key OONI's Web Connectivity LTE uses:
    /// the trace of an injector racing the real resolver.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    x_dns_duplicate_responses: Vec<DnsQuery>,
    tcp_connect: Vec<TcpConnect>,
    tls_handshakes: Vec<TlsHandshake>,
    /// OONI's key for QUIC handshakes, in the shape of TLS ones over `udp`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quic_handshakes: Vec<TlsHandshake>,
    requests: Vec<HttpTransaction>,
    /// df-008: the reads of bodies kept (the first 64 of each), as OONI's throttling
    /// analysis reads them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    network_events: Vec<NetworkEvent>,
    /// Fetches written so far, to number them.
    #[serde(skip)]
    fetches: usize,
}

/// df-002.
#[derive(Serialize)]
struct DnsQuery {
    engine: String,
    resolver_address: String,
    hostname: String,
    query_type: &'static str,
    answers: Vec<DnsAnswer>,
    failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rcode: Option<u16>,
    t0: f64,
    t: f64,
}

#[derive(Serialize)]
struct DnsAnswer {
    answer_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv6: Option<String>,
    /// The name a CNAME (or another non-address record) carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    ttl: u32,
    /// The address's ASN, 0 when unknown (OONI's AS0); absent for names.
    #[serde(skip_serializing_if = "Option::is_none")]
    asn: Option<u32>,
}

/// df-008: one read.
#[derive(Serialize)]
struct NetworkEvent {
    address: String,
    operation: &'static str,
    proto: &'static str,
    num_bytes: u64,
    t: f64,
}

/// df-005.
#[derive(Serialize)]
struct TcpConnect {
    ip: String,
    port: u16,
    status: TcpStatus,
    t0: f64,
    t: f64,
}

#[derive(Serialize)]
struct TcpStatus {
    success: bool,
    failure: Option<String>,
}

/// df-006.
#[derive(Serialize)]
struct TlsHandshake {
    network: &'static str,
    address: String,
    server_name: String,
    cipher_suite: String,
    tls_version: String,
    negotiated_protocol: String,
    /// Always false: the chain is checked after the handshake and a bad one is the
    /// handshake's failure, as for a verifying client.
    no_tls_verify: bool,
    peer_certificates: Vec<Binary>,
    failure: Option<String>,
    t0: f64,
    t: f64,
    /// On a QUIC handshake, what OONI's shape has no key for.
    #[serde(skip_serializing_if = "Option::is_none")]
    x_censorprobe: Option<QuicExtra>,
}

/// A QUIC handshake's facts beyond OONI's: its UDP port, the datagrams that came back.
#[derive(Serialize)]
struct QuicExtra {
    #[serde(skip_serializing_if = "Option::is_none")]
    local_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    datagrams_received: Option<u64>,
}

/// OONI's form of binary data.
#[derive(Serialize)]
struct Binary {
    format: &'static str,
    data: String,
}

/// df-001: one hop of a fetch.
#[derive(Serialize)]
struct HttpTransaction {
    network: &'static str,
    address: String,
    alpn: String,
    failure: Option<String>,
    request: HttpRequest,
    response: HttpResponse,
    t0: f64,
    t: f64,
    x_censorprobe: HopFacts,
}

/// What OONI's shapes have no key for, so that `import --ooni` reads our facts back
/// whole: which fetch a hop belongs to (the first, its control-SNI twin, the fetch with
/// the target's name again), the body's true length, how fast it came and how long it
/// had been silent when the deadline ended it, and the step a failure happened in.
#[derive(Serialize)]
struct HopFacts {
    fetch: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_sni: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    again: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<DateTime<Utc>>,
    body_length: u64,
    transfer_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    silent_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_after_handshake: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    close_notify: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_operation: Option<Operation>,
    /// The fetch's own error, on its last hop, when the hop has none (a certificate
    /// that did not verify, the page fetched all the same to record it).
    #[serde(skip_serializing_if = "Option::is_none")]
    fetch_error: Option<StepError>,
}

#[derive(Serialize)]
struct HttpRequest {
    url: String,
    method: &'static str,
    headers: BTreeMap<String, String>,
    headers_list: Vec<(String, String)>,
    body: &'static str,
    body_is_truncated: bool,
}

#[derive(Serialize)]
struct HttpResponse {
    /// 0 when no response came, as in OONI's data.
    code: u16,
    headers: BTreeMap<String, String>,
    headers_list: Vec<(String, String)>,
    /// The start of the body as recorded (text; invalid UTF-8 was replaced when it was
    /// measured), or null when no body was read.
    body: Option<String>,
    body_is_truncated: bool,
}

fn measurement<'a>(
    run: &'a RecordedRun,
    unit: &Unit,
    probe: &'a TargetFacts,
    control: Option<&'a TargetFacts>,
    verdict: Option<&VerdictRow>,
) -> OoniMeasurement<'a> {
    let info = &run.info;
    let context = run.context_of(unit, probe);
    let target = &probe.target;
    let steps = steps_of(probe);
    let control_steps = control.map(steps_of);
    let start = steps
        .iter()
        .map(|m| m.measured_at)
        .min()
        .unwrap_or(info.started_at);
    let test_runtime = steps.iter().map(|m| span(start, m).1).fold(0.0, f64::max);
    let test_name = match &target.kind {
        TargetKind::Url(_) => "web_connectivity",
        TargetKind::Domain(_) => "censorprobe_domain",
        TargetKind::Endpoint(_) => "censorprobe_endpoint",
    };
    let annotations = BTreeMap::from([
        ("engine_name", info.software_name.clone()),
        ("engine_version", info.software_version.clone()),
        ("censorprobe_run_id", unit.origin.run_id.clone()),
        ("censorprobe_service", target.service.to_string()),
        // Lab networks the run took for public, so that an import judges as it did.
        (
            "censorprobe_treat_as_public",
            info.settings
                .treat_as_public
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        // What the run's canary showed of the probe's network, which an import cannot
        // measure again: whether an address dark to QUIC or IPv6 is evidence.
        (
            "censorprobe_probe_quic",
            context.quic.map_or("unknown".into(), |q| q.to_string()),
        ),
        ("censorprobe_probe_ipv6", context.ipv6.to_string()),
    ]);
    OoniMeasurement {
        annotations,
        data_format_version: DATA_FORMAT_VERSION,
        input: target.to_string(),
        measurement_start_time: ooni_time(start),
        probe_asn: unit.origin.probe_asn.clone(),
        probe_cc: unit.origin.probe_cc.clone(),
        probe_ip: PROBE_IP,
        report_id: report_id(info, test_name),
        software_name: info.software_name.clone(),
        software_version: info.software_version.clone(),
        test_keys: TestKeys {
            probe: Archival::of(&steps, start),
            x_censorprobe_verdict: verdict.map(|v| v.verdict.clone()),
            x_censorprobe_blocking: verdict
                .filter(|v| !v.blocking.is_empty())
                .map(|v| v.blocking.clone()),
            // The control's times count from its own first step, by its own clock.
            x_control: control_steps.as_ref().map(|steps| {
                let start = steps.iter().map(|m| m.measured_at).min();
                Archival::of(steps, start.unwrap_or(info.started_at))
            }),
            x_censorprobe_facts: ExportedFacts {
                target,
                probe: steps,
                triggers: &probe.triggers,
                control: control_steps,
                control_unavailable: match run.control(unit, control) {
                    Control::Unavailable(why) => Some(why),
                    Control::None | Control::Measured(_) => None,
                },
                context,
            },
        },
        test_name,
        test_runtime,
        test_start_time: ooni_time(info.started_at),
        test_version: info.software_version.clone(),
    }
}

/// A target's steps in time order: its own, and its host's DNS when another target of
/// the same host measured it (DNS is measured once per host and run).
fn steps_of(facts: &TargetFacts) -> Vec<&Measurement> {
    let own_dns = facts
        .measurements
        .iter()
        .any(|m| matches!(m.step, Step::Dns(_)));
    let shared = facts.dns.iter().filter(|_| !own_dns);
    let mut steps: Vec<&Measurement> = facts.measurements.iter().chain(shared).collect();
    steps.sort_by_key(|m| m.measured_at);
    steps
}

/// A report groups a run's measurements of one test, in OONI's layout of the ID:
/// start time, test, country, ASN, then the run's own random part.
fn report_id(info: &RunInfo, test_name: &str) -> String {
    let random = info
        .run_id
        .rsplit_once('-')
        .map_or(info.run_id.as_str(), |(_, r)| r);
    format!(
        "{}_{}_{}_{}_n1_{random}",
        info.started_at.format("%Y%m%dT%H%M%SZ"),
        test_name.replace('_', ""),
        info.probe_cc,
        info.probe_asn.trim_start_matches("AS"),
    )
}

fn ooni_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn seconds(d: TimeDelta) -> f64 {
    d.num_microseconds().map_or(0.0, |us| us as f64 / 1e6)
}

/// A step's start and end, in seconds since `start`.
fn span(start: DateTime<Utc>, m: &Measurement) -> (f64, f64) {
    let t0 = seconds(m.measured_at - start);
    (t0, microseconds(t0 + m.runtime_ms / 1000.0))
}

/// Seconds to the microsecond, which is all the clocks measure and prints short.
fn microseconds(secs: f64) -> f64 {
    (secs * 1e6).round() / 1e6
}

/// A failure as OONI prints it, with any address in its text scrubbed.
fn failure(error: Option<&StepError>) -> Option<String> {
    error.map(|e| scrub_addresses(&e.failure.to_string()))
}

impl Archival {
    fn of(steps: &[&Measurement], start: DateTime<Utc>) -> Archival {
        let mut archival = Archival::default();
        for m in steps {
            let (t0, t) = span(start, m);
            match &m.step {
                Step::Dns(facts) => archival.add_dns(facts, t0, t),
                Step::TcpConnect(facts) => archival.tcp_connect.push(TcpConnect::new(
                    facts.address,
                    facts.error.as_ref(),
                    t0,
                    t,
                )),
                Step::TlsHandshake(facts) => archival
                    .tls_handshakes
                    .push(TlsHandshake::new(facts, t0, t)),
                // web_connectivity has no place for it (OONI's echcheck is a test apart).
                Step::Ech(_) => {}
                Step::QuicHandshake(facts) => archival.quic_handshakes.push(TlsHandshake {
                    network: "udp",
                    x_censorprobe: Some(QuicExtra {
                        local_port: facts.local_port,
                        datagrams_received: facts.datagrams_received,
                    }),
                    ..TlsHandshake::new(&facts.handshake, t0, t)
                }),
                Step::Http(facts) => archival.add_http(facts, start, t0, t),
            }
        }
        archival
    }

    /// The query as an ordinary client saw it (the first matching reply, or the
    /// failure), then every later matching reply as a duplicate; replies whose ID or
    /// question did not match are left out, as a client drops them.
    fn add_dns(&mut self, facts: &DnsFacts, t0: f64, t: f64) {
        let entry = |reply: Option<&DnsReply>, failure: Option<String>| DnsQuery {
            // `system` is resolv.conf's first nameserver, asked over UDP by the probe.
            engine: facts
                .resolver
                .split_once("://")
                .map_or("udp", |(scheme, _)| scheme)
                .to_string(),
            resolver_address: facts.resolver_address.clone().unwrap_or_default(),
            hostname: facts.hostname.clone(),
            query_type: facts.query_type.as_str(),
            answers: reply.map(answers).unwrap_or_default(),
            failure,
            rcode: reply.and_then(|r| rcode(&r.rcode)),
            t0,
            t: reply.map_or(t, |r| microseconds(t0 + r.arrival_ms / 1000.0)),
        };
        // The reply the lookup was judged by: the first whole one (a truncated reply
        // was asked again over TCP), which OONI's format has no flag for.
        let whole = || {
            facts
                .replies
                .iter()
                .filter(|r| r.matches_query && !r.truncated)
        };
        let judged = whole()
            .next()
            .or(facts.replies.iter().find(|r| r.matches_query));
        self.queries
            .push(entry(judged, failure(facts.error.as_ref())));
        // A duplicate is judged as the first reply was (measure::dns).
        let others = whole().filter(|r| judged.is_none_or(|j| !std::ptr::eq(*r, j)));
        self.x_dns_duplicate_responses.extend(others.map(|reply| {
            let answered = reply
                .answers
                .iter()
                .any(|a| a.answer_type == facts.query_type.as_str());
            let failure = Failure::from_rcode(&reply.rcode)
                .or((!answered).then_some(Failure::DnsNoAnswer))
                .map(|f| f.to_string());
            entry(Some(reply), failure)
        }));
    }

    fn add_http(&mut self, facts: &HttpFacts, start: DateTime<Utc>, t0: f64, t: f64) {
        // Hops carry no times of their own but their start: each gets the whole fetch's.
        for hop in &facts.hops {
            if let (Some(address), Some(began)) = (hop.address, hop.started_at) {
                let began = seconds(began - start);
                self.network_events
                    .extend(hop.reads.iter().map(|read| NetworkEvent {
                        address: address.to_string(),
                        operation: "read",
                        proto: "tcp",
                        num_bytes: read.bytes,
                        t: microseconds(began + read.t_ms / 1000.0),
                    }));
            }
            if let Some(address) = hop.address {
                let connect_error = hop
                    .error
                    .as_ref()
                    .filter(|e| e.failed_operation == Operation::Connect);
                self.tcp_connect
                    .push(TcpConnect::new(address, connect_error, t0, t));
            }
            if let Some(tls) = &hop.tls {
                self.tls_handshakes.push(TlsHandshake::new(tls, t0, t));
            }
        }
        // Only the last hop's body is read; earlier hops are redirects followed.
        let last = facts.hops.len().saturating_sub(1);
        let fetch = self.fetches;
        self.fetches += 1;
        for (index, hop) in facts.hops.iter().enumerate().rev() {
            let mut transaction = HttpTransaction::new(hop, index == last, t0, t);
            transaction.x_censorprobe.fetch = fetch;
            transaction.x_censorprobe.control_sni = facts.control_sni.clone();
            transaction.x_censorprobe.again = facts.again;
            if index == last && hop.error.is_none() {
                transaction.x_censorprobe.fetch_error = facts.error.clone();
            }
            self.requests.push(transaction);
        }
    }
}

fn answers(reply: &DnsReply) -> Vec<DnsAnswer> {
    reply
        .answers
        .iter()
        .map(|a| {
            let is = |kind: &str| a.answer_type == kind;
            let address = is("A") || is("AAAA");
            DnsAnswer {
                answer_type: a.answer_type.clone(),
                ipv4: is("A").then(|| a.data.clone()),
                ipv6: is("AAAA").then(|| a.data.clone()),
                hostname: (!address).then(|| a.data.clone()),
                ttl: a.ttl,
                asn: address.then_some(a.asn.unwrap_or(0)),
            }
        })
        .collect()
}

/// The numeric rcode of a reply recorded by name (hickory's names, as measure::dns
/// records them).
fn rcode(name: &str) -> Option<u16> {
    (0..4096u16).find(|&code| {
        let rcode: ResponseCode = code.into();
        format!("{rcode:?}") == name
    })
}

impl TcpConnect {
    fn new(address: SocketAddr, error: Option<&StepError>, t0: f64, t: f64) -> TcpConnect {
        TcpConnect {
            ip: address.ip().to_string(),
            port: address.port(),
            status: TcpStatus {
                success: error.is_none(),
                failure: failure(error),
            },
            t0,
            t,
        }
    }
}

impl TlsHandshake {
    fn new(facts: &TlsFacts, t0: f64, t: f64) -> TlsHandshake {
        TlsHandshake {
            network: "tcp",
            address: facts.address.to_string(),
            server_name: facts.server_name.clone(),
            cipher_suite: facts
                .cipher_suite
                .as_deref()
                .map(iana_cipher_suite)
                .unwrap_or_default(),
            tls_version: facts.tls_version.clone().unwrap_or_default(),
            negotiated_protocol: facts.alpn.clone().unwrap_or_default(),
            no_tls_verify: false,
            peer_certificates: facts
                .certificate
                .iter()
                .flat_map(|c| &c.chain)
                .map(|der| Binary {
                    format: "base64",
                    data: der.clone(),
                })
                .collect(),
            failure: failure(facts.error.as_ref()),
            t0,
            t,
            x_censorprobe: None,
        }
    }
}

/// rustls names TLS 1.3 suites `TLS13_*`; OONI (like IANA) names them `TLS_*`.
fn iana_cipher_suite(name: &str) -> String {
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_string(),
    }
}

impl HttpTransaction {
    fn new(hop: &HttpHop, body_read: bool, t0: f64, t: f64) -> HttpTransaction {
        let request_headers: Vec<(String, String)> = BROWSER_HEADERS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let responded = hop.status.is_some();
        HttpTransaction {
            network: "tcp",
            address: hop.address.map(|a| a.to_string()).unwrap_or_default(),
            alpn: hop
                .tls
                .as_ref()
                .and_then(|t| t.alpn.clone())
                .unwrap_or_default(),
            failure: failure(hop.error.as_ref()),
            request: HttpRequest {
                url: hop.url.clone(),
                method: "GET",
                headers: header_map(&request_headers),
                headers_list: request_headers,
                body: "",
                body_is_truncated: false,
            },
            response: HttpResponse {
                code: hop.status.unwrap_or(0),
                headers: header_map(&hop.headers),
                headers_list: hop.headers.clone(),
                body: (responded && body_read).then(|| hop.body_prefix.clone()),
                // Decoding never shortens text, so a prefix shorter than the body read
                // was cut.
                body_is_truncated: hop.body_truncated
                    || (hop.body_prefix.len() as u64) < hop.body_length,
            },
            t0,
            t,
            x_censorprobe: HopFacts {
                fetch: 0,
                control_sni: None,
                again: false,
                started_at: hop.started_at,
                body_length: hop.body_length,
                transfer_ms: hop.transfer_ms,
                active_rate: hop.active_rate,
                peak_rate: hop.peak_rate,
                read_ms: hop.read_ms,
                silent_ms: hop.silent_ms,
                received_after_handshake: hop.received_after_handshake,
                close_notify: hop.close_notify,
                failed_operation: hop.error.as_ref().map(|e| e.failed_operation),
                fetch_error: None,
            },
        }
    }
}

/// OONI's `headers` map: the first value of a repeated header (all are in
/// `headers_list`).
fn header_map(headers: &[(String, String)]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name.clone()).or_insert_with(|| value.clone());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{CertificateFacts, DnsAnswer as Answer, QueryType, TcpFacts};

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }

    fn step(ms: i64, runtime_ms: f64, step: Step) -> Measurement {
        Measurement {
            vantage: Vantage::Probe,
            service: "NEWS".into(),
            target: "http://web.test/start".into(),
            measured_at: at(ms),
            runtime_ms,
            step,
        }
    }

    fn reply(arrival_ms: f64, ip: &str) -> DnsReply {
        DnsReply {
            source: "127.0.0.1:53".into(),
            arrival_ms,
            id: 7,
            matches_query: true,
            rcode: "NoError".into(),
            answers: vec![Answer {
                answer_type: "A".into(),
                data: ip.into(),
                ttl: 300,
                asn: None,
            }],
            truncated: false,
        }
    }

    fn hop(url: &str, status: u16, tls: Option<TlsFacts>) -> HttpHop {
        HttpHop {
            address: Some("127.0.0.1:8443".parse().unwrap()),
            tls,
            status: Some(status),
            headers: vec![
                ("set-cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
            ],
            body_length: 70_000,
            body_prefix: "<html>".into(),
            transfer_ms: 1.0,
            ..HttpHop::new(url)
        }
    }

    fn json(archival: &Archival) -> serde_json::Value {
        serde_json::to_value(archival).unwrap()
    }

    #[test]
    fn dns_keeps_the_first_matching_reply_and_the_racing_ones() {
        let mut late = reply(40.0, "127.0.0.1");
        late.answers.push(Answer {
            answer_type: "CNAME".into(),
            data: "real.test.".into(),
            ttl: 60,
            asn: None,
        });
        let mut stray = reply(5.0, "192.0.2.9");
        stray.matches_query = false;
        let dns = DnsFacts {
            resolver: "doh://127.0.0.1:8053/dns-query".into(),
            resolver_address: Some("127.0.0.1:8053".into()),
            hostname: "web.test".into(),
            query_type: QueryType::A,
            replies: vec![
                stray,
                reply(10.0, "10.10.34.34"),
                late,
                DnsReply {
                    answers: Vec::new(),
                    ..reply(60.0, "")
                },
            ],
            dropped_replies: 0,
            sent: 1,
            addresses: vec!["10.10.34.34".parse().unwrap()],
            tries: 1,
            check: None,
            overdue: None,
            error: None,
        };
        let steps = [&step(500, 1000.0, Step::Dns(dns))];
        let value = json(&Archival::of(&steps, at(0)));
        let query = &value["queries"][0];
        assert_eq!(query["engine"], "doh");
        assert_eq!(query["resolver_address"], "127.0.0.1:8053");
        assert_eq!(query["query_type"], "A");
        assert_eq!(query["rcode"], 0);
        assert_eq!(query["failure"], serde_json::Value::Null);
        assert_eq!(query["t0"], 0.5);
        assert_eq!(query["t"], 0.51);
        assert_eq!(
            query["answers"],
            serde_json::json!([{"answer_type": "A", "ipv4": "10.10.34.34", "ttl": 300, "asn": 0}])
        );
        let duplicates = value["x_dns_duplicate_responses"].as_array().unwrap();
        assert_eq!(duplicates.len(), 2, "{value}");
        assert_eq!(duplicates[0]["answers"][0]["ipv4"], "127.0.0.1");
        assert_eq!(duplicates[0]["failure"], serde_json::Value::Null);
        assert_eq!(duplicates[0]["t"], 0.54);
        assert_eq!(duplicates[1]["failure"], "dns_no_answer");
        assert_eq!(
            duplicates[0]["answers"][1],
            serde_json::json!({"answer_type": "CNAME", "hostname": "real.test.", "ttl": 60})
        );
    }

    #[test]
    fn failed_lookups_have_their_failure_and_the_step_time() {
        let dns = DnsFacts {
            resolver: "system".into(),
            resolver_address: Some("127.0.0.53:53".into()),
            hostname: "nx.test".into(),
            query_type: QueryType::Aaaa,
            replies: vec![DnsReply {
                rcode: "NXDomain".into(),
                answers: Vec::new(),
                ..reply(3.0, "")
            }],
            dropped_replies: 0,
            sent: 1,
            addresses: Vec::new(),
            tries: 1,
            check: None,
            overdue: None,
            error: Some(StepError::new(Operation::Resolve, Failure::DnsNxdomain)),
        };
        let steps = [&step(0, 3.0, Step::Dns(dns))];
        let value = json(&Archival::of(&steps, at(0)));
        let query = &value["queries"][0];
        assert_eq!(query["engine"], "udp");
        assert_eq!(query["rcode"], 3);
        assert_eq!(query["failure"], "dns_nxdomain_error");
        assert_eq!(query["answers"], serde_json::json!([]));
        assert!(value.get("x_dns_duplicate_responses").is_none());
    }

    #[test]
    fn hops_become_requests_final_response_first_with_their_connections() {
        let tls = TlsFacts {
            address: "127.0.0.1:8443".parse().unwrap(),
            server_name: "web.test".into(),
            control_sni: false,
            handshake_done: true,
            tls_version: Some("TLSv1.3".into()),
            cipher_suite: Some("TLS13_AES_128_GCM_SHA256".into()),
            alpn: Some("h2".into()),
            certificate: Some(CertificateFacts {
                subject: "CN=web.test".into(),
                issuer: "CN=Test CA".into(),
                san: vec!["web.test".into()],
                not_before: "2025-01-01".into(),
                not_after: "2030-01-01".into(),
                sha256: "00".into(),
                chain: vec!["MIIB".into(), "MIIC".into()],
            }),
            handshake_ms: None,
            tries: 1,
            first_failure: None,
            check: None,
            hellos: Vec::new(),
            valid_but_for_dates: false,
            error: None,
        };
        let mut redirect = hop("http://web.test/start", 302, None);
        redirect.address = Some("127.0.0.1:8080".parse().unwrap());
        redirect.body_length = 0;
        redirect.body_prefix.clear();
        let fetch = HttpFacts {
            url: "http://web.test/start".into(),
            hops: vec![redirect, hop("https://web.test/", 200, Some(tls))],
            control_sni: None,
            again: false,
            tries: 1,
            first_failure: None,
            cut_after: Vec::new(),
            check: None,
            error: None,
        };
        let steps = [&step(1000, 250.0, Step::Http(fetch))];
        let value = json(&Archival::of(&steps, at(0)));

        let requests = value["requests"].as_array().unwrap();
        assert_eq!(requests.len(), 2);
        let last = &requests[0];
        assert_eq!(last["request"]["url"], "https://web.test/");
        assert_eq!(last["request"]["method"], "GET");
        assert!(last["request"]["headers"]["user-agent"].is_string());
        assert_eq!(last["response"]["code"], 200);
        assert_eq!(last["response"]["body"], "<html>");
        assert_eq!(last["response"]["body_is_truncated"], true);
        assert_eq!(last["response"]["headers"]["set-cookie"], "a=1");
        assert_eq!(last["response"]["headers_list"][1][1], "b=2");
        assert_eq!(last["alpn"], "h2");
        assert_eq!(
            (last["t0"].as_f64(), last["t"].as_f64()),
            (Some(1.0), Some(1.25))
        );
        assert_eq!(requests[1]["request"]["url"], "http://web.test/start");
        assert_eq!(requests[1]["response"]["code"], 302);
        assert_eq!(requests[1]["response"]["body"], serde_json::Value::Null);

        let connects = value["tcp_connect"].as_array().unwrap();
        assert_eq!(connects.len(), 2);
        assert_eq!(connects[0]["port"], 8080);
        assert_eq!(
            connects[1]["status"],
            serde_json::json!({"success": true, "failure": null})
        );
        let handshake = &value["tls_handshakes"][0];
        assert_eq!(handshake["cipher_suite"], "TLS_AES_128_GCM_SHA256");
        assert_eq!(handshake["tls_version"], "TLSv1.3");
        assert_eq!(handshake["negotiated_protocol"], "h2");
        assert_eq!(
            handshake["peer_certificates"],
            serde_json::json!([{"format": "base64", "data": "MIIB"}, {"format": "base64", "data": "MIIC"}])
        );
    }

    #[test]
    fn addresses_in_failure_texts_are_scrubbed() {
        let refused = TcpFacts::new(
            "127.0.0.1:9".parse().unwrap(),
            Some(StepError::new(
                Operation::Connect,
                Failure::unknown("bind 203.0.113.5:41000 -> 127.0.0.1:9 failed"),
            )),
        );
        let steps = [&step(0, 1.0, Step::TcpConnect(refused))];
        let value = json(&Archival::of(&steps, at(0)));
        assert_eq!(value["tcp_connect"][0]["ip"], "127.0.0.1");
        assert_eq!(
            value["tcp_connect"][0]["status"]["failure"],
            "unknown_failure: bind [scrubbed] -> [scrubbed] failed"
        );
        assert!(!value.to_string().contains("203.0.113.5"));
    }
}
