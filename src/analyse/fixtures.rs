//! Facts for the analysis tests: a domain and a URL of one service, and the steps
//! measured against them, failing or not as each test needs. Public so that the verdict
//! corpus (tests/verdict_corpus.rs) builds its cases from the same facts as the unit
//! tests here; no part of a run uses it.

use std::net::SocketAddr;

use super::{Blocking, Context, Control, Outcome, Verdict, probe_only};
use crate::facts::TargetFacts;
use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{
    CertificateFacts, Check, CheckTarget, DnsAnswer, DnsFacts, DnsReply, EchFacts, EchHandshake,
    EchOffer, FirstBytes, Hello, HelloTry, HttpFacts, HttpHop, Measurement, QueryType, QuicFacts,
    RATED_SPAN_MS, Reconnect, Reply, Step, TcpFacts, TlsFacts, Vantage,
};
use crate::input::targets::{Target, TargetKind};

/// The service's address, and its HTTPS endpoint.
pub const FB: &str = "157.240.1.35";
pub const FB_443: &str = "157.240.1.35:443";

pub fn domain(asns: &[u32]) -> Target {
    Target {
        service: "facebook".into(),
        kind: TargetKind::Domain("facebook.com".into()),
        tls_ports: vec![443].into(),
        tcp_ports: vec![].into(),
        quic_ports: vec![].into(),
        asns: asns.to_vec().into(),
    }
}

pub fn measurement(step: Step) -> Measurement {
    Measurement {
        vantage: Vantage::Probe,
        service: "facebook".into(),
        target: "facebook.com".into(),
        measured_at: chrono::Utc::now(),
        runtime_ms: 1.0,
        step,
    }
}

pub fn lookup(answers: &[(&str, Option<u32>)]) -> Measurement {
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
        tries: 1,
        check: None,
        dropped_replies: 0,
        overdue: None,
        sent: 1,
        replies: vec![DnsReply {
            source: "198.18.0.53:53".into(),
            arrival_ms: 3.0,
            id: 1,
            matches_query: true,
            rcode: "NoError".into(),
            answers,
            truncated: false,
        }],
        error: None,
    }))
}

pub fn tcp(address: &str, failure: Option<Failure>) -> Measurement {
    measurement(Step::TcpConnect(TcpFacts::new(
        address.parse().expect("a literal address"),
        failure.map(|f| StepError::new(Operation::Connect, f)),
    )))
}

/// A data centre of Telegram's, measured as a fixed endpoint.
pub const DC_443: &str = "149.154.167.51:443";

pub fn endpoint() -> Target {
    Target {
        service: "telegram".into(),
        kind: TargetKind::Endpoint(DC_443.parse().expect("a literal address")),
        tls_ports: vec![].into(),
        tcp_ports: vec![].into(),
        quic_ports: vec![].into(),
        asns: vec![].into(),
    }
}

/// A connect to `address` that worked, then the first-bytes probe on it: the server's
/// `reply`, and the connect right after failing with `reconnect`, or not.
pub fn first_bytes(address: &str, reply: Reply, reconnect: Option<Failure>) -> Measurement {
    let mut m = tcp(address, None);
    if let Step::TcpConnect(t) = &mut m.step {
        t.first_bytes = Some(FirstBytes {
            measured_at: m.measured_at,
            sent: 64,
            reply,
            received: 0,
            reconnect: Reconnect {
                measured_at: m.measured_at,
                runtime_ms: 6500.0,
                tries: if reconnect.is_some() { 6 } else { 1 },
                check: None,
                error: reconnect.map(|f| StepError::new(Operation::Connect, f)),
            },
        });
    }
    m
}

/// `m`'s first-bytes reconnect followed by a check that failed with `result`, or passed.
pub fn reconnect_checked(mut m: Measurement, result: Option<Failure>) -> Measurement {
    if let Step::TcpConnect(t) = &mut m.step
        && let Some(f) = &mut t.first_bytes
    {
        f.reconnect.check = Some(check(result));
    }
    m
}

pub fn timed_out_connect() -> Measurement {
    tcp(FB_443, Some(Failure::GenericTimeout))
}

pub fn tls(address: &str, control_sni: bool, failure: Option<Failure>) -> Measurement {
    let name = if control_sni {
        "example.com"
    } else {
        "facebook.com"
    };
    let mut facts = TlsFacts::new(
        address.parse::<SocketAddr>().expect("a literal address"),
        name,
        control_sni,
    );
    facts.handshake_done = failure.is_none();
    facts.error = failure.map(|f| StepError::new(Operation::TlsHandshake, f));
    measurement(Step::TlsHandshake(facts))
}

/// The ECH comparison with facebook.com at `address`: its handshakes in order, with ECH
/// (GREASE) or without, each failing in the handshake with its failure or not.
pub fn ech(address: &str, handshakes: &[(EchOffer, Option<Failure>)]) -> Measurement {
    let at = chrono::Utc::now();
    measurement(Step::Ech(EchFacts {
        address: address.parse().expect("a literal address"),
        server_name: "facebook.com".into(),
        handshakes: handshakes
            .iter()
            .enumerate()
            .map(|(i, (ech, failure))| EchHandshake {
                ech: *ech,
                measured_at: at + chrono::TimeDelta::milliseconds(i as i64 * 100),
                runtime_ms: 50.0,
                handshake_done: failure.is_none(),
                error: failure
                    .clone()
                    .map(|f| StepError::new(Operation::TlsHandshake, f)),
            })
            .collect(),
    }))
}

/// A QUIC handshake to `address`, with the control name or the target's, that got
/// `datagrams` back.
pub fn quic(
    address: &str,
    control_sni: bool,
    failure: Option<Failure>,
    datagrams: u64,
) -> Measurement {
    let Step::TlsHandshake(mut handshake) = tls(address, control_sni, failure).step else {
        unreachable!("a handshake")
    };
    if let Some(e) = &mut handshake.error {
        e.failed_operation = Operation::QuicHandshake;
    }
    measurement(Step::QuicHandshake(QuicFacts {
        handshake,
        local_port: Some(50_000),
        datagrams_received: Some(datagrams),
    }))
}

pub fn facts(target: &Target, dns: Vec<Measurement>, rest: Vec<Measurement>) -> TargetFacts {
    let mut measurements = dns.clone();
    measurements.extend(rest);
    TargetFacts::new(target, measurements, dns)
}

pub fn judge(target: Target, dns: Vec<Measurement>, rest: Vec<Measurement>) -> Outcome {
    probe_only(&facts(&target, dns, rest), &Context::default())
}

/// Judges the probe's facts against the control's.
pub fn compare(
    target: Target,
    probe: (Vec<Measurement>, Vec<Measurement>),
    control: (Vec<Measurement>, Vec<Measurement>),
) -> Outcome {
    compare_in(&Context::default(), target, probe, control)
}

/// The same, with what the run knows besides (its resolvers' health).
pub fn compare_in(
    context: &Context,
    target: Target,
    probe: (Vec<Measurement>, Vec<Measurement>),
    control: (Vec<Measurement>, Vec<Measurement>),
) -> Outcome {
    let theirs = facts(&target, control.0, control.1).into_control();
    super::judge(
        &facts(&target, probe.0, probe.1),
        Control::Measured(&theirs),
        context,
    )
}

/// A lookup of `qtype` that failed with `failure`.
pub fn failed_lookup_of(qtype: QueryType, failure: Failure) -> Measurement {
    let mut m = failed_lookup(failure);
    if let Step::Dns(d) = &mut m.step {
        d.query_type = qtype;
    }
    m
}

/// `m`, begun `seconds` from now.
pub fn at(mut m: Measurement, seconds: i64) -> Measurement {
    m.measured_at = chrono::Utc::now() + chrono::TimeDelta::seconds(seconds);
    m
}

pub fn judge_with(ours: &TargetFacts, control: Control<'_>) -> Outcome {
    super::judge(ours, control, &Context::default())
}

pub fn failed_lookup(failure: Failure) -> Measurement {
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

pub fn mitm(address: &str) -> Measurement {
    let mut m = tls(address, false, None);
    if let Step::TlsHandshake(t) = &mut m.step {
        t.error = Some(StepError::new(
            Operation::TlsHandshake,
            Failure::SslUnknownAuthority,
        ));
    }
    m
}

/// `m`, a handshake or a fetch over one, shown a certificate from `issuer`.
pub fn issued_by(mut m: Measurement, issuer: &str) -> Measurement {
    let tls = match &mut m.step {
        Step::TlsHandshake(t) => Some(t),
        Step::Http(h) => h.hops[0].tls.as_mut(),
        _ => None,
    };
    let t = tls.expect("a handshake");
    t.certificate = Some(certificate(&t.server_name, issuer, issuer));
    m
}

/// A leaf for `name` from `issuer`, its fingerprint `sha256`, its dates unread.
fn certificate(name: &str, issuer: &str, sha256: &str) -> CertificateFacts {
    CertificateFacts {
        subject: format!("CN={name}"),
        issuer: issuer.into(),
        san: vec![name.into()],
        not_before: String::new(),
        not_after: String::new(),
        sha256: sha256.into(),
        chain: Vec::new(),
    }
}

/// A handshake with facebook.com at `address` that finished with the certificate whose
/// SHA-256 is `sha256`, refused by the clock of whoever made it: for its dates alone
/// (`only_dates`: valid for the name at another time), or for its dates and more.
pub fn out_of_date(address: &str, sha256: &str, only_dates: bool) -> Measurement {
    let mut m = tls(address, false, None);
    if let Step::TlsHandshake(t) = &mut m.step {
        dated(t, sha256, only_dates);
    }
    m
}

/// `m`'s hop, fetched over a handshake that finished with a certificate refused with
/// `failure`: the fetch stopped there.
pub fn fetched_refused(m: Measurement, failure: Failure) -> Measurement {
    let mut m = over_valid_tls(m);
    if let Step::Http(h) = &mut m.step {
        let error = Some(StepError::new(Operation::TlsHandshake, failure));
        let hop = &mut h.hops[0];
        (hop.status, hop.body_length, hop.title) = (None, 0, None);
        hop.body_prefix.clear();
        hop.tls.as_mut().expect("over TLS").error = error.clone();
        hop.error = error.clone();
        h.error = error;
    }
    m
}

/// `m`'s hop, fetched over a handshake refused as [`out_of_date`]'s was.
pub fn fetched_out_of_date(m: Measurement, sha256: &str, only_dates: bool) -> Measurement {
    let mut m = fetched_refused(m, Failure::SslInvalidCertificate);
    if let Step::Http(h) = &mut m.step {
        dated(
            h.hops[0].tls.as_mut().expect("over TLS"),
            sha256,
            only_dates,
        );
    }
    m
}

fn dated(t: &mut TlsFacts, sha256: &str, only_dates: bool) {
    t.certificate = Some(CertificateFacts {
        not_before: "Jan  1 00:00:00 2026 +00:00".into(),
        not_after: "Apr  1 00:00:00 2026 +00:00".into(),
        ..certificate("facebook.com", "CN=A public CA", sha256)
    });
    t.error = Some(StepError::new(
        Operation::TlsHandshake,
        Failure::SslInvalidCertificate,
    ));
    t.valid_but_for_dates = only_dates;
}

pub fn url() -> Target {
    Target {
        kind: TargetKind::Url("https://facebook.com/".parse().expect("a literal URL")),
        ..domain(&[])
    }
}

/// A fetch whose body flowed steadily: one long enough to be rated has its average as
/// its active and peak rates (see `HttpHop::active_rate`).
pub fn fetch(
    status: u16,
    body: u64,
    title: &str,
    transfer_ms: f64,
    error: Option<StepError>,
) -> Measurement {
    let steady = (transfer_ms >= RATED_SPAN_MS).then(|| body as f64 / (transfer_ms / 1000.0));
    measurement(Step::Http(HttpFacts {
        url: "https://facebook.com/".into(),
        hops: vec![HttpHop {
            address: Some(FB_443.parse().expect("a literal address")),
            status: (status > 0).then_some(status),
            headers: vec![("content-type".into(), "text/html".into())],
            body_length: body,
            title: Some(title.into()),
            body_prefix: format!("<title>{title}</title>"),
            transfer_ms,
            active_rate: steady,
            peak_rate: steady,
            error: error.clone(),
            ..HttpHop::new("https://facebook.com/")
        }],
        control_sni: None,
        again: false,
        tries: 1,
        first_failure: None,
        cut_after: Vec::new(),
        check: None,
        error,
    }))
}

/// The control-SNI twin of a fetch (see `measure::http`), `body` bytes in `transfer_ms`.
pub fn twin(body: u64, transfer_ms: f64) -> Measurement {
    let mut m = fetch(200, body, "Video", transfer_ms, None);
    if let Step::Http(h) = &mut m.step {
        h.control_sni = Some("example.com".into());
    }
    m
}

/// The target's URL fetched again after a fast twin, `body` bytes in `transfer_ms`.
pub fn again(body: u64, transfer_ms: f64) -> Measurement {
    fetched_again(fetch(200, body, "Video", transfer_ms, None))
}

/// `fetch` as the target's URL fetched again with its own name (see `measure::http`).
pub fn fetched_again(mut fetch: Measurement) -> Measurement {
    if let Step::Http(h) = &mut fetch.step {
        h.again = true;
    }
    fetch
}

pub fn kind(outcome: &Outcome) -> (Verdict, Option<Blocking>) {
    (outcome.verdict.verdict, outcome.verdict.blocking)
}

/// A check of the probe's own network (the canary looked up) that failed with `error`,
/// or passed.
pub fn check(error: Option<Failure>) -> Check {
    Check {
        checked: CheckTarget::Resolver("cp-0.example.com".into()),
        measured_at: chrono::Utc::now(),
        error: error.map(|f| StepError::new(Operation::Resolve, f)),
        meanwhile: None,
        before: None,
        first_tries: None,
        during: None,
        slow_quarter_ms: None,
        answered_at: None,
        quic: None,
    }
}

/// `m` followed by a check that failed with `result`, or passed.
pub fn checked(mut m: Measurement, result: Option<Failure>) -> Measurement {
    let check = Some(check(result));
    match &mut m.step {
        Step::Dns(d) => d.check = check,
        Step::TcpConnect(t) => t.check = check,
        Step::TlsHandshake(t) => t.check = check,
        Step::QuicHandshake(q) => q.handshake.check = check,
        Step::Http(h) => h.check = check,
        Step::Ech(_) => {}
    }
    m
}

/// A fetch whose body did not come before the deadline after the response.
pub fn stalled() -> Measurement {
    let mut m = fetch(200, 0, "Video", 0.0, None);
    if let Step::Http(h) = &mut m.step {
        let error = StepError::timeout(Operation::Read);
        h.hops[0].error = Some(error.clone());
        h.error = Some(error);
    }
    m
}

/// `m`'s body cut off by the deadline of a `read_ms` read after `body` bytes, its last
/// `silent_ms` bringing nothing: stopped dead when that is most of the read, still
/// moving when it is little.
pub fn cut_at_deadline(mut m: Measurement, body: u64, read_ms: f64, silent_ms: f64) -> Measurement {
    if let Step::Http(h) = &mut m.step {
        let error = StepError::timeout(Operation::Read);
        let hop = &mut h.hops[0];
        hop.body_length = body;
        hop.transfer_ms = read_ms;
        hop.read_ms = Some(read_ms);
        hop.silent_ms = Some(silent_ms);
        hop.error = Some(error.clone());
        h.error = Some(error);
    }
    m
}

/// `m` (a fetch, a twin, a fetch again) whose HTTPS round trip the deadline ended
/// before any response head, `received` bytes after the TLS handshake, the last
/// `silent_ms` of its 10 s wait bringing nothing.
pub fn head_frozen(mut m: Measurement, received: u64, silent_ms: f64) -> Measurement {
    if let Step::Http(h) = &mut m.step {
        let error = StepError::timeout(Operation::HttpRoundTrip);
        let hop = &mut h.hops[0];
        *hop = HttpHop {
            url: hop.url.clone(),
            address: hop.address,
            received_after_handshake: Some(received),
            read_ms: Some(10_000.0),
            silent_ms: Some(silent_ms),
            error: Some(error.clone()),
            ..HttpHop::new("")
        };
        h.error = Some(error);
    }
    m
}

/// A fetch whose body stopped dead after `body` bytes, early in a 10 s read.
pub fn frozen(body: u64) -> Measurement {
    stopped_after(fetch(200, 0, "Video", 0.0, None), body)
}

/// `m` (a twin, a fetch again) stopped dead after `body` bytes, as [`frozen`] is.
pub fn stopped_after(m: Measurement, body: u64) -> Measurement {
    cut_at_deadline(m, body, 10_000.0, 9_800.0)
}

/// `m`'s response made Cloudflare's challenge page.
pub fn challenge(m: &mut Measurement) {
    if let Step::Http(h) = &mut m.step {
        let hop: &mut HttpHop = &mut h.hops[0];
        hop.status = Some(403);
        hop.headers = vec![
            ("server".into(), "cloudflare".into()),
            ("cf-mitigated".into(), "challenge".into()),
        ];
        hop.title = Some("Just a moment...".into());
    }
}

/// `m`'s hop marked as fetched over a TLS session with a valid certificate.
pub fn over_valid_tls(mut m: Measurement) -> Measurement {
    if let Step::Http(h) = &mut m.step {
        let mut tls = TlsFacts::new(
            FB_443.parse().expect("a literal address"),
            "facebook.com",
            false,
        );
        tls.handshake_done = true;
        h.hops[0].tls = Some(tls);
    }
    m
}

/// `m`, a handshake, made again with other ClientHellos: each `(hello, with the control
/// SNI, failure)`.
pub fn hellos(mut m: Measurement, tries: &[(Hello, bool, Option<Failure>)]) -> Measurement {
    if let Step::TlsHandshake(t) = &mut m.step {
        t.hellos = tries
            .iter()
            .map(|(hello, control_sni, failure)| HelloTry {
                hello: *hello,
                server_name: if *control_sni {
                    "example.com"
                } else {
                    "facebook.com"
                }
                .into(),
                control_sni: *control_sni,
                measured_at: m.measured_at,
                runtime_ms: 20.0,
                handshake_done: failure.is_none(),
                name_at: None,
                error: failure
                    .clone()
                    .map(|f| StepError::new(Operation::TlsHandshake, f)),
            })
            .collect();
    }
    m
}

/// Asserts that `outcome`'s evidence says each of `said`.
/// What a run learns from a canary whose lookups were `dns` and whose other steps were
/// `rest`.
pub fn canary_context(dns: Vec<Measurement>, rest: Vec<Measurement>) -> Context {
    let mut context = Context::default();
    context.learn_from_canary(&facts(&domain(&[]), dns, rest));
    context
}

/// Asserts `outcome` is `inconclusive`, its evidence saying each of `said`.
pub fn inconclusive_saying(outcome: &Outcome, said: &[&str]) {
    assert_eq!(
        kind(outcome),
        (Verdict::Inconclusive, None),
        "{}",
        outcome.verdict.evidence
    );
    evidence_of(outcome, said);
}

pub fn evidence_of(outcome: &Outcome, said: &[&str]) {
    for words in said {
        assert!(
            outcome.verdict.evidence.contains(words),
            "{words:?} not in: {}",
            outcome.verdict.evidence
        );
    }
}
