//! Checks that the loopback lab (`censorprobe::lab`, the demo's and the tests') really
//! behaves like the networks it plays, so that a probe test failing means the probe is
//! wrong, not the lab.

#[allow(dead_code)]
mod common;

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use rustls::CertificateError;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use censorprobe::lab::dns::INJECTION_DELAY;
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn blackhole_connect_times_out() {
    let addr = blackhole::port().unwrap();
    let started = Instant::now();
    let attempt = timeout(Duration::from_secs(1), TcpStream::connect(addr)).await;
    assert!(
        attempt.is_err(),
        "connect to the blackhole {addr} ended after {:?} with {attempt:?} instead of hanging",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_refuses() {
    let error = TcpStream::connect(closed_port().unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
}

/// A client that trusts only the CA in `ca_pem`, offering h2 before http/1.1.
fn client(ca_pem: &Path) -> TlsConnector {
    tls::client(ca_pem, &[b"h2", b"http/1.1"])
}

/// GET / over TLS with `sni`: the negotiated ALPN and the whole response.
async fn https_get(
    connector: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
) -> io::Result<(Vec<u8>, String)> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let alpn = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {sni}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok((alpn, response))
}

/// The rustls error inside a failed handshake.
fn tls_error(error: &io::Error) -> &rustls::Error {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref())
        .unwrap_or_else(|| panic!("not a TLS error: {error:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_server_serves_its_page_over_http11() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new().unwrap();
    let (chain, key) = ca.issue(&["good.test", "*.lab.test"]).unwrap();
    let addr = TlsServer::spawn_with_body(chain, key, TlsBehaviour::Normal, "<p>hi</p>")
        .await
        .unwrap();
    let connector = client(&ca.write_pem(dir.path()).unwrap());

    for sni in ["good.test", "a.lab.test"] {
        let (alpn, response) = https_get(&connector, addr, sni).await.unwrap();
        assert_eq!(alpn, b"http/1.1");
        let page = page(sni, "<p>hi</p>");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains(&format!("\r\nContent-Length: {}\r\n", page.len())),
            "{response}"
        );
        assert!(response.contains("\r\nConnection: close\r\n"), "{response}");
        assert!(response.ends_with(&format!("\r\n\r\n{page}")), "{response}");
        assert!(page.contains(&format!("<title>Test page {sni}</title>")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_on_sni_resets_only_that_sni() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new().unwrap();
    let (chain, key) = ca.issue(&["blocked.test", "canary.test"]).unwrap();
    let behaviour = TlsBehaviour::ResetOnSni("blocked.test".into());
    let addr = TlsServer::spawn(chain, key, behaviour).await.unwrap();
    let connector = client(&ca.write_pem(dir.path()).unwrap());

    let error = https_get(&connector, addr, "blocked.test")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error:?}");

    let (_, response) = https_get(&connector, addr, "canary.test").await.unwrap();
    assert!(
        response.contains("<title>Test page canary.test</title>"),
        "{response}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_certificates_are_rejected_by_a_client_trusting_the_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new().unwrap();
    let connector = client(&ca.write_pem(dir.path()).unwrap());

    let (chain, key) = Ca::new().unwrap().issue(&["good.test"]).unwrap();
    let unknown_ca = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
        .await
        .unwrap();
    let error = https_get(&connector, unknown_ca, "good.test")
        .await
        .unwrap_err();
    assert!(
        matches!(
            tls_error(&error),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{error:?}"
    );

    let (chain, key) = ca.issue(&["other.test"]).unwrap();
    let wrong_names = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
        .await
        .unwrap();
    let error = https_get(&connector, wrong_names, "good.test")
        .await
        .unwrap_err();
    assert!(
        matches!(
            tls_error(&error),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_server_answers_with_its_status_and_body() {
    let addr = HttpServer::spawn(403, IRAN_BLOCKPAGE).await.unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: blockpage.test\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{response}"
    );
    assert!(
        response.contains(&format!("\r\nContent-Length: {}\r\n", IRAN_BLOCKPAGE.len())),
        "{response}"
    );
    assert!(response.ends_with(&format!("\r\n\r\n{IRAN_BLOCKPAGE}")));
}

/// A UDP socket connected to the DNS server at `server`.
async fn dns_client(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket
}

async fn send_query(socket: &UdpSocket, id: u16, name: &str, query_type: RecordType) {
    let mut query = Message::query();
    query.metadata.id = id;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), query_type));
    socket.send(&query.to_vec().unwrap()).await.unwrap();
}

/// The next reply within `wait`, if any.
async fn next_reply(socket: &UdpSocket, wait: Duration) -> Option<Message> {
    let mut buf = [0u8; 4096];
    let len = timeout(wait, socket.recv(&mut buf)).await.ok()?.unwrap();
    Some(Message::from_vec(&buf[..len]).unwrap())
}

fn addresses(reply: &Message) -> Vec<IpAddr> {
    reply
        .answers
        .iter()
        .map(|record| match &record.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
            other => panic!("unexpected record {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_server_answers_from_its_zone() {
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let server = DnsServer::spawn(&[
        ("good.test", DnsBehaviour::Answer(vec![LOCALHOST, v6])),
        ("v4only.test", DnsBehaviour::Answer(vec![LOCALHOST])),
        ("nx.test", DnsBehaviour::NxDomain),
        ("silent.test", DnsBehaviour::Silent),
    ])
    .unwrap();
    let socket = dns_client(server).await;
    let wait = Duration::from_secs(1);

    send_query(&socket, 1, "Good.Test.", RecordType::A).await;
    let reply = next_reply(&socket, wait).await.expect("good.test A");
    assert_eq!(reply.metadata.id, 1);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&reply), [LOCALHOST]);
    assert_eq!(reply.answers[0].ttl, 60);

    send_query(&socket, 2, "good.test.", RecordType::AAAA).await;
    let reply = next_reply(&socket, wait).await.expect("good.test AAAA");
    assert_eq!(addresses(&reply), [v6]);

    send_query(&socket, 3, "v4only.test.", RecordType::AAAA).await;
    let reply = next_reply(&socket, wait).await.expect("v4only.test AAAA");
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty(), "{reply:?}");

    for (id, name) in [(4, "nx.test."), (5, "notinzone.test.")] {
        send_query(&socket, id, name, RecordType::A).await;
        let reply = next_reply(&socket, wait).await.expect(name);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NXDomain,
            "{name}"
        );
    }

    send_query(&socket, 6, "silent.test.", RecordType::A).await;
    let reply = next_reply(&socket, Duration::from_millis(500)).await;
    assert!(reply.is_none(), "silent.test answered {reply:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn injecting_dns_server_sends_a_fake_then_the_real_reply() {
    let fake = IRAN_BLOCKPAGE_IP;
    let server = DnsServer::spawn(&[
        (
            "inject.test",
            DnsBehaviour::Inject {
                fake,
                real: LOCALHOST,
            },
        ),
        ("good.test", DnsBehaviour::Answer(vec![LOCALHOST])),
    ])
    .unwrap();
    let socket = dns_client(server).await;
    let wait = Duration::from_secs(1);

    send_query(&socket, 7, "inject.test.", RecordType::A).await;
    let first = next_reply(&socket, wait).await.expect("injected reply");
    let first_at = Instant::now();
    // Another query while the real reply is pending must not wait for it.
    send_query(&socket, 8, "good.test.", RecordType::A).await;
    let other = next_reply(&socket, wait).await.expect("good.test reply");
    assert_eq!(other.metadata.id, 8, "good.test waited for the injection");
    let second = next_reply(&socket, wait).await.expect("real reply");
    let gap = first_at.elapsed();

    assert_eq!(addresses(&first), [fake]);
    assert_eq!(addresses(&second), [LOCALHOST]);
    for reply in [&first, &second] {
        assert_eq!(reply.metadata.id, 7);
        assert_eq!(reply.queries, first.queries);
        assert_eq!(reply.queries[0].name().to_ascii(), "inject.test.");
    }
    assert!(
        gap >= INJECTION_DELAY - Duration::from_millis(20),
        "second reply only {gap:?} after the first"
    );
}
