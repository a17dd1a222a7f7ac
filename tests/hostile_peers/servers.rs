//! Servers that misbehave on purpose: endless and dripping bodies, enormous heads, a gzip
//! bomb, redirect loops, garbage and silence in place of TLS or after its ServerHello, DNS
//! floods and malformed DNS messages. Each listens on a port of 127.0.0.1 as a tokio task
//! (the accept loops and DNS framing are `common`'s), and every loop that sends is bounded
//! in count and time, so that it stops by itself even if the probe never hangs up.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, sleep};

use crate::common::{IRAN_BLOCKPAGE_IP, LOCALHOST};
use censorprobe::lab::dns::{framed, question_name, read_tcp_query, reply, spawn_udp, zone_map};
use censorprobe::lab::http::{read_head, redirect, request_path, write_then_close};
use censorprobe::lab::tcp::{accept_each, listen};
use censorprobe::lab::tls::server_config;

/// No hostile server sends for longer than this, whatever the probe does.
const SEND_LIMIT: Duration = Duration::from_secs(30);

/// What an HTTP/1.1 server does with every request.
#[derive(Clone, Copy, Debug)]
pub enum HttpHostility {
    /// A 200 without a length whose body never ends (until the client leaves, or
    /// `SEND_LIMIT`, or 1 GiB).
    EndlessBody,
    /// A 200 announcing 4 KiB of body, sent one byte a second.
    DripBody,
    /// 1 MiB of header lines (16,384 of 64 bytes).
    ManyHeaders,
    /// One header of 100 KiB, then a small page.
    HugeHeader,
    /// `Content-Encoding: gzip` of 1 GiB of zeros: 1,024 gzip members of 1 MiB each,
    /// about 1 MiB on the wire, 1 GiB for a client that inflates it.
    GzipBomb,
    /// `100 Continue` after `100 Continue`, never a final response.
    EndlessInformational,
    /// `/a` redirects to `/b`, and `/b` to `/a`.
    RedirectLoop,
    /// `/hop/1` redirects to `/hop/2` and so on; `/hop/N` answers 200.
    RedirectChain(usize),
}

/// The page every well-behaved answer of these servers carries.
pub const PAGE: &str = "<html><head><title>Hostile</title></head><body>hi</body></html>";

pub async fn spawn_http(hostility: HttpHostility) -> SocketAddr {
    let (listener, addr) = listen().await.unwrap();
    accept_each(listener, move |stream, _| serve_http(stream, hostility));
    addr
}

async fn serve_http(mut stream: TcpStream, hostility: HttpHostility) {
    let Some(path) = read_head(&mut stream).await.and_then(|h| request_path(&h)) else {
        return;
    };
    let deadline = Instant::now() + SEND_LIMIT;
    match hostility {
        HttpHostility::EndlessBody => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..16 * 1024 {
                if Instant::now() > deadline || stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        HttpHostility::DripBody => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 4096\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while Instant::now() < deadline {
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
                sleep(Duration::from_secs(1)).await;
            }
        }
        HttpHostility::ManyHeaders => {
            let mut head = String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..16 * 1024 {
                // 64 bytes a line.
                head.push_str(&format!("x-filler-{i:05}: {:>45}\r\n", "y"));
            }
            head.push_str(&page_head());
            head.push_str(PAGE);
            write_then_close(stream, head.as_bytes()).await;
        }
        HttpHostility::HugeHeader => {
            let response = format!(
                "HTTP/1.1 200 OK\r\nx-huge: {}\r\n{}{PAGE}",
                "y".repeat(100 * 1024),
                page_head()
            );
            write_then_close(stream, response.as_bytes()).await;
        }
        HttpHostility::GzipBomb => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                GZIP_MEMBER.len() * GZIP_MEMBERS
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..GZIP_MEMBERS {
                if Instant::now() > deadline || stream.write_all(&GZIP_MEMBER).await.is_err() {
                    return;
                }
            }
        }
        HttpHostility::EndlessInformational => {
            let informational = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(64);
            while Instant::now() < deadline {
                if stream.write_all(&informational).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        }
        HttpHostility::RedirectLoop => {
            let next = if path == "/a" { "/b" } else { "/a" };
            write_then_close(stream, redirect(next).as_bytes()).await;
        }
        HttpHostility::RedirectChain(last) => {
            let hop: usize = path
                .strip_prefix("/hop/")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let response = match hop >= last {
                true => format!("HTTP/1.1 200 OK\r\n{}{PAGE}", page_head()),
                false => redirect(&format!("/hop/{}", hop + 1)),
            };
            write_then_close(stream, response.as_bytes()).await;
        }
    }
}

/// The rest of a head announcing `PAGE` (after the status line and any headers).
fn page_head() -> String {
    format!(
        "Content-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        PAGE.len()
    )
}

/// One member of the gzip bomb: 1 MiB of zeros, deflated to about 1 KiB.
static GZIP_MEMBER: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; 1 << 20]).unwrap();
    encoder.finish().unwrap()
});
/// Members in the bomb: 1 GiB inflated.
const GZIP_MEMBERS: usize = 1024;

/// The gzip bomb as a client that inflates it would see it: the size of one member
/// inflated, and the number of members.
pub fn gzip_bomb() -> (&'static [u8], usize) {
    (&GZIP_MEMBER, GZIP_MEMBERS)
}

/// What a server on a TLS port does instead of a handshake.
#[derive(Clone, Debug)]
pub enum TlsHostility {
    /// Answers the ClientHello with 16 KiB of bytes that are not TLS.
    Garbage,
    /// Reads the ClientHello and says nothing, holding the connection open.
    Stall,
    /// Answers the ClientHello with the first record of a real handshake with this
    /// configuration (its ServerHello), then says nothing more: a server that stalls
    /// in the middle of the handshake.
    StallAfterServerHello(Arc<rustls::ServerConfig>),
}

pub async fn spawn_tls(hostility: TlsHostility) -> SocketAddr {
    let (listener, addr) = listen().await.unwrap();
    accept_each(listener, move |mut stream, _| {
        let hostility = hostility.clone();
        async move {
            let Some(hello) = first_record(&mut stream).await else {
                return;
            };
            let answer = match hostility {
                TlsHostility::Garbage => garbage(16 * 1024),
                TlsHostility::Stall => Vec::new(),
                TlsHostility::StallAfterServerHello(config) => server_hello(config, &hello),
            };
            if stream.write_all(&answer).await.is_ok() {
                hold(stream).await;
            }
        }
    });
    addr
}

/// A server that completes the TLS handshake with `config`, reads the request's head,
/// and ends the connection without a response: with a `close_notify` alert first (as
/// Go's servers end a session they turn away, Caddy's `abort`; nginx's `return 444`
/// sends none), or with a bare FIN (which anyone on the path can send).
pub async fn spawn_tls_closing(
    config: Arc<rustls::ServerConfig>,
    close_notify: bool,
) -> SocketAddr {
    let (listener, addr) = listen().await.unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    accept_each(listener, move |stream, _| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            if read_head(&mut tls).await.is_none() {
                return;
            }
            match close_notify {
                true => drop(tls.shutdown().await),
                false => drop(tls.into_inner().0.shutdown().await),
            }
        }
    });
    addr
}

/// The first TLS record the client sends, read whole however it comes: the probe's
/// split ClientHello comes in two segments, 200 ms apart. None if the client closes
/// first.
async fn first_record(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut record = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if record.len() >= 5 {
            let whole = 5 + usize::from(u16::from_be_bytes([record[3], record[4]]));
            if record.len() >= whole {
                return Some(record);
            }
        }
        match stream.read(&mut buf).await {
            Ok(n) if n > 0 => record.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

/// The first record a server with `config` answers `client_hello` with: its
/// ServerHello (the rest of its first flight is left out).
fn server_hello(config: Arc<rustls::ServerConfig>, mut client_hello: &[u8]) -> Vec<u8> {
    let mut server = rustls::ServerConnection::new(config).unwrap();
    server.read_tls(&mut client_hello).unwrap();
    server
        .process_new_packets()
        .expect("the probe's ClientHello in one read");
    let mut flight = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut flight).unwrap();
    }
    assert_eq!(flight[0], 0x16, "a handshake record first");
    let first = 5 + u16::from_be_bytes([flight[3], flight[4]]) as usize;
    assert!(
        first < flight.len(),
        "more than the ServerHello in the flight"
    );
    assert_eq!(flight[5], 2, "a ServerHello");
    flight.truncate(first);
    flight
}

/// Pseudo-random bytes (xorshift), the same every run.
fn garbage(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// What an HTTP/2 server (over TLS, ALPN `h2` only) puts in its response head.
#[derive(Clone, Copy, Debug)]
pub enum H2Hostility {
    /// 1 MiB of header fields (16,384 of 64 bytes).
    ManyHeaders,
    /// One header field of 100 KiB.
    HugeHeader,
}

pub async fn spawn_h2(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    hostility: H2Hostility,
) -> SocketAddr {
    let mut config = (*server_config(chain, key).unwrap()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (listener, addr) = listen().await.unwrap();
    accept_each(listener, move |stream, _| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |_request| async move {
                Ok::<_, Infallible>(h2_response(hostility))
            });
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service);
            let _ = tokio::time::timeout(SEND_LIMIT, connection).await;
        }
    });
    addr
}

fn h2_response(hostility: H2Hostility) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::builder().header("content-type", "text/html");
    match hostility {
        H2Hostility::ManyHeaders => {
            for i in 0..16 * 1024 {
                response = response.header(format!("x-filler-{i:05}"), format!("{:>45}", "y"));
            }
        }
        H2Hostility::HugeHeader => response = response.header("x-huge", "y".repeat(100 * 1024)),
    }
    response
        .body(Full::new(Bytes::from_static(PAGE.as_bytes())))
        .unwrap()
}

/// What a DNS server does for queries about one name.
#[derive(Clone, Debug)]
pub enum DnsHostility {
    /// An honest answer.
    Answer(IpAddr),
    /// `FLOOD_BEFORE` forged replies at about 5,000 a second (wrong ID, wrong name,
    /// wrong type, or not a response at all), then the right answer (127.0.0.1), then
    /// forged replies for `FLOOD_AFTER` more, into the probe's listening window.
    Flood,
    /// Every kind of broken datagram (`malformed`) with the query's ID, then the right
    /// answer (127.0.0.1) if `then_answer`.
    Malformed { then_answer: bool },
}

pub const FLOOD_BEFORE: usize = 2_000;
pub const FLOOD_AFTER: Duration = Duration::from_millis(1_500);
/// Forged replies sent per burst, and the pause between bursts: 5,000 a second, slow
/// enough that the socket buffer of the probe is not overrun, so the right answer
/// arrives (a lost one would make the test flaky, not the probe wrong).
const FLOOD_BURST: usize = 25;
const FLOOD_PAUSE: Duration = Duration::from_millis(5);

/// Serves `zone` (names without the trailing dot) over UDP on a port of 127.0.0.1;
/// other names get NXDOMAIN.
pub fn spawn_dns(zone: &[(&str, DnsHostility)]) -> SocketAddr {
    let zone = zone_map(zone);
    spawn_udp(move |socket, peer, query| answer(socket, peer, query, zone.clone())).unwrap()
}

async fn answer(
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    query: Message,
    zone: Arc<HashMap<String, DnsHostility>>,
) {
    let Some(name) = question_name(&query) else {
        return;
    };
    let send = |bytes: Vec<u8>| {
        let socket = socket.clone();
        async move {
            let _ = socket.send_to(&bytes, peer).await;
        }
    };
    match zone.get(&name) {
        None => send(reply(&query, ResponseCode::NXDomain, &[])).await,
        Some(DnsHostility::Answer(ip)) => send(reply(&query, ResponseCode::NoError, &[*ip])).await,
        Some(DnsHostility::Flood) => {
            let mut sent = 0;
            while sent < FLOOD_BEFORE {
                for _ in 0..FLOOD_BURST {
                    send(forged(&query, sent)).await;
                    sent += 1;
                }
                sleep(FLOOD_PAUSE).await;
            }
            // A pause for the probe to drain its socket buffer.
            sleep(Duration::from_millis(20)).await;
            send(reply(&query, ResponseCode::NoError, &[LOCALHOST])).await;
            let until = Instant::now() + FLOOD_AFTER;
            while Instant::now() < until {
                for _ in 0..FLOOD_BURST {
                    send(forged(&query, sent)).await;
                    sent += 1;
                }
                sleep(FLOOD_PAUSE).await;
            }
        }
        Some(DnsHostility::Malformed { then_answer }) => {
            for bytes in malformed(query.metadata.id) {
                send(bytes).await;
            }
            if *then_answer {
                sleep(Duration::from_millis(20)).await;
                send(reply(&query, ResponseCode::NoError, &[LOCALHOST])).await;
            }
        }
    }
}

/// The `n`th forged reply: none of them matches the query, and each carries 20 answers
/// of Iran's blockpage address, so that keeping them all would cost memory.
fn forged(query: &Message, n: usize) -> Vec<u8> {
    let question = &query.queries[0];
    let id = query.metadata.id;
    let (id, name, qtype, message_type) = match n % 4 {
        // One wrong ID, not a range of them: the probe sends each copy of a query
        // with an ID of its own, and a range next to this copy's could take in
        // another copy's (a right ID, by chance).
        0 => (
            id.wrapping_add(1),
            question.name().clone(),
            question.query_type(),
            MessageType::Response,
        ),
        1 => (
            id,
            Name::from_ascii(format!("forged{n}.test.")).unwrap(),
            question.query_type(),
            MessageType::Response,
        ),
        2 => (
            id,
            question.name().clone(),
            match question.query_type() {
                RecordType::A => RecordType::AAAA,
                _ => RecordType::A,
            },
            MessageType::Response,
        ),
        _ => (
            id,
            question.name().clone(),
            question.query_type(),
            MessageType::Query,
        ),
    };
    let mut message = Message::response(id, query.metadata.op_code);
    message.metadata.message_type = message_type;
    message.add_query(Query::query(name.clone(), qtype));
    for _ in 0..20 {
        let IpAddr::V4(blockpage) = IRAN_BLOCKPAGE_IP else {
            unreachable!("the blockpage address is IPv4")
        };
        let blockpage = RData::A(A(blockpage));
        message.add_answer(Record::from_rdata(name.clone(), 60, blockpage));
    }
    message.to_vec().unwrap()
}

/// Broken DNS messages with ID `id`, one of each kind.
pub fn malformed(id: u16) -> Vec<Vec<u8>> {
    let [hi, lo] = id.to_be_bytes();
    // Header of a response (QR, RD, RA) with the given section counts.
    let header = |qd: u8, an: u8| vec![hi, lo, 0x81, 0x80, 0, qd, 0, an, 0, 0, 0, 0];
    let with = |mut head: Vec<u8>, tail: &[u8]| {
        head.extend_from_slice(tail);
        head
    };
    // A question for `x.test` of type A, class IN.
    let question = [1, b'x', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1];
    let mut too_long = Vec::new();
    for _ in 0..5 {
        too_long.push(63);
        too_long.extend_from_slice(&[b'a'; 63]);
    }
    too_long.extend_from_slice(&[0, 0, 1, 0, 1]);
    vec![
        // Empty and short datagrams.
        Vec::new(),
        vec![hi],
        header(0, 0)[..11].to_vec(),
        // Counts that promise records the datagram does not hold.
        header(1, 1),
        // A name pointer past the end of the message.
        with(header(1, 0), &[0xc0, 0xff, 0, 1, 0, 1]),
        // A name pointer to itself: a compression loop.
        with(header(1, 0), &[0xc0, 12, 0, 1, 0, 1]),
        // Two pointers pointing at each other, in the answer.
        with(
            with(header(1, 1), &question),
            &[
                0xc0, 26, 0xc0, 24, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1,
            ],
        ),
        // A label longer than what is left of the datagram.
        with(header(1, 0), &[63, b'a', b'b']),
        // A name of more than 255 octets.
        with(header(1, 0), &too_long),
        // An answer whose data length runs past the end.
        with(
            with(header(1, 1), &question),
            &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0xff, 0xff, 127],
        ),
        // An A record of 3 bytes.
        with(
            with(header(1, 1), &question),
            &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 3, 127, 0, 0],
        ),
    ]
}

/// A DNS-over-TCP server that answers `honest` names and the names under them with
/// 127.0.0.1 (it works, as the probe's check of it finds), and for any other name
/// announces a 65,535-byte reply, sends 12 bytes of it and stalls.
pub async fn spawn_stalling_tcp_dns(honest: &[&str]) -> SocketAddr {
    let honest: Arc<Vec<String>> = Arc::new(honest.iter().map(|n| n.to_string()).collect());
    let (listener, addr) = listen().await.unwrap();
    accept_each(listener, move |mut stream, _| {
        let honest = honest.clone();
        async move {
            let Some(query) = read_tcp_query(&mut stream).await else {
                return;
            };
            let name = question_name(&query).unwrap_or_default();
            let under = |h: &String| name == *h || name.ends_with(&format!(".{h}"));
            let bytes = match honest.iter().any(under) {
                true => framed(reply(&query, ResponseCode::NoError, &[LOCALHOST])),
                false => {
                    let [hi, lo] = query.metadata.id.to_be_bytes();
                    vec![0xff, 0xff, hi, lo, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
                }
            };
            if stream.write_all(&bytes).await.is_ok() {
                hold(stream).await;
            }
        }
    });
    addr
}

/// Keeps a connection open until the peer leaves or `SEND_LIMIT` passes.
async fn hold<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut buf = [0u8; 512];
    let _ = tokio::time::timeout(SEND_LIMIT, async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}
