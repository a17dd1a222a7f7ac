//! HTTP GET over connections we make ourselves (hyper on our own TCP and TLS streams),
//! so that the request goes to the address DNS gave us, the TLS facts of that very
//! connection are kept, and each redirect hop is recorded with its own address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use regex::Regex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use url::Url;

use super::address::Ticket;
use super::checks::Family;
use super::limits::Held;
use super::received::{Counted, Ended, Tally, writes_pass_through};
use super::tcp::RETRY_PAUSE;
use super::{Again, Measurer, failed_to_connect, now};
use crate::facts::failure::{Failure, Operation, StepError, body_packets};
use crate::facts::{
    HttpFacts, HttpHop, Measurement, RATE_WINDOW, RATED_WINDOWS, READ_EVENTS, ReadEvent,
    STALL_BYTES, Step, THROTTLE_RATIO, Trigger,
};
use crate::input::targets::Target;

/// How much of a body is read: enough for any blockpage and a stable length comparison
/// (OONI's websteps reads the same), little enough for a slow link.
pub const BODY_CAP: usize = 512 * 1024;
/// How much of the body is kept in the facts, for blockpage fingerprints.
pub const BODY_PREFIX: usize = 16 * 1024;
const MAX_REDIRECTS: usize = 10;
/// The most a response head may take: hyper's HTTP/1.1 default (its read buffer),
/// applied to HTTP/2 as well (whose hyper default is 16 KiB), so that a page with large
/// headers fares the same over both, and a server cannot make us hold more.
pub const HEAD_CAP: usize = 400 * 1024;
/// Addresses a hop's connection tries go round (see `tcp::Dialer::dial`).
const MAX_ATTEMPTS: usize = 3;

/// Headers of an ordinary browser, so that a fetch does not stand out.
pub const BROWSER_HEADERS: [(&str, &str); 3] = [
    (
        "user-agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("accept-language", "en-US,en;q=0.9"),
];

/// Aborts the task driving a connection when the exchange is over, so that a server
/// that keeps sending cannot keep it alive.
pub struct Connection(JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A request for `url`: in origin form with a Host header for HTTP/1.1, in absolute
/// form for HTTP/2 (whose :authority hyper takes from the URI).
pub fn request(
    method: Method,
    url: &Url,
    h2: bool,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
    let mut builder = Request::builder().method(method);
    builder = match h2 {
        true => builder.uri(url.as_str()),
        false => builder
            .uri(&url[url::Position::BeforePath..url::Position::AfterQuery])
            .header(
                "host",
                &url[url::Position::BeforeHost..url::Position::AfterPort],
            ),
    };
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body))
}

/// Sends one request on a stream, over HTTP/2 when ALPN chose it.
pub async fn send<S>(
    io: S,
    h2: bool,
    request: Request<Full<Bytes>>,
) -> Result<(Response<Incoming>, Connection), StepError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Yielding {
        io,
        yield_next: false,
    });
    let fail = |e: hyper::Error| classify(&e, Operation::HttpRoundTrip);
    if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .max_header_list_size(HEAD_CAP as u32)
            .handshake(io)
            .await
            .map_err(fail)?;
        let guard = Connection(tokio::spawn(async move {
            let _ = conn.await;
        }));
        Ok((sender.send_request(request).await.map_err(fail)?, guard))
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(HEAD_CAP)
            // `User-Agent`, as browsers write header names over HTTP/1.1, not hyper's
            // `user-agent`, which would set the probe's requests apart.
            .title_case_headers(true)
            .handshake(io)
            .await
            .map_err(fail)?;
        let guard = Connection(tokio::spawn(async move {
            let _ = conn.await;
        }));
        Ok((sender.send_request(request).await.map_err(fail)?, guard))
    }
}

/// A stream that lets its task give way after every read that brought data.
///
/// hyper parses all it has read in one go, and drops informational (1xx) responses
/// as it goes; tokio lets a task make 128 reads before it must yield. A server sending
/// `100 Continue` without end thus kept a connection's task busy for seconds at a time
/// (up to 128 reads of 400 KiB, each parsed whole), during which its deadline could
/// not fire nor the task be aborted. One read per turn bounds that to one buffer.
struct Yielding<S> {
    io: S,
    yield_next: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Yielding<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if std::mem::take(&mut self.yield_next) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        self.yield_next = buf.filled().len() > before;
        read
    }
}

writes_pass_through!(Yielding);

/// Records in `hop` what its connection received after the handshake, `handshaken`
/// bytes in at `sent` (the request), when the deadline ended the round trip: see
/// `HttpHop::received_after_handshake`.
fn record_round_trip(
    hop: &mut HttpHop,
    tally: &Tally,
    handshaken: u64,
    sent: tokio::time::Instant,
) {
    let (bytes, last) = tally.get();
    let now = tokio::time::Instant::now();
    let ms = |since: tokio::time::Instant| (now - since).as_secs_f64() * 1000.0;
    hop.received_after_handshake = Some(bytes - handshaken);
    hop.read_ms = Some(ms(sent));
    hop.silent_ms = Some(ms(last.map_or(sent, |last| last.max(sent))));
}

/// A hyper error as one of our failures: the I/O error underneath when there is one.
pub fn classify(err: &hyper::Error, operation: Operation) -> StepError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return StepError::io(operation, io);
        }
        source = e.source();
    }
    let failure = if err.is_incomplete_message() {
        Failure::Eof
    } else if err.is_timeout() {
        Failure::GenericTimeout
    } else {
        Failure::unknown(err)
    };
    StepError::new(operation, failure)
}

pub struct Body {
    pub bytes: Vec<u8>,
    pub truncated: bool,
    pub transfer_ms: f64,
    /// See `HttpHop::active_rate` and `HttpHop::peak_rate`.
    pub active_rate: Option<f64>,
    pub peak_rate: Option<f64>,
    /// See `HttpHop::read_ms` and `HttpHop::silent_ms`.
    pub read_ms: Option<f64>,
    pub silent_ms: Option<f64>,
    /// The first reads, in milliseconds from the start of the body's read.
    pub reads: Vec<ReadEvent>,
    pub error: Option<StepError>,
}

/// How fast a body arrived, counted in quarter seconds: see `HttpHop::active_rate` and
/// `HttpHop::peak_rate`. A body that came in fewer than [`RATED_WINDOWS`] of them has
/// neither: one or two bursts (a throttle's allowance before it stalled, a TLS record)
/// say nothing of how it flowed, and its average over the transfer stands instead.
fn window_rates(arrivals: &[(Instant, usize)]) -> Option<(f64, f64)> {
    let first = arrivals.first()?.0;
    let mut windows: Vec<usize> = Vec::new();
    for (at, bytes) in arrivals {
        let index = (at.duration_since(first).as_nanos() / RATE_WINDOW.as_nanos()) as usize;
        if windows.len() <= index {
            windows.resize(index + 1, 0);
        }
        windows[index] += bytes;
    }
    let mut flowing: Vec<usize> = windows.into_iter().filter(|b| *b > 0).collect();
    if flowing.len() < RATED_WINDOWS {
        return None;
    }
    flowing.sort_unstable();
    let per_second = |bytes: usize| bytes as f64 / RATE_WINDOW.as_secs_f64();
    Some((
        per_second(flowing[flowing.len() / 2]),
        per_second(flowing[flowing.len() - 2]),
    ))
}

/// Reads a body up to `cap` bytes within `timeout`; what arrived before a failure is
/// kept, because a page cut short by a reset is evidence too. A read the deadline ends
/// says how long it had been silent: a transfer that stopped dead from one still moving.
pub async fn read_to_cap<B>(mut body: B, cap: usize, timeout: Duration) -> Body
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    let began = tokio::time::Instant::now();
    let deadline = began + timeout;
    let mut out = Body {
        bytes: Vec::new(),
        truncated: false,
        transfer_ms: 0.0,
        active_rate: None,
        peak_rate: None,
        read_ms: None,
        silent_ms: None,
        reads: Vec::new(),
        error: None,
    };
    let mut arrivals: Vec<(Instant, usize)> = Vec::new();
    let mut last = began;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                out.error = Some(StepError::timeout(Operation::Read));
                let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                out.read_ms = Some(ms(timeout));
                out.silent_ms = Some(ms(deadline - last));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                out.error = Some(classify(&e, Operation::Read));
                break;
            }
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                arrivals.push((Instant::now(), data.len()));
                if !data.is_empty() {
                    last = tokio::time::Instant::now();
                    if out.reads.len() < READ_EVENTS {
                        out.reads.push(ReadEvent {
                            t_ms: (last - began).as_secs_f64() * 1000.0,
                            bytes: data.len() as u64,
                        });
                    }
                }
                let room = cap - out.bytes.len();
                out.bytes.extend_from_slice(&data[..data.len().min(room)]);
                if data.len() > room {
                    out.truncated = true;
                    break;
                }
            }
        }
    }
    out.transfer_ms = arrivals
        .first()
        .map_or(0.0, |(t, _)| t.elapsed().as_secs_f64() * 1000.0);
    if let Some((active, peak)) = window_rates(&arrivals) {
        out.active_rate = Some(active);
        out.peak_rate = Some(peak);
    }
    out
}

static TITLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?is)<title[^>]*>(.*?)</title>").expect("title regex is valid"));

/// The page title with white space folded, at most 256 characters (and no space at its
/// end where the cut falls on one).
pub fn title_of(body: &str) -> Option<String> {
    let raw = TITLE.captures(body)?.get(1)?.as_str();
    let folded = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = folded.chars().take(256).collect();
    Some(cut.trim_end().to_string())
}

/// What a fetch gives back besides its facts.
pub(super) struct Fetched<'a> {
    pub facts: HttpFacts,
    /// At the probe, the control-SNI handshakes to the addresses fetched from (made once
    /// per address in the run, and before the fetch sends its own name there).
    pub handshakes: Vec<Measurement>,
    /// The fetch's requests on each address, logged as possible triggers of residual
    /// blocking until the fetch's measurement is recorded.
    pub tickets: Vec<Ticket<'a>>,
    /// The places on the last hop's addresses, for the twin and the ECH comparison to
    /// carry on in (see [`Held`]).
    pub held: Held,
    /// When the fetch began: its measurement's time, which its triggers carry.
    began: DateTime<Utc>,
}

/// Fetches in all of a URL the site answered with an error of its own (see
/// [`Measurer::after_server_error`]): a site that errs at one request in three errs
/// at three in a row once in 27 fetches, and at both sides' three once in 729.
const SERVER_ERROR_FETCHES: usize = 3;

/// A transfer of at least this many bytes, or one cut off by the deadline, that ran
/// slower than [`SLOW_RATE`] is fetched again with the control SNI, for throttling to
/// be told from a slow path.
const SLOW_BYTES: u64 = 64 * 1024;
/// Bytes per second (8 Mbit/s): faster than this on average, no throttle is looked for.
const SLOW_RATE: f64 = 1_000_000.0;

impl Measurer {
    /// GETs `url` from the first of `addresses` that connects, then follows redirects,
    /// each hop to the addresses our own DNS found for its host.
    pub(super) async fn fetch(
        &self,
        target: &Target,
        url: &Url,
        addresses: Result<Vec<IpAddr>, StepError>,
        started: DateTime<Utc>,
    ) -> Fetched<'_> {
        let began = tokio::time::Instant::now();
        let mut out = Fetched {
            facts: HttpFacts {
                url: url.to_string(),
                hops: Vec::new(),
                control_sni: None,
                again: false,
                tries: 1,
                first_failure: None,
                cut_after: Vec::new(),
                check: None,
                error: None,
            },
            handshakes: Vec::new(),
            tickets: Vec::new(),
            held: Held::default(),
            began: started,
        };
        let mut current = url.clone();
        let mut addresses = addresses;
        let mut looped = false;
        for _ in 0..=MAX_REDIRECTS {
            let (hop, next) = match addresses {
                Ok(list) => self.fetch_hop(target, &current, &list, &mut out).await,
                Err(e) => (empty_hop(&current, None, Some(e)), None),
            };
            out.facts.hops.push(hop);
            let Some(next) = next else { break };
            // A hop's places are taken anew: a redirect to the same address, asking for
            // one more there, could otherwise wait for itself.
            out.held = Held::default();
            // Back to a URL already fetched: without cookies it only goes round again.
            if out.facts.hops.iter().any(|h| h.url == next.as_str()) {
                looped = true;
                break;
            }
            addresses = if next.host() == current.host() {
                Ok(out
                    .facts
                    .hops
                    .last()
                    .and_then(|h| h.address)
                    .map(|a| vec![a.ip()])
                    .unwrap_or_default())
            } else {
                let (found, check) = self.addresses_for(&next).await;
                if found.is_err() {
                    out.facts.check = check;
                }
                found
            };
            current = next;
        }
        let facts = &mut out.facts;
        let last = facts.hops.last().expect("at least one hop");
        facts.error = if looped {
            Some(StepError::new(
                Operation::HttpRoundTrip,
                Failure::unknown("redirect loop"),
            ))
        } else if last.redirects() && facts.hops.len() > MAX_REDIRECTS {
            Some(StepError::new(
                Operation::HttpRoundTrip,
                Failure::unknown("too many redirects"),
            ))
        } else {
            last.error.clone().or_else(|| {
                facts
                    .hops
                    .iter()
                    .find_map(|h| h.tls.as_ref().and_then(|t| t.error.clone()))
            })
        };
        // Nothing came back: no response, or no more of its body before the deadline (a
        // freeze, or the probe's link gone); or the fetch was turned down. But for the
        // URL's own name not resolving, whose lookups were checked where measured:
        // checked again here, with the resolver down, each batch of URLs waited out one
        // more lookup of the canary.
        let own_lookup = facts.own_name_unresolved();
        let failed = facts.error.as_ref().filter(|e| {
            let unanswered = e.failure.is_unanswered()
                && (last.status.is_none() || e.failed_operation == Operation::Read);
            !own_lookup && (unanswered || (!e.local && e.failure.is_turned_down()))
        });
        if let Some(failed) = failed.cloned() {
            // Nothing is sent to the server meanwhile: its places are for others.
            out.held = Held::default();
            if out.facts.check.is_none() {
                let last = out.facts.hops.last();
                let address = last.and_then(|hop| hop.address);
                let at_connect =
                    last.and_then(|hop| failed_to_connect(hop.error.as_ref()?, hop.address?));
                // Over IPv4 where the hop had no address to connect to.
                let family = address.map_or(Family::Ipv4, |a| Family::of(a.ip()));
                out.facts.check = self.network_check(began, &failed, family, at_connect).await;
            }
        }
        out
    }

    /// One hop: a connection to the first of `addresses` that answers (at the probe, the
    /// control-SNI handshake first, for HTTPS), then the exchange on a connection opened
    /// right after its work place is taken. An exchange that timed out, or was refused or
    /// torn down, before any response is made again, on a new connection after a pause
    /// (see `Again`); if every try fails, the first is kept.
    async fn fetch_hop<'a>(
        &'a self,
        target: &Target,
        url: &Url,
        addresses: &[IpAddr],
        out: &mut Fetched<'a>,
    ) -> (HttpHop, Option<Url>) {
        let port = url.port_or_known_default().unwrap_or(80);
        let host = host_of(url).to_string();
        let candidates: Vec<SocketAddr> = addresses
            .iter()
            .take(MAX_ATTEMPTS)
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        // One address: connected to as a domain's are, one target at a time, sharing a
        // silence (see `address::Silence`). More: tried in turn, in places on them all.
        let connection = match candidates[..] {
            [only] => {
                let (connected, stream, held) = self.connect_first(target, only).await;
                match (stream, connected.step) {
                    (Some(stream), _) => Ok((stream, only, held)),
                    // The check made as the connect failed judges it: one made when the
                    // fetch ends, a check's time later, may miss the link found down
                    // during its tries.
                    (None, Step::TcpConnect(facts)) => {
                        out.facts.check = facts.check;
                        Err((only, facts.error))
                    }
                    (None, step) => Err((only, step.error().cloned())),
                }
            }
            _ => {
                let held = self
                    .limits
                    .hosts(candidates.iter().map(SocketAddr::ip))
                    .await;
                let again = self.dial_again(&candidates).await;
                out.facts.first_failure = out.facts.first_failure.take().or(again.first_failure);
                match again.kept.result {
                    Ok((stream, address)) => Ok((stream, address, held)),
                    Err(e) => Err((again.kept.address, Some(e))),
                }
            }
        };
        let (tcp, address, held) = match connection {
            Ok(connection) => connection,
            Err((address, e)) => return (empty_hop(url, Some(address), e), None),
        };
        let mut open = Some(tcp);
        let sni = self
            .tcp_control_sni_for(&host)
            .filter(|_| url.scheme() == "https");
        if let Some(sni) = sni {
            let handshake = self
                .shared_control_handshake(target, sni, address, &mut open)
                .await;
            let known =
                |m: &Measurement| matches!(&m.step, Step::TlsHandshake(t) if t.address == address);
            if !out.handshakes.iter().any(known) {
                out.handshakes.push(handshake);
            }
        }
        let besides = super::counted_connect(&open);
        let first = self.exchange_at_work(url, open, address, &host, out).await;
        out.facts.cut_after = cut_in_body(&first.0).into_iter().collect();
        let mut again = Again::new(first, |exchanged| worth_refetching(&exchanged.0))
            .on(self, Family::of(address.ip()));
        while again.another().await {
            let next = self.exchange_at_work(url, None, address, &host, out);
            let next = self.alongside(next, again.pulse_after()).await;
            out.facts.cut_after.extend(cut_in_body(&next.0));
            again.took(next);
        }
        let body = read(&again.kept.0, &out.facts.cut_after);
        self.went_through(&again, Operation::HttpRoundTrip, body + besides);
        out.facts.tries = out.facts.tries.max(again.tries);
        out.facts.first_failure = out.facts.first_failure.take().or(again.first_failure);
        let kept = again.kept;
        if let (Some(sni), Some(e)) = (sni, super::failed_once_connected(kept.0.error.as_ref())) {
            let after = self.control_handshake_after(target, sni, address, e).await;
            out.handshakes.push(after);
        }
        out.held = held;
        kept
    }

    /// The exchange on `open` if a work place is free at once, else on a connection made
    /// once one is taken; logged as a possible trigger of residual blocking.
    async fn exchange_at_work<'a>(
        &'a self,
        url: &Url,
        open: Option<TcpStream>,
        address: SocketAddr,
        host: &str,
        out: &mut Fetched<'a>,
    ) -> (HttpHop, Option<Url>) {
        let (work, tcp) = self.at_work(open, address).await;
        let tcp = match tcp {
            Ok(tcp) => tcp,
            Err(e) => return (empty_hop(url, Some(address), Some(e)), None),
        };
        out.tickets
            .push(self.addresses.open(address.ip(), out.began));
        // Boxed: the handshake's and the transfer's state is large, and the futures of
        // the many targets still waiting (for DNS, a connect, the control) should not
        // each have room for it.
        let exchange = |tcp| Box::pin(self.exchange(url, tcp, address, host));
        let ((mut hop, next), sent) = self
            .in_turn_at_work(work, tcp, address, true, exchange)
            .await;
        hop.started_at = Some(sent.0);
        (hop, next)
    }

    /// The control-SNI twin of a slow or stalled HTTPS transfer: the final hop's URL
    /// fetched again from the same address with the canary's name as SNI. A throttle or a
    /// freeze keyed on the name (Russia's throttle of Twitter in 2021 inspected the
    /// ClientHello) spares it; a slow link, or a freeze of the address's network
    /// (Russia's of foreign hosting since 2025), does not. When the twin ran at least
    /// twice as fast, the URL is fetched once more with its own name (A/B/A): a path
    /// congested or stalled for the first transfer only is fine again by then, a throttle
    /// is not. Only at the probe: the control's speed is the other yardstick. A twin that
    /// was not [`THROTTLE_RATIO`] times as fast, or did not read the whole body, is made
    /// once more (see [`another_twin`]).
    async fn twin(&self, target: &Target, facts: &HttpFacts, held: &mut Held) -> Vec<Measurement> {
        let Some((url, address, flowed, sni)) = self.slow_https(facts) else {
            return Vec::new();
        };
        held.on(&self.limits, address.ip()).await;
        let mut out = vec![self.refetch(target, &url, address, sni, true).await];
        if another_twin(&out[0].step, flowed) {
            out.push(self.refetch(target, &url, address, sni, true).await);
        }
        // Half the analysis's margin, so that no twin it would take for a throttle's
        // sign goes without the fetch after it.
        if out
            .iter()
            .any(|twin| faster(&twin.step, flowed, THROTTLE_RATIO / 2.0))
        {
            let host = url.host_str().unwrap_or_default().to_string();
            out.push(self.refetch(target, &url, address, &host, false).await);
        }
        out
    }

    /// The URL fetched again after `facts`, its fetch: the control-SNI twins of a slow
    /// or stalled transfer (see [`Measurer::twin`]), or else, after a server error, the
    /// fetches again with its own name (see [`Measurer::after_server_error`]); never
    /// both, which the analysis reads apart by that.
    pub(super) async fn refetches(
        &self,
        target: &Target,
        facts: &HttpFacts,
        held: &mut Held,
    ) -> Vec<Measurement> {
        let twins = self.twin(target, facts, held).await;
        match twins.is_empty() {
            true => self.after_server_error(target, facts, held).await,
            false => twins,
        }
    }

    /// A URL the site answered with an error of its own (5xx) fetched again with its
    /// own name, from the same address after a pause, until it answers otherwise, up to
    /// [`SERVER_ERROR_FETCHES`] fetches in all. An overloaded or flaky site errs now and
    /// then, for the control as for the probe, and the one 503 of a site that served
    /// the other side its page says nothing of a censor; a site that errs at every try
    /// is down, or turns one side away. Made at both ends, each side's best page then
    /// compared (see `analyse::http`).
    async fn after_server_error(
        &self,
        target: &Target,
        facts: &HttpFacts,
        held: &mut Held,
    ) -> Vec<Measurement> {
        let Some((url, address)) = server_erred(facts) else {
            return Vec::new();
        };
        held.on(&self.limits, address.ip()).await;
        let host = host_of(&url);
        let mut out: Vec<Measurement> = Vec::new();
        while out.len() + 1 < SERVER_ERROR_FETCHES {
            tokio::time::sleep(RETRY_PAUSE).await;
            let again = self.refetch(target, &url, address, host, false).await;
            let erred = matches!(&again.step, Step::Http(h) if server_erred(h).is_some());
            out.push(again);
            if !erred {
                break;
            }
        }
        out
    }

    /// A transfer's final URL, address, rate while it flowed and the control SNI to
    /// fetch it with, when it was slow enough to look for a throttle or a freeze (see
    /// [`worth_a_twin`]), at the probe: a control-SNI fetch over TCP, which the control
    /// makes none of.
    fn slow_https(&self, facts: &HttpFacts) -> Option<(Url, SocketAddr, f64, &str)> {
        // The last hop: the final response, or a round trip that froze before its head.
        let hop = facts.hops.last()?;
        let (url, flowed) = worth_a_twin(hop)?;
        let sni = self.tcp_control_sni_for(url.host_str()?)?;
        Some((url, hop.address?, flowed, sni))
    }

    /// `url` fetched once more from `address` with `sni`, recorded: the control-SNI
    /// twin, or the target's name again after it (see [`Measurer::twin`]), which is
    /// sent in its address's turn and logged as a possible trigger, as the first was.
    /// One that failed before any response, or was torn down in its body, is made
    /// again, as a fetch is (see `worth_refetching`). The caller holds a place on the
    /// address.
    async fn refetch(
        &self,
        target: &Target,
        url: &Url,
        address: SocketAddr,
        sni: &str,
        control_sni: bool,
    ) -> Measurement {
        let started = now();
        let ticket = (!control_sni).then(|| self.addresses.open(address.ip(), started.0));
        let first = self.refetch_once(url, address, sni, control_sni).await;
        let mut cut_after: Vec<u64> = cut_in_body(&first).into_iter().collect();
        let mut again = Again::new(first, worth_refetching).on(self, Family::of(address.ip()));
        while again.another().await {
            let next = self.refetch_once(url, address, sni, control_sni).await;
            cut_after.extend(cut_in_body(&next));
            again.took(next);
        }
        self.went_through(
            &again,
            Operation::HttpRoundTrip,
            read(&again.kept, &cut_after),
        );
        let hop = again.kept;
        let error = hop.error.clone();
        let facts = HttpFacts {
            url: url.to_string(),
            hops: vec![hop],
            control_sni: control_sni.then(|| sni.to_string()),
            again: !control_sni,
            tries: again.tries,
            first_failure: again.first_failure,
            cut_after,
            check: None,
            error,
        };
        let fetched = self.record(target, started, Step::Http(facts));
        if let Some(ticket) = ticket {
            ticket.end(Trigger::of(&fetched));
        }
        fetched
    }

    /// One try of [`Measurer::refetch`].
    async fn refetch_once(
        &self,
        url: &Url,
        address: SocketAddr,
        sni: &str,
        control_sni: bool,
    ) -> HttpHop {
        let work = self.limits.work().await;
        let dialed = self.dial(&[address]).await;
        let tcp = match dialed.result {
            Ok((tcp, _)) => tcp,
            Err(e) => return empty_hop(url, Some(address), Some(e)),
        };
        let exchange = |tcp| Box::pin(self.exchange(url, tcp, address, sni));
        self.in_turn_at_work(work, tcp, address, !control_sni, exchange)
            .await
            .0
            .0
    }

    /// TLS if the URL says so (with `server_name` as SNI), the request, and the response
    /// up to the body cap, on a connection to `address`, whose bytes received are
    /// counted (see `record_round_trip`).
    async fn exchange(
        &self,
        url: &Url,
        tcp: Counted<TcpStream>,
        address: SocketAddr,
        server_name: &str,
    ) -> (HttpHop, Option<Url>) {
        let tally = tcp.tally().clone();
        let timeout = self.options.timeout;
        let mut hop = empty_hop(url, Some(address), None);
        let request = |h2: bool| {
            request(Method::GET, url, h2, &BROWSER_HEADERS, Bytes::new())
                .map_err(|e| StepError::new(Operation::HttpRoundTrip, Failure::unknown(e)))
        };
        // The connection's tally at the request, over TLS: see `record_round_trip`.
        let mut counted = None;
        // Whether the server ended the TLS session: see `HttpHop::close_notify`.
        let mut closed = None;
        let exchange = if url.scheme() == "https" {
            let (tls_facts, stream) = self
                .tls
                .handshake(tcp, address, server_name, false, timeout)
                .await;
            let tls_error = tls_facts.error.clone();
            hop.tls = Some(tls_facts);
            let Some(stream) = stream else {
                hop.error = tls_error;
                return (hop, None);
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            counted = Some((tally.get().0, tokio::time::Instant::now()));
            let (stream, ended) = Ended::new(stream);
            closed = Some(ended);
            match request(h2) {
                Ok(req) => tokio::time::timeout(timeout, send(stream, h2, req)).await,
                Err(e) => Ok(Err(e)),
            }
        } else {
            match request(false) {
                Ok(req) => tokio::time::timeout(timeout, send(tcp, false, req)).await,
                Err(e) => Ok(Err(e)),
            }
        };
        let (response, _connection) = match exchange {
            Err(_) => {
                hop.error = Some(StepError::timeout(Operation::HttpRoundTrip));
                if let Some((handshaken, sent)) = counted {
                    record_round_trip(&mut hop, &tally, handshaken, sent);
                }
                return (hop, None);
            }
            Ok(Err(e)) => {
                hop.error = Some(e);
                hop.close_notify = ended(&closed);
                return (hop, None);
            }
            Ok(Ok(pair)) => pair,
        };
        let status = response.status().as_u16();
        hop.status = Some(status);
        hop.headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        if hop.redirects() {
            let next = hop.header("location").and_then(|loc| url.join(loc).ok());
            if next
                .as_ref()
                .is_some_and(|n| matches!(n.scheme(), "http" | "https"))
            {
                return (hop, next);
            }
        }
        // The reads are timed from the hop's start, as every step's times are.
        let head_ms = hop
            .started_at
            .map_or(0.0, |at| (Utc::now() - at).as_seconds_f64() * 1000.0);
        let body = read_to_cap(response.into_body(), BODY_CAP, timeout).await;
        let text = String::from_utf8_lossy(&body.bytes);
        hop.title = title_of(&text);
        hop.body_prefix = text.chars().take(BODY_PREFIX).collect();
        hop.body_length = body.bytes.len() as u64;
        hop.body_truncated = body.truncated;
        hop.transfer_ms = body.transfer_ms;
        hop.active_rate = body.active_rate;
        hop.peak_rate = body.peak_rate;
        hop.read_ms = body.read_ms;
        hop.silent_ms = body.silent_ms;
        hop.reads = body
            .reads
            .into_iter()
            .map(|read| ReadEvent {
                t_ms: head_ms + read.t_ms,
                ..read
            })
            .collect();
        hop.close_notify = body.error.is_some() && ended(&closed);
        hop.error = body.error;
        (hop, None)
    }
}

/// An exchange's failure that may be worth another try (see `Again`): any before a
/// response, and a reset or close in its body (a flaky path tears a long transfer down
/// now and then, a censor every time); a stall in the body is judged as it is (see
/// `analyse::http`'s throttle and stall).
fn worth_refetching(hop: &HttpHop) -> Option<&StepError> {
    hop.error
        .as_ref()
        .filter(|e| hop.status.is_none() || e.failure.is_turned_down())
}

/// The packets of the bodies a fetch's tries read: the kept one's (`hop`), and those of
/// the tries torn down in their bodies before (`cut_after`).
fn read(hop: &HttpHop, cut_after: &[u64]) -> f64 {
    let kept = cut_in_body(hop).is_none().then_some(hop.body_length);
    cut_after
        .iter()
        .copied()
        .chain(kept)
        .map(body_packets)
        .sum()
}

/// The bytes of its body a hop torn down in its body had read.
fn cut_in_body(hop: &HttpHop) -> Option<u64> {
    hop.error
        .as_ref()
        .filter(|e| hop.status.is_some() && !e.local && e.failure.is_turned_down())
        .map(|_| hop.body_length)
}

/// Whether the TLS stream watched by `closed` ended cleanly: the server's
/// `close_notify` (see `received::Ended`); never over plain HTTP.
fn ended(closed: &Option<Arc<AtomicBool>>) -> bool {
    closed.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
}

fn empty_hop(url: &Url, address: Option<SocketAddr>, error: Option<StepError>) -> HttpHop {
    HttpHop {
        address,
        error,
        ..HttpHop::new(url.as_str())
    }
}

/// The URL and address of a fetch that ended in the site's own error (5xx), its whole
/// answer read.
fn server_erred(facts: &HttpFacts) -> Option<(Url, SocketAddr)> {
    let hop = facts
        .final_response()
        .filter(|hop| facts.error.is_none() && hop.server_error().is_some())?;
    Some((Url::parse(&hop.url).ok()?, hop.address?))
}

/// A URL's host as a server name: an IPv6 literal without its brackets.
pub fn host_of(url: &Url) -> &str {
    url.host_str().unwrap_or_default().trim_matches(['[', ']'])
}

/// A hop's URL and the rate its body flowed at, when it was slow enough to look for a
/// throttle or a freeze: HTTPS, a success, large enough or cut off by the deadline (a
/// transfer slowed down, or one that stopped dead), and under [`SLOW_RATE`]; or a round
/// trip the deadline ended after [`STALL_BYTES`] came after the handshake (a freeze
/// before the head could be read), at no rate.
fn worth_a_twin(hop: &HttpHop) -> Option<(Url, f64)> {
    let url = Url::parse(&hop.url).ok()?;
    let froze_before_head = hop.status.is_none()
        && hop.received_after_handshake >= Some(STALL_BYTES)
        && hop.error.as_ref().is_some_and(|e| {
            e.failure.is_timeout() && e.failed_operation == Operation::HttpRoundTrip
        });
    if url.scheme() == "https" && froze_before_head {
        return Some((url, 0.0));
    }
    let cut_off = hop
        .error
        .as_ref()
        .is_some_and(|e| e.failure.is_timeout() && e.failed_operation == Operation::Read);
    let rate = average_rate(hop);
    let slow = (hop.body_length >= SLOW_BYTES || cut_off) && rate < SLOW_RATE;
    let success = hop.status.is_some_and(|s| (200..300).contains(&s));
    (url.scheme() == "https" && slow && success).then(|| (url, hop.active_rate.unwrap_or(rate)))
}

/// Whether a second control-SNI twin follows `twin`, made of a transfer that flowed at
/// `flowed` bytes per second: loss can slow or stall any one transfer, whatever its
/// name, so the path's speed is the best of two twins, and a freeze of the address is
/// told by two that froze (the target's own stall may be a throttle's under loss, and
/// one twin's loss's by chance).
fn another_twin(twin: &Step, flowed: f64) -> bool {
    let whole = matches!(twin, Step::Http(h) if h.error.is_none());
    !whole || !faster(twin, flowed, THROTTLE_RATIO)
}

/// Whether `twin` ran `ratio` times as fast as `flowed`, at its best, as the analysis
/// compares it.
fn faster(twin: &Step, flowed: f64, ratio: f64) -> bool {
    match twin {
        Step::Http(h) => h.final_response().is_some_and(|hop| {
            hop.peak_rate.unwrap_or_else(|| average_rate(hop)) >= ratio * flowed
        }),
        _ => false,
    }
}

/// Bytes per second over a hop's body.
fn average_rate(hop: &HttpHop) -> f64 {
    hop.body_length as f64 / (hop.transfer_ms.max(1.0) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bodys_first_64_reads_are_kept_in_order() {
        let frames = (1..=100u8).map(|i| {
            Ok::<_, hyper::Error>(hyper::body::Frame::data(Bytes::from(vec![
                i;
                usize::from(i)
            ])))
        });
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let read = read_to_cap(body, BODY_CAP, Duration::from_secs(5)).await;
        assert_eq!(read.bytes.len(), (1..=100).sum::<usize>());
        assert_eq!(read.reads.len(), READ_EVENTS);
        let sizes: Vec<u64> = read.reads.iter().map(|r| r.bytes).collect();
        assert_eq!(sizes, (1..=64).collect::<Vec<u64>>());
        assert!(read.reads.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
    }

    #[test]
    fn rates_are_counted_in_quarter_seconds() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // Bursts between stalls: loss. Every window with data carries 100 kB.
        let stalled: Vec<(Instant, usize)> =
            [0, 1000, 2000, 3000].map(|ms| (at(ms), 100_000)).into();
        assert_eq!(window_rates(&stalled), Some((400_000.0, 400_000.0)));
        // A steady 5 kB every 100 ms, and 64 kB that were held behind a lost packet
        // and came in one release: typically 60 kB/s, and the release is not its peak.
        let mut capped: Vec<(Instant, usize)> = (0..30).map(|i| (at(i * 100), 5_000)).collect();
        capped.push((at(1510), 64_000));
        assert_eq!(window_rates(&capped), Some((60_000.0, 60_000.0)));
        // Fewer windows with data than that: no rate while it flowed (a throttle's
        // 32 kB allowance in one burst before it stalled is not its speed).
        let two = [(at(0), 100_000), (at(1000), 100_000)];
        assert_eq!(window_rates(&two), None);
        let burst = [(at(0), 16_000), (at(64), 16_000)];
        assert_eq!(window_rates(&burst), None);
        assert_eq!(window_rates(&[]), None);
    }

    /// A body that brings `chunks` of 4 KiB, one every `every`, and then neither more
    /// nor its end.
    fn trickle(
        chunks: usize,
        every: Duration,
    ) -> impl hyper::body::Body<Data = Bytes, Error = hyper::Error> + Unpin {
        let frames = futures_util::stream::unfold(0, move |sent| async move {
            if sent == chunks {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(every).await;
            let frame = hyper::body::Frame::data(Bytes::from(vec![0u8; 4096]));
            Some((Ok(frame), sent + 1))
        });
        http_body_util::StreamBody::new(Box::pin(frames))
    }

    #[tokio::test]
    async fn a_read_the_deadline_ends_says_how_long_it_was_silent() {
        let timeout = Duration::from_millis(400);
        // Three chunks at once, then nothing: stopped dead, silent for nearly all of it.
        let dead = read_to_cap(trickle(3, Duration::ZERO), BODY_CAP, timeout).await;
        assert_eq!(dead.bytes.len(), 3 * 4096);
        assert_eq!(dead.error, Some(StepError::timeout(Operation::Read)));
        assert_eq!(dead.read_ms, Some(400.0));
        let silent = dead.silent_ms.expect("a silence");
        assert!((300.0..=400.0).contains(&silent), "{silent}");
        // A chunk every 20 ms until the deadline: moving, hardly silent at its end.
        let moving = read_to_cap(
            trickle(usize::MAX, Duration::from_millis(20)),
            BODY_CAP,
            timeout,
        )
        .await;
        let silent = moving.silent_ms.expect("a silence");
        assert!(silent < 200.0, "{silent}");
        // Nothing after the head: silent for the whole read.
        let none = read_to_cap(trickle(0, Duration::ZERO), BODY_CAP, timeout).await;
        assert_eq!((none.read_ms, none.silent_ms), (Some(400.0), Some(400.0)));
        // A body that ends has no silence to tell.
        let whole = Full::new(Bytes::from_static(b"page"))
            .map_err(|never: std::convert::Infallible| -> hyper::Error { match never {} });
        let read = read_to_cap(whole, BODY_CAP, timeout).await;
        assert_eq!(
            (read.error, read.read_ms, read.silent_ms),
            (None, None, None)
        );
    }

    #[test]
    fn a_stalled_https_transfer_gets_its_twin() {
        let mut hop = HttpHop::new("https://x.test/video");
        hop.status = Some(200);
        hop.body_length = 12_000;
        hop.transfer_ms = 2_900.0;
        hop.error = Some(StepError::timeout(Operation::Read));
        assert!(worth_a_twin(&hop).is_some());
        // Nothing of its body before it stalled, too.
        hop.body_length = 0;
        hop.transfer_ms = 0.0;
        assert!(worth_a_twin(&hop).is_some());
        // A small page read whole is no throttle's, nor a freeze's.
        hop.error = None;
        hop.body_length = 12_000;
        hop.transfer_ms = 5.0;
        assert!(worth_a_twin(&hop).is_none());
    }

    #[test]
    fn a_twin_slow_or_cut_short_is_made_once_more() {
        let twin = |body_length: u64, peak: f64, error: Option<StepError>| {
            let mut hop = HttpHop::new("https://x.test/video");
            (hop.status, hop.body_length, hop.transfer_ms) = (Some(200), body_length, 500.0);
            (hop.peak_rate, hop.error) = (Some(peak), error.clone());
            // As `fetch` records it: the step's error is its last hop's.
            Step::Http(HttpFacts {
                url: hop.url.clone(),
                hops: vec![hop],
                control_sni: Some("canary.test".into()),
                again: false,
                tries: 1,
                first_failure: None,
                cut_after: Vec::new(),
                check: None,
                error,
            })
        };
        let flowed = 50_000.0;
        // Read whole, four times as fast: the path's speed is known.
        assert!(!another_twin(&twin(400_000, 800_000.0, None), flowed));
        // As slow as the transfer: loss may have slowed this one.
        assert!(another_twin(&twin(400_000, 60_000.0, None), flowed));
        // Fast, then stopped dead: one stall, loss's now and then.
        let stalled = Some(StepError::timeout(Operation::Read));
        assert!(another_twin(&twin(262_000, 800_000.0, stalled), flowed));
    }

    #[test]
    fn a_round_trip_frozen_before_its_head_gets_its_twin() {
        let mut hop = HttpHop::new("https://x.test/video");
        hop.error = Some(StepError::timeout(Operation::HttpRoundTrip));
        hop.received_after_handshake = Some(14_000);
        assert_eq!(worth_a_twin(&hop).map(|(_, rate)| rate), Some(0.0));
        // Too little after the handshake to be the response flowing: no freeze to twin.
        hop.received_after_handshake = Some(STALL_BYTES - 1);
        assert!(worth_a_twin(&hop).is_none());
    }

    #[tokio::test]
    async fn a_connection_tallies_what_it_received_and_when() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.unwrap();
            peer.write_all(&[0u8; 10_000]).await.unwrap();
            // Then nothing, and no FIN, as a freeze.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let tally = Tally::default();
        let mut stream = Counted::new(TcpStream::connect(address).await.unwrap(), &tally);
        let mut handshake = [0u8; 4_000];
        stream.read_exact(&mut handshake).await.unwrap();
        let sent = tokio::time::Instant::now();
        let mut rest = [0u8; 6_000];
        stream.read_exact(&mut rest).await.unwrap();
        let (bytes, last) = tally.get();
        assert_eq!(bytes, 10_000);
        assert!(last.is_some_and(|last| last >= sent));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut hop = HttpHop::new("https://x.test/");
        record_round_trip(&mut hop, &tally, 4_000, sent);
        assert_eq!(hop.received_after_handshake, Some(6_000));
        let (read, silent) = (hop.read_ms.unwrap(), hop.silent_ms.unwrap());
        assert!(silent >= 300.0 && silent <= read, "{silent} of {read}");
        server.abort();
    }

    #[test]
    fn titles_are_found_and_folded() {
        assert_eq!(
            title_of("<html><HEAD><Title lang=en>\n  Telegram  Web\n</TITLE>").as_deref(),
            Some("Telegram Web")
        );
        assert_eq!(title_of("<html>no title</html>"), None);
        let long = format!("<title>{}</title>", "x".repeat(1000));
        assert_eq!(title_of(&long).unwrap().len(), 256);
    }
}
