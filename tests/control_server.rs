//! `censorprobe control serve`, run as the real binary on loopback and spoken to over
//! HTTP(S): what a probe (or someone abusing the server) sees.
//!
//! Every server is given a `--resolver` on loopback, so that nothing it does can reach
//! past this machine.

#[allow(dead_code)]
mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use censorprobe::control::client::{ControlClient, ControlClientError};
use censorprobe::control::protocol::{ControlRequest, ControlResult, HEALTH_PATH, MEASURE_PATH};
use censorprobe::facts::failure::Failure;
use censorprobe::facts::{CheckTarget, Step, Vantage};
use censorprobe::measure::tls::{TlsContext, root_store};
use common::control::{Reply, exchange, get, measure_request};
use common::tls::Healthy;
use common::{
    Ca, ControlServer, DnsBehaviour, DnsServer, LOCALHOST, blackhole, closed_port, silent, tls,
};

const TOKEN: &str = "s3cret-token";

/// A running `control serve` and the requests a probe (or an abuser) sends it.
struct Control {
    server: ControlServer,
    address: SocketAddr,
}

impl Control {
    /// Starts a server on a free port of 127.0.0.1 that resolves names with a loopback
    /// DNS server serving `zone`.
    async fn start(zone: &[(&str, DnsBehaviour)], args: &[&str]) -> Control {
        let resolver = format!("udp://{}", DnsServer::spawn(zone).unwrap());
        let mut all = vec!["--resolver", resolver.as_str()];
        all.extend_from_slice(args);
        let server = ControlServer::spawn(&all).await;
        Control {
            address: server.address,
            server,
        }
    }

    /// POSTs `body` as JSON to the measure endpoint.
    async fn post(&self, token: Option<&str>, body: impl Into<Bytes>) -> Reply {
        self.exchange(measure_request(self.address, token, body, false))
            .await
    }

    /// POSTs a request for `targets` with the right token.
    async fn measure(&self, targets: Value) -> Reply {
        self.post(Some(TOKEN), json!({ "targets": targets }).to_string())
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.exchange(get(self.address, path)).await
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Reply {
        let stream = TcpStream::connect(self.address).await.unwrap();
        exchange(stream, false, request).await.unwrap()
    }
}

/// A port on `ip` whose connects succeed (the kernel completes them into the backlog);
/// it never accepts, so `accepted_nothing` can tell whether anyone connected.
fn listener_on(ip: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

fn accepted_nothing(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// The addresses a result's TCP connects and TLS handshakes went to, with their failures.
fn connects(result: &ControlResult) -> Vec<(SocketAddr, Option<Failure>)> {
    result
        .measurements
        .iter()
        .filter_map(|m| match &m.step {
            Step::TcpConnect(tcp) => Some((tcp.address, tcp.error.clone().map(|e| e.failure))),
            Step::TlsHandshake(tls) => Some((tls.address, tls.error.clone().map(|e| e.failure))),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn measures_only_for_holders_of_the_token() {
    let (_listener, open) = listener_on("127.0.0.1");
    let refused = closed_port().unwrap();
    let control =
        Control::start(&[], &["--token", TOKEN, "--treat-as-public", "127.0.0.0/8"]).await;
    let body = json!({ "targets": [
        { "service": "lab", "target": open.to_string() },
        { "service": "lab", "target": refused.to_string() },
    ]})
    .to_string();

    for token in [None, Some("wrong"), Some("s3cret-token-and-more"), Some("")] {
        let reply = control.post(token, body.clone()).await;
        assert!(reply.error(401).contains("token"), "{}", reply.text);
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }

    let response = control.post(Some(TOKEN), body).await.results();
    let targets: Vec<&str> = response.results.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, [open.to_string(), refused.to_string()]);
    assert_eq!(connects(&response.results[0]), [(open, None)]);
    assert_eq!(
        connects(&response.results[1]),
        [(refused, Some(Failure::ConnectionRefused))]
    );
    let vantages = response.results.iter().flat_map(|r| &r.measurements);
    assert!(vantages.into_iter().all(|m| m.vantage == Vantage::Control));
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_private_addresses_unless_treated_as_public() {
    let (listener, port) = listener_on("127.0.0.1");
    let zone = [("lab.test", DnsBehaviour::Answer(vec![port.ip()]))];
    let control = Control::start(&zone, &["--token", TOKEN]).await;

    for target in [port.to_string(), format!("http://{port}/")] {
        let reply = control
            .measure(json!([{ "service": "lab", "target": target }]))
            .await;
        let error = reply.error(400);
        assert!(error.contains(&target), "{error}");
    }

    // The probe's address and the control's own DNS answer are both 127.0.0.1.
    let response = control
        .measure(json!([
            {
                "service": "lab",
                "target": "lab.test",
                "tls_ports": [port.port()],
                "tcp_ports": [port.port()],
                "addresses": [port.ip()],
            },
            { "service": "lab", "target": format!("http://lab.test:{}/", port.port()) },
        ]))
        .await
        .results();
    let domain = &response.results[0];
    assert_eq!(domain.refused_addresses, [port.ip()]);
    let answered = domain.measurements.iter().any(|m| match &m.step {
        Step::Dns(dns) => dns.addresses.contains(&port.ip()),
        _ => false,
    });
    assert!(answered, "no DNS answer of {}: {domain:?}", port.ip());
    assert_eq!(connects(domain), []);
    let url = &response.results[1];
    let fetched = url.measurements.iter().find_map(|m| match &m.step {
        Step::Http(http) => Some(http),
        _ => None,
    });
    let fetched = fetched.unwrap_or_else(|| panic!("no HTTP measurement: {url:?}"));
    assert!(
        fetched.hops.iter().all(|hop| hop.address.is_none()),
        "{fetched:?}"
    );
    assert!(
        accepted_nothing(&listener),
        "the server connected to loopback"
    );

    let lab = Control::start(&[], &["--token", TOKEN, "--treat-as-public", "127.0.0.0/8"]).await;
    let response = lab
        .measure(json!([{ "service": "lab", "target": port.to_string() }]))
        .await
        .results();
    assert_eq!(connects(&response.results[0]), [(port, None)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn explains_what_is_wrong_with_a_request() {
    let control = Control::start(
        &[],
        &["--token", TOKEN, "--max-body", "2000", "--max-targets", "2"],
    )
    .await;
    let target = |name: &str| json!({ "service": "s", "target": name });

    let padding = "a".repeat(3000);
    let reply = control.measure(json!([target(&padding)])).await;
    assert!(reply.error(413).contains("2000 bytes"), "{}", reply.text);

    let three = json!([target("a.test"), target("b.test"), target("c.test")]);
    let error = control.measure(three).await.error(413);
    assert!(
        error.contains("--max-targets") && error.contains(" 2 "),
        "{error}"
    );

    let error = control
        .post(Some(TOKEN), "{\"targets\": [")
        .await
        .error(400);
    assert!(error.contains("line 1 column"), "{error}");

    let unknown = json!([{ "service": "s", "target": "a.test", "colour": "red" }]);
    let error = control.measure(unknown).await.error(400);
    assert!(error.contains("unknown field `colour`"), "{error}");

    let error = control
        .measure(json!([target("not a target")]))
        .await
        .error(400);
    assert!(error.contains("\"not a target\""), "{error}");

    let mut plain = measure_request(control.address, Some(TOKEN), "targets=a.test", false);
    plain
        .headers_mut()
        .insert(CONTENT_TYPE, "text/plain".parse().unwrap());
    let error = control.exchange(plain).await.error(415);
    assert!(error.contains("application/json"), "{error}");
}

/// The ECH comparison as `?ech=` asks: with everything by default (a probe that
/// predates the parameter), not at all with `later` (a probe's batches), alone with
/// `only` (a probe whose own comparison failed), and a value it does not know refused.
#[tokio::test(flavor = "multi_thread")]
async fn makes_the_ech_comparison_as_the_request_asks() {
    let site = Healthy::spawn(&["lab.test"]).await;
    let zone = [("lab.test", DnsBehaviour::Answer(vec![site.addr.ip()]))];
    let ca = site.ca_file.to_str().unwrap();
    let control = Control::start(
        &zone,
        &[
            "--token",
            TOKEN,
            "--treat-as-public",
            "127.0.0.0/8",
            "--ca-file",
            ca,
        ],
    )
    .await;
    // The service names the measurement: another service's is made anew.
    let body = |service: &str| {
        json!({ "targets": [{
            "service": service,
            "target": "lab.test",
            "tls_ports": [site.addr.port()],
            "addresses": [site.addr.ip()],
        }]})
        .to_string()
    };
    let ask_about = |service: &str, plan: &str| {
        let mut request = measure_request(control.address, Some(TOKEN), body(service), false);
        *request.uri_mut() = format!("{MEASURE_PATH}{plan}").parse().unwrap();
        control.exchange(request)
    };
    let ask = |plan: &str| ask_about("lab", plan);
    let steps = |reply: Reply| -> Vec<&'static str> {
        let mut steps: Vec<&str> = reply.results().results[0]
            .measurements
            .iter()
            .map(|m| match &m.step {
                Step::Ech(ech) => {
                    assert!(ech.handshakes[0].handshake_done, "{ech:?}");
                    "ech"
                }
                Step::TlsHandshake(_) => "tls",
                Step::TcpConnect(_) => "tcp",
                Step::Dns(_) => "dns",
                _ => "other",
            })
            .collect();
        steps.dedup();
        steps
    };
    assert_eq!(steps(ask("?ech=later").await), ["dns", "tcp", "tls"]);
    assert_eq!(steps(ask("").await), ["dns", "tcp", "tls", "ech"]);
    // A target measured with the comparison (for a probe that predates the parameter)
    // answers a `later` request about it with that measurement.
    assert_eq!(
        steps(ask_about("other", "").await),
        ["dns", "tcp", "tls", "ech"]
    );
    assert_eq!(
        steps(ask_about("other", "?ech=later").await),
        ["dns", "tcp", "tls", "ech"]
    );
    assert_eq!(steps(ask("?ech=only").await), ["ech"]);
    let error = ask("?ech=sometimes").await.error(400);
    assert!(error.contains("ech=sometimes"), "{error}");
}

/// The control makes no control-SNI handshake over TCP, which nothing of its facts is
/// judged by: a domain gets its name's handshake alone, a URL its fetch alone.
#[tokio::test(flavor = "multi_thread")]
async fn makes_no_control_sni_handshake_over_tcp() {
    let site = Healthy::spawn(&["lab.test", "canary.test"]).await;
    let zone = [("lab.test", DnsBehaviour::Answer(vec![site.addr.ip()]))];
    let ca = site.ca_file.to_str().unwrap();
    let control = Control::start(
        &zone,
        &["--treat-as-public", "127.0.0.0/8", "--ca-file", ca],
    )
    .await;
    let port = site.addr.port();
    let request = json!({
        "targets": [
            { "service": "lab", "target": "lab.test", "tls_ports": [port],
              "addresses": [site.addr.ip()] },
            { "service": "lab", "target": format!("https://lab.test:{port}/"),
              "addresses": [site.addr.ip()] },
        ],
        "control_sni": "canary.test",
    });
    let reply = control.post(None, request.to_string()).await;
    let results = reply.results().results;
    assert_eq!(results.len(), 2, "{results:?}");
    for result in &results {
        let mut named = 0;
        for m in &result.measurements {
            match &m.step {
                Step::TlsHandshake(t) => {
                    assert!(!t.control_sni, "{}: {t:?}", result.target);
                    assert!(t.handshake_done && t.error.is_none(), "{t:?}");
                    named += 1;
                }
                Step::Http(h) => {
                    assert_eq!(h.hops.len(), 1, "{h:?}");
                    assert_eq!(h.hops[0].status, Some(200), "{h:?}");
                    named += 1;
                }
                _ => {}
            }
        }
        assert_eq!(named, 1, "{}: {:?}", result.target, result.measurements);
    }
}

/// A measurement shared between requests is never older than `?max_age=` allows: a
/// server that stopped since the control last connected to it is found stopped by a
/// request that asks for younger facts (a probe that began the target since), while
/// one without the parameter is still answered with the shared measurement. With
/// `older=mark`, the older one answers, marked, and only such a request sees the mark.
#[tokio::test(flavor = "multi_thread")]
async fn shares_no_measurement_older_than_the_request_allows_unless_marked() {
    let (listener, open) = listener_on("127.0.0.1");
    let zone = [("lab.test", DnsBehaviour::Answer(vec![open.ip()]))];
    let control = Control::start(
        &zone,
        &["--token", TOKEN, "--treat-as-public", "127.0.0.0/8"],
    )
    .await;
    let body = json!({ "targets": [{
        "service": "lab",
        "target": "lab.test",
        "tcp_ports": [open.port()],
        "addresses": [open.ip()],
    }]})
    .to_string();
    let ask = |query: &str| {
        let mut request = measure_request(control.address, Some(TOKEN), body.clone(), false);
        *request.uri_mut() = format!("{MEASURE_PATH}{query}").parse().unwrap();
        control.exchange(request)
    };
    // The connect's failure, and whether the answer was marked older.
    let connect = |reply: Reply| {
        assert_eq!(
            reply.text.contains("\"older\""),
            reply.results().results[0].older,
            "{}",
            reply.text
        );
        let result = &reply.results().results[0];
        let found = connects(result);
        assert_eq!(found.len(), 1, "{result:?}");
        (found[0].1.clone(), result.older)
    };
    let refused = Some(Failure::ConnectionRefused);
    assert_eq!(connect(ask("").await), (None, false));
    drop(listener);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connect(ask("").await), (None, false), "shared within 10 s");
    assert_eq!(connect(ask("?max_age=5000").await), (None, false));
    assert_eq!(
        connect(ask("?max_age=5000&older=mark").await),
        (None, false),
        "young enough"
    );
    assert_eq!(
        connect(ask("?max_age=100&older=mark").await),
        (None, true),
        "older, marked"
    );
    assert_eq!(connect(ask("?max_age=100").await), (refused.clone(), false));
    // The younger measurement answers the requests after it.
    assert_eq!(connect(ask("").await), (refused, false));
    for (query, names) in [
        ("?max_age=soon", ["max_age=soon", "milliseconds"]),
        ("?older=sometimes", ["older=sometimes", "expected mark"]),
    ] {
        let error = ask(query).await.error(400);
        assert!(names.iter().all(|name| error.contains(name)), "{error}");
    }
}

/// A connect the control could not make is followed by a check of the control's own
/// network, on the canary at the port the request names (`?canary_port=`), with the
/// connects the control made for every request before: a control overloaded, or behind
/// a limit on new flows, fails targets that are up, and the probe must be able to tell.
/// A request that names no port gets no check; one that names no port worth the name
/// is refused.
#[tokio::test(flavor = "multi_thread")]
async fn checks_its_own_network_after_a_failure_on_the_canary_the_request_names() {
    let canary = Healthy::spawn(&["canary.test"]).await;
    let dead = blackhole::port().unwrap();
    let (_listener, open) = listener_on("127.0.0.1");
    let zone = [("canary.test", DnsBehaviour::Answer(vec![canary.addr.ip()]))];
    let control = Control::start(
        &zone,
        &[
            "--token",
            TOKEN,
            "--treat-as-public",
            "127.0.0.0/8",
            "--timeout",
            "1",
        ],
    )
    .await;
    // Another request's connect, answered: the server's network, counted for all.
    let answered = control
        .measure(json!([{ "service": "lab", "target": open.to_string() }]))
        .await;
    assert_eq!(connects(&answered.results().results[0])[0], (open, None));
    let body = json!({
        "targets": [{ "service": "lab", "target": dead.to_string() }],
        "control_sni": "canary.test",
    })
    .to_string();
    let ask = |query: String| {
        let mut request = measure_request(control.address, Some(TOKEN), body.clone(), false);
        *request.uri_mut() = format!("{MEASURE_PATH}{query}").parse().unwrap();
        control.exchange(request)
    };
    let check_of = |reply: Reply| {
        let result = &reply.results().results[0];
        let connect = result
            .measurements
            .iter()
            .find_map(|m| match &m.step {
                Step::TcpConnect(t) if t.address == dead => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no connect to {dead}: {result:?}"));
        assert_eq!(
            connect.error.map(|e| e.failure),
            Some(Failure::GenericTimeout)
        );
        connect.check
    };
    let checked = check_of(ask(format!("?canary_port={}", canary.addr.port())).await)
        .expect("a check after the silence");
    assert_eq!(checked.checked, CheckTarget::Connect(canary.addr));
    assert!(checked.passed(), "{checked:?}");
    assert!(
        checked.before.is_some_and(|before| before.answered >= 1),
        "the other request's connect counted before the silence: {checked:?}"
    );
    // Measured afresh (`max_age=0`), not shared from the request before.
    assert_eq!(
        check_of(ask("?max_age=0".into()).await),
        None,
        "no port, no check"
    );
    let error = ask("?canary_port=0".into()).await.error(400);
    assert!(error.contains("canary_port=0"), "{error}");
}

/// The server's wait for a place in flight before it refuses a request as busy.
const QUEUE_WAIT: Duration = Duration::from_millis(250);

/// A server with all its places in flight taken refuses a request that would begin a
/// measurement, after a short wait, and stays up; a request for a target already being
/// measured is not refused but shares that measurement.
#[tokio::test(flavor = "multi_thread")]
async fn refuses_quickly_when_busy_and_stays_up() {
    let blackhole = blackhole::port().unwrap();
    let control = Control::start(
        &[],
        &[
            "--token",
            TOKEN,
            "--treat-as-public",
            "127.0.0.0/8",
            "--max-in-flight",
            "2",
            "--timeout",
            "3",
        ],
    )
    .await;
    let control = Arc::new(control);
    // Targets told apart by their service: each is a measurement of its own.
    let hang = |service: &str| json!([{ "service": service, "target": blackhole.to_string() }]);
    let first: Vec<_> = ["lab-0", "lab-1"]
        .map(|service| {
            let (control, hang) = (control.clone(), hang(service));
            tokio::spawn(async move { control.measure(hang).await })
        })
        .into();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let shared = {
        let (control, hang) = (control.clone(), hang("lab-0"));
        tokio::spawn(async move { control.measure(hang).await })
    };
    let started = Instant::now();
    let extra = ["lab-2", "lab-3", "lab-4"].map(|service| control.measure(hang(service)));
    for reply in futures_util::future::join_all(extra).await {
        assert!(reply.error(503).contains("busy"), "{}", reply.text);
        assert_eq!(reply.headers[RETRY_AFTER], "1");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= QUEUE_WAIT && elapsed < QUEUE_WAIT + Duration::from_millis(800),
        "refusals took {elapsed:?}"
    );
    let health = control.get(HEALTH_PATH).await;
    assert_eq!((health.status, health.text.as_str()), (200, "ok"));

    let mut answers = Vec::new();
    for reply in first {
        let response = reply.await.unwrap().results();
        assert_eq!(
            connects(&response.results[0]),
            [(blackhole, Some(Failure::GenericTimeout))]
        );
        answers.push(response.results.into_iter().next().unwrap());
    }
    let shared = shared.await.unwrap().results().results;
    assert_eq!(
        shared,
        answers[..1],
        "the same facts, measured at the same time"
    );
}

/// A target the batch's deadline cuts off costs only itself its facts: the request is
/// answered 200, the finished target with its facts, the other as not measured.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_past_its_deadline_keeps_what_was_measured_and_marks_the_rest() {
    let (_listener, open) = listener_on("127.0.0.1");
    let stalled = silent().await.unwrap();
    // A name's bare connect, which is done at once (an endpoint's first-bytes probe
    // waits a second for an answer that this port never gives).
    let zone = [
        ("open.test", DnsBehaviour::Answer(vec![LOCALHOST])),
        ("stall.test", DnsBehaviour::Answer(vec![LOCALHOST])),
    ];
    let args = [
        "--token",
        TOKEN,
        "--treat-as-public",
        "127.0.0.0/8",
        "--timeout",
        "2",
        "--request-deadline",
        "1",
    ];
    let control = Control::start(&zone, &args).await;
    let body = json!({
        "targets": [
            { "service": "lab", "target": "open.test", "tcp_ports": [open.port()] },
            { "service": "lab", "target": "stall.test", "tls_ports": [stalled.port()] },
        ],
        "control_sni": "canary.test",
    });
    let started = Instant::now();
    let reply = control.post(Some(TOKEN), body.to_string()).await;
    let elapsed = started.elapsed();
    let response = reply.results();
    let (done, cut) = (&response.results[0], &response.results[1]);
    assert_eq!(done.not_measured, None);
    assert_eq!(connects(done), [(open, None)]);
    assert_eq!(cut.target, "stall.test");
    assert_eq!(cut.measurements, []);
    assert_eq!(
        cut.not_measured.as_deref(),
        Some(
            "the control's deadline of 1 s for this batch of 2 targets ran out before this target was measured"
        )
    );
    assert_eq!(
        reply.text.matches("not_measured").count(),
        1,
        "{}",
        reply.text
    );
    // Measured to the end, its two stalled handshakes would have taken 4 s.
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
}

/// A connection over `--max-connections` is answered 503 with `Retry-After`, over
/// plain HTTP...
#[tokio::test(flavor = "multi_thread")]
async fn answers_503_over_the_connection_cap() {
    refuses_over_the_cap(false).await;
}

/// ... and over HTTPS, in HTTP/1.1 although the client offers HTTP/2 first.
#[tokio::test(flavor = "multi_thread")]
async fn answers_503_over_the_connection_cap_over_https() {
    refuses_over_the_cap(true).await;
}

/// Holds the one place of a control with `--max-connections 1` with a slow measurement
/// (two handshakes stalled for the whole `--timeout` of 6 s), then connects again: the
/// refusal must be an HTTP/1.1 503, at once, and the probe's client must take it for a
/// busy control (which it asks again, then gives up on), not a broken one.
async fn refuses_over_the_cap(https: bool) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new().unwrap();
    let ca_pem = ca.write_pem(dir.path()).unwrap();
    let (cert, key) = ca
        .write_server_files(dir.path(), &["control.test", "127.0.0.1"])
        .unwrap();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let stalled = silent().await.unwrap();
    let zone = [("stall.test", DnsBehaviour::Answer(vec![LOCALHOST]))];
    let mut args = vec![
        "--token",
        TOKEN,
        "--treat-as-public",
        "127.0.0.0/8",
        "--timeout",
        "6",
        "--max-connections",
        "1",
    ];
    if https {
        args.extend(["--tls-cert", cert, "--tls-key", key]);
    }
    let control = Control::start(&zone, &args).await;
    let address = control.address;
    let connector = |alpn: &[&[u8]]| https.then(|| tls::client(&ca_pem, alpn));
    let (http1, both) = (connector(&[b"http/1.1"]), connector(&[b"h2", b"http/1.1"]));

    let slow = json!({
        "targets": [{ "service": "lab", "target": "stall.test", "tls_ports": [stalled.port()] }],
        "control_sni": "canary.test",
    });
    let request = measure_request(address, Some(TOKEN), slow.to_string(), false);
    let holder = tokio::spawn(async move { exchange_at(address, http1.as_ref(), request).await });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let request = measure_request(
        address,
        Some(TOKEN),
        json!({ "targets": [] }).to_string(),
        false,
    );
    let refused = exchange_at(address, both.as_ref(), request).await.unwrap();
    let error = refused.error(503);
    assert!(
        error.contains("busy") && error.contains("(--max-connections)"),
        "{error}"
    );
    assert_eq!(refused.headers[RETRY_AFTER], "1");
    assert_eq!(refused.headers[CONNECTION], "close");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let roots = root_store(Some(&ca_pem)).unwrap();
    let client = ControlClient::new(
        &control.server.url.parse().unwrap(),
        Some(TOKEN.into()),
        TlsContext::new(roots).unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    let empty = ControlRequest::empty();
    let answer = client.measure(&empty).await;
    assert!(
        matches!(answer, Err(ControlClientError::Busy)),
        "{answer:?}"
    );
    assert!(!holder.is_finished(), "the holder's place was given up");
    holder.abort();
}

/// One HTTP/1.1 exchange on a new connection to `address`, over TLS when given a
/// connector (whose ALPN must settle on HTTP/1.1).
async fn exchange_at(
    address: SocketAddr,
    tls: Option<&TlsConnector>,
    request: Request<Full<Bytes>>,
) -> Result<Reply, String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let Some(connector) = tls else {
        return exchange(tcp, false, request).await;
    };
    let name = ServerName::try_from("control.test").unwrap();
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    exchange(stream, false, request).await
}

/// The control's answers carry its clock (`Date`), which the probe reads against its
/// own: one far off reads every certificate as out of date, and every time it records.
#[tokio::test(flavor = "multi_thread")]
async fn tells_the_probe_its_clock() {
    let control = Control::start(&[], &["--token", TOKEN]).await;
    let client = ControlClient::new(
        &control.server.url.parse().unwrap(),
        Some(TOKEN.into()),
        TlsContext::new(root_store(None).unwrap()).unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(client.clock_offset(), None);
    client.measure(&ControlRequest::empty()).await.unwrap();
    let offset = client
        .clock_offset()
        .expect("the control's answer has a Date");
    // The same clock, read to the second.
    assert!(offset.num_milliseconds().abs() <= 1_500, "{offset}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tells_the_probe_its_network_but_never_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let asn_db = dir.path().join("asn.csv");
    std::fs::write(&asn_db, "127.0.0.0,127.255.255.255,64500,Lab,XX\n").unwrap();
    // The client is 127.0.0.1; the target is elsewhere, so that 127.0.0.1 has no
    // honest reason to appear in the response.
    let (_listener, target) = listener_on("127.0.0.2");
    let control = Control::start(
        &[],
        &[
            "--token",
            TOKEN,
            "--treat-as-public",
            "127.0.0.0/8",
            "--asn-db",
            asn_db.to_str().unwrap(),
        ],
    )
    .await;

    // An empty request is how a probe asks where it is.
    let located = control.measure(json!([])).await.results();
    assert_eq!(located.probe_asn.as_deref(), Some("AS64500"));
    assert!(located.results.is_empty());

    let reply = control
        .measure(json!([{ "service": "lab", "target": target.to_string() }]))
        .await;
    let response = reply.results();
    assert_eq!(response.probe_asn.as_deref(), Some("AS64500"));
    assert_eq!(response.probe_cc.as_deref(), Some("XX"));
    assert_eq!(connects(&response.results[0]), [(target, None)]);
    assert!(!reply.text.contains("127.0.0.1"), "{}", reply.text);
    for (name, value) in &reply.headers {
        assert!(!value.to_str().unwrap().contains("127.0.0.1"), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new().unwrap();
    let ca_pem = ca.write_pem(dir.path()).unwrap();
    let (cert_pem, key_pem) = ca
        .write_server_files(dir.path(), &["control.test"])
        .unwrap();
    let control = Control::start(
        &[],
        &[
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        control.server.announced,
        format!("listening on https://{}", control.address)
    );

    let tcp = TcpStream::connect(control.address).await.unwrap();
    let name = ServerName::try_from("control.test").unwrap();
    let tls = tls::client(&ca_pem, &[]).connect(name, tcp).await.unwrap();
    let health = exchange(tls, false, get(control.address, HEALTH_PATH))
        .await
        .unwrap();
    assert_eq!((health.status, health.text.as_str()), (200, "ok"));
}

#[tokio::test(flavor = "multi_thread")]
async fn exits_cleanly_on_sigterm() {
    let mut control = Control::start(&[], &[]).await;
    let pid = control.server.child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = timeout(Duration::from_secs(5), control.server.child.wait())
        .await
        .expect("the server was still running 5 s after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_errors_name_the_file_or_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let missing = "/nonexistent/censorprobe-test.pem";
    let cases: [(&[&str], &str); 3] = [
        (&["--listen", &address], &address),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                missing,
                "--tls-key",
                missing,
            ],
            missing,
        ),
        (&["--listen", "127.0.0.1:0", "--asn-db", missing], missing),
    ];
    for (args, culprit) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_censorprobe"))
            .args(["control", "serve", "--resolver", "udp://127.0.0.1:53"])
            .args(args)
            .kill_on_drop(true)
            .output();
        let output = timeout(Duration::from_secs(10), output)
            .await
            .unwrap_or_else(|_| panic!("the server started with {args:?}"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(culprit), "{args:?}: {stderr}");
    }
}
