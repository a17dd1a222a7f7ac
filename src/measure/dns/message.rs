//! DNS messages: our query's question, and every reply read into a record, whatever it
//! holds (a message that does not parse is a reply too, with rcode `malformed`).

use std::time::Instant;

use hickory_proto::ProtoError;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::facts::{DnsAnswer, DnsReply, QueryType};

/// Replies kept per query of each kind (matching the query, or not); more are counted
/// in `dropped_replies`. A racing injector sends one or two; a flood sends thousands.
pub const MAX_REPLIES: usize = 32;

/// What a reply must carry to answer our query: its ID and its question.
#[derive(Clone)]
pub struct Question {
    pub(super) id: u16,
    pub(super) name: Name,
    pub(super) record_type: RecordType,
}

impl Question {
    pub fn new(id: u16, hostname: &str, qtype: QueryType) -> Result<Question, ProtoError> {
        Ok(Question {
            id,
            name: Name::from_ascii(format!("{hostname}."))?,
            record_type: match qtype {
                QueryType::A => RecordType::A,
                QueryType::Aaaa => RecordType::AAAA,
            },
        })
    }
}

/// The replies of one query within bounds: the first `MAX_REPLIES` that match it and
/// the first `MAX_REPLIES` that do not are kept, so that a flood of forged datagrams
/// neither grows memory nor pushes the real answer out; the rest are counted.
#[derive(Default)]
pub(super) struct Replies {
    pub(super) sent: u32,
    pub(super) kept: Vec<DnsReply>,
    pub(super) matching: usize,
    pub(super) other: usize,
    pub(super) dropped: u64,
}

impl Replies {
    pub(super) fn push(&mut self, reply: DnsReply) {
        let count = match reply.matches_query {
            true => &mut self.matching,
            false => &mut self.other,
        };
        if *count < MAX_REPLIES {
            *count += 1;
            self.kept.push(reply);
        } else {
            self.dropped += 1;
        }
    }
}

/// Reads one DNS message as the probe reads every reply (the fuzzers' way in): never
/// fails, a message that does not parse is a reply with rcode `malformed`.
pub fn parse_reply(bytes: &[u8], question: &Question) -> DnsReply {
    reply_of(bytes, String::new(), Instant::now(), question)
}

/// Reads a datagram or stream message into a reply record.
pub(super) fn reply_of(
    bytes: &[u8],
    source: String,
    started: Instant,
    question: &Question,
) -> DnsReply {
    let arrival_ms = started.elapsed().as_secs_f64() * 1000.0;
    let Ok(message) = Message::from_vec(bytes) else {
        return DnsReply {
            source,
            arrival_ms,
            id: u16::from_be_bytes([
                bytes.first().copied().unwrap_or(0),
                bytes.get(1).copied().unwrap_or(0),
            ]),
            matches_query: false,
            rcode: "malformed".into(),
            answers: Vec::new(),
            truncated: false,
        };
    };
    let matches_query = message.metadata.id == question.id
        && message.metadata.message_type == MessageType::Response
        && message.queries.len() == 1
        // Name equality is case-insensitive, as DNS is (0x20 randomisation aside).
        && message.queries[0].name() == &question.name
        && message.queries[0].query_type() == question.record_type;
    let answers = message
        .answers
        .iter()
        .map(|record| DnsAnswer {
            answer_type: record.record_type().to_string(),
            data: match &record.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::CNAME(name) => name.0.to_string(),
                other => other.to_string(),
            },
            ttl: record.ttl,
            asn: None,
        })
        .collect();
    DnsReply {
        source,
        arrival_ms,
        id: message.metadata.id,
        matches_query,
        rcode: rcode_name(message.metadata.response_code),
        answers,
        truncated: message.metadata.truncation,
    }
}

fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NoError".into(),
        ResponseCode::NXDomain => "NXDomain".into(),
        ResponseCode::ServFail => "ServFail".into(),
        ResponseCode::Refused => "Refused".into(),
        other => format!("{other:?}"),
    }
}
