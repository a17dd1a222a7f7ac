//! A UDP resolver answering from a fixed zone. Given the real zone it is the control's
//! honest resolver; given a forged one it is the censor's: an ISP resolver that answers
//! a blocked name with the address of a blockpage server (DNS hijacking).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

const TTL: u32 = 60;

/// Names (lowercase, without the trailing dot) and their one IPv4 address.
pub type Zone = HashMap<String, Ipv4Addr>;

/// Answers queries on `socket`: A queries for a name of `zone` with its address, other
/// types with no answer (the lab has no IPv6), other names with NXDOMAIN.
pub fn spawn(servers: &mut JoinSet<()>, socket: UdpSocket, zone: Zone) {
    servers.spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            if let Some(reply) = reply(&buf[..len], &zone) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
}

/// The reply to a query, or nothing for what is not a query we can read.
fn reply(query: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let question = query.queries.first()?;
    let name = question.name().to_lowercase().to_ascii();
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(question.clone());
    match zone.get(name.trim_end_matches('.')) {
        None => reply.metadata.response_code = ResponseCode::NXDomain,
        Some(ip) if question.query_type() == RecordType::A => {
            reply.add_answer(Record::from_rdata(
                question.name().clone(),
                TTL,
                RData::A(A(*ip)),
            ));
        }
        Some(_) => {}
    }
    reply.to_vec().ok()
}
