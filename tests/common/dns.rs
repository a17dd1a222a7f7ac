//! A scriptable UDP DNS server, to play an honest resolver and a censoring one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

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
}

pub struct DnsServer;

impl DnsServer {
    /// Serves `zone` (lowercase names without the trailing dot) on a UDP port of
    /// 127.0.0.1; names not in the zone get NXDOMAIN.
    pub fn spawn(zone: &[(&str, DnsBehaviour)]) -> SocketAddr {
        let zone: Arc<HashMap<String, DnsBehaviour>> = Arc::new(
            zone.iter()
                .map(|(name, behaviour)| (name.to_string(), behaviour.clone()))
                .collect(),
        );
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let socket = Arc::new(UdpSocket::from_std(socket).unwrap());
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                // One task per query, so an injector's delayed second reply never holds
                // up the answers to other queries.
                tokio::spawn(answer(socket.clone(), peer, query, zone.clone()));
            }
        });
        addr
    }
}

async fn answer(
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    query: Message,
    zone: Arc<HashMap<String, DnsBehaviour>>,
) {
    let Some(question) = query.queries.first() else {
        return;
    };
    let name = question.name().to_lowercase().to_ascii();
    let name = name.trim_end_matches('.');
    let send = |reply: Vec<u8>| {
        let socket = socket.clone();
        async move {
            let _ = socket.send_to(&reply, peer).await;
        }
    };
    match zone.get(name) {
        None | Some(DnsBehaviour::NxDomain) => {
            send(reply(&query, ResponseCode::NXDomain, &[])).await
        }
        Some(DnsBehaviour::Silent) => {}
        Some(DnsBehaviour::Answer(ips)) => send(reply(&query, ResponseCode::NoError, ips)).await,
        Some(DnsBehaviour::Inject { fake, real }) => {
            send(reply(&query, ResponseCode::NoError, &[*fake])).await;
            tokio::time::sleep(INJECTION_DELAY).await;
            send(reply(&query, ResponseCode::NoError, &[*real])).await;
        }
    }
}

/// A reply to `query` carrying those of `ips` that match the question's type.
fn reply(query: &Message, code: ResponseCode, ips: &[IpAddr]) -> Vec<u8> {
    let question = &query.queries[0];
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.response_code = code;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(question.clone());
    for ip in ips {
        let data = match (ip, question.query_type()) {
            (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
            _ => continue,
        };
        reply.add_answer(Record::from_rdata(question.name().clone(), TTL, data));
    }
    reply.to_vec().unwrap()
}
