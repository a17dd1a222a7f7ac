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

mod doh;
mod message;
mod pace;
mod tcp;
mod udp;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::RecordType;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use url::Url;

use super::checks::Family;
use super::limits::Limits;
use super::meanwhile::Exchanges;
use super::tcp::Dialer;
use super::tls::TlsContext;
use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{DnsFacts, DnsReply, Meanwhile, QueryType};
use crate::input::targets::ResolverSpec;
use message::Replies;
pub use message::{MAX_REPLIES, Question, parse_reply};

/// Where the system's stub resolver sends its queries.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// A configured resolver, ready to be asked.
pub struct Resolver {
    spec: ResolverSpec,
    transport: Transport,
    /// How long it takes to answer: the length of its queries' listening windows.
    pace: Arc<pace::Pace>,
    /// Its lookups answered lately, and the copies each took, for the checks after a
    /// lookup that failed (see `meanwhile`).
    answered: Exchanges,
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
    /// Which copy (from 1) the first matching reply answered; 0 with none. The copies
    /// before it went unanswered; one answered late, after a later copy went out, was
    /// slow rather than lost.
    answered_copy: u32,
    /// The task still listening for replies after the first matching one (UDP only).
    late: Option<JoinHandle<Replies>>,
    /// Listening on past the deadline, where no copy was answered by then (UDP only).
    overdue: Option<udp::Overdue>,
    /// Why the whole answer could not be had over TCP, where the UDP one was truncated.
    whole_failed: Option<StepError>,
}

impl Exchange {
    /// The exchange of one message over a stream (TCP, DoH): one reply, nothing late.
    fn one(server: SocketAddr, message: &[u8], started: Instant, question: &Question) -> Exchange {
        Exchange {
            server: server.to_string(),
            replies: vec![message::reply_of(
                message,
                server.to_string(),
                started,
                question,
            )],
            dropped: 0,
            sent: 1,
            answered_copy: 1,
            late: None,
            overdue: None,
            whole_failed: None,
        }
    }
}

/// A lookup whose answer is known, with replies that may still arrive.
pub struct Lookup {
    pub facts: DnsFacts,
    late: Option<JoinHandle<Replies>>,
    /// Its queries unanswered by their deadlines, still listened to: this try's, and
    /// an earlier one's (see [`Lookup::again_after`]).
    overdue: Vec<udp::Overdue>,
}

impl Lookup {
    fn failed(facts: DnsFacts) -> Lookup {
        Lookup {
            facts,
            late: None,
            overdue: Vec::new(),
        }
    }

    /// This lookup, made again after `earlier` failed: the earlier query's overdue
    /// answer, which has had the longest to come, counts for it.
    pub fn again_after(mut self, earlier: Lookup) -> Lookup {
        self.overdue.splice(0..0, earlier.overdue);
        self
    }

    /// The facts with every reply of the listening window, and the first answer to come
    /// past a deadline by now.
    pub async fn finish(self) -> DnsFacts {
        let mut facts = self.facts;
        if let Some(late) = self.late {
            let late = late.await.unwrap_or_default();
            facts.replies.extend(late.kept);
            facts.dropped_replies = late.dropped;
            facts.sent = late.sent;
        }
        for overdue in self.overdue {
            if let Some(reply) = overdue.stop().await {
                facts.overdue.get_or_insert(reply);
            }
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
            pace: Arc::default(),
            answered: Exchanges::default(),
        })
    }

    /// The resolver as configured (`system`, `udp://IP:PORT`, ...).
    pub fn name(&self) -> String {
        self.spec.to_string()
    }

    /// The address family its queries go over: a DNS-over-HTTPS server's once its
    /// name has been looked up, IPv4 until then.
    pub fn family(&self) -> Family {
        let address = match &self.transport {
            Transport::Udp(address) | Transport::Tcp(address) => Some(*address),
            Transport::Doh { address, .. } => address.get().and_then(|a| a.as_ref().ok()).copied(),
        };
        address.map_or(Family::Ipv4, |a| Family::of(a.ip()))
    }

    /// Its lookups answered since `since`, and the copies of the query they took before
    /// their first answer; with the latest before, where those were few (see
    /// `meanwhile::Exchanges::since`).
    pub fn answered_since(&self, since: tokio::time::Instant) -> (Meanwhile, Option<Meanwhile>) {
        self.answered.since(since)
    }

    /// How long a quarter of its recent answers to a query's first copy took or longer
    /// (see `pace`).
    pub fn slow_quarter(&self) -> Option<Duration> {
        self.pace.slow_quarter()
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
            overdue: None,
            error: None,
        };
        let question = match Question::new(rand::random(), hostname, qtype) {
            Ok(question) => question,
            Err(e) => {
                facts.error = Some(StepError::new(Operation::Resolve, Failure::unknown(e)));
                return Lookup::failed(facts);
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
                return Lookup::failed(facts);
            }
        };
        let exchange = match &self.transport {
            Transport::Udp(server) => {
                match udp::exchange(io, &self.pace, *server, &bytes, &question).await {
                    Ok(udp) => {
                        Ok(Box::pin(whole_if_truncated(io, *server, &bytes, &question, udp)).await)
                    }
                    failed => failed,
                }
            }
            // Boxed: a lookup's future is as large as its largest transport's, and a
            // run holds thousands of UDP ones at once, which need a fraction of it.
            Transport::Tcp(server) => Box::pin(tcp::exchange(io, *server, &bytes, &question)).await,
            Transport::Doh { url, address } => {
                Box::pin(doh::exchange(io, url, address, bytes, &question)).await
            }
        };
        match exchange {
            Err((server, e)) => {
                facts.resolver_address = server;
                facts.error = Some(e);
                Lookup::failed(facts)
            }
            Ok(exchange) => {
                facts.resolver_address = Some(exchange.server);
                facts.replies = exchange.replies;
                facts.dropped_replies = exchange.dropped;
                facts.sent = exchange.sent;
                if exchange.answered_copy > 0 {
                    self.answered.answered(exchange.answered_copy);
                }
                judge(&mut facts, question.record_type);
                if let Some(e) = exchange.whole_failed {
                    facts.error = Some(e);
                }
                Lookup {
                    facts,
                    late: exchange.late,
                    overdue: exchange.overdue.into_iter().collect(),
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
    /// How long to keep listening after the first matching UDP reply, at most (see
    /// `pace`).
    pub window: Duration,
}

/// Where the first matching reply over UDP was truncated (the answer did not fit a
/// datagram), the same query over TCP to the same server, its reply added, as a stub
/// resolver asks again (RFC 7766): the whole answer, which a partial or empty one must
/// not stand for. Where that exchange fails, its failure is the lookup's, as a stub
/// resolver's lookup fails then.
async fn whole_if_truncated(
    io: &DnsIo<'_>,
    server: SocketAddr,
    query: &[u8],
    question: &Question,
    mut exchange: Exchange,
) -> Exchange {
    let truncated = exchange
        .replies
        .iter()
        .find(|r| r.matches_query)
        .is_some_and(|r| r.truncated);
    if truncated {
        match tcp::exchange(io, server, query, question).await {
            Ok(whole) => exchange.replies.extend(whole.replies),
            Err((_, e)) => exchange.whole_failed = Some(e),
        }
    }
    exchange
}

/// Sets the addresses and the failure from the first reply that matches the query and
/// is whole (the first matching one where none is), which is the one an ordinary
/// client would have believed.
fn judge(facts: &mut DnsFacts, record_type: RecordType) {
    let matching = || facts.replies.iter().filter(|r| r.matches_query);
    let Some(reply) = matching().find(|r| !r.truncated).or(matching().next()) else {
        facts.error = Some(StepError::timeout(Operation::Resolve));
        return;
    };
    let failure = Failure::from_rcode(&reply.rcode);
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
    use std::time::Instant;

    use hickory_proto::rr::{Name, RData};

    use super::message::reply_of;
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
            truncated: false,
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
            overdue: None,
            error: None,
        };
        assert!(!facts.replies[0].matches_query);
        assert_eq!(facts.replies[1].rcode, "malformed");
        judge(&mut facts, RecordType::A);
        assert_eq!(facts.addresses, ["10.10.34.34".parse::<IpAddr>().unwrap()]);
        assert_eq!(facts.replies[2].answers[0].ttl, 60);
        assert!(facts.error.is_none());
    }

    /// The deadline of the tests' lookups.
    const TIMEOUT: Duration = Duration::from_secs(2);

    fn tls() -> TlsContext {
        TlsContext::new(crate::measure::tls::root_store(None).unwrap()).unwrap()
    }

    /// What the tests' lookups need, listening `window` after a first reply.
    fn io<'a>(limits: &'a Limits, tls: &'a TlsContext, window: Duration) -> DnsIo<'a> {
        DnsIo {
            limits,
            tls,
            dialer: Dialer::new(TIMEOUT, None),
            timeout: TIMEOUT,
            window,
        }
    }

    /// A UDP reply cut short (TC) is asked again over TCP, as a stub resolver does: the
    /// whole answer is the lookup's, never the empty one, nor a race of the two.
    #[tokio::test]
    async fn a_truncated_answer_is_asked_again_over_tcp() {
        use crate::lab::dns::{DnsBehaviour, DnsServer};

        let (limits, tls) = (Limits::new(4, 4), tls());
        let io = io(&limits, &tls, Duration::from_millis(200));
        let whole: Vec<IpAddr> = vec![[127, 0, 0, 2].into(), [127, 0, 0, 3].into()];
        let zone = [("big.test", DnsBehaviour::Truncated(whole.clone()))];
        let server = DnsServer::spawn_udp_and_tcp(&zone).await.unwrap();
        let resolver = Resolver::new(&ResolverSpec::Udp(server)).unwrap();
        let facts = resolver.query(&io, "big.test", QueryType::A).await;
        assert_eq!(facts.addresses, whole, "{facts:?}");
        assert!(facts.error.is_none(), "{facts:?}");
        assert!(facts.replies[0].truncated && facts.replies[0].answers.is_empty());
        assert!(
            facts
                .replies
                .iter()
                .any(|r| !r.truncated && r.id == facts.replies[0].id)
        );
        assert_eq!(facts.raced().count(), 0);
        // A resolver that does not take TCP: the lookup fails as the exchange over TCP
        // did, not as a name without an address.
        let udp_only = DnsServer::spawn(&zone).unwrap();
        let resolver = Resolver::new(&ResolverSpec::Udp(udp_only)).unwrap();
        let facts = resolver.query(&io, "big.test", QueryType::A).await;
        let failure = facts.error.as_ref().map(|e| e.failure.clone());
        assert_eq!(failure, Some(Failure::ConnectionRefused), "{facts:?}");
    }

    /// A query none of whose copies was answered by its deadline is listened to while
    /// the probe goes on with the name: a slow resolver's answer that comes meanwhile
    /// is kept, for the earlier try where the lookup was made again; a silent name's
    /// never comes; and finishing the facts does not wait for the listening's end.
    #[tokio::test]
    async fn an_answer_past_the_deadline_is_kept_as_overdue() {
        use crate::lab::dns::{DnsBehaviour, DnsServer};

        let (limits, tls) = (Limits::new(4, 4), tls());
        let deadline = Duration::from_millis(300);
        let io = DnsIo {
            timeout: deadline,
            ..io(&limits, &tls, Duration::ZERO)
        };
        let ip: IpAddr = [127, 0, 0, 2].into();
        let late = Duration::from_millis(450);
        let zone = [
            ("late.test", DnsBehaviour::Late(late, vec![ip])),
            ("silent.test", DnsBehaviour::Silent),
        ];
        let resolver = Resolver::new(&ResolverSpec::Udp(DnsServer::spawn(&zone).unwrap())).unwrap();
        // Finished as the second try times out: the first try's answer came 150 ms
        // before, the second's is 150 ms away.
        let first = resolver.lookup(&io, "late.test", QueryType::A).await;
        let again = resolver.lookup(&io, "late.test", QueryType::A).await;
        let timed_out = |facts: &DnsFacts| {
            facts.error.as_ref().map(|e| e.failure.clone()) == Some(Failure::GenericTimeout)
        };
        assert!(timed_out(&first.facts) && timed_out(&again.facts));
        let facts = again.again_after(first).finish().await;
        let overdue = facts
            .overdue
            .expect("the first try's answer came meanwhile");
        assert_eq!(overdue.answers[0].address(), Some(ip));
        assert!(
            overdue.arrival_ms >= late.as_secs_f64() * 1000.0,
            "{overdue:?}"
        );
        assert!(facts.error.is_some() && facts.addresses.is_empty());
        let silent = resolver.lookup(&io, "silent.test", QueryType::A).await;
        let waited = Instant::now();
        let silent = silent.finish().await;
        assert!(timed_out(&silent) && silent.overdue.is_none(), "{silent:?}");
        assert!(
            waited.elapsed() < deadline,
            "finishing waited for the listening"
        );
    }

    /// Queries their resolver leaves unanswered (a censor's silence for the names) hold
    /// their places among the queries in flight only until their first copies are sent
    /// again: held to their deadlines, a list of silenced names kept every other lookup
    /// waiting. Four of them against one place each unit of concurrency, as the run's
    /// limits have it: the next query is answered while the first still waits.
    #[tokio::test]
    async fn unanswered_queries_give_their_places_back_before_their_deadlines() {
        use crate::lab::dns::{DnsBehaviour, DnsServer};

        let (limits, tls) = (Limits::new(1, 1), tls());
        let io = io(&limits, &tls, Duration::ZERO);
        let silenced = ["a", "b", "c", "d"].map(|n| format!("{n}.silenced.test"));
        let mut zone: Vec<(&str, DnsBehaviour)> = silenced
            .iter()
            .map(|name| (name.as_str(), DnsBehaviour::Silent))
            .collect();
        zone.push((
            "next.test",
            DnsBehaviour::Answer(vec![[127, 0, 0, 1].into()]),
        ));
        let resolver = Resolver::new(&ResolverSpec::Udp(DnsServer::spawn(&zone).unwrap())).unwrap();
        let unanswered = |name: &str| {
            let (resolver, io, name) = (&resolver, &io, name.to_string());
            async move {
                let facts = resolver.query(io, &name, QueryType::A).await;
                (facts, Instant::now())
            }
        };
        let next = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let lookup = resolver.lookup(&io, "next.test", QueryType::A).await;
            (lookup.facts, Instant::now())
        };
        let ((first, first_at), _, _, _, (answered, answered_at)) = tokio::join!(
            unanswered(&silenced[0]),
            unanswered(&silenced[1]),
            unanswered(&silenced[2]),
            unanswered(&silenced[3]),
            next
        );
        assert!(first.replies.is_empty() && first.sent > 1, "{first:?}");
        assert_eq!(
            answered.addresses,
            [std::net::Ipv4Addr::LOCALHOST],
            "{answered:?}"
        );
        assert!(
            answered_at < first_at,
            "the next query waited for the first unanswered one's deadline"
        );
    }
}
