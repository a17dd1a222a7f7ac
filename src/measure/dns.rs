//! DNS lookups over UDP, TCP and HTTPS, recording every reply.
//!
//! We build the exchange ourselves on hickory-proto messages instead of using a
//! resolver library: resolvers keep the first acceptable datagram and drop the rest,
//! and on a censored network the first datagram is often the censor's. Over UDP we
//! keep listening for a short window after the first reply, so that a forged answer
//! racing the real one is seen, with each reply's source, arrival time, ID, rcode and
//! TTLs; and we send the query again a few times in that window, since on a lossy link
//! the one datagram that shows the injection (the forged reply, or the real one) may
//! not arrive.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hickory_proto::ProtoError;
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use url::Url;

use super::http;
use super::limits::Limits;
use super::tcp::Dialer;
use super::tls::TlsContext;
use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{DnsAnswer, DnsFacts, DnsReply, QueryType};
use crate::input::targets::ResolverSpec;

/// Where the system's stub resolver sends its queries.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The largest DNS message we read over TCP or DoH.
const MAX_MESSAGE: usize = 65_535;
/// The largest UDP reply we read: our queries carry no EDNS, so a server sends at most
/// 512 bytes (truncating larger answers); anything beyond is someone else's datagram.
const MAX_DATAGRAM: usize = 4096;
/// Replies kept per query of each kind (matching the query, or not); more are counted
/// in `dropped_replies`. A racing injector sends one or two; a flood sends thousands.
pub const MAX_REPLIES: usize = 32;
/// Sends of one UDP query within its deadline, at most.
const RESENDS: u32 = 6;
/// Sends of one UDP query are at least this far apart.
const MIN_RESEND: Duration = Duration::from_millis(100);
/// Sends of a UDP query during its listening window after the first reply: with the
/// first, seven chances for each of an injector's reply and the real one to arrive
/// (on a lossy link, both replies to one copy must come through).
const WINDOW_RESENDS: u32 = 6;

/// A configured resolver, ready to be asked.
pub struct Resolver {
    spec: ResolverSpec,
    transport: Transport,
}

enum Transport {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Doh {
        url: Url,
        /// The DoH server's address, found once (a name is looked up by the system).
        address: OnceCell<Result<SocketAddr, StepError>>,
    },
}

/// What one exchange gives back before it is judged.
struct Exchange {
    server: String,
    replies: Vec<DnsReply>,
    dropped: u64,
    /// Datagrams sent (1 for TCP and DoH).
    sent: u32,
    /// The task still listening for replies after the first matching one (UDP only).
    late: Option<JoinHandle<Replies>>,
}

/// A lookup whose answer is known, with replies that may still arrive.
pub struct Lookup {
    pub facts: DnsFacts,
    late: Option<JoinHandle<Replies>>,
}

impl Lookup {
    /// The facts with every reply of the listening window.
    pub async fn finish(self) -> DnsFacts {
        let mut facts = self.facts;
        if let Some(late) = self.late {
            let late = late.await.unwrap_or_default();
            facts.replies.extend(late.kept);
            facts.dropped_replies = late.dropped;
            facts.sent = late.sent;
        }
        facts
    }
}

impl Resolver {
    pub fn new(spec: &ResolverSpec) -> anyhow::Result<Resolver> {
        let transport = match spec {
            ResolverSpec::System => Transport::Udp(system_nameserver(Path::new(RESOLV_CONF))?),
            ResolverSpec::Udp(addr) => Transport::Udp(*addr),
            ResolverSpec::Tcp(addr) => Transport::Tcp(*addr),
            ResolverSpec::Doh(url) => Transport::Doh {
                url: url.clone(),
                address: OnceCell::new(),
            },
        };
        Ok(Resolver {
            spec: spec.clone(),
            transport,
        })
    }

    /// The resolver as configured (`system`, `udp://IP:PORT`, ...).
    pub fn name(&self) -> String {
        self.spec.to_string()
    }

    /// One query for `hostname` and `qtype`, with every reply of its listening window.
    pub async fn query(&self, io: &DnsIo<'_>, hostname: &str, qtype: QueryType) -> DnsFacts {
        self.lookup(io, hostname, qtype).await.finish().await
    }

    /// One query for `hostname` and `qtype`, returning once its answer is known.
    pub async fn lookup(&self, io: &DnsIo<'_>, hostname: &str, qtype: QueryType) -> Lookup {
        let mut facts = DnsFacts {
            resolver: self.spec.to_string(),
            resolver_address: None,
            hostname: hostname.to_string(),
            query_type: qtype,
            replies: Vec::new(),
            dropped_replies: 0,
            sent: 1,
            addresses: Vec::new(),
            tries: 1,
            check: None,
            error: None,
        };
        let question = match Question::new(rand::random(), hostname, qtype) {
            Ok(question) => question,
            Err(e) => {
                facts.error = Some(StepError::new(Operation::Resolve, Failure::unknown(e)));
                return Lookup { facts, late: None };
            }
        };
        let mut message = Message::query();
        message.metadata.id = question.id;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(question.name.clone(), question.record_type));
        let bytes = match message.to_vec() {
            Ok(bytes) => bytes,
            Err(e) => {
                facts.error = Some(StepError::new(Operation::Resolve, Failure::unknown(e)));
                return Lookup { facts, late: None };
            }
        };
        let exchange = match &self.transport {
            Transport::Udp(server) => udp_exchange(io, *server, &bytes, &question).await,
            Transport::Tcp(server) => tcp_exchange(io, *server, &bytes, &question).await,
            Transport::Doh { url, address } => {
                doh_exchange(io, url, address, bytes, &question).await
            }
        };
        match exchange {
            Err((server, e)) => {
                facts.resolver_address = server;
                facts.error = Some(e);
                Lookup { facts, late: None }
            }
            Ok(exchange) => {
                facts.resolver_address = Some(exchange.server);
                facts.replies = exchange.replies;
                facts.dropped_replies = exchange.dropped;
                facts.sent = exchange.sent;
                judge(&mut facts, question.record_type);
                Lookup {
                    facts,
                    late: exchange.late,
                }
            }
        }
    }
}

/// What the measurement needs from its surroundings.
pub struct DnsIo<'a> {
    pub limits: &'a Limits,
    pub tls: &'a TlsContext,
    pub dialer: Dialer,
    pub timeout: Duration,
    /// How long to keep listening after the first matching UDP reply.
    pub window: Duration,
}

/// What a reply must carry to answer our query: its ID and its question.
#[derive(Clone)]
pub struct Question {
    id: u16,
    name: Name,
    record_type: RecordType,
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
struct Replies {
    sent: u32,
    kept: Vec<DnsReply>,
    matching: usize,
    other: usize,
    dropped: u64,
}

impl Replies {
    fn push(&mut self, reply: DnsReply) {
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

/// Sets the addresses and the failure from the first reply that matches the query,
/// which is the one an ordinary client would have believed.
fn judge(facts: &mut DnsFacts, record_type: RecordType) {
    let Some(reply) = facts.replies.iter().find(|r| r.matches_query) else {
        facts.error = Some(StepError::timeout(Operation::Resolve));
        return;
    };
    let failure = rcode_failure(&reply.rcode);
    let addresses: Vec<IpAddr> = reply
        .answers
        .iter()
        .filter(|a| a.answer_type == record_type.to_string())
        .filter_map(|a| a.address())
        .collect();
    facts.error = match failure {
        Some(f) => Some(StepError::new(Operation::Resolve, f)),
        None if addresses.is_empty() => {
            Some(StepError::new(Operation::Resolve, Failure::DnsNoAnswer))
        }
        None => None,
    };
    facts.addresses = addresses;
}

/// The failure a reply's rcode (as recorded) stands for, if any.
pub fn rcode_failure(rcode: &str) -> Option<Failure> {
    match rcode {
        "NoError" => None,
        "NXDomain" => Some(Failure::DnsNxdomain),
        "ServFail" => Some(Failure::DnsServfail),
        "Refused" => Some(Failure::DnsRefused),
        other => Some(Failure::unknown(format!("dns rcode {other}"))),
    }
}

/// Reads one DNS message as the probe reads every reply (the fuzzers' way in): never
/// fails, a message that does not parse is a reply with rcode `malformed`.
pub fn parse_reply(bytes: &[u8], question: &Question) -> DnsReply {
    reply_of(bytes, String::new(), Instant::now(), question)
}

/// Reads a datagram or stream message into a reply record.
fn reply_of(bytes: &[u8], source: String, started: Instant, question: &Question) -> DnsReply {
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

/// Sends the query (again every sixth of the deadline, each copy with an ID of its own
/// (see [`Copies`]): stub resolvers resend too, and a link losing one packet in six
/// still gets a reply through within the deadline) until a matching reply arrives or
/// the deadline passes, recording every datagram. After the first matching reply the
/// exchange returns at once, so that the target's connections can start, and a task of
/// its own keeps listening for the window: a forged answer usually wins the race, and
/// the real one follows.
async fn udp_exchange(
    io: &DnsIo<'_>,
    server: SocketAddr,
    query: &[u8],
    question: &Question,
) -> Result<Exchange, (Option<String>, StepError)> {
    let fail = |e: std::io::Error| {
        (
            Some(server.to_string()),
            StepError::io(Operation::Resolve, &e),
        )
    };
    let _permit = io.limits.query().await;
    let socket = UdpSocket::bind(io.dialer.local_for(server))
        .await
        .map_err(fail)?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + io.timeout;
    let resend_every = (io.timeout / RESENDS).max(MIN_RESEND);
    let mut next_send = tokio::time::Instant::now();
    let mut replies = Replies::default();
    let mut copies = Copies::new(query, question);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_send {
            socket.send_to(copies.next(), server).await.map_err(fail)?;
            replies.sent += 1;
            next_send = now + resend_every;
        }
        match tokio::time::timeout_at(deadline.min(next_send), socket.recv_from(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                // ICMP errors (port or network unreachable) surface here on Linux.
                if replies.kept.is_empty() {
                    return Err(fail(e));
                }
                break;
            }
            Ok(Ok((len, source))) => {
                let reply = copies.reply(&buf[..len], source.to_string(), started);
                let matched = reply.matches_query;
                replies.push(reply);
                if matched {
                    let window_end = (tokio::time::Instant::now() + io.window).min(deadline);
                    let kept = std::mem::take(&mut replies.kept);
                    let sent = replies.sent;
                    let late = Late {
                        socket,
                        server,
                        copies,
                        window_end,
                        resend_every: io.window / (WINDOW_RESENDS + 1),
                        started,
                    };
                    return Ok(Exchange {
                        server: server.to_string(),
                        replies: kept,
                        dropped: 0,
                        sent,
                        late: Some(tokio::spawn(late.listen(replies))),
                    });
                }
            }
        }
    }
    Ok(Exchange {
        server: server.to_string(),
        replies: replies.kept,
        dropped: replies.dropped,
        sent: replies.sent,
        late: None,
    })
}

/// The copies of a UDP query sent so far, each after the first with an ID of its own:
/// a resolver may well answer two copies of one ID differently (a SERVFAIL, then the
/// answer it has since cached), and only two different answers to one copy are an
/// injection.
struct Copies {
    query: Vec<u8>,
    ids: Vec<u16>,
    question: Question,
}

impl Copies {
    fn new(query: &[u8], question: &Question) -> Copies {
        Copies {
            query: query.to_vec(),
            ids: Vec::new(),
            question: question.clone(),
        }
    }

    /// The next copy to send.
    fn next(&mut self) -> &[u8] {
        let id = match self.ids.is_empty() {
            true => self.question.id,
            false => rand::random(),
        };
        self.ids.push(id);
        self.query[..2].copy_from_slice(&id.to_be_bytes());
        &self.query
    }

    /// A datagram read as a reply to whichever copy its ID names.
    fn reply(&self, bytes: &[u8], source: String, started: Instant) -> DnsReply {
        let id = u16::from_be_bytes([
            bytes.first().copied().unwrap_or(0),
            bytes.get(1).copied().unwrap_or(0),
        ]);
        let question = Question {
            id: if self.ids.contains(&id) {
                id
            } else {
                self.question.id
            },
            ..self.question.clone()
        };
        reply_of(bytes, source, started, &question)
    }
}

/// The listening window of a UDP query after its first reply.
struct Late {
    socket: UdpSocket,
    server: SocketAddr,
    copies: Copies,
    window_end: tokio::time::Instant,
    resend_every: Duration,
    started: Instant,
}

impl Late {
    /// Every datagram that arrives until the window's end, added to `replies` (so that
    /// the bounds count the replies before the first answer too), while the query is
    /// sent again every `resend_every`.
    async fn listen(mut self, mut replies: Replies) -> Replies {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut next_send = tokio::time::Instant::now() + self.resend_every;
        loop {
            let wake = next_send.min(self.window_end);
            match tokio::time::timeout_at(wake, self.socket.recv_from(&mut buf)).await {
                Ok(Ok((len, source))) => {
                    let reply = self
                        .copies
                        .reply(&buf[..len], source.to_string(), self.started);
                    replies.push(reply);
                }
                Ok(Err(_)) => break,
                Err(_) if wake >= self.window_end => break,
                Err(_) => {
                    let copy = self.copies.next();
                    if self.socket.send_to(copy, self.server).await.is_ok() {
                        replies.sent += 1;
                    }
                    next_send += self.resend_every;
                }
            }
        }
        replies
    }
}

/// DNS over TCP: two-byte length framing on a connection of our own, so that resets
/// are seen as resets.
async fn tcp_exchange(
    io: &DnsIo<'_>,
    server: SocketAddr,
    query: &[u8],
    question: &Question,
) -> Result<Exchange, (Option<String>, StepError)> {
    let name = Some(server.to_string());
    let _permit = io.limits.host(server.ip()).await;
    let started = Instant::now();
    let mut stream = io
        .dialer
        .connect(server)
        .await
        .map_err(|e| (name.clone(), e))?;
    let exchange = async {
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut message = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut message).await?;
        Ok::<_, std::io::Error>(message)
    };
    match tokio::time::timeout(io.timeout, exchange).await {
        Err(_) => Err((name, StepError::timeout(Operation::Resolve))),
        Ok(Err(e)) => Err((name, StepError::io(Operation::Resolve, &e))),
        Ok(Ok(message)) => Ok(Exchange {
            server: server.to_string(),
            replies: vec![reply_of(&message, server.to_string(), started, question)],
            dropped: 0,
            sent: 1,
            late: None,
        }),
    }
}

/// DNS over HTTPS (RFC 8484, POST), over a connection whose certificate must verify:
/// an answer from an impostor resolver is worth nothing.
async fn doh_exchange(
    io: &DnsIo<'_>,
    url: &Url,
    address: &OnceCell<Result<SocketAddr, StepError>>,
    query: Vec<u8>,
    question: &Question,
) -> Result<Exchange, (Option<String>, StepError)> {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let server = address
        .get_or_init(|| async {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return Ok(SocketAddr::new(ip, port));
            }
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(mut addrs) => addrs
                    .next()
                    .ok_or_else(|| StepError::new(Operation::Resolve, Failure::DnsNoAnswer)),
                Err(e) => Err(StepError::new(Operation::Resolve, Failure::unknown(e))),
            }
        })
        .await
        .clone()
        .map_err(|e| (None, e))?;
    let name = Some(url.to_string());
    let _permit = io.limits.host(server.ip()).await;
    let started = Instant::now();
    let tcp = io
        .dialer
        .connect(server)
        .await
        .map_err(|e| (name.clone(), e))?;
    let tls = io
        .tls
        .connect_strict(tcp, &host, io.timeout)
        .await
        .map_err(|e| (name.clone(), e))?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let headers = [
        ("content-type", "application/dns-message"),
        ("accept", "application/dns-message"),
    ];
    let request = http::request(hyper::Method::POST, url, h2, &headers, Bytes::from(query))
        .map_err(|e| {
            (
                name.clone(),
                StepError::new(Operation::Resolve, Failure::unknown(e)),
            )
        })?;
    let exchange = async {
        let (response, _connection) = http::send(tls, h2, request).await?;
        let status = response.status();
        let body = http::read_to_cap(response.into_body(), MAX_MESSAGE, io.timeout).await;
        if let Some(e) = body.error {
            return Err(e);
        }
        if !status.is_success() {
            return Err(StepError::new(
                Operation::Resolve,
                Failure::unknown(format!("DoH server answered HTTP {status}")),
            ));
        }
        Ok(body.bytes)
    };
    match tokio::time::timeout(io.timeout, exchange).await {
        Err(_) => Err((name, StepError::timeout(Operation::Resolve))),
        Ok(Err(e)) => Err((name, e)),
        Ok(Ok(message)) => Ok(Exchange {
            server: server.to_string(),
            replies: vec![reply_of(&message, server.to_string(), started, question)],
            dropped: 0,
            sent: 1,
            late: None,
        }),
    }
}

/// The first nameserver of resolv.conf: what the system's own lookups would ask.
fn system_nameserver(path: &Path) -> anyhow::Result<SocketAddr> {
    let text = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "system resolver: cannot read {}: {e}; give a --resolver",
            path.display()
        )
    })?;
    let config = resolv_conf::Config::parse(&text)
        .map_err(|e| anyhow::anyhow!("system resolver: {}: {e}", path.display()))?;
    let ip: IpAddr = config
        .nameservers
        .first()
        .map(|ns| ns.into())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "system resolver: {} lists no nameserver; give a --resolver",
                path.display()
            )
        })?;
    Ok(SocketAddr::new(ip, 53))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_nameserver() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "# comment\nsearch lan\nnameserver 198.18.0.53\nnameserver 9.9.9.9\n",
        )
        .unwrap();
        assert_eq!(
            system_nameserver(&path).unwrap(),
            "198.18.0.53:53".parse().unwrap()
        );
        std::fs::write(&path, "search lan\n").unwrap();
        assert!(
            system_nameserver(&path)
                .unwrap_err()
                .to_string()
                .contains("lists no nameserver")
        );
    }

    #[test]
    fn a_flood_is_capped_without_losing_the_answers() {
        let reply = |matches_query| DnsReply {
            source: "x".into(),
            arrival_ms: 0.0,
            id: 7,
            matches_query,
            rcode: "NoError".into(),
            answers: Vec::new(),
        };
        let mut replies = Replies::default();
        for _ in 0..1000 {
            replies.push(reply(false));
        }
        for _ in 0..100 {
            replies.push(reply(true));
        }
        let matching = replies.kept.iter().filter(|r| r.matches_query).count();
        assert_eq!(
            (replies.kept.len(), matching),
            (2 * MAX_REPLIES, MAX_REPLIES)
        );
        assert_eq!(replies.dropped, 1100 - 2 * MAX_REPLIES as u64);
    }

    #[test]
    fn replies_are_judged_by_the_first_matching_one() {
        let question = Question {
            id: 7,
            name: Name::from_ascii("a.test.").unwrap(),
            record_type: RecordType::A,
        };
        let mut response = Message::response(7, hickory_proto::op::OpCode::Query);
        response.add_query(Query::query(question.name.clone(), RecordType::A));
        response.add_answer(hickory_proto::rr::Record::from_rdata(
            question.name.clone(),
            60,
            RData::A("10.10.34.34".parse::<std::net::Ipv4Addr>().unwrap().into()),
        ));
        let bytes = response.to_vec().unwrap();
        let started = Instant::now();
        let mut wrong_id = Message::response(8, hickory_proto::op::OpCode::Query);
        wrong_id.add_query(Query::query(question.name.clone(), RecordType::A));
        let mut facts = DnsFacts {
            resolver: "udp://127.0.0.1:53".into(),
            resolver_address: None,
            hostname: "a.test".into(),
            query_type: QueryType::A,
            replies: vec![
                reply_of(&wrong_id.to_vec().unwrap(), "x".into(), started, &question),
                reply_of(b"\x00\x07garbage", "x".into(), started, &question),
                reply_of(&bytes, "x".into(), started, &question),
            ],
            dropped_replies: 0,
            sent: 1,
            addresses: vec![],
            tries: 1,
            check: None,
            error: None,
        };
        assert!(!facts.replies[0].matches_query);
        assert_eq!(facts.replies[1].rcode, "malformed");
        judge(&mut facts, RecordType::A);
        assert_eq!(facts.addresses, ["10.10.34.34".parse::<IpAddr>().unwrap()]);
        assert_eq!(facts.replies[2].answers[0].ttl, 60);
        assert!(facts.error.is_none());
    }
}
