//! `censorprobe control serve`: the control vantage point as an HTTP(S) service.
//!
//! A probe posts the targets it measured; the server measures them again from where it
//! stands, with the probe's own measurement code, and answers with the facts.
//!
//! The server faces the internet, and its token ships with every probe, so it must be
//! assumed known to anyone. Hence every connection is bounded (in number, in all and per
//! client; in time; in buffers), so is every request (body, targets, ports, time,
//! requests at once), and nothing private or reserved is ever measured: the server must
//! not become a way into its own network, nor a port scanner for hire.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::{Body as _, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::collect::{self, Collector};
use super::protocol::{
    CANARY_PORT_PARAMETER, ControlError, ControlRequest, ControlResponse, ControlResult,
    ControlTarget, ECH_PARAMETER, HEALTH_PATH, MARK_OLDER, MAX_AGE_PARAMETER, MEASURE_PATH,
    OLDER_PARAMETER, batch_deadline,
};
use super::recent::{self, Entry, Recent};
use crate::facts::TargetFacts;
use crate::facts::{Measurement, Step, Vantage};
use crate::input::asn::{self, AsnDb};
use crate::input::bogon::AddressPolicy;
use crate::input::settings::{self, MeasureFlags};
use crate::input::targets::{Target, parse_domain};
use crate::measure::ech::EchPlan;
use crate::measure::limits::Limits;
use crate::measure::meanwhile::Exchanges;
use crate::measure::tls::{TlsContext, provider, root_store};
use crate::measure::{self, Measurer};

/// Connections the kernel may hold for the server before it accepts them (Linux caps
/// this at net.core.somaxconn, 4096 by default). Tokio's 128 overflows in a burst of
/// connects (probes retrying after a restart, a flood), and an overflowing queue drops
/// the last packet of handshakes that the clients believe complete: they then wait
/// seconds, even minutes, for an answer.
const BACKLOG: u32 = 4096;
/// How long a client may take from connecting to the headers of its first request (a TLS
/// handshake included), over the headers of a later HTTP/1 request (an idle keep-alive
/// connection included), and over a request's body.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most an HTTP/1 connection buffers (hyper's least): a probe's request head is a few
/// hundred bytes, and hyper's default of 400 KiB times thousands of connections is
/// gigabytes. A longer head is refused with 431.
const HTTP1_BUFFER: usize = 8192;
/// HTTP/2 requests at once on one connection: a probe sends one per connection.
const HTTP2_STREAMS: u32 = 16;
/// What an HTTP/2 client may send before the server reads it, per request and per
/// connection (hyper's default is 1 MiB each, which thousands of connections multiply).
const HTTP2_STREAM_WINDOW: u32 = 128 * 1024;
const HTTP2_CONNECTION_WINDOW: u32 = 256 * 1024;
/// The most an HTTP/2 response buffers before the client takes it.
const HTTP2_SEND_BUFFER: usize = 64 * 1024;
/// Request bodies being read at once hold at most this much memory (or one `--max-body`,
/// if larger); beyond it the server answers 503. Bytes are counted as they arrive, so a
/// slow client holds only what it has sent.
const BODY_BUDGET: usize = 64 << 20;
/// Ports one target may name: plenty for a service, too few for a port scan.
const MAX_PORTS: usize = 16;
/// Probe-supplied addresses one target may name: more than any honest DNS answer.
const MAX_ADDRESSES: usize = 32;
/// Connections over the caps being answered 503 at once; beyond, they are closed at
/// once. Each costs a descriptor, a head's buffer and, over HTTPS, a TLS session.
const MAX_REFUSALS: usize = 64;
/// How long a refusal may take, from accepting the connection (its TLS handshake
/// included) to closing it: long enough for a probe across the world to send its
/// request's head and read the answer, too short for a client to hold the place.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(3);
/// How long a request that would begin a measurement waits for a place before it is
/// refused: as long as a probe backs off after a 503 at the least (client.rs). Under
/// load places come free every few milliseconds, and the semaphore hands them out in
/// order, so a request that waits is answered no later than a refusal and its retry
/// would be, and costs no second request; a server busy for longer still refuses.
const QUEUE_WAIT: Duration = Duration::from_millis(250);
/// What a refusal reads of the request after its head before closing, so that the
/// close does not reset a connection whose client has not read the answer yet.
const REFUSAL_DRAIN: usize = 64 * 1024;

/// The command line of `control serve`, its defaults applied.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Require this bearer token from probes.
    #[arg(
        long,
        value_name = "T",
        env = "CENSORPROBE_CONTROL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub measure: MeasureFlags,
    /// Network operations in flight at once.
    #[arg(long, value_name = "N", value_parser = settings::places(), default_value_t = settings::CONTROL_CONCURRENCY)]
    pub concurrency: usize,
    /// Operations in flight at once against one server address.
    #[arg(long, value_name = "N", value_parser = settings::places(), default_value_t = settings::CONTROL_PER_HOST)]
    pub per_host: usize,
    /// The deadline of every step, in seconds.
    #[arg(long, value_name = "SECS", value_parser = settings::parse_secs, default_value = settings::secs(settings::TIMEOUT))]
    pub timeout: Duration,
    /// Measure from this local address (a multi-homed host, a lab).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// The most a request may take, in seconds. A batch of N targets gets 8 + N/4 step
    /// timeouts (--timeout), at most this; targets still unmeasured then are answered
    /// as not measured, the others with their facts. Probes wait as long, by their own
    /// --timeout.
    #[arg(long, value_name = "SECS", value_parser = settings::parse_secs, default_value = settings::secs(settings::REQUEST_DEADLINE))]
    pub request_deadline: Duration,
    /// Requests measuring at once (one answered from measurements shared with others
    /// takes no place); beyond this, probes get 503 after a short wait.
    #[arg(long, value_name = "N", value_parser = settings::places(), default_value_t = settings::MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Targets in one request.
    #[arg(long, value_name = "N", value_parser = settings::places(), default_value_t = settings::MAX_TARGETS)]
    pub max_targets: usize,
    /// Size of a request body, in bytes.
    #[arg(long = "max-body", value_name = "BYTES", value_parser = settings::places(), default_value_t = settings::MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Connections open at once; beyond this, new ones are answered 503 and closed.
    #[arg(long, value_name = "N", value_parser = settings::places(), default_value_t = settings::MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Connections open at once from one client (an IPv4 address or an IPv6 /64);
    /// beyond this, new ones are answered 503 and closed.
    #[arg(long, value_name = "N", value_parser = settings::places(), default_value_t = settings::MAX_CONNECTIONS_PER_CLIENT)]
    pub max_connections_per_client: usize,
    /// Also collect finished runs from probes into DIR (`POST /v1/runs`, as `censorprobe
    /// upload` sends them; `GET /v1/runs` lists a probe's own), stored as
    /// `DIR/<probe_cc>/<probe_asn>/<day>/<run_id>/`.
    #[arg(long, value_name = "DIR", requires = "collect_tokens")]
    pub collect: Option<PathBuf>,
    /// The probes that may upload to --collect, a line `PROBE_NAME TOKEN` each (`#`
    /// starts a comment); read at start.
    #[arg(long, value_name = "FILE", requires = "collect")]
    pub collect_tokens: Option<PathBuf>,
    /// Size of an uploaded run (its bundle), in bytes; it must arrive within
    /// --request-deadline.
    #[arg(long, value_name = "BYTES", value_parser = settings::places(), default_value_t = collect::MAX_UPLOAD)]
    pub max_upload: usize,
    /// Where an IP database is found without `--asn-db` (the command line sets the data
    /// directory's; servers made in-process have none).
    #[arg(skip)]
    pub ip_db_dir: Option<PathBuf>,
}

impl Default for ServeArgs {
    /// The flags' defaults, listening on any free loopback port (a server made
    /// in-process, as the demo's, is given its listener instead).
    fn default() -> ServeArgs {
        ServeArgs {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            token: None,
            tls_cert: None,
            tls_key: None,
            measure: MeasureFlags::default(),
            concurrency: settings::CONTROL_CONCURRENCY,
            per_host: settings::CONTROL_PER_HOST,
            timeout: settings::TIMEOUT,
            bind: None,
            request_deadline: settings::REQUEST_DEADLINE,
            max_in_flight: settings::MAX_IN_FLIGHT,
            max_targets: settings::MAX_TARGETS,
            max_body_bytes: settings::MAX_BODY_BYTES,
            max_connections: settings::MAX_CONNECTIONS,
            max_connections_per_client: settings::MAX_CONNECTIONS_PER_CLIENT,
            collect: None,
            collect_tokens: None,
            max_upload: collect::MAX_UPLOAD,
            ip_db_dir: None,
        }
    }
}

/// Serves probes until SIGINT or SIGTERM. Prints `listening on URL` once ready, with
/// the port actually bound, so that `--listen 127.0.0.1:0` can be used.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let control = ControlServer::new(&args)?;
    let listener =
        listen(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    // Watch for signals before announcing, so that a signal sent as soon as the line
    // is read still ends the server cleanly.
    let mut signals = crate::shutdown::Signals::watch()?;
    announce(&listener, control.tls.is_some())?;
    control
        .serve_on(listener, async {
            signals.next().await;
            tracing::info!("signal received, shutting down");
        })
        .await;
    Ok(())
}

/// A listening socket with room for [`BACKLOG`] connections not yet accepted.
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As tokio's own bind: a restarted server can listen again at once. (On Windows it
    // would let another process take the port.)
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// A control server with its arguments checked, ready to serve on a listener it is
/// given: `serve` runs one, and so does the demo, in-process on a loopback port.
pub struct ControlServer {
    server: Arc<Server>,
    collector: Option<Arc<Collector>>,
    tls: Option<Tls>,
    admission: Admission,
    /// Long enough for one request's headers and body, and its whole measurement.
    lifetime: Duration,
}

impl ControlServer {
    /// Checks `args` and sets up all but the listener: binding `args.listen` is the
    /// caller's part.
    pub fn new(args: &ServeArgs) -> anyhow::Result<ControlServer> {
        let server = Arc::new(Server::new(args)?);
        let collector = Collector::new(args)?.map(Arc::new);
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            _ => None,
        };
        Ok(ControlServer {
            server,
            collector,
            tls,
            admission: Admission::new(args.max_connections, args.max_connections_per_client),
            lifetime: args.request_deadline + CLIENT_TIMEOUT * 2,
        })
    }

    /// Serves probes on `listener` until `shutdown` completes.
    pub async fn serve_on(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let refusals = Arc::new(Refusals {
            slots: Arc::new(Semaphore::new(MAX_REFUSALS)),
            tls: self.tls.as_ref().map(|tls| tls.refuse.clone()),
        });
        let accepting = accept_loop(
            listener,
            self.tls.map(|tls| tls.serve),
            router(self.server, self.collector),
            Arc::new(self.admission),
            refusals,
            self.lifetime,
        );
        tokio::select! {
            () = accepting => {}
            () = shutdown => {}
        }
    }
}

fn announce(listener: &TcpListener, https: bool) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let scheme = if https { "https" } else { "http" };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {scheme}://{address}")?;
    stdout.flush()?;
    Ok(())
}

/// The TLS acceptors of an HTTPS server.
struct Tls {
    /// For the connections it serves: HTTP/2 or HTTP/1.1, as the client prefers.
    serve: TlsAcceptor,
    /// For those it refuses, over its caps: HTTP/1.1 only, in which the refusal is
    /// written (a probe offers both).
    refuse: TlsAcceptor,
}

fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read --tls-cert {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{}: no certificate in --tls-cert",
        cert.display()
    );
    let private_key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read --tls-key {}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("cannot configure TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .with_context(|| {
            format!(
                "cannot use --tls-cert {} with --tls-key {}",
                cert.display(),
                key.display()
            )
        })?;
    let mut refuse = config.clone();
    refuse.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        serve: TlsAcceptor::from(Arc::new(config)),
        refuse: TlsAcceptor::from(Arc::new(refuse)),
    })
}

fn router(server: Arc<Server>, collector: Option<Arc<Collector>>) -> Router {
    let app = Router::new()
        .route(MEASURE_PATH, post(measure))
        .route(HEALTH_PATH, get(health))
        .with_state(server);
    match collector {
        Some(collector) => app.merge(collect::routes(collector)),
        None => app,
    }
    .fallback(not_found)
}

/// Accepts connections for ever, serving each on a task of its own.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    admission: Arc<Admission>,
    refusals: Arc<Refusals>,
    lifetime: Duration,
) {
    let mut http = Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT)
        .max_buf_size(HTTP1_BUFFER);
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(HTTP2_STREAMS)
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .max_send_buf_size(HTTP2_SEND_BUFFER);
    let app = TowerToHyperService::new(app);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Most likely out of file descriptors: give connections time to close.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Refused at once when full (answered 503, or closed): a connection waiting in
        // the kernel's queue would hang its client, and one served would cost a place.
        let place = match admission.admit(peer.ip()) {
            Ok(place) => place,
            Err(cap) => {
                refusals.refuse(stream, cap);
                continue;
            }
        };
        let service = WithPeer {
            app: app.clone(),
            peer,
            requested: Arc::new(Notify::new()),
        };
        let (http, tls) = (http.clone(), tls.clone());
        tokio::spawn(async move {
            let _place = place;
            if let Err(e) = connection(stream, tls, &http, service, lifetime).await {
                // Clients misbehave all the time on the internet; not worth a warning.
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

/// One connection: the TLS handshake when serving HTTPS, then HTTP/1 or HTTP/2,
/// whichever the client speaks; all before [`CLIENT_TIMEOUT`] has passed since it
/// connected.
async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    http: &Builder<TokioExecutor>,
    service: WithPeer,
    lifetime: Duration,
) -> anyhow::Result<()> {
    let connected = Instant::now();
    match tls {
        None => drive(http, TokioIo::new(stream), service, connected, lifetime).await,
        Some(acceptor) => {
            let stream =
                tokio::time::timeout_at(connected + CLIENT_TIMEOUT, acceptor.accept(stream))
                    .await
                    .context("TLS handshake timed out")?
                    .context("TLS handshake failed")?;
            drive(http, TokioIo::new(stream), service, connected, lifetime).await
        }
    }
}

/// Serves HTTP on `io` until the client is done, or `lifetime` since `connected` is up.
/// Then the connection is closed gracefully (the request in progress still gets its
/// answer), so that no client holds a connection for ever, in any phase. A connection
/// with no request by [`CLIENT_TIMEOUT`] is closed at once: hyper has no read timeout
/// while it sniffs for HTTP/2's preface, nor on HTTP/2 at all, so an idle or trickling
/// client would otherwise keep its place for the whole lifetime.
async fn drive<I>(
    http: &Builder<TokioExecutor>,
    io: I,
    service: WithPeer,
    connected: Instant,
    lifetime: Duration,
) -> anyhow::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let requested = service.requested.clone();
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => return result.map_err(|e| anyhow::anyhow!(e)),
        first = tokio::time::timeout_at(connected + CLIENT_TIMEOUT, requested.notified()) => {
            first.map_err(|_| anyhow::anyhow!("no request within {CLIENT_TIMEOUT:?}"))?;
        }
    }
    let end = connected + lifetime;
    let result = match tokio::time::timeout_at(end, connection.as_mut()).await {
        Ok(result) => result,
        Err(_) => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(lifetime, connection)
                .await
                .unwrap_or(Ok(()))
        }
    };
    result.map_err(|e| anyhow::anyhow!(e))
}

/// The router, told which client it serves (as axum's `ConnectInfo`).
#[derive(Clone)]
struct WithPeer {
    app: TowerToHyperService<Router>,
    peer: SocketAddr,
    /// Told when the connection's first request has arrived (its headers, at least).
    requested: Arc<Notify>,
}

impl Service<Request<Incoming>> for WithPeer {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = TowerToHyperServiceFuture<Router, Request<Incoming>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.requested.notify_one();
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.app.call(request)
    }
}

/// The places for connections: a cap in all, so that file descriptors and the memory of
/// connections stay bounded, and one per client, so that no one client (a slowloris,
/// thousands of idle connections) can take every place from the probes.
struct Admission {
    max: usize,
    per_client: usize,
    open: Mutex<OpenConnections>,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// A connection's place, given back when the connection ends.
struct Place {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl Admission {
    fn new(max: usize, per_client: usize) -> Admission {
        Admission {
            max,
            per_client,
            open: Mutex::default(),
        }
    }

    /// A place for a connection from `peer`, or the cap that leaves none.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Place, Cap> {
        let client = client_network(peer);
        let mut open = self.open.lock().expect("admission lock poisoned");
        let from_client = open.per_client.get(&client).copied().unwrap_or(0);
        if open.total >= self.max {
            return Err(Cap::Total);
        }
        if from_client >= self.per_client {
            return Err(Cap::PerClient);
        }
        open.total += 1;
        open.per_client.insert(client, from_client + 1);
        Ok(Place {
            admission: self.clone(),
            client,
        })
    }
}

/// The cap on connections that a refused one is over.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cap {
    Total,
    PerClient,
}

/// Connections over the caps, answered `503` with `Retry-After` and closed: one closed
/// without a word looks to a probe like a broken control, not a busy one. Bounded in
/// number ([`MAX_REFUSALS`]; beyond, closed at once) and in time
/// ([`REFUSAL_DEADLINE`]), HTTP/1.1 only.
struct Refusals {
    slots: Arc<Semaphore>,
    /// An HTTPS server's acceptor for refused connections.
    tls: Option<TlsAcceptor>,
}

impl Refusals {
    fn refuse(&self, stream: TcpStream, cap: Cap) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            tracing::debug!("too many connections ({cap:?}) and refusals: one closed at once");
            return;
        };
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let refusal = async {
                match tls {
                    None => answer_busy(stream, cap).await,
                    Some(acceptor) => {
                        let stream = acceptor
                            .accept(stream)
                            .await
                            .context("TLS handshake failed")?;
                        answer_busy(stream, cap).await
                    }
                }
            };
            match tokio::time::timeout(REFUSAL_DEADLINE, refusal).await {
                Ok(Ok(())) => tracing::debug!("too many connections ({cap:?}): one answered 503"),
                Ok(Err(e)) => tracing::debug!("too many connections ({cap:?}): {e:#}"),
                Err(_) => tracing::debug!(
                    "too many connections ({cap:?}): a refusal not done within {REFUSAL_DEADLINE:?}"
                ),
            }
        });
    }
}

/// Reads a request's head, answers it 503 and closes the connection, reading what else
/// the client sends meanwhile. The answer waits for the head: an HTTP/1 client takes
/// bytes that come before its request for a broken connection.
async fn answer_busy<S>(mut stream: S, cap: Cap) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = vec![0u8; HTTP1_BUFFER];
    let mut read = 0;
    while !head[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < head.len() {
        match stream.read(&mut head[read..]).await? {
            0 => anyhow::bail!("closed by the client before its request's head"),
            n => read += n,
        }
    }
    anyhow::ensure!(
        !head.starts_with(b"PRI * HTTP/2.0"),
        "an HTTP/2 request without TLS, which is not answered"
    );
    stream.write_all(&refusal(cap)).await?;
    stream.shutdown().await?;
    let mut drained = 0;
    while drained < REFUSAL_DRAIN {
        match stream.read(&mut head).await? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

/// The answer to a connection over `cap`, as the handlers' 503s are: JSON saying why.
fn refusal(cap: Cap) -> Vec<u8> {
    let error = match cap {
        Cap::Total => {
            "busy: this server has as many connections open as it takes (--max-connections); retry later"
        }
        Cap::PerClient => {
            "busy: this server has as many connections open from your network as it takes from one (--max-connections-per-client); retry later"
        }
    };
    let body = serde_json::json!({ "error": error }).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().expect("admission lock poisoned");
        open.total -= 1;
        if let Some(count) = open.per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

/// Whose connections count together: an IPv4 address, or an IPv6 /64 (one subscriber's
/// network, whose every address a client may well have).
fn client_network(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX)).into(),
        v4 => v4,
    }
}

/// Answers a load balancer or a monitor, without a token and without taking a place
/// among the requests in flight, so that it says whether the server is up even when
/// the server is busy.
async fn health() -> &'static str {
    "ok"
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: this server answers POST {MEASURE_PATH}, GET {HEALTH_PATH}, and with --collect POST and GET {}",
            collect::RUNS_PATH
        ),
    )
}

async fn measure(
    State(server): State<Arc<Server>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ControlResponse>, ApiError> {
    server.authorize(&headers)?;
    require_json(&headers)?;
    let ech = ech_plan(&uri)?;
    let canary_port = canary_port(&uri)?;
    let arrived = std::time::Instant::now();
    let sharing = Sharing {
        since: max_age(&uri)?.and_then(|age| arrived.checked_sub(age)),
        mark_older: marks_older(&uri)?,
    };
    // The body before a place in flight: a client sending slowly must not hold one.
    let request = server.read_request(body).await?;
    server
        .answer(client.ip(), &request, ech, sharing, canary_port)
        .await
        .map(Json)
}

/// What the request's `ech` parameter asks of the ECH comparison (see
/// [`ECH_PARAMETER`]); other parameters are left alone, as a control that does not know
/// `ech` leaves it.
fn ech_plan(uri: &Uri) -> Result<EchPlan, ApiError> {
    parameter(uri, ECH_PARAMETER).map_or(Ok(EchPlan::Always), |value| {
        EchPlan::parse(&value).ok_or_else(|| {
            let known: Vec<&str> = EchPlan::ALL.iter().map(|plan| plan.name()).collect();
            ApiError::bad_request(format!(
                "{ECH_PARAMETER}={value}: expected one of {}",
                known.join(", ")
            ))
        })
    })
}

/// Which measurements made for other requests answer a request.
struct Sharing {
    /// Those begun earlier are older than the request takes (see
    /// [`MAX_AGE_PARAMETER`]); none: any still shared.
    since: Option<std::time::Instant>,
    /// Whether older ones answer too, marked (see [`OLDER_PARAMETER`]).
    mark_older: bool,
}

impl Sharing {
    /// Since when a measurement must have begun to answer, marked or not.
    fn answering(&self) -> Option<std::time::Instant> {
        self.since.filter(|_| !self.mark_older)
    }

    /// Whether `entry` answers the request only as `older=mark` lets it.
    fn is_older(&self, entry: &Entry) -> bool {
        self.mark_older && self.since.is_some_and(|since| entry.begun_before(since))
    }
}

/// How old a shared measurement the request takes (see [`MAX_AGE_PARAMETER`]), if it
/// says.
fn max_age(uri: &Uri) -> Result<Option<Duration>, ApiError> {
    parameter(uri, MAX_AGE_PARAMETER)
        .map(|value| {
            value.parse().map(Duration::from_millis).map_err(|_| {
                ApiError::bad_request(format!(
                    "{MAX_AGE_PARAMETER}={value}: expected a whole number of milliseconds"
                ))
            })
        })
        .transpose()
}

/// Where the request's canary answers (see [`CANARY_PORT_PARAMETER`]): none, and no
/// checks, where it does not say.
fn canary_port(uri: &Uri) -> Result<Option<u16>, ApiError> {
    parameter(uri, CANARY_PORT_PARAMETER)
        .map(|value| {
            value.parse().ok().filter(|port| *port != 0).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{CANARY_PORT_PARAMETER}={value}: expected a port, 1 to 65535"
                ))
            })
        })
        .transpose()
}

/// Whether the request lets older measurements answer, marked (see
/// [`OLDER_PARAMETER`]).
fn marks_older(uri: &Uri) -> Result<bool, ApiError> {
    parameter(uri, OLDER_PARAMETER).map_or(Ok(false), |value| match value == MARK_OLDER {
        true => Ok(true),
        false => Err(ApiError::bad_request(format!(
            "{OLDER_PARAMETER}={value}: expected {MARK_OLDER}"
        ))),
    })
}

/// The last value of the query parameter `key`, if the request has it.
fn parameter(uri: &Uri, key: &str) -> Option<String> {
    let query = uri.query().unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| name == key)
        .last()
        .map(|(_, value)| value.into_owned())
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request as Content-Type: application/json",
        )),
    }
}

/// What all requests share: the bounds, and what a measurer is built from.
struct Server {
    /// SHA-256 of the token: comparing digests takes the same time whatever the
    /// lengths, so timing tells an attacker nothing about the token.
    token: Option<[u8; 32]>,
    /// Places for the requests that begin a measurement (see [`Recent`]).
    in_flight: Semaphore,
    recent: Recent,
    /// Bytes of the request bodies being read, within [`BODY_BUDGET`].
    body_budget: Semaphore,
    limits: Arc<Limits>,
    /// The connects answered lately, every request's: what the network checks after a
    /// silence judge this server's own network by (see `measure::meanwhile`).
    connects: Arc<Exchanges>,
    tls: TlsContext,
    asn: Option<Arc<AsnDb>>,
    /// The measurement options of every request, but for its control SNI.
    options: measure::Options,
    /// The cap on a batch's deadline.
    request_deadline: Duration,
    max_targets: usize,
    max_body_bytes: usize,
}

impl Server {
    fn new(args: &ServeArgs) -> anyhow::Result<Server> {
        if let Some(token) = &args.token {
            anyhow::ensure!(!token.is_empty(), "--token must not be empty");
        }
        let resolvers = match args.measure.resolvers.is_empty() {
            true => settings::RESOLVERS.to_vec(),
            false => args.measure.resolvers.clone(),
        };
        let server = Server {
            token: args.token.as_deref().map(digest),
            in_flight: Semaphore::new(args.max_in_flight),
            recent: Recent::new(recent::FRESH, recent::CAPACITY),
            body_budget: Semaphore::new(BODY_BUDGET.max(args.max_body_bytes)),
            limits: Arc::new(Limits::new(args.concurrency, args.per_host)),
            connects: Arc::default(),
            tls: TlsContext::new(root_store(args.measure.ca_file.as_deref())?)?,
            asn: asn::load(args.measure.asn_db.as_deref(), args.ip_db_dir.clone())?
                .map(|(_, db)| Arc::new(db)),
            options: measure::Options {
                vantage: Vantage::Control,
                timeout: args.timeout,
                concurrency: args.concurrency,
                per_host: args.per_host,
                resolvers,
                control_sni: None,
                // As the request asks: see `measurer`.
                canary_port: None,
                policy: AddressPolicy::new(args.measure.treat_as_public.clone()),
                // No listening after the first reply: nothing races the control's
                // answers, and every probe target would wait out the window twice.
                dns_window: Duration::ZERO,
                source: args.bind,
                // As the request asks: see `measurer`.
                ech: EchPlan::Always,
            },
            request_deadline: args.request_deadline,
            max_targets: args.max_targets,
            max_body_bytes: args.max_body_bytes,
        };
        // A resolver that cannot be set up should stop the start, not every request.
        server.measurer(None, EchPlan::Always, None)?;
        Ok(server)
    }

    /// One measurer per request (its DNS cache is the request's), all of them within
    /// the same bounds, with the request's control SNI, ECH plan and canary.
    ///
    /// The control's own network fails too (overloaded, its connection table full, a
    /// provider's limit on new flows). Where the request says where its canary answers
    /// (its control SNI, a name the probe's user chose as never blocked), a step the
    /// control failed is checked as a probe's is, so that the analysis does not take
    /// the control's failure for the target's being down.
    fn measurer(
        &self,
        control_sni: Option<String>,
        ech: EchPlan,
        canary_port: Option<u16>,
    ) -> anyhow::Result<Measurer> {
        let options = measure::Options {
            control_sni,
            ech,
            canary_port,
            ..self.options.clone()
        };
        Measurer::with_limits(
            options,
            self.tls.clone(),
            self.asn.clone(),
            self.limits.clone(),
        )
        .map(|measurer| measurer.sharing_connects(self.connects.clone()))
    }

    /// A place among the requests measuring, waited for up to [`QUEUE_WAIT`], else a
    /// refusal (503).
    async fn place(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        tokio::time::timeout(QUEUE_WAIT, self.in_flight.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy: this server is measuring as many requests as it can (--max-in-flight); retry later",
                )
            })
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        if token_matches(expected, bearer_token(headers)) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this server needs its token: send Authorization: Bearer <token>",
            ))
        }
    }

    async fn answer(
        &self,
        client: IpAddr,
        request: &ControlRequest,
        ech: EchPlan,
        sharing: Sharing,
        canary_port: Option<u16>,
    ) -> Result<ControlResponse, ApiError> {
        let (jobs, control_sni) = check(request, self.max_targets, &self.options.policy)?;
        let measurer = self
            .measurer(control_sni.clone(), ech, canary_port)
            .map_err(|e| {
                tracing::warn!("cannot set up a measurement: {e:#}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot set up the measurement: {e:#}"),
                )
            })?;
        let keys: Vec<recent::Key> = jobs
            .iter()
            .map(|job| job.key(control_sni.as_deref(), ech))
            .collect();
        // Only a request that begins a measurement takes a place, and before it begins
        // any: one answered from what others measured or are measuring costs the
        // measured servers nothing and this server little.
        let since = sharing.answering();
        let (entries, _place) = match self.recent.all_begun(&keys, since) {
            Some(entries) => (entries, None),
            None => {
                let place = self.place().await?;
                let entries = keys
                    .into_iter()
                    .map(|key| self.recent.get(key, since))
                    .collect();
                (entries, Some(place))
            }
        };
        let mut results = self
            .measure_within_deadline(&jobs, &entries, &measurer)
            .await;
        for (result, entry) in results.iter_mut().zip(&entries) {
            result.older = result.not_measured.is_none() && sharing.is_older(entry);
        }
        // The client's network, never its address: see docs/design.md.
        let network = self
            .asn
            .as_ref()
            .and_then(|db| db.lookup(client.to_canonical()));
        Ok(ControlResponse {
            probe_asn: network.as_ref().map(|info| format!("AS{}", info.asn)),
            probe_cc: network.and_then(|info| info.country),
            results,
        })
    }

    /// How long a batch of `targets` may take: the protocol's rule for this server's
    /// step timeout, which the probe follows too, within `--request-deadline`.
    fn deadline(&self, targets: usize) -> Duration {
        batch_deadline(self.options.timeout, targets).min(self.request_deadline)
    }

    /// The results of `jobs`, in their order: those measured within the batch's
    /// deadline, and for the others why they were not, so that a slow target costs
    /// only itself its control, never the whole batch.
    async fn measure_within_deadline(
        &self,
        jobs: &[Job],
        entries: &[Entry],
        measurer: &Measurer,
    ) -> Vec<ControlResult> {
        let deadline = self.deadline(jobs.len());
        let mut results: Vec<Option<ControlResult>> = vec![None; jobs.len()];
        let mut running: FuturesUnordered<_> = jobs
            .iter()
            .zip(entries)
            .enumerate()
            .map(|(index, (job, entry))| async move {
                (index, job.run(&self.recent, entry, measurer).await)
            })
            .collect();
        let gather = async {
            while let Some((index, result)) = running.next().await {
                results[index] = Some(result);
            }
        };
        let _ = tokio::time::timeout(deadline, gather).await;
        // The measurements still running are cut off.
        drop(running);
        let batch = match jobs.len() {
            1 => "1 target".to_string(),
            n => format!("{n} targets"),
        };
        let why = format!(
            "the control's deadline of {} s for this batch of {batch} ran out before this target was measured",
            (deadline.as_secs_f64() * 10.0).round() / 10.0,
        );
        jobs.iter()
            .zip(results)
            .map(|(job, result)| result.unwrap_or_else(|| job.not_measured(why.clone())))
            .collect()
    }

    /// Reads the body within [`CLIENT_TIMEOUT`], refusing at once one that says it is too
    /// large, and parses it. Its bytes count against the body budget until parsed.
    async fn read_request(&self, body: Body) -> Result<ControlRequest, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than this server's limit of {} bytes (--max-body): send fewer targets at once",
                    self.max_body_bytes
                ),
            )
        };
        let limit = BodyLimit {
            max: self.max_body_bytes,
            budget: &self.body_budget,
            deadline: CLIENT_TIMEOUT,
        };
        let (bytes, _held) = read_body(body, limit, too_large).await?;
        parse(&bytes)
    }
}

/// The bounds of reading one request body.
pub(super) struct BodyLimit<'a> {
    /// Its most bytes.
    pub max: usize,
    /// The memory all bodies being read at once share, in bytes.
    pub budget: &'a Semaphore,
    /// How long it may take to arrive, from when the handler starts reading it.
    pub deadline: Duration,
}

/// Reads a request body within `limit`, refusing at once (with `too_large()`, before
/// reading a byte) one whose Content-Length says it is larger, and cutting off one that
/// grows larger as it arrives. Its bytes hold a share of the budget, as they arrive (a
/// slow client holds only what it has sent), until the permit given with them is
/// dropped.
pub(super) async fn read_body<'a>(
    mut body: Body,
    limit: BodyLimit<'a>,
    too_large: impl Fn() -> ApiError,
) -> Result<(Vec<u8>, Option<SemaphorePermit<'a>>), ApiError> {
    if body.size_hint().lower() > limit.max as u64 {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut held: Option<SemaphorePermit<'a>> = None;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if bytes.len() + data.len() > limit.max {
                return Err(too_large());
            }
            let permit = u32::try_from(data.len())
                .ok()
                .and_then(|n| limit.budget.try_acquire_many(n).ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy: this server is reading as many request bodies as it can; retry later",
                    )
                })?;
            match &mut held {
                None => held = Some(permit),
                Some(held) => held.merge(permit),
            }
            bytes.extend_from_slice(&data);
        }
        Ok(())
    };
    tokio::time::timeout(limit.deadline, read)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {:?}",
                    limit.deadline
                ),
            )
        })??;
    Ok((bytes, held))
}

/// A request body as JSON.
fn parse(body: &[u8]) -> Result<ControlRequest, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("not a valid measure request: {e}")))
}

/// A request checked as the server checks it before it measures anything: at most
/// `max_targets` targets, each one the server may measure under `policy` (no private or
/// reserved address, a few ports and addresses), and a control SNI that is a domain.
/// Gives the targets to measure, in request order, and the control SNI.
fn check(
    request: &ControlRequest,
    max_targets: usize,
    policy: &AddressPolicy,
) -> Result<(Vec<Job>, Option<String>), ApiError> {
    let count = request.targets.len();
    if count > max_targets {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request names {count} targets, more than this server's limit of {max_targets} per request (--max-targets): send fewer at once"
            ),
        ));
    }
    let jobs = request
        .targets
        .iter()
        .enumerate()
        .map(|(index, requested)| {
            job(requested, policy)
                .map_err(|e| ApiError::bad_request(format!("targets[{index}]: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let control_sni = request
        .control_sni
        .as_deref()
        .map(parse_domain)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("control_sni: {e}")))?;
    Ok((jobs, control_sni))
}

/// A request body read and checked as the server does before it measures anything:
/// the number of targets it would measure, or the refusal's status and message. The
/// entry point of the request fuzzer (`censorprobe::fuzzing`).
pub fn read_and_check(
    body: &[u8],
    max_targets: usize,
    policy: &AddressPolicy,
) -> Result<usize, (u16, String)> {
    let refused = |e: ApiError| (e.status.as_u16(), e.message);
    let request = parse(body).map_err(refused)?;
    let (jobs, _) = check(&request, max_targets, policy).map_err(refused)?;
    Ok(jobs.len())
}

fn job(requested: &ControlTarget, policy: &AddressPolicy) -> Result<Job, String> {
    let target = requested.to_target()?;
    let name = &requested.target;
    if let Some(ip) = target.literal_address()
        && policy.is_bogon(ip)
    {
        return Err(format!(
            "refusing to measure {name:?}: {ip} is a private or reserved address (a lab can allow its range with --treat-as-public)"
        ));
    }
    let ports = target.tls_ports.len() + target.tcp_ports.len();
    if ports > MAX_PORTS {
        return Err(format!(
            "{name:?} names {ports} ports; at most {MAX_PORTS} are measured per target"
        ));
    }
    if requested.addresses.len() > MAX_ADDRESSES {
        return Err(format!(
            "{name:?} names {} addresses; at most {MAX_ADDRESSES} are measured per target",
            requested.addresses.len()
        ));
    }
    let (refused, addresses) = requested
        .addresses
        .iter()
        .partition(|ip| policy.is_bogon(**ip));
    Ok(Job {
        name: name.clone(),
        target,
        addresses,
        refused,
    })
}

/// The token of an `Authorization: Bearer` header (the scheme in any case), or none.
pub(super) fn bearer_token(headers: &HeaderMap) -> &[u8] {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| value.as_bytes().split_at_checked(b"Bearer ".len()))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"Bearer "))
        .map_or(&b""[..], |(_, token)| token)
}

pub(super) fn digest(token: impl AsRef<[u8]>) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Whether `given` is the token whose digest is `expected`. The secret never meets the
/// guess byte by byte: their fixed-size digests are compared, in constant time (subtle),
/// so the time taken depends only on the guess's own length, which its sender knows.
/// A comparison of the tokens themselves would stop at the first differing byte, or at
/// a differing length, and tell an attacker timing many guesses how much they got right.
fn token_matches(expected: &[u8; 32], given: &[u8]) -> bool {
    digest(given).ct_eq(expected).into()
}

/// One requested target, checked: what to measure, with which of the probe's addresses.
struct Job {
    /// As the probe named it, so that it can match the result to its request.
    name: String,
    target: Target,
    addresses: Vec<IpAddr>,
    /// The probe's addresses that are private or reserved, which are not measured.
    refused: Vec<IpAddr>,
}

impl Job {
    /// What makes this target's measurement the same as another request's.
    fn key(&self, control_sni: Option<&str>, ech: EchPlan) -> recent::Key {
        recent::Key::new(&self.target, &self.addresses, control_sni, ech)
    }

    /// The target's result: its measurement in `entry`, made by this request unless
    /// another made it or is making it.
    async fn run(&self, recent: &Recent, entry: &Entry, measurer: &Measurer) -> ControlResult {
        // Boxed: a measurement's state is large, and the single flight's futures
        // around it would otherwise hold it more than once (in a debug build, on the
        // stack of the task that polls it).
        let make = Box::pin(async {
            match measurer.options().ech {
                EchPlan::Only => measurer.ech_only(&self.target, &self.addresses).await,
                _ => standalone(measurer.measure_with(&self.target, &self.addresses).await),
            }
        });
        ControlResult {
            target: self.name.clone(),
            refused_addresses: self.refused.clone(),
            measurements: recent.measure(entry, make).await.to_vec(),
            not_measured: None,
            older: false,
        }
    }

    /// The result of a target not measured, and why.
    fn not_measured(&self, why: String) -> ControlResult {
        ControlResult {
            target: self.name.clone(),
            refused_addresses: self.refused.clone(),
            measurements: Vec::new(),
            not_measured: Some(why),
            older: false,
        }
    }
}

/// A target's measurements with its host's DNS, which the measurer leaves to the
/// first target of a host (a domain and a URL on it share it): each result of the
/// response stands on its own.
fn standalone(facts: TargetFacts) -> Vec<Measurement> {
    let mut measurements = facts.dns.to_vec();
    measurements.extend(
        facts
            .measurements
            .into_iter()
            .filter(|m| !matches!(m.step, Step::Dns(_))),
    );
    measurements
}

/// Every refusal of a handler: a status, and a message saying what is wrong, sent as
/// [`ControlError`] JSON.
#[derive(Debug)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: String) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let header = match self.status {
            StatusCode::UNAUTHORIZED => Some((WWW_AUTHENTICATE, "Bearer")),
            StatusCode::SERVICE_UNAVAILABLE => Some((RETRY_AFTER, "1")),
            _ => None,
        };
        let body = Json(ControlError {
            error: self.message,
        });
        let mut response = (self.status, body).into_response();
        if let Some((name, value)) = header {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::targets::ResolverSpec;

    fn args(token: Option<&str>) -> ServeArgs {
        ServeArgs {
            token: token.map(str::to_string),
            measure: MeasureFlags {
                // Never queried: a unit test measures nothing.
                resolvers: vec![ResolverSpec::Udp(SocketAddr::from(([127, 0, 0, 1], 53)))],
                ..MeasureFlags::default()
            },
            timeout: Duration::from_secs(1),
            request_deadline: Duration::from_secs(1),
            max_in_flight: 1,
            max_connections: 1,
            max_connections_per_client: 1,
            max_targets: 1,
            max_body_bytes: 1,
            concurrency: 1,
            per_host: 1,
            ..ServeArgs::default()
        }
    }

    /// `ServeArgs::default()`, which the demo starts its control with, is what `control
    /// serve` does without flags.
    #[test]
    fn the_default_args_are_the_flags_defaults() {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        let parsed = <Serve as clap::Parser>::try_parse_from(["serve", "--listen", "127.0.0.1:0"])
            .unwrap()
            .args;
        // The token may come from the environment.
        assert_eq!(
            ServeArgs {
                token: None,
                ..parsed
            },
            ServeArgs::default()
        );
    }

    fn bearer(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn authorizes_the_exact_token_only() {
        let server = Server::new(&args(Some("s3cret-token"))).unwrap();
        for good in [&b"Bearer s3cret-token"[..], b"bearer s3cret-token"] {
            assert!(server.authorize(&bearer(good)).is_ok());
        }
        let long = [b"Bearer ".as_slice(), &[b'x'; 65536]].concat();
        let mut bad: Vec<&[u8]> = vec![
            b"",
            b"Bearer ",
            b"Bearer s",
            b"Bearer s3cret-toke",
            b"Bearer s3cret-token ",
            b"Bearer s3cret-tokenX",
            b"Bearer S3CRET-TOKEN",
            b"Basic s3cret-token",
            b"s3cret-token",
            b"Bearer \xffs3cret-token",
        ];
        bad.push(&long);
        for value in bad {
            let refusal = server.authorize(&bearer(value)).unwrap_err();
            assert_eq!(refusal.status, StatusCode::UNAUTHORIZED, "{value:?}");
        }
        let refusal = server.authorize(&HeaderMap::new()).unwrap_err();
        assert_eq!(refusal.status, StatusCode::UNAUTHORIZED);

        let open = Server::new(&args(None)).unwrap();
        assert!(open.authorize(&HeaderMap::new()).is_ok());
        assert!(Server::new(&args(Some(""))).is_err());
    }

    /// The secret is kept and compared only as a digest of fixed size, whatever the
    /// lengths of the token and of the guess (see `token_matches`).
    #[test]
    fn compares_fixed_size_digests() {
        let server = Server::new(&args(Some("s3cret-token"))).unwrap();
        assert_eq!(server.token, Some(digest("s3cret-token")));
        let compare: fn(&[u8; 32], &[u8]) -> bool = token_matches;
        let expected = digest("s3cret-token");
        assert!(compare(&expected, b"s3cret-token"));
        for length in [0, 1, 11, 12, 13, 32, 4096] {
            let guess = vec![b's'; length];
            assert!(!compare(&expected, &guess), "{length}");
        }
    }

    #[test]
    fn counts_connections_per_client_network() {
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(client_network(v4), v4);
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(client_network(mapped), v4);
        let v6: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        let neighbour: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(v6), client_network(neighbour));
        assert_ne!(client_network(v6), client_network(other));
    }

    #[test]
    fn admits_within_both_caps_and_takes_places_back() {
        let admission = Arc::new(Admission::new(3, 2));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).err(), Some(Cap::PerClient));
        let _third = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).err(), Some(Cap::Total));
        drop(first);
        let again = admission.admit(a);
        assert!(again.is_ok(), "a place given back is free again");
        assert_eq!(admission.admit(b).err(), Some(Cap::Total));
    }

    /// The refusal is a whole HTTP/1.1 response, its body the errors' JSON.
    #[test]
    fn refuses_with_503_retry_after_and_close() {
        for (cap, flag) in [
            (Cap::Total, "--max-connections"),
            (Cap::PerClient, "--max-connections-per-client"),
        ] {
            let refusal = String::from_utf8(refusal(cap)).unwrap();
            let (head, body) = refusal.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
            for header in ["retry-after: 1", "connection: close"] {
                assert!(head.contains(header), "{head}");
            }
            assert!(head.contains(&format!("content-length: {}", body.len())));
            let error: ControlError = serde_json::from_str(body).unwrap();
            assert!(error.error.contains(&format!("({flag})")), "{body}");
        }
    }

    /// A batch's deadline grows with it, up to --request-deadline.
    #[test]
    fn a_batch_gets_the_protocols_deadline_within_the_cap() {
        let mut lab = args(None);
        lab.timeout = Duration::from_secs(2);
        lab.request_deadline = Duration::from_secs(30);
        let server = Server::new(&lab).unwrap();
        assert_eq!(server.deadline(1), Duration::from_millis(24_500));
        assert_eq!(server.deadline(50), Duration::from_secs(30));
        assert!(server.deadline(1) < server.deadline(10));
        assert_eq!(
            server.deadline(10),
            batch_deadline(Duration::from_secs(2), 10)
        );
    }
}
