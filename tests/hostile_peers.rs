//! Peers that misbehave on purpose (servers in `hostile_peers/servers.rs`): the real
//! probe, run with `--timeout 2`, must exit 0, finish within `WALL_BOUND`, keep its
//! peak memory under `RSS_BOUND_KIB`, and record a sensible verdict for the target.
//! docs/robustness.md states the same bounds.

#[allow(dead_code)]
mod common;
#[path = "hostile_peers/servers.rs"]
mod servers;

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use common::probe::{ProbeRun, run_probe};
use common::*;
use servers::{DnsHostility, H2Hostility, HttpHostility, TlsHostility};

const CANARY: &str = "canary.test";
/// The name every hostile server is reached by.
const HOSTILE: &str = "hostile.test";

/// A run's wall time, for a handful of targets whose every step has a 2 s deadline.
const WALL_BOUND: Duration = Duration::from_secs(15);
/// The probe's peak resident memory: it starts at about 20 MiB, and peaks at about
/// 32 MiB with any of these peers (a debug build); a gzip bomb inflated, a flood kept or
/// an endless body read whole would each take far more.
const RSS_BOUND_KIB: u64 = 100 * 1024;
/// What the probe reads of a body (`measure::http::BODY_CAP`).
const BODY_CAP: u64 = 512 * 1024;

/// A test CA, a healthy HTTPS server for the canary, and a resolver answering the canary
/// and `hostile.test` with 127.0.0.1 unless a test gives other zone entries.
struct Lab {
    https: Healthy,
    resolver: String,
}

impl Lab {
    async fn new() -> Lab {
        Lab::with_dns(&[(HOSTILE, DnsHostility::Answer(LOCALHOST))]).await
    }

    async fn with_dns(zone: &[(&str, DnsHostility)]) -> Lab {
        let mut zone = zone.to_vec();
        zone.push((CANARY, DnsHostility::Answer(LOCALHOST)));
        let resolver = format!("udp://{}", servers::spawn_dns(&zone));
        Lab::with_resolver(resolver).await
    }

    async fn with_resolver(resolver: String) -> Lab {
        Lab {
            https: Healthy::spawn(&[CANARY, HOSTILE]).await,
            resolver,
        }
    }

    /// The port of the healthy server (on 127.0.0.1).
    fn healthy(&self) -> u16 {
        self.https.addr.port()
    }

    /// Runs the probe on one `[[service]]` table, and checks the bounds every hostile
    /// run must keep and that the canary came out healthy.
    async fn run(&self, case: &str, service: &str) -> ProbeRun {
        let targets = format!(
            "[settings]\ncanary = \"{CANARY}\"\ntls_ports = [{}]\ntcp_ports = []\n\n[[service]]\nname = \"hostile\"\n{service}",
            self.healthy()
        );
        let ca_file = self.https.ca_file.to_str().unwrap();
        let run = run_probe(
            &targets,
            &["--resolver", &self.resolver, "--ca-file", ca_file],
        )
        .await;
        // The figures docs/robustness.md's bounds come from (`cargo test -- --nocapture`).
        println!(
            "{case}: wall {:.1} s, peak RSS {:.1} MiB",
            run.wall.as_secs_f64(),
            run.peak_rss_kib as f64 / 1024.0
        );
        assert!(run.status.success(), "{case}: the run failed\n{run}");
        assert!(
            run.wall < WALL_BOUND,
            "{case}: the run took {:?}, more than {WALL_BOUND:?}\n{run}",
            run.wall
        );
        assert!(
            run.peak_rss_kib > 0 && run.peak_rss_kib < RSS_BOUND_KIB,
            "{case}: peak RSS {} KiB, bound {RSS_BOUND_KIB} KiB\n{run}",
            run.peak_rss_kib
        );
        run.assert_verdict(CANARY, "ok", "");
        run
    }
}

/// The measurements of `target` and step `step` from measurements.jsonl.
fn facts(run: &ProbeRun, target: &str, step: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(run.out.join("measurements.jsonl")).unwrap();
    let found: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|m| m["target"] == target && m["step"] == step)
        .collect();
    assert!(
        !found.is_empty(),
        "no {step} measurement of {target}\n{run}"
    );
    found
}

/// The value of header `name` of `hop` (a hop of a fetch in measurements.jsonl, whose
/// headers are `[name, value]` pairs).
fn header<'a>(hop: &'a Value, name: &str) -> &'a str {
    hop["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("no headers in {hop}"))
        .iter()
        .find(|h| h[0] == name)
        .unwrap_or_else(|| panic!("no {name} header in {hop}"))[1]
        .as_str()
        .unwrap()
}

/// The single fetch of URL `target`.
fn fetch(run: &ProbeRun, target: &str) -> Value {
    facts(run, target, "http").remove(0)
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{HOSTILE}:{}{path}", addr.port())
}

fn urls(url: &str) -> String {
    format!("urls = [\"{url}\"]\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_body_is_read_up_to_the_cap() {
    let lab = Lab::new().await;
    let target = url(servers::spawn_http(HttpHostility::EndlessBody).await, "/");
    let run = lab.run("endless body", &urls(&target)).await;
    run.assert_verdict(&target, "ok", "");
    let hop = &fetch(&run, &target)["hops"][0];
    assert_eq!(hop["body_length"], BODY_CAP, "{hop}");
    assert_eq!(hop["body_truncated"], true, "{hop}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dripping_body_times_out() {
    let lab = Lab::new().await;
    let target = url(servers::spawn_http(HttpHostility::DripBody).await, "/");
    let run = lab.run("drip", &urls(&target)).await;
    // Cut off by the deadline after a few bytes: a slow transfer, no evidence of
    // interference by itself.
    run.assert_verdict(&target, "inconclusive", "");
    assert!(
        run.row(&target)
            .evidence
            .contains("cut off by the deadline"),
        "{run}"
    );
    let fetch = fetch(&run, &target);
    assert_eq!(fetch["failure"], "generic_timeout_error", "{fetch}");
    assert_eq!(fetch["failed_operation"], "read", "{fetch}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mebibyte_of_header_lines_is_refused() {
    let lab = Lab::new().await;
    let target = url(servers::spawn_http(HttpHostility::ManyHeaders).await, "/");
    let run = lab.run("1 MiB of headers", &urls(&target)).await;
    run.assert_verdict(&target, "anomaly", "http-failure");
    let fetch = fetch(&run, &target);
    assert_eq!(fetch["failed_operation"], "http_round_trip", "{fetch}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_kib_header_is_kept() {
    let lab = Lab::new().await;
    let target = url(servers::spawn_http(HttpHostility::HugeHeader).await, "/");
    let run = lab.run("100 KiB header", &urls(&target)).await;
    run.assert_verdict(&target, "ok", "");
    let hop = &fetch(&run, &target)["hops"][0];
    assert_eq!(header(hop, "x-huge").len(), 100 * 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_bomb_is_not_inflated() {
    // The bomb is real: one member inflates to 1 MiB, and there are 1,024 of them.
    let (member, members) = servers::gzip_bomb();
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(member)
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated.len() * members, 1 << 30);
    assert!(member.len() * members < 2 << 20, "{} bytes", member.len());

    let lab = Lab::new().await;
    let target = url(servers::spawn_http(HttpHostility::GzipBomb).await, "/");
    let run = lab.run("gzip bomb", &urls(&target)).await;
    run.assert_verdict(&target, "ok", "");
    let hop = &fetch(&run, &target)["hops"][0];
    assert_eq!(hop["body_length"], BODY_CAP, "{hop}");
    assert_eq!(hop["body_truncated"], true, "{hop}");
    // The body is kept as sent, lossily decoded: gzip's magic (0x1f 0x8b, the second
    // byte a U+FFFD), then the members' bytes, not the zeros the bomb inflates to. (The
    // raw bytes have NULs of their own, in the header's MTIME and the deflate stream,
    // so what tells them from inflated zeros is that they are not all NULs.)
    let prefix = hop["body_prefix"].as_str().unwrap();
    assert!(prefix.starts_with("\u{1f}\u{fffd}"), "{hop}");
    assert!(prefix.chars().any(|c| c != '\0'), "{hop}");
    let sent = String::from_utf8_lossy(&member.repeat(members)).into_owned();
    assert!(
        prefix.len() > member.len() && sent.starts_with(prefix),
        "body_prefix is not the body as sent: {hop}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_informational_responses_time_out() {
    let lab = Lab::new().await;
    let target = url(
        servers::spawn_http(HttpHostility::EndlessInformational).await,
        "/",
    );
    let run = lab.run("endless 100 Continue", &urls(&target)).await;
    run.assert_verdict(&target, "anomaly", "http-failure");
    let fetch = fetch(&run, &target);
    assert_eq!(fetch["failure"], "generic_timeout_error", "{fetch}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_loop_is_cut_when_it_comes_back() {
    let lab = Lab::new().await;
    let target = url(servers::spawn_http(HttpHostility::RedirectLoop).await, "/a");
    let run = lab.run("redirect loop", &urls(&target)).await;
    run.assert_verdict(&target, "anomaly", "http-failure");
    let fetch = fetch(&run, &target);
    assert_eq!(fetch["hops"].as_array().unwrap().len(), 2, "{fetch}");
    assert_eq!(
        fetch["failure"], "unknown_failure: redirect loop",
        "{fetch}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_chain_of_50_stops_after_10() {
    let lab = Lab::new().await;
    let server = servers::spawn_http(HttpHostility::RedirectChain(50)).await;
    let long = url(server, "/hop/1");
    // Within the limit, a chain is followed to its end.
    let short = url(
        servers::spawn_http(HttpHostility::RedirectChain(10)).await,
        "/hop/1",
    );
    let service = format!("urls = [\"{long}\", \"{short}\"]\n");
    let run = lab.run("redirect chain of 50", &service).await;
    run.assert_verdict(&long, "anomaly", "http-failure");
    let fetch_long = fetch(&run, &long);
    assert_eq!(
        fetch_long["hops"].as_array().unwrap().len(),
        11,
        "{fetch_long}"
    );
    assert_eq!(
        fetch_long["failure"], "unknown_failure: too many redirects",
        "{fetch_long}"
    );
    run.assert_verdict(&short, "ok", "");
    assert_eq!(fetch(&run, &short)["hops"].as_array().unwrap().len(), 10);
}

/// An HTTP/2 server with the lab's certificate, fetched over https.
async fn h2_run(hostility: H2Hostility, case: &str) -> (ProbeRun, String) {
    let lab = Lab::new().await;
    let (chain, key) = lab.https.ca.issue(&[HOSTILE]).unwrap();
    let server = servers::spawn_h2(chain, key, hostility).await;
    let target = format!("https://{HOSTILE}:{}/", server.port());
    let run = lab.run(case, &urls(&target)).await;
    (run, target)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mebibyte_of_http2_headers_is_refused() {
    let (run, target) = h2_run(H2Hostility::ManyHeaders, "1 MiB of HTTP/2 headers").await;
    run.assert_verdict(&target, "anomaly", "http-failure");
    let fetch = fetch(&run, &target);
    assert_eq!(fetch["failed_operation"], "http_round_trip", "{fetch}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_kib_http2_header_is_kept_as_over_http1() {
    let (run, target) = h2_run(H2Hostility::HugeHeader, "100 KiB HTTP/2 header").await;
    run.assert_verdict(&target, "ok", "");
    let hop = &fetch(&run, &target)["hops"][0];
    assert_eq!(hop["tls"]["alpn"], "h2", "{hop}");
    assert_eq!(header(hop, "x-huge").len(), 100 * 1024);
}

/// A domain whose only TLS port is `port`.
fn tls_service(port: u16) -> String {
    format!("domains = [\"{HOSTILE}\"]\ntls_ports = [{port}]\n")
}

/// A domain served by a hostile TLS server, made by `hostility` from the lab (whose CA
/// can issue it a certificate): the target is a TLS anomaly, every handshake failing
/// with `failure`.
async fn tls_case(hostility: impl FnOnce(&Lab) -> TlsHostility, case: &str, failure: &str) {
    let lab = Lab::new().await;
    let server = servers::spawn_tls(hostility(&lab)).await;
    let run = lab.run(case, &tls_service(server.port())).await;
    run.assert_verdict(HOSTILE, "anomaly", "tls-failure");
    for handshake in facts(&run, HOSTILE, "tls_handshake") {
        assert_eq!(handshake["failure"], failure, "{handshake}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_for_a_server_hello_is_a_failed_handshake() {
    tls_case(
        |_| TlsHostility::Garbage,
        "TLS garbage",
        "ssl_failed_handshake",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_stalled_after_client_hello_times_out() {
    tls_case(
        |_| TlsHostility::Stall,
        "TLS stall",
        "generic_timeout_error",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn handshake_stalled_after_the_server_hello_times_out() {
    let stall = |lab: &Lab| {
        let (chain, key) = lab.https.ca.issue(&[CANARY, HOSTILE]).unwrap();
        TlsHostility::StallAfterServerHello(
            censorprobe::lab::tls::server_config(chain, key).unwrap(),
        )
    };
    tls_case(
        stall,
        "TLS stall after ServerHello",
        "generic_timeout_error",
    )
    .await;
}

/// The DNS measurement of `hostile.test`'s A query.
fn a_lookup(run: &ProbeRun) -> Value {
    facts(run, HOSTILE, "dns")
        .into_iter()
        .find(|m| m["query_type"] == "A")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn flood_of_forged_replies_is_capped_and_the_right_one_found() {
    let lab = Lab::with_dns(&[(HOSTILE, DnsHostility::Flood)]).await;
    let run = lab.run("DNS flood", &tls_service(lab.healthy())).await;
    run.assert_verdict(HOSTILE, "ok", "");
    let lookup = a_lookup(&run);
    assert_eq!(
        lookup["addresses"],
        serde_json::json!(["127.0.0.1"]),
        "{lookup}"
    );
    let replies = lookup["replies"].as_array().unwrap();
    // One right answer, or two if the flood outlasted the probe's first resend.
    let matching: Vec<&Value> = replies
        .iter()
        .filter(|r| r["matches_query"] == true)
        .collect();
    assert!(!matching.is_empty(), "{lookup}");
    for reply in matching {
        assert_eq!(reply["answers"][0]["data"], "127.0.0.1", "{reply}");
    }
    assert!(
        replies.len() <= 2 * censorprobe::measure::dns::MAX_REPLIES,
        "{} replies kept",
        replies.len()
    );
    let dropped = lookup["dropped_replies"].as_u64().unwrap_or(0);
    assert!(
        dropped as usize + replies.len() > servers::FLOOD_BEFORE,
        "{dropped} dropped and {} kept of a flood of more than {}",
        replies.len(),
        servers::FLOOD_BEFORE
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_replies_are_recorded_and_the_right_one_found() {
    let lab = Lab::with_dns(&[
        (HOSTILE, DnsHostility::Malformed { then_answer: true }),
        ("junk.test", DnsHostility::Malformed { then_answer: false }),
    ])
    .await;
    let service = format!(
        "domains = [\"{HOSTILE}\", \"junk.test\"]\ntls_ports = [{}]\n",
        lab.healthy()
    );
    let run = lab.run("malformed DNS", &service).await;
    run.assert_verdict(HOSTILE, "ok", "");
    let lookup = a_lookup(&run);
    // Every datagram before the answer is kept, as it came (the query is sent again
    // during the listening window, and each copy brings the junk again).
    let before_answer = lookup["replies"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|r| r["matches_query"] == false)
        .count();
    assert_eq!(before_answer, servers::malformed(0).len(), "{lookup}");
    // Junk alone is no answer: the lookup fails at its deadline.
    run.assert_verdict("junk.test", "anomaly", "dns-failure");
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_resolver_stalling_mid_message_times_out() {
    let server = servers::spawn_stalling_tcp_dns(&[CANARY]).await;
    let lab = Lab::with_resolver(format!("tcp://{server}")).await;
    let run = lab.run("TCP DNS stall", &tls_service(lab.healthy())).await;
    run.assert_verdict(HOSTILE, "anomaly", "dns-failure");
    assert_eq!(a_lookup(&run)["failure"], "generic_timeout_error");
}

/// A server that ends its TLS session after reading the request, with no response:
/// with its `close_notify` alert (Caddy's `abort`), the fetch records it and reads as
/// the site's own close (`inconclusive`: a censor could provoke one); with a bare FIN, which anyone on the path can
/// send, it records none and the failure stands. A censor cannot write the alert into
/// the session, so the one must never pass for the other.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_the_server_closes_is_told_from_a_bare_fin() {
    for close_notify in [true, false] {
        let lab = Lab::new().await;
        let (chain, key) = lab.https.ca.issue(&[CANARY, HOSTILE]).unwrap();
        let config = censorprobe::lab::tls::server_config(chain, key).unwrap();
        let server = servers::spawn_tls_closing(config, close_notify).await;
        let target = format!("https://{HOSTILE}:{}/", server.port());
        let case = format!("TLS closed, close_notify {close_notify}");
        let run = lab.run(&case, &urls(&target)).await;
        let fetched = fetch(&run, &target);
        let hop = &fetched["hops"][0];
        assert_eq!(fetched["failure"], "eof_error", "{case}: {fetched}");
        assert_eq!(hop["tls"]["handshake_done"], true, "{case}: {hop}");
        assert_eq!(hop["close_notify"] == true, close_notify, "{case}: {hop}");
        let row = run.row(&target);
        assert_eq!(
            row.evidence.contains("the site's own close"),
            close_notify,
            "{case}: {row:?}"
        );
        if close_notify {
            run.assert_verdict(&target, "inconclusive", "");
        }
    }
}
