//! HTTP GET over connections we make ourselves (hyper on our own TCP and TLS streams),
//! so that the request goes to the address DNS gave us, the TLS facts of that very
//! connection are kept, and each redirect hop is recorded with its own address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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

use super::Measurer;
use crate::facts::{HttpFacts, HttpHop};
use crate::failure::{Failure, Operation, StepError};

/// How much of a body is read: enough for any blockpage and a stable length comparison
/// (OONI's websteps reads the same), little enough for a slow link.
pub const BODY_CAP: usize = 512 * 1024;
/// How much of the body is kept in the facts, for blockpage fingerprints.
const BODY_PREFIX: usize = 16 * 1024;
const MAX_REDIRECTS: usize = 10;
/// The most a response head may take: hyper's HTTP/1.1 default (its read buffer),
/// applied to HTTP/2 as well (whose hyper default is 16 KiB), so that a page with large
/// headers fares the same over both, and a server cannot make us hold more.
pub const HEAD_CAP: usize = 400 * 1024;
/// Addresses tried per hop before giving up (each may cost a whole timeout).
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

impl<S: AsyncWrite + Unpin> AsyncWrite for Yielding<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A hyper error as one of our failures: the I/O error underneath when there is one.
fn classify(err: &hyper::Error, operation: Operation) -> StepError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
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
    pub error: Option<StepError>,
}

/// Reads a body up to `cap` bytes within `timeout`; what arrived before a failure is
/// kept, because a page cut short by a reset is evidence too.
pub async fn read_to_cap(mut body: Incoming, cap: usize, timeout: Duration) -> Body {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Body {
        bytes: Vec::new(),
        truncated: false,
        transfer_ms: 0.0,
        error: None,
    };
    let mut first_byte: Option<Instant> = None;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                out.error = Some(StepError::timeout(Operation::Read));
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
                first_byte.get_or_insert_with(Instant::now);
                let room = cap - out.bytes.len();
                out.bytes.extend_from_slice(&data[..data.len().min(room)]);
                if data.len() > room {
                    out.truncated = true;
                    break;
                }
            }
        }
    }
    out.transfer_ms = first_byte.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
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

impl Measurer {
    /// GETs `url` from the first of `addresses` that connects, then follows redirects,
    /// each hop to the addresses our own DNS found for its host.
    pub(super) async fn fetch(
        &self,
        url: &Url,
        addresses: Result<Vec<IpAddr>, StepError>,
    ) -> HttpFacts {
        let mut facts = HttpFacts {
            url: url.to_string(),
            hops: Vec::new(),
            error: None,
        };
        let mut current = url.clone();
        let mut addresses = addresses;
        let mut looped = false;
        for _ in 0..=MAX_REDIRECTS {
            let (hop, next) = match addresses {
                Ok(list) => self.fetch_hop(&current, &list).await,
                Err(e) => (empty_hop(&current, None, Some(e)), None),
            };
            facts.hops.push(hop);
            let Some(next) = next else { break };
            // Back to a URL already fetched: without cookies it only goes round again.
            if facts.hops.iter().any(|h| h.url == next.as_str()) {
                looped = true;
                break;
            }
            addresses = if next.host() == current.host() {
                Ok(facts
                    .hops
                    .last()
                    .and_then(|h| h.address)
                    .map(|a| vec![a.ip()])
                    .unwrap_or_default())
            } else {
                self.addresses_for(&next).await
            };
            current = next;
        }
        let last = facts.hops.last().expect("at least one hop");
        facts.error = if looped {
            Some(StepError::new(
                Operation::HttpRoundTrip,
                Failure::unknown("redirect loop"),
            ))
        } else if last.status.is_some_and(is_redirect) && facts.hops.len() > MAX_REDIRECTS {
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
        facts
    }

    async fn fetch_hop(&self, url: &Url, addresses: &[IpAddr]) -> (HttpHop, Option<Url>) {
        let port = url.port_or_known_default().unwrap_or(80);
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string();
        let mut connected = None;
        let mut last = SocketAddr::new(
            addresses
                .first()
                .copied()
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port,
        );
        let mut error = StepError::new(Operation::Connect, Failure::DnsNoAnswer);
        for ip in addresses.iter().take(MAX_ATTEMPTS) {
            last = SocketAddr::new(*ip, port);
            let permit = self.limits.host(*ip).await;
            match self.dialer().connect(last).await {
                Ok(stream) => {
                    connected = Some((stream, permit));
                    break;
                }
                Err(e) => error = e,
            }
        }
        let Some((tcp, _permit)) = connected else {
            return (
                empty_hop(url, addresses.first().map(|_| last), Some(error)),
                None,
            );
        };
        let _work = self.limits.work().await;
        // Boxed: the handshake's and the transfer's state is large, and the futures of
        // the many targets still waiting (for DNS, a connect, the control) should not
        // each have room for it.
        Box::pin(self.exchange(url, tcp, last, host)).await
    }

    /// TLS if the URL says so, the request, and the response up to the body cap, on a
    /// connection to `address`.
    async fn exchange(
        &self,
        url: &Url,
        tcp: TcpStream,
        address: SocketAddr,
        host: String,
    ) -> (HttpHop, Option<Url>) {
        let timeout = self.options.timeout;
        let mut hop = empty_hop(url, Some(address), None);
        let request = |h2: bool| {
            request(Method::GET, url, h2, &BROWSER_HEADERS, Bytes::new())
                .map_err(|e| StepError::new(Operation::HttpRoundTrip, Failure::unknown(e)))
        };
        let exchange = if url.scheme() == "https" {
            let (tls_facts, stream) = self
                .tls
                .handshake(tcp, address, &host, false, timeout)
                .await;
            let tls_error = tls_facts.error.clone();
            hop.tls = Some(tls_facts);
            let Some(stream) = stream else {
                hop.error = tls_error;
                return (hop, None);
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
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
                return (hop, None);
            }
            Ok(Err(e)) => {
                hop.error = Some(e);
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
        if is_redirect(status) {
            let next = hop.header("location").and_then(|loc| url.join(loc).ok());
            if next
                .as_ref()
                .is_some_and(|n| matches!(n.scheme(), "http" | "https"))
            {
                return (hop, next);
            }
        }
        let body = read_to_cap(response.into_body(), BODY_CAP, timeout).await;
        let text = String::from_utf8_lossy(&body.bytes);
        hop.title = title_of(&text);
        hop.body_prefix = text.chars().take(BODY_PREFIX).collect();
        hop.body_length = body.bytes.len() as u64;
        hop.body_truncated = body.truncated;
        hop.transfer_ms = body.transfer_ms;
        hop.error = body.error;
        (hop, None)
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn empty_hop(url: &Url, address: Option<SocketAddr>, error: Option<StepError>) -> HttpHop {
    HttpHop {
        url: url.to_string(),
        address,
        tls: None,
        status: None,
        headers: Vec::new(),
        body_length: 0,
        body_truncated: false,
        title: None,
        body_prefix: String::new(),
        transfer_ms: 0.0,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
