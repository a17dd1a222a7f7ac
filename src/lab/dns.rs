//! A scriptable DNS server, to play an honest resolver and a censoring one, over UDP,
//! TCP (two-byte length framing) and HTTPS (RFC 8484 POST). Given the real zone it is
//! the control's honest resolver; given a forged one it is the censor's: an ISP
//! resolver that answers a blocked name with the address of a blockpage server (DNS
//! hijacking), says it does not exist, keeps silent, or races an injector.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::http::write_then_close;
use super::tcp::{accept_each, listen};
use super::tls::server_config;

const TTL: u32 = 60;

/// How long the injecting server waits before sending the real answer: long enough for
/// a stub resolver to have taken the fake one, short enough for a 2 s probe timeout.
pub const INJECTION_DELAY: Duration = Duration::from_millis(150);

/// What the server does for queries about one name.
#[derive(Clone, Debug)]
pub enum DnsBehaviour {
    /// NOERROR with A records for the v4 addresses (to A queries) and AAAA records for
    /// the v6 ones (to AAAA queries); other types get NOERROR with no answer.
    Answer(Vec<IpAddr>),
    /// An on-path injector racing the real resolver: a reply with `fake` at once, then
    /// one with `real` after [`INJECTION_DELAY`], with the same ID and question.
    Inject {
        fake: IpAddr,
        real: IpAddr,
    },
    NxDomain,
    /// Never replies, like a resolver whose packets are dropped.
    Silent,
    /// Over UDP, a reply with the TC flag and no answer, as from a resolver whose answer
    /// does not fit a datagram; over TCP, the addresses.
    Truncated(Vec<IpAddr>),
    /// The addresses, each copy of the query answered this late, as by an overloaded
    /// resolver whose recursion for the name is slow.
    Late(Duration, Vec<IpAddr>),
}

pub struct DnsServer;

impl DnsServer {
    /// Serves `zone` (lowercase names without the trailing dot) on a UDP port of
    /// 127.0.0.1; names not in the zone get NXDOMAIN.
    pub fn spawn(zone: &[(&str, DnsBehaviour)]) -> std::io::Result<SocketAddr> {
        let zone = zone_map(zone);
        Self::spawn_with(move |name| zone.get(name).cloned())
    }

    /// Serves whatever `behaviour` says for each name (NXDOMAIN for `None`), e.g. a
    /// wildcard zone for thousands of synthetic names.
    pub fn spawn_with(
        behaviour: impl Fn(&str) -> Option<DnsBehaviour> + Send + Sync + 'static,
    ) -> std::io::Result<SocketAddr> {
        spawn_udp(move |socket, peer, query| {
            let found = question_name(&query).map(|name| behaviour(&name));
            async move {
                // A query without a question gets nothing.
                if let Some(found) = found {
                    answer(socket, peer, query, found).await;
                }
            }
        })
    }
}

/// A UDP DNS server on a port of 127.0.0.1 that calls `handle(socket, peer, query)` for
/// every datagram that parses as a message, each on a task of its own, so that a
/// handler that sends late (an injector's second reply, a flood) never holds up the
/// answers to other queries.
pub fn spawn_udp<F, Fut>(handle: F) -> std::io::Result<SocketAddr>
where
    F: Fn(Arc<UdpSocket>, SocketAddr, Message) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.set_nonblocking(true)?;
    let socket = Arc::new(UdpSocket::from_std(socket)?);
    let addr = socket.local_addr()?;
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(query) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            tokio::spawn(handle(socket.clone(), peer, query));
        }
    });
    Ok(addr)
}

/// The name a query asks about, in lower case and without the trailing dot.
pub fn question_name(query: &Message) -> Option<String> {
    let name = query.queries.first()?.name().to_lowercase().to_ascii();
    Some(name.trim_end_matches('.').to_string())
}

/// Reads one query from a DNS-over-TCP stream (two-byte length, then the message).
pub async fn read_tcp_query<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Message> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.ok()?;
    let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut query).await.ok()?;
    Message::from_vec(&query).ok()
}

/// A message framed for DNS over TCP: its two-byte length first.
pub fn framed(message: Vec<u8>) -> Vec<u8> {
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend(message);
    framed
}

impl DnsServer {
    /// Serves `zone` over TCP on a port of 127.0.0.1, one query per connection.
    pub async fn spawn_tcp(zone: &[(&str, DnsBehaviour)]) -> std::io::Result<SocketAddr> {
        let (listener, addr) = listen().await?;
        Self::serve_tcp(listener, zone);
        Ok(addr)
    }

    /// Serves `zone` over UDP and TCP on one port of 127.0.0.1, as a resolver does
    /// (a stub asks again over TCP where the UDP reply was truncated).
    pub async fn spawn_udp_and_tcp(zone: &[(&str, DnsBehaviour)]) -> std::io::Result<SocketAddr> {
        let addr = Self::spawn(zone)?;
        Self::serve_tcp(tokio::net::TcpListener::bind(addr).await?, zone);
        Ok(addr)
    }

    fn serve_tcp(listener: tokio::net::TcpListener, zone: &[(&str, DnsBehaviour)]) {
        let zone = zone_map(zone);
        accept_each(listener, move |mut stream, _| {
            let zone = zone.clone();
            async move {
                let Some(query) = read_tcp_query(&mut stream).await else {
                    return;
                };
                if let Some(reply) = single_reply(&query, &zone) {
                    let _ = stream.write_all(&framed(reply)).await;
                }
            }
        });
    }

    /// Serves `zone` as DNS over HTTPS (POST /dns-query) on a port of 127.0.0.1, with
    /// `chain` as its certificate.
    pub async fn spawn_doh(
        zone: &[(&str, DnsBehaviour)],
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> anyhow::Result<SocketAddr> {
        let zone = zone_map(zone);
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(chain, key)?);
        let (listener, addr) = listen().await?;
        accept_each(listener, move |stream, _| {
            let (acceptor, zone) = (acceptor.clone(), zone.clone());
            async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Some(query) = read_post_body(&mut tls).await else {
                    return;
                };
                let Some(reply) = Message::from_vec(&query)
                    .ok()
                    .and_then(|q| single_reply(&q, &zone))
                else {
                    return;
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                write_then_close(tls, &reply).await;
            }
        });
        Ok(addr)
    }
}

/// Reads an HTTP/1.1 request and returns its body (by Content-Length).
async fn read_post_body<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())?;
            while data.len() < end + 4 + length {
                let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
                data.extend_from_slice(&buf[..n]);
            }
            return Some(data[end + 4..end + 4 + length].to_vec());
        }
        let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    }
}

/// A zone as a map from name to what is done for it.
pub fn zone_map<B: Clone>(zone: &[(&str, B)]) -> Arc<HashMap<String, B>> {
    Arc::new(
        zone.iter()
            .map(|(name, behaviour)| (name.to_string(), behaviour.clone()))
            .collect(),
    )
}

/// The one reply a stream transport gives (no racing on a connection of its own):
/// `None` for a silent name.
fn single_reply(query: &Message, zone: &HashMap<String, DnsBehaviour>) -> Option<Vec<u8>> {
    match zone.get(&question_name(query)?) {
        None | Some(DnsBehaviour::NxDomain) => Some(reply(query, ResponseCode::NXDomain, &[])),
        Some(DnsBehaviour::Silent) => None,
        Some(
            DnsBehaviour::Answer(ips) | DnsBehaviour::Truncated(ips) | DnsBehaviour::Late(_, ips),
        ) => Some(reply(query, ResponseCode::NoError, ips)),
        Some(DnsBehaviour::Inject { real, .. }) => {
            Some(reply(query, ResponseCode::NoError, &[*real]))
        }
    }
}

async fn answer(
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    query: Message,
    found: Option<DnsBehaviour>,
) {
    let send = |reply: Vec<u8>| {
        let socket = socket.clone();
        async move {
            let _ = socket.send_to(&reply, peer).await;
        }
    };
    match found {
        None | Some(DnsBehaviour::NxDomain) => {
            send(reply(&query, ResponseCode::NXDomain, &[])).await
        }
        Some(DnsBehaviour::Silent) => {}
        Some(DnsBehaviour::Answer(ips)) => send(reply(&query, ResponseCode::NoError, &ips)).await,
        Some(DnsBehaviour::Truncated(_)) => send(truncated(&query)).await,
        Some(DnsBehaviour::Late(after, ips)) => {
            tokio::time::sleep(after).await;
            send(reply(&query, ResponseCode::NoError, &ips)).await
        }
        Some(DnsBehaviour::Inject { fake, real }) => {
            send(reply(&query, ResponseCode::NoError, &[fake])).await;
            tokio::time::sleep(INJECTION_DELAY).await;
            send(reply(&query, ResponseCode::NoError, &[real])).await;
        }
    }
}

/// A reply to `query` carrying those of `ips` that match the question's type (none
/// for a query without a question).
pub fn reply(query: &Message, code: ResponseCode, ips: &[IpAddr]) -> Vec<u8> {
    encode(&reply_message(query, code, ips))
}

fn reply_message(query: &Message, code: ResponseCode, ips: &[IpAddr]) -> Message {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.response_code = code;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    let Some(question) = query.queries.first() else {
        return reply;
    };
    reply.add_query(question.clone());
    for ip in ips {
        let data = match (ip, question.query_type()) {
            (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
            _ => continue,
        };
        reply.add_answer(Record::from_rdata(question.name().clone(), TTL, data));
    }
    reply
}

/// A reply to `query` with the TC flag and no answer.
fn truncated(query: &Message) -> Vec<u8> {
    let mut reply = reply_message(query, ResponseCode::NoError, &[]);
    reply.metadata.truncation = true;
    encode(&reply)
}

fn encode(reply: &Message) -> Vec<u8> {
    reply
        .to_vec()
        .expect("a reply made of a query that parsed, and of addresses, encodes")
}
