//! `censorprobe control serve`: the control vantage point as an HTTP(S) service.
//!
//! A probe posts the targets it measured; the server measures them again from where it
//! stands, with the probe's own measurement code, and answers with the facts.
//!
//! The server faces the internet, and its token ships with every probe, so it must be
//! assumed known to anyone. Hence every request is bounded (body, targets, ports, time,
//! requests at once) and nothing private or reserved is ever measured: the server must
//! not become a way into its own network, nor a port scanner for hire.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::future::join_all;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::Request;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use ipnet::IpNet;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::protocol::{
    ControlError, ControlRequest, ControlResponse, ControlResult, ControlTarget, HEALTH_PATH,
    MEASURE_PATH,
};
use crate::asn::AsnDb;
use crate::bogon::AddressPolicy;
use crate::facts::{Measurement, Step, Vantage};
use crate::measure::limits::Limits;
use crate::measure::tls::{TlsContext, provider, root_store};
use crate::measure::{self, Measurer, TargetFacts};
use crate::plan::Target;
use crate::targets::{ResolverSpec, parse_domain};

/// How long a client may take over a TLS handshake, or over the headers of an HTTP/1
/// request (an idle keep-alive connection included).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports one target may name: plenty for a service, too few for a port scan.
const MAX_PORTS: usize = 16;
/// Probe-supplied addresses one target may name: more than any honest DNS answer.
const MAX_ADDRESSES: usize = 32;

/// The command line of `control serve`.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    pub listen: SocketAddr,
    pub token: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub asn_db: Option<PathBuf>,
    pub treat_as_public: Vec<IpNet>,
    pub resolvers: Vec<ResolverSpec>,
    /// Deadline of each measurement step.
    pub timeout: Duration,
    /// Deadline of a whole request.
    pub request_deadline: Duration,
    /// Requests measured at once; beyond, the server answers 503 at once.
    pub max_in_flight: usize,
    pub max_targets: usize,
    pub max_body_bytes: usize,
    pub concurrency: usize,
    pub per_host: usize,
    /// The source address of the control's measurements.
    pub bind: Option<IpAddr>,
}

/// Serves probes until SIGINT or SIGTERM. Prints `listening on URL` once ready, with
/// the port actually bound, so that `--listen 127.0.0.1:0` can be used.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let control = ControlServer::new(&args)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // Watch for signals before announcing, so that a signal sent as soon as the line
    // is read still ends the server cleanly.
    let shutdown = shutdown_signal()?;
    announce(&listener, control.tls.is_some())?;
    control
        .serve_on(listener, async {
            shutdown.await;
            tracing::info!("signal received, shutting down");
        })
        .await;
    Ok(())
}

/// A control server with its arguments checked, ready to serve on a listener it is
/// given: `serve` runs one, and so does the demo, in-process on a loopback port.
pub struct ControlServer {
    server: Arc<Server>,
    tls: Option<TlsAcceptor>,
    /// Long enough for one request's headers and its whole measurement.
    lifetime: Duration,
}

impl ControlServer {
    /// Checks `args` and sets up all but the listener: binding `args.listen` is the
    /// caller's part.
    pub fn new(args: &ServeArgs) -> anyhow::Result<ControlServer> {
        let server = Arc::new(Server::new(args)?);
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            _ => None,
        };
        Ok(ControlServer {
            server,
            tls,
            lifetime: args.request_deadline + CLIENT_TIMEOUT,
        })
    }

    /// Serves probes on `listener` until `shutdown` completes.
    pub async fn serve_on(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::select! {
            () = accept_loop(listener, self.tls, router(self.server), self.lifetime) => {}
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

#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
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
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route(MEASURE_PATH, post(measure))
        .route(HEALTH_PATH, get(health))
        .fallback(not_found)
        .with_state(server)
}

/// Accepts connections for ever, serving each on a task of its own.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    lifetime: Duration,
) {
    let mut http = Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT);
    http.http2().timer(TokioTimer::new());
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
        let service = WithPeer {
            app: app.clone(),
            peer,
        };
        let (http, tls) = (http.clone(), tls.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, tls, &http, service, lifetime).await {
                // Clients misbehave all the time on the internet; not worth a warning.
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

/// One connection: the TLS handshake when serving HTTPS, within [`CLIENT_TIMEOUT`],
/// then HTTP/1 or HTTP/2, whichever the client speaks.
async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    http: &Builder<TokioExecutor>,
    service: WithPeer,
    lifetime: Duration,
) -> anyhow::Result<()> {
    match tls {
        None => drive(http, TokioIo::new(stream), service, lifetime).await,
        Some(acceptor) => {
            let stream = tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream))
                .await
                .context("TLS handshake timed out")?
                .context("TLS handshake failed")?;
            drive(http, TokioIo::new(stream), service, lifetime).await
        }
    }
}

/// Serves HTTP on `io` until the client is done, or `lifetime` is up. Then the
/// connection is closed gracefully (the request in progress still gets its answer),
/// so that no client holds a connection for ever, in any phase: hyper has no read
/// timeout while it sniffs for HTTP/2's preface, nor on an HTTP/2 connection.
async fn drive<I>(
    http: &Builder<TokioExecutor>,
    io: I,
    service: WithPeer,
    lifetime: Duration,
) -> anyhow::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    let result = match tokio::time::timeout(lifetime, connection.as_mut()).await {
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
}

impl Service<Request<Incoming>> for WithPeer {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = TowerToHyperServiceFuture<Router, Request<Incoming>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.app.call(request)
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
        format!("no such endpoint: this server answers POST {MEASURE_PATH} and GET {HEALTH_PATH}"),
    )
}

async fn measure(
    State(server): State<Arc<Server>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ControlResponse>, ApiError> {
    server.authorize(&headers)?;
    require_json(&headers)?;
    // Refuse at once rather than queue: a probe would rather retry than hang.
    let _place = server.in_flight.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy: this server is measuring as many requests as it can (--max-in-flight); retry later",
        )
    })?;
    match tokio::time::timeout(server.request_deadline, server.answer(client.ip(), body)).await {
        Ok(answer) => answer.map(Json),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the request took longer than this server's deadline of {:?} (--request-deadline): send fewer targets at once",
                server.request_deadline
            ),
        )),
    }
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
    in_flight: Semaphore,
    limits: Arc<Limits>,
    tls: TlsContext,
    asn: Option<Arc<AsnDb>>,
    /// The measurement options of every request, but for its control SNI.
    options: measure::Options,
    request_deadline: Duration,
    max_targets: usize,
    max_body_bytes: usize,
}

impl Server {
    fn new(args: &ServeArgs) -> anyhow::Result<Server> {
        if let Some(token) = &args.token {
            anyhow::ensure!(!token.is_empty(), "--token must not be empty");
        }
        let resolvers = match args.resolvers.is_empty() {
            true => vec![ResolverSpec::System],
            false => args.resolvers.clone(),
        };
        let server = Server {
            token: args.token.as_deref().map(digest),
            in_flight: Semaphore::new(args.max_in_flight),
            limits: Arc::new(Limits::new(args.concurrency, args.per_host)),
            tls: TlsContext::new(root_store(args.ca_file.as_deref())?)?,
            asn: args
                .asn_db
                .as_deref()
                .map(AsnDb::open)
                .transpose()?
                .map(Arc::new),
            options: measure::Options {
                vantage: Vantage::Control,
                timeout: args.timeout,
                concurrency: args.concurrency,
                per_host: args.per_host,
                resolvers,
                control_sni: None,
                policy: AddressPolicy::new(args.treat_as_public.clone()),
                dns_window: measure::DNS_WINDOW.min(args.timeout),
                source: args.bind,
            },
            request_deadline: args.request_deadline,
            max_targets: args.max_targets,
            max_body_bytes: args.max_body_bytes,
        };
        // A resolver that cannot be set up should stop the start, not every request.
        server.measurer(None)?;
        Ok(server)
    }

    /// One measurer per request (its DNS cache is the request's), all of them within
    /// the same bounds.
    fn measurer(&self, control_sni: Option<String>) -> anyhow::Result<Measurer> {
        let options = measure::Options {
            control_sni,
            ..self.options.clone()
        };
        Measurer::with_limits(
            options,
            self.tls.clone(),
            self.asn.clone(),
            self.limits.clone(),
        )
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.as_bytes().split_at_checked(b"Bearer ".len()))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"Bearer "))
            .map_or(&b""[..], |(_, token)| token);
        if bool::from(digest(given).ct_eq(expected)) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this server needs its token: send Authorization: Bearer <token>",
            ))
        }
    }

    async fn answer(&self, client: IpAddr, body: Body) -> Result<ControlResponse, ApiError> {
        let request = self.read_request(body).await?;
        let jobs = self.jobs(&request)?;
        let control_sni = request
            .control_sni
            .as_deref()
            .map(parse_domain)
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("control_sni: {e}")))?;
        let measurer = self.measurer(control_sni).map_err(|e| {
            tracing::warn!("cannot set up a measurement: {e:#}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot set up the measurement: {e:#}"),
            )
        })?;
        let results = join_all(jobs.iter().map(|job| job.run(&measurer))).await;
        // The client's network, never its address: see DESIGN.md.
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

    async fn read_request(&self, body: Body) -> Result<ControlRequest, ApiError> {
        let bytes = match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is larger than this server's limit of {} bytes (--max-body): send fewer targets at once",
                        self.max_body_bytes
                    ),
                ));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "cannot read the request body: {e}"
                )));
            }
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("not a valid measure request: {e}")))
    }

    /// The request's targets, checked, in request order.
    fn jobs(&self, request: &ControlRequest) -> Result<Vec<Job>, ApiError> {
        let count = request.targets.len();
        if count > self.max_targets {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request names {count} targets, more than this server's limit of {} per request (--max-targets): send fewer at once",
                    self.max_targets
                ),
            ));
        }
        request
            .targets
            .iter()
            .enumerate()
            .map(|(index, requested)| {
                self.job(requested)
                    .map_err(|e| ApiError::bad_request(format!("targets[{index}]: {e}")))
            })
            .collect()
    }

    fn job(&self, requested: &ControlTarget) -> Result<Job, String> {
        let target = requested.to_target()?;
        let name = &requested.target;
        if let Some(ip) = target.literal_address()
            && self.options.policy.is_bogon(ip)
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
            .partition(|ip| self.options.policy.is_bogon(**ip));
        Ok(Job {
            name: name.clone(),
            target,
            addresses,
            refused,
        })
    }
}

fn digest(token: impl AsRef<[u8]>) -> [u8; 32] {
    Sha256::digest(token).into()
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
    async fn run(&self, measurer: &Measurer) -> ControlResult {
        let facts = measurer.measure_with(&self.target, &self.addresses).await;
        ControlResult {
            target: self.name.clone(),
            refused_addresses: self.refused.clone(),
            measurements: standalone(facts),
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
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: String) -> ApiError {
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
