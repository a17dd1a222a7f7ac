//! `censorprobe control serve` under load and under attack, run as the real binary on
//! loopback: many well-behaved probes at once while other clients trickle, send too
//! much, send nonsense or sit idle; the caps on connections; and the SSRF guard against
//! DNS answers and redirects that lead to forbidden addresses.
//!
//! The tests assert behaviour, within bounds that a loaded debug build on two cores
//! meets, and print what they measured. The `#[ignore]`d benchmark only prints figures:
//! `cargo test --release --test control_load -- --include-ignored --nocapture`.
//!
//! Abusers connect from their own loopback addresses (127.0.0.10 and up), as abusers on
//! the internet come from hosts other than the probes'; the probes from 127.0.0.1.

#[allow(dead_code)]
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::Full;
use hyper::Request;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::{sleep, timeout};
use tokio_rustls::TlsConnector;

use censorprobe::control::protocol::{ControlResult, HEALTH_PATH, MEASURE_PATH};
use censorprobe::facts::failure::Failure;
use censorprobe::facts::{HttpFacts, Step};
use censorprobe::input::bogon::AddressPolicy;
use common::control::{self, Reply, exchange};
use common::{Ca, ControlServer, DnsBehaviour, DnsServer, HttpServer, tls};

const TOKEN: &str = "load-test-token";
/// The server's `CLIENT_TIMEOUT`: how long a client may take to send a request's head,
/// and then its body.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack on every deadline, for a loaded debug build on two cores.
const SLACK: Duration = Duration::from_secs(4);
/// The `--max-body` of these tests' servers.
const MAX_BODY: usize = 32 * 1024;
/// The p99 latency of a well-behaved request, 503s and retries included, under abuse.
const P99_BOUND: Duration = Duration::from_secs(5);
/// The server's peak resident memory under the always-run load.
const RSS_BOUND_KIB: u64 = 150 * 1024;

/// Starts a server for probes on loopback (127.0.0.0/8 treated as public, a lab
/// resolver that knows no names), with the tests' token and `--max-body`.
async fn start(extra: &[&str]) -> ControlServer {
    let resolver = format!("udp://{}", DnsServer::spawn(&[]).unwrap());
    let max_body = MAX_BODY.to_string();
    let mut args = vec![
        "--resolver",
        &resolver,
        "--token",
        TOKEN,
        "--treat-as-public",
        "127.0.0.0/8",
        "--timeout",
        "3",
        "--max-body",
        &max_body,
    ];
    args.extend_from_slice(extra);
    ControlServer::spawn(&args).await
}

/// A port of 127.0.0.1 that accepts every connection and closes it: an endpoint target
/// that measures as reachable, however many connects it gets.
async fn acceptor() -> SocketAddr {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    // Room for the server's bursts of connects (tokio's default backlog is 128).
    let listener = socket.listen(1024).unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            drop(listener.accept().await);
        }
    });
    address
}

/// What a probe sends: two endpoint targets on loopback.
fn probe_body(endpoints: &[SocketAddr]) -> Bytes {
    let targets: Vec<Value> = endpoints
        .iter()
        .map(|e| json!({ "service": "lab", "target": e.to_string() }))
        .collect();
    Bytes::from(json!({ "targets": targets }).to_string())
}

/// A measure request with the token, as `ControlClient` sends it, over HTTP/1.1.
fn measure_request(server: SocketAddr, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    control::measure_request(server, Some(TOKEN), body, false)
}

/// One HTTP/1.1 exchange on a new connection to `server` from `source`.
async fn exchange_from(
    source: Ipv4Addr,
    server: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Reply {
    let tcp = connect_from(source, server).await;
    exchange(tcp, false, request).await.unwrap()
}

/// A well-behaved probe's request: a connection of its own (over TLS with `tls`),
/// retried with jittered exponential backoff while the server is busy (503, at its caps
/// on requests or connections) or closes the connection (refusing more than it answers
/// at once), as `ControlClient` does.
async fn probe_request(server: SocketAddr, body: Bytes, tls: Option<&TlsConnector>) -> Answered {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut refusals = 0;
    for _ in 0..8 {
        let attempt = async {
            let tcp = TcpStream::connect(server)
                .await
                .map_err(|e| e.to_string())?;
            match tls {
                None => exchange(tcp, false, measure_request(server, body.clone())).await,
                Some(connector) => {
                    let name = ServerName::try_from("control.test").unwrap();
                    let stream = connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| e.to_string())?;
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let request = control::measure_request(server, Some(TOKEN), body.clone(), h2);
                    exchange(stream, h2, request).await
                }
            }
        };
        match timeout(Duration::from_secs(30), attempt).await {
            Ok(Ok(reply)) if reply.status == 200 => {
                assert_eq!(reply.results().results.len(), 2, "{}", reply.text);
                return Answered {
                    latency: started.elapsed(),
                    refusals,
                };
            }
            Ok(Ok(Reply { status: 503, .. }) | Err(_)) => refusals += 1,
            Ok(Ok(reply)) => panic!(
                "a well-behaved request got {}: {}",
                reply.status, reply.text
            ),
            Err(_) => panic!("a well-behaved request got no answer within 30 s"),
        }
        sleep(delay.mul_f64(rand::random_range(0.5..1.5))).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    panic!("a well-behaved request was refused 8 times");
}

struct Answered {
    /// From the first attempt to the answer.
    latency: Duration,
    /// 503s and closed connections before it.
    refusals: u32,
}

/// `clients` probes, each sending `requests` requests one after another.
async fn probes(
    server: SocketAddr,
    clients: usize,
    requests: usize,
    body: Bytes,
    tls: Option<TlsConnector>,
) -> Load {
    let started = Instant::now();
    let tls = tls.map(Arc::new);
    let runs = (0..clients).map(|_| {
        let (body, tls) = (body.clone(), tls.clone());
        tokio::spawn(async move {
            let mut answered = Vec::new();
            for _ in 0..requests {
                answered.push(probe_request(server, body.clone(), tls.as_deref()).await);
            }
            answered
        })
    });
    let answered: Vec<Answered> = join_all(runs)
        .await
        .into_iter()
        .flat_map(|run| run.unwrap())
        .collect();
    let mut latencies: Vec<Duration> = answered.iter().map(|a| a.latency).collect();
    latencies.sort();
    Load {
        elapsed: started.elapsed(),
        refusals: answered.iter().map(|a| a.refusals).sum(),
        latencies,
    }
}

/// What a load of probes met.
struct Load {
    elapsed: Duration,
    latencies: Vec<Duration>,
    refusals: u32,
}

impl Load {
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 * p).ceil() as usize).max(1) - 1;
        self.latencies[index]
    }

    fn report(&self, what: &str) -> String {
        format!(
            "{what}: {} requests in {:.1} s = {:.0} requests/s; latency p50 {:?}, p99 {:?}, max {:?}; {} refusals (503 or closed) retried",
            self.latencies.len(),
            self.elapsed.as_secs_f64(),
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            self.percentile(0.5),
            self.percentile(0.99),
            self.latencies.last().unwrap(),
            self.refusals,
        )
    }
}

/// A field of `/proc/PID/status`, in KiB (VmHWM: the peak resident set; VmRSS: now).
fn memory_kib(pid: u32, field: &str) -> u64 {
    common::proc_status_kib(pid, field)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// How many sockets this process may open: the abusers are scaled to it, so that a CI
/// runner with the common soft limit of 1024 does not fail on our side.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

/// A connection to `server` from `source`, one of loopback's addresses.
async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(server).await.unwrap()
}

/// How a connection ended.
#[derive(Debug)]
struct Ending {
    /// From when the client's head was sent to the server's close.
    after: Duration,
    /// The status line's code, if the server answered before closing.
    status: Option<u16>,
}

/// Reads what the server sends until it closes the connection (EOF or reset), for at
/// most `within`; `None` if it is still open then.
async fn closed_within<R: AsyncRead + Unpin>(reader: &mut R, within: Duration) -> Option<Ending> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    timeout(within, read_all).await.ok()?;
    let status = received
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok());
    Some(Ending {
        after: started.elapsed(),
        status,
    })
}

/// How many of `streams` the server keeps open (for half a second, at least).
async fn count_open(streams: &mut [TcpStream]) -> usize {
    let endings = join_all(
        streams
            .iter_mut()
            .map(|stream| closed_within(stream, Duration::from_millis(500))),
    )
    .await;
    endings.iter().filter(|ending| ending.is_none()).count()
}

/// Opens `count` connections from `source` and sends `head` on each; then, while the
/// server has not closed it, one byte of `trickle` every `every`. Returns how each one
/// ended, timed from when its head was sent.
async fn abuse(
    source: Ipv4Addr,
    server: SocketAddr,
    count: usize,
    head: Vec<u8>,
    trickle: Vec<u8>,
    every: Duration,
) -> Vec<Option<Ending>> {
    let connections = (0..count).map(|_| {
        let (head, trickle) = (head.clone(), trickle.clone());
        async move {
            let stream = connect_from(source, server).await;
            let (mut reader, mut writer) = stream.into_split();
            if writer.write_all(&head).await.is_err() {
                return closed_within(&mut reader, SLACK).await;
            }
            let trickling = tokio::spawn(async move {
                for byte in trickle {
                    sleep(every).await;
                    if writer.write_all(&[byte]).await.is_err() {
                        break;
                    }
                }
                std::future::pending::<()>().await
            });
            let ending = closed_within(&mut reader, CLIENT_TIMEOUT * 2 + SLACK).await;
            trickling.abort();
            ending
        }
    });
    join_all(connections).await
}

/// Asserts that every connection of an abuser ended within `bound`, with one of
/// `statuses` or none at all (a plain close), and says how they ended.
fn check(what: &str, endings: &[Option<Ending>], bound: Duration, statuses: &[u16]) -> String {
    let ended: Vec<&Ending> = endings.iter().flatten().collect();
    let slowest = ended.iter().map(|e| e.after).max().unwrap_or_default();
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for ending in &ended {
        let answer = ending.status.map_or("closed".into(), |s| s.to_string());
        *answers.entry(answer).or_default() += 1;
    }
    let summary = format!(
        "{what}: {} connections, {} closed by the server, the last after {slowest:.1?} ({answers:?})",
        endings.len(),
        ended.len()
    );
    assert_eq!(ended.len(), endings.len(), "some still open: {summary}");
    assert!(slowest <= bound, "some closed after {bound:?}: {summary}");
    let unexpected = ended
        .iter()
        .filter_map(|e| e.status)
        .find(|status| !statuses.contains(status));
    assert_eq!(unexpected, None, "{summary}");
    summary
}

/// Pseudo-random bytes that are not HTTP (nor the start of HTTP/2's preface).
fn nonsense() -> Vec<u8> {
    let mut bytes = vec![0u8; 512];
    rand::fill(&mut bytes[..]);
    bytes[0] = 0x00;
    bytes
}

fn head(lines: &[&str]) -> Vec<u8> {
    lines
        .iter()
        .map(|line| format!("{line}\r\n"))
        .collect::<String>()
        .into_bytes()
}

/// The request head of a measure request with the token and a body to come.
fn post_head(extra: &str) -> Vec<u8> {
    head(&[
        &format!("POST {MEASURE_PATH} HTTP/1.1"),
        "Host: control.test",
        "Content-Type: application/json",
        &format!("Authorization: Bearer {TOKEN}"),
        extra,
        "",
    ])
}

/// Every kind of abuse at once against an HTTP server, each from its own addresses;
/// returns a line per kind, having checked it.
async fn abuse_http(server: SocketAddr, idle: usize) -> Vec<String> {
    let source = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    let near = |d: Duration| d + SLACK;
    // Spread over addresses as idle connections from many hosts would be.
    let idlers = (0..idle.div_ceil(100)).map(|i| {
        let count = 100.min(idle - i * 100);
        abuse(
            source(10 + i as u8),
            server,
            count,
            Vec::new(),
            Vec::new(),
            SLACK,
        )
    });
    let slowloris = head(&[
        &format!("POST {MEASURE_PATH} HTTP/1.1"),
        "Host: control.test",
        "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ]);
    let (idlers, slowloris, slow_body, declared, chunked, oversized_head, garbage, h2_garbage) = tokio::join!(
        join_all(idlers),
        // A request head that never ends, a byte every 2 s.
        abuse(
            source(30),
            server,
            100,
            Vec::new(),
            slowloris,
            Duration::from_secs(2)
        ),
        // More bodies trickling in than there are places in flight (32).
        abuse(
            source(31),
            server,
            40,
            post_head("Content-Length: 1000"),
            vec![b' '; 1000],
            Duration::from_secs(1),
        ),
        // A body said to be over --max-body, then trickling.
        abuse(
            source(32),
            server,
            10,
            post_head(&format!("Content-Length: {}", MAX_BODY * 10)),
            vec![b' '; 100],
            Duration::from_secs(1),
        ),
        // A chunked body growing past --max-body, 4 KiB every 250 ms.
        chunked_oversized(source(33), server, 10),
        // A request head past what the server buffers.
        abuse(
            source(34),
            server,
            10,
            head(&[
                "GET /health HTTP/1.1",
                &format!("X-Long: {}", "a".repeat(20_000))
            ]),
            Vec::new(),
            SLACK,
        ),
        abuse(source(35), server, 50, nonsense(), Vec::new(), SLACK),
        abuse(
            source(36),
            server,
            20,
            [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], &nonsense()].concat(),
            Vec::new(),
            SLACK,
        ),
    );
    let (malformed, unauthorized) = tokio::join!(malformed(server), unauthorized(server));
    vec![
        check(
            "idle connections",
            &idlers.into_iter().flatten().collect::<Vec<_>>(),
            near(CLIENT_TIMEOUT),
            &[],
        ),
        check("slowloris heads", &slowloris, near(CLIENT_TIMEOUT), &[]),
        check(
            "bodies trickling in",
            &slow_body,
            near(CLIENT_TIMEOUT),
            &[408],
        ),
        check("bodies said to be too large", &declared, SLACK, &[413]),
        check(
            "chunked bodies growing too large",
            &chunked,
            near(Duration::from_secs(3)),
            &[413],
        ),
        check("heads too long", &oversized_head, SLACK, &[431]),
        check("nonsense bytes", &garbage, near(CLIENT_TIMEOUT), &[400]),
        // Refused at once, unless the nonsense reads as the start of a frame: then the
        // server waits for the rest until the first request's deadline.
        check(
            "HTTP/2 preface and nonsense",
            &h2_garbage,
            near(CLIENT_TIMEOUT),
            &[],
        ),
        malformed,
        unauthorized,
    ]
}

/// Chunked bodies that grow past `--max-body` 4 KiB at a time: each must get 413 once
/// it is over, not after the whole of it.
async fn chunked_oversized(
    source: Ipv4Addr,
    server: SocketAddr,
    count: usize,
) -> Vec<Option<Ending>> {
    let connections = (0..count).map(|_| async move {
        let stream = connect_from(source, server).await;
        let (mut reader, mut writer) = stream.into_split();
        writer
            .write_all(&post_head("Transfer-Encoding: chunked"))
            .await
            .unwrap();
        let chunk = [
            format!("{:x}\r\n", 4096).into_bytes(),
            vec![b' '; 4096],
            b"\r\n".to_vec(),
        ]
        .concat();
        let sending = tokio::spawn(async move {
            for _ in 0..(MAX_BODY * 4 / 4096) {
                if writer.write_all(&chunk).await.is_err() {
                    break;
                }
                sleep(Duration::from_millis(250)).await;
            }
            std::future::pending::<()>().await
        });
        let ending = closed_within(&mut reader, CLIENT_TIMEOUT + SLACK).await;
        sending.abort();
        ending
    });
    join_all(connections).await
}

/// Requests with the token whose body is not JSON, or not a request: each gets 400.
async fn malformed(server: SocketAddr) -> String {
    let bodies = [
        "{\"targets\": [",
        "not json at all",
        "{\"targets\": 7}",
        "[]",
    ];
    let started = Instant::now();
    let mut count = 0;
    for _ in 0..25 {
        for body in bodies {
            let source = Ipv4Addr::new(127, 0, 0, 37);
            let reply = exchange_from(source, server, measure_request(server, body)).await;
            assert_eq!(reply.status, 400, "{body:?}: {}", reply.text);
            count += 1;
        }
    }
    format!(
        "malformed JSON: {count} requests, all 400, in {:.1?}",
        started.elapsed()
    )
}

/// Requests without the token, or with a wrong one: each gets 401.
async fn unauthorized(server: SocketAddr) -> String {
    let started = Instant::now();
    let body = probe_body(&[SocketAddr::from(([127, 0, 0, 1], 9))]);
    for token in ["", "wrong", &"x".repeat(4096)] {
        for _ in 0..25 {
            let request = control::measure_request(server, Some(token), body.clone(), false);
            let reply = exchange_from(Ipv4Addr::new(127, 0, 0, 38), server, request).await;
            assert_eq!(reply.status, 401);
        }
    }
    format!(
        "wrong tokens: 75 requests, all 401, in {:.1?}",
        started.elapsed()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keeps_answering_probes_while_abused() {
    let endpoints = [acceptor().await, acceptor().await];
    let server = start(&[]).await;
    let pid = server.child.id().unwrap();
    let address = server.address;
    // Each idle connection costs a descriptor here and one in the server.
    let idle = 500.min(open_files_limit().saturating_sub(600)).max(50);

    let abusers = tokio::spawn(abuse_http(address, idle));
    // Let the abusers take their places before the probes come.
    sleep(Duration::from_secs(1)).await;
    let during = probes(address, 50, 10, probe_body(&endpoints), None).await;
    let abused = abusers.await.unwrap();
    let after = probes(address, 10, 5, probe_body(&endpoints), None).await;

    let peak = memory_kib(pid, "VmHWM");
    println!("{}", during.report("50 probes × 10 requests, while abused"));
    println!("{}", after.report("10 probes × 5 requests, after"));
    for line in &abused {
        println!("{line}");
    }
    println!(
        "server memory: peak {} MiB (VmHWM), now {} MiB (VmRSS)",
        peak / 1024,
        memory_kib(pid, "VmRSS") / 1024
    );
    assert!(
        during.percentile(0.99) < P99_BOUND,
        "{}",
        during.report("while abused")
    );
    assert!(
        peak < RSS_BOUND_KIB,
        "peak RSS {peak} KiB, over {RSS_BOUND_KIB}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keeps_answering_probes_over_https_while_abused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, connector) = https_files(dir.path());
    let endpoints = [acceptor().await, acceptor().await];
    let server = start(&["--tls-cert", &cert, "--tls-key", &key]).await;
    let address = server.address;
    let source = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    // A TLS record header announcing a ClientHello that never comes.
    let stalled_hello = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    let plain = head(&[
        &format!("GET {HEALTH_PATH} HTTP/1.1"),
        "Host: control.test",
        "",
    ]);
    let abusers = tokio::spawn(async move {
        tokio::join!(
            abuse(source(40), address, 50, nonsense(), Vec::new(), SLACK),
            abuse(source(41), address, 100, stalled_hello, Vec::new(), SLACK),
            abuse(source(42), address, 100, Vec::new(), Vec::new(), SLACK),
            abuse(source(43), address, 20, plain, Vec::new(), SLACK),
        )
    });
    sleep(Duration::from_secs(1)).await;
    let during = probes(address, 10, 5, probe_body(&endpoints), Some(connector)).await;
    let (garbage, stalled, idle, plain) = abusers.await.unwrap();
    let near = |d: Duration| d + SLACK;
    let lines = [
        during.report("10 probes × 5 requests over HTTPS (HTTP/2), while abused"),
        check("TLS: nonsense bytes", &garbage, SLACK, &[]),
        check(
            "TLS: stalled handshakes",
            &stalled,
            near(CLIENT_TIMEOUT),
            &[],
        ),
        check("TLS: idle connections", &idle, near(CLIENT_TIMEOUT), &[]),
        check("TLS: plain HTTP", &plain, SLACK, &[]),
    ];
    for line in lines {
        println!("{line}");
    }
    assert!(during.percentile(0.99) < P99_BOUND);
}

/// A certificate and key for control.test issued by a test CA, as PEM files in `dir`,
/// and a TLS client that trusts that CA only and offers HTTP/2 first, as probes do.
fn https_files(dir: &Path) -> (String, String, TlsConnector) {
    let ca = Ca::new().unwrap();
    let (cert, key) = ca.write_server_files(dir, &["control.test"]).unwrap();
    let client = tls::client(&ca.write_pem(dir).unwrap(), &[b"h2", b"http/1.1"]);
    let path = |p: PathBuf| p.to_str().unwrap().to_string();
    (path(cert), path(key), client)
}

/// How long the server takes over refusing a connection over its caps.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread")]
async fn caps_connections_in_all_and_per_client() {
    let endpoints = [acceptor().await, acceptor().await];
    let server = start(&[
        "--max-connections",
        "40",
        "--max-connections-per-client",
        "10",
    ])
    .await;
    let address = server.address;
    let source = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    let open =
        |n: u8, count: usize| join_all((0..count).map(move |_| connect_from(source(n), address)));
    // A request over a cap: answered 503, saying which cap, then closed.
    let refused = |n: u8, cap: &'static str| async move {
        let started = Instant::now();
        let reply = exchange_from(source(n), address, control::get(address, HEALTH_PATH)).await;
        let error = reply.error(503);
        assert!(error.contains(&format!("({cap})")), "{error}");
        assert_eq!(reply.headers["retry-after"], "1");
        assert_eq!(reply.headers["connection"], "close");
        started.elapsed()
    };

    let started = Instant::now();
    let mut held = open(50, 10).await;
    assert_eq!(count_open(&mut held).await, 10);
    let per_client = refused(50, "--max-connections-per-client").await;
    // A connection over the cap that sends nothing is closed, unanswered, in time.
    let mut idle = connect_from(source(50), address).await;
    let ending = closed_within(&mut idle, REFUSAL_DEADLINE + SLACK).await;
    assert!(
        ending.as_ref().is_some_and(|e| e.status.is_none()),
        "{ending:?}"
    );
    for n in 51..54 {
        let mut more = open(n, 10).await;
        assert_eq!(count_open(&mut more).await, 10);
        held.extend(more);
    }
    let in_all = refused(54, "--max-connections").await;
    let probe = refused(1, "--max-connections").await;
    assert!(
        [per_client, in_all, probe].iter().all(|t| *t < SLACK),
        "refusals took {per_client:?}, {in_all:?}, {probe:?}"
    );

    // The idle connections are closed within CLIENT_TIMEOUT, and their places freed.
    let endings = join_all(
        held.iter_mut()
            .map(|stream| closed_within(stream, CLIENT_TIMEOUT + SLACK)),
    )
    .await;
    assert!(endings.iter().all(Option::is_some));
    let freed = started.elapsed();
    let answered = probes(address, 1, 1, probe_body(&endpoints), None).await;
    println!(
        "caps: refusals answered 503 in {per_client:?} (per client), {in_all:?} (in all), {probe:?} (a probe); every place held by idle connections, all closed by {freed:.1?}, then a probe answered in {:?}",
        answered.latencies[0]
    );
}

/// The addresses a result's TCP connects and TLS handshakes went to.
fn connects(result: &ControlResult) -> Vec<SocketAddr> {
    result
        .measurements
        .iter()
        .filter_map(|m| match &m.step {
            Step::TcpConnect(tcp) => Some(tcp.address),
            Step::TlsHandshake(tls) => Some(tls.address),
            _ => None,
        })
        .collect()
}

fn fetch(result: &ControlResult) -> &HttpFacts {
    result
        .measurements
        .iter()
        .find_map(|m| match &m.step {
            Step::Http(http) => Some(http),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no HTTP measurement: {result:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn never_measures_forbidden_addresses_from_dns_or_redirects() {
    // The address a confused server would reach: it must see no connection at all.
    let forbidden = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = forbidden.local_addr().unwrap().port();
    let loopback: IpAddr = Ipv4Addr::LOCALHOST.into();
    let public: IpAddr = Ipv4Addr::new(127, 0, 0, 2).into();
    // 127.0.0.1 inside IPv6: mapped, compatible, 6to4, Teredo (inverted) and NAT64.
    let disguised: Vec<IpAddr> = [
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "2002:7f00:1::1",
        "2001:0:a0b:c0d::80ff:fffe",
        "64:ff9b::127.0.0.1",
    ]
    .iter()
    .map(|ip| ip.parse().unwrap())
    .collect();
    // IPv6 has no equivalent of the IPv4 safety net below (the kernel sends from ::1
    // to anywhere), so the bogon check is asked first: were it to let one of these
    // through, the test stops here, before any packet could leave loopback.
    let policy = AddressPolicy::new(vec!["127.0.0.2/32".parse().unwrap()]);
    for ip in disguised.iter().chain([&loopback]) {
        assert!(policy.is_bogon(*ip), "{ip} is not a bogon");
    }
    assert!(!policy.is_bogon(public));

    let redirects = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let redirector_address = redirects.local_addr().unwrap();
    let mut zone = vec![
        ("loopback.test", DnsBehaviour::Answer(vec![loopback])),
        (
            "private.test",
            DnsBehaviour::Answer(vec![Ipv4Addr::new(10, 0, 0, 1).into()]),
        ),
        // An allowed address beside a forbidden one: only the allowed one is measured.
        (
            "mixed.test",
            DnsBehaviour::Answer(vec![public, disguised[0]]),
        ),
        ("probe.test", DnsBehaviour::Answer(vec![public])),
    ];
    let names: Vec<String> = (0..disguised.len())
        .map(|i| format!("v6-{i}.test"))
        .collect();
    for (name, ip) in names.iter().zip(&disguised) {
        zone.push((name.as_str(), DnsBehaviour::Answer(vec![*ip])));
    }
    let resolver = format!("udp://{}", DnsServer::spawn(&zone).unwrap());
    // --bind 127.0.0.1: from a loopback source, the kernel refuses (EINVAL) to reach any
    // other network, so even a bug could not send a packet past this machine over IPv4.
    let server = ControlServer::spawn(&[
        "--resolver",
        &resolver,
        "--token",
        TOKEN,
        "--treat-as-public",
        "127.0.0.2/32",
        "--bind",
        "127.0.0.1",
        "--timeout",
        "2",
    ])
    .await;

    let redirect = |path: &str| format!("http://{redirector_address}{path}");
    let mut routes: Vec<(String, String)> = vec![
        ("/loopback".into(), format!("http://127.0.0.1:{port}/")),
        (
            "/loopback-https".into(),
            format!("https://127.0.0.1:{port}/"),
        ),
        ("/private".into(), "http://10.0.0.1/".into()),
        ("/decimal".into(), format!("http://2130706433:{port}/")),
        ("/zero".into(), format!("http://0.0.0.0:{port}/")),
        ("/name".into(), format!("http://loopback.test:{port}/")),
        ("/localhost".into(), format!("http://localhost:{port}/")),
        // Two hops: to itself (allowed), then to loopback.
        ("/twice".into(), redirect("/loopback")),
    ];
    for ip in &disguised {
        routes.push((format!("/{ip}"), format!("http://[{ip}]:{port}/")));
    }
    let table = routes.clone();
    HttpServer::spawn_redirector(redirects, move |path| {
        let (_, location) = table.iter().find(|(p, _)| p == path)?;
        Some(location.clone())
    });

    let mut targets = vec![
        json!({ "service": "lab", "target": "loopback.test", "tcp_ports": [port], "tls_ports": [port] }),
        json!({ "service": "lab", "target": "private.test", "tcp_ports": [port] }),
        json!({ "service": "lab", "target": "mixed.test", "tcp_ports": [redirector_address.port()] }),
        json!({ "service": "lab", "target": "probe.test", "tcp_ports": [port], "addresses": disguised }),
    ];
    for name in &names {
        targets.push(
            json!({ "service": "lab", "target": name, "tcp_ports": [port], "tls_ports": [port] }),
        );
    }
    for (path, _) in &routes {
        targets.push(json!({ "service": "lab", "target": redirect(path) }));
    }
    let body = Bytes::from(json!({ "targets": targets }).to_string());
    let tcp = TcpStream::connect(server.address).await.unwrap();
    let response = exchange(tcp, false, measure_request(server.address, body))
        .await
        .unwrap()
        .results();
    let result = |target: &str| {
        response
            .results
            .iter()
            .find(|r| r.target == target)
            .unwrap_or_else(|| panic!("no result for {target}"))
    };

    for name in ["loopback.test", "private.test"]
        .into_iter()
        .chain(names.iter().map(String::as_str))
    {
        assert_eq!(connects(result(name)), [], "{name}");
    }
    assert_eq!(connects(result("mixed.test")), [redirector_address]);
    let probe = result("probe.test");
    assert_eq!(probe.refused_addresses, disguised);
    assert!(
        connects(probe).iter().all(|a| a.ip() == public),
        "{:?}",
        connects(probe)
    );

    for (path, location) in &routes {
        let http = fetch(result(&redirect(path)));
        let (followed, refused) = http.hops.split_at(http.hops.len() - 1);
        assert!(
            followed
                .iter()
                .all(|hop| hop.status == Some(302) && hop.address.map(|a| a.ip()) == Some(public)),
            "{path}: {http:?}"
        );
        let refused = &refused[0];
        assert_eq!(refused.address, None, "{path} → {location}: {http:?}");
        let failure = refused.error.as_ref().map(|e| &e.failure);
        let expected = match path.as_str() {
            "/localhost" => Failure::DnsNxdomain,
            _ => Failure::DnsBogon,
        };
        assert_eq!(failure, Some(&expected), "{path} → {location}");
    }
    forbidden.set_nonblocking(true).unwrap();
    assert!(
        matches!(forbidden.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the server connected to 127.0.0.1:{port}"
    );
    println!(
        "SSRF: {} targets; no connection to 127.0.0.1:{port}; every redirect to a forbidden address refused",
        response.results.len()
    );

    // A probe naming a disguised loopback address outright is refused as a whole.
    for ip in &disguised {
        let target = SocketAddr::new(*ip, port).to_string();
        let body = json!({ "targets": [{ "service": "lab", "target": target }] }).to_string();
        let tcp = TcpStream::connect(server.address).await.unwrap();
        let reply = exchange(tcp, false, measure_request(server.address, body))
            .await
            .unwrap();
        assert_eq!(reply.status, 400, "{target}: {}", reply.text);
    }
}

/// Figures for docs/performance.md, in release mode: throughput and memory with many more probes
/// and abusers than the always-run tests, and the time a wrong token takes to refuse,
/// by its length. Prints; asserts nothing about time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: run with --include-ignored --nocapture, in --release for figures"]
async fn benchmark() {
    let endpoints = [acceptor().await, acceptor().await];
    let body = probe_body(&endpoints);

    let server = start(&["--max-connections-per-client", "1000"]).await;
    let pid = server.child.id().unwrap();
    let quiet = probes(server.address, 200, 25, body.clone(), None).await;
    println!("{}", quiet.report("200 probes × 25 requests"));
    println!(
        "server memory: peak {} MiB (VmHWM)",
        memory_kib(pid, "VmHWM") / 1024
    );

    let server = start(&[]).await;
    let pid = server.child.id().unwrap();
    let idle = 1000.min(open_files_limit().saturating_sub(1000)).max(50);
    let abusers = tokio::spawn(abuse_http(server.address, idle));
    sleep(Duration::from_secs(1)).await;
    let abused = probes(server.address, 100, 20, body.clone(), None).await;
    let lines = abusers.await.unwrap();
    println!(
        "{}",
        abused.report(&format!(
            "100 probes × 20 requests, while abused ({idle} idle connections, ...)"
        ))
    );
    for line in lines {
        println!("{line}");
    }
    println!(
        "server memory: peak {} MiB (VmHWM)",
        memory_kib(pid, "VmHWM") / 1024
    );

    // Interleaved, so that drift affects both alike.
    let mut times = [Vec::new(), Vec::new()];
    let same_length = "x".repeat(TOKEN.len());
    let wrong = ["x", same_length.as_str()];
    for _ in 0..2000 {
        for (token, times) in wrong.iter().zip(times.iter_mut()) {
            let tcp = TcpStream::connect(server.address).await.unwrap();
            let request =
                control::measure_request(server.address, Some(token), body.clone(), false);
            let started = Instant::now();
            let reply = exchange(tcp, false, request).await.unwrap();
            times.push(started.elapsed());
            assert_eq!(reply.status, 401);
        }
    }
    let mean = |times: &[Duration]| times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "wrong token of 1 byte: mean {:?}; of the right length ({}): mean {:?} (2000 each)",
        mean(&times[0]),
        TOKEN.len(),
        mean(&times[1])
    );
}
