//! The probe's side of the control protocol.
//!
//! A busy control answers 503 rather than queueing for long (over its caps on
//! connections too); the client backs off and tries again a few times (backon), and
//! bounds its own requests in flight so that one probe does not fill a control that
//! serves many. Targets are sent in batches: one request per target would cost the
//! control a connection and a request each. A batch is waited for as long as the control
//! may take over it ([`batch_deadline`]), and not asked again once that has passed: a
//! control that slow would only get slower. An answer that stops coming once begun is
//! the path's doing, and is asked again, twice at most (see [`answer_silence`]).
//!
//! A control the probe cannot reach (a censor may block it as well as any target) is
//! given up on as a whole, not by each request in turn (see `Reach`): otherwise every
//! batch waits out the same connects and pauses, and a run of seconds takes minutes.
//! Its connect is a dial, its SYN sent again from fresh ports over two rounds
//! (`tcp::Dialer::dial`): a lossy link seldom loses all of them.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;
use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::Incoming;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use url::Url;

use super::protocol::{
    CANARY_PORT_PARAMETER, ControlError, ControlRequest, ControlResponse, ControlResult,
    ControlTarget, ECH_PARAMETER, MARK_OLDER, MAX_AGE_PARAMETER, MEASURE_PATH, OLDER_PARAMETER,
    batch_deadline,
};
use crate::facts::failure::{Operation, StepError};
use crate::facts::scrub::scrub_addresses;
use crate::measure::ech::EchPlan;
use crate::measure::http;
use crate::measure::tcp::Dialer;
use crate::measure::tls::TlsContext;

/// The largest control answer we read (certificate chains make answers large).
const MAX_RESPONSE: usize = 64 << 20;
/// Control requests one probe keeps in flight.
const MAX_IN_FLIGHT: usize = 16;
/// Targets in one request (the server's default limit is 100).
const BATCH: usize = 50;
/// How long a batch waits for more targets before it goes.
const LINGER: Duration = Duration::from_millis(20);
/// The wait for an answer beyond the control's deadline for the batch and our TLS
/// handshake: sending the request, the control reading it, the answer's transfer.
const TRANSFER: Duration = Duration::from_secs(10);
/// Dials of one request that may go unanswered: a dial sends its SYN again from fresh
/// ports over two rounds already (see `tcp::Dialer`), so a second dial is for a burst
/// of loss or a full NAT table, and a third would only wait out a blackhole once more.
const UNANSWERED_DIALS: u32 = 2;
/// Answers of one request that may stop coming midway: each try waits its whole batch's
/// wait at most and has the control measure the batch again, so a third loss of the
/// answer (a path that loses it every time) ends the request. Two were too few at 30 %
/// loss each way: one run in six lost a batch so (`all lossy-heavy`, 2026-12-07).
const STALLED_ANSWERS: u32 = 3;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlClientError {
    #[error("the control refused our token ({0})")]
    Unauthorized(String),
    #[error("the control refused the request: HTTP {0}: {1}")]
    Rejected(u16, String),
    #[error("the control is busy")]
    Busy,
    #[error("cannot reach the control {0}")]
    Transport(String),
    /// Its connect went unanswered through a whole dial.
    #[error("cannot reach the control {0}")]
    Unanswered(String),
    /// Its answer stopped coming: the path's doing (a lossy link, a connection lost),
    /// which a fresh connection may not meet.
    #[error("lost the control's answer: {0}")]
    Stalled(String),
    #[error("no answer from the control within {0:?}, the most it may take over this batch")]
    TimedOut(Duration),
}

impl From<ExchangeError> for ControlClientError {
    fn from(e: ExchangeError) -> ControlClientError {
        match e {
            ExchangeError::Transport(e) => ControlClientError::Transport(e),
            ExchangeError::Unanswered(e) => ControlClientError::Unanswered(e),
            ExchangeError::Stalled(e) => ControlClientError::Stalled(e),
            ExchangeError::TimedOut(wait) => ControlClientError::TimedOut(wait),
        }
    }
}

impl ControlClientError {
    fn retryable(&self) -> bool {
        self.unreached()
            || matches!(
                self,
                ControlClientError::Busy | ControlClientError::Stalled(_)
            )
    }

    /// Whether the control could not be reached at all (where a busy, slow or refusing
    /// control was).
    fn unreached(&self) -> bool {
        matches!(
            self,
            ControlClientError::Transport(_) | ControlClientError::Unanswered(_)
        )
    }
}

/// The tries of one request so far, and whether to make another.
#[derive(Default)]
struct Tries {
    unanswered: u32,
    stalled: u32,
}

impl Tries {
    /// Whether to try again after `error`, when `silent` says whether the client takes
    /// the control for silent meanwhile (another request's dials went unanswered): a
    /// dial costs two step timeouts then, where a refusal costs nothing.
    fn again(&mut self, error: &ControlClientError, silent: bool) -> bool {
        if matches!(error, ControlClientError::Unanswered(_)) {
            self.unanswered += 1;
            if silent {
                return false;
            }
        }
        if matches!(error, ControlClientError::Stalled(_)) {
            self.stalled += 1;
        }
        error.retryable() && self.unanswered < UNANSWERED_DIALS && self.stalled < STALLED_ANSWERS
    }
}

/// Whether the control has been reached of late, shared by a client's requests. Once a
/// request has tried all it may without a connection, the others do not each wait out
/// the same tries: a silent control's failure stands for theirs for a step timeout;
/// after that (and at once for a refusing one), one request at a time tries the
/// control, once, and those that come meanwhile wait for that try and fail with it. A
/// connection made ends it (the request that made it, answered busy or cut off, goes on
/// to its own tries), and requests go back to theirs.
#[derive(Default)]
struct Reach {
    state: tokio::sync::watch::Sender<ReachState>,
}

#[derive(Default)]
struct ReachState {
    /// Why the control could not be reached, since the last connection made.
    lost: Option<Lost>,
    /// When a connection to the control was last made.
    reached: Option<Instant>,
    /// The turn of the request trying the control while it is lost, if one is.
    trying: Option<u64>,
    /// Turns given so far.
    turns: u64,
}

/// Why the last request that ended without a connection could not reach the control,
/// and when it ended.
#[derive(Clone)]
struct Lost {
    error: ControlClientError,
    at: Instant,
}

impl Lost {
    fn silent(&self) -> bool {
        matches!(self.error, ControlClientError::Unanswered(_))
    }
}

/// What a request is to do, by [`Reach::turn`].
enum Turn {
    /// Its own tries.
    Own,
    /// Fail: the control was found silent a moment ago, or by the try waited for.
    Fail(ControlClientError),
    /// Try the control once, for itself and those that wait meanwhile.
    Try(u64),
    /// Wait for the request trying it.
    Wait,
}

impl Reach {
    /// What a request is to do now; `waiting` since when it has waited for another's
    /// try, if it has.
    fn turn(&self, standing: Duration, waiting: Option<Instant>) -> Turn {
        let mut turn = Turn::Own;
        self.state.send_if_modified(|state| {
            let Some(lost) = &state.lost else {
                return false;
            };
            let tried = waiting.is_some_and(|since| lost.at >= since);
            turn = if tried || (lost.silent() && lost.at.elapsed() < standing) {
                Turn::Fail(lost.error.clone())
            } else if state.trying.is_some() {
                Turn::Wait
            } else {
                state.turns += 1;
                state.trying = Some(state.turns);
                Turn::Try(state.turns)
            };
            matches!(turn, Turn::Try(_))
        });
        turn
    }

    /// Waits until no request is trying the control.
    async fn wait(&self) {
        let mut state = self.state.subscribe();
        let _ = state.wait_for(|s| s.trying.is_none()).await;
    }

    /// A connection to the control was made: the request trying it, if one was, no
    /// longer tries it for the others.
    fn reached(&self) {
        self.state.send_modify(|state| {
            state.lost = None;
            state.reached = Some(Instant::now());
            state.trying = None;
        });
    }

    fn reached_since(&self, since: Instant) -> bool {
        self.state.borrow().reached.is_some_and(|r| r >= since)
    }

    /// Tries that `began` then ended with `outcome`: a failure to reach the control
    /// stands unless a connection was made since they began (theirs, or another's: the
    /// control back meanwhile).
    fn ended(&self, outcome: &Result<ControlResponse, ControlClientError>, began: Instant) {
        self.state.send_if_modified(|state| match outcome {
            Err(error) if error.unreached() && state.reached.is_none_or(|r| r < began) => {
                state.lost = Some(Lost {
                    error: error.clone(),
                    at: Instant::now(),
                });
                true
            }
            _ => false,
        });
    }

    fn silent(&self) -> bool {
        self.state.borrow().lost.as_ref().is_some_and(Lost::silent)
    }
}

/// The turn of the request trying the control for the others ([`Turn::Try`]), given
/// back however that request ends, cut short by a run's stop included: none waits for
/// it forever.
struct Trying<'a> {
    reach: &'a Reach,
    turn: u64,
}

impl Drop for Trying<'_> {
    fn drop(&mut self) {
        self.reach.state.send_if_modified(|state| {
            let mine = state.trying == Some(self.turn);
            if mine {
                state.trying = None;
            }
            mine
        });
    }
}

/// One request by `post`, made as `reach` allows and tried again as `policy` says, a
/// silent control's failure standing for a `standing` while. `post` tells `reach` of
/// each connection it makes.
async fn post_reaching<P, F>(
    reach: &Reach,
    standing: Duration,
    policy: ExponentialBuilder,
    mut post: P,
) -> Result<ControlResponse, ControlClientError>
where
    P: FnMut() -> F,
    F: Future<Output = Result<ControlResponse, ControlClientError>>,
{
    let mut waiting = None;
    loop {
        match reach.turn(standing, waiting) {
            Turn::Own => break,
            Turn::Fail(error) => return Err(error),
            Turn::Wait => {
                waiting.get_or_insert_with(Instant::now);
                reach.wait().await;
            }
            Turn::Try(turn) => {
                let trying = Trying { reach, turn };
                let began = Instant::now();
                let outcome = post().await;
                reach.ended(&outcome, began);
                drop(trying);
                // Connected, then busy or cut off: it tries as any other.
                let again = matches!(&outcome, Err(e) if e.retryable());
                if !(again && reach.reached_since(began)) {
                    return outcome;
                }
                break;
            }
        }
    }
    let began = Instant::now();
    let mut tries = Tries::default();
    let outcome = post
        .retry(policy)
        .when(|e| tries.again(e, reach.silent()))
        .await;
    reach.ended(&outcome, began);
    outcome
}

pub struct ControlClient {
    endpoint: Url,
    token: Option<String>,
    tls: TlsContext,
    /// Our step timeout: of our connect and TLS handshake to the control, and the
    /// control's own by default, from which its deadline for a batch follows.
    timeout: Duration,
    slots: Semaphore,
    reach: Reach,
    /// See [`ControlClient::clock_offset`].
    clock_offset: OnceLock<TimeDelta>,
    /// See [`answer_silence`].
    silence: Duration,
}

impl ControlClient {
    pub fn new(
        base: &Url,
        token: Option<String>,
        tls: TlsContext,
        timeout: Duration,
    ) -> anyhow::Result<ControlClient> {
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https") && base.host().is_some(),
            "--control {base}: expected an http:// or https:// URL"
        );
        Ok(ControlClient {
            endpoint: base.join(MEASURE_PATH)?,
            token,
            tls,
            timeout,
            slots: Semaphore::new(MAX_IN_FLIGHT),
            reach: Reach::default(),
            clock_offset: OnceLock::new(),
            silence: answer_silence(timeout),
        })
    }

    /// How far the control's clock was ahead of this machine's (negative: behind) at
    /// its first answer, to a second or so; None before one, or from a control that
    /// sent no `Date`.
    pub fn clock_offset(&self) -> Option<TimeDelta> {
        self.clock_offset.get().copied()
    }

    /// Tells the control at which port the probe's canary answers, with every batch
    /// (see [`CANARY_PORT_PARAMETER`]).
    pub fn with_canary_port(mut self, port: Option<u16>) -> ControlClient {
        if let Some(port) = port {
            self.endpoint
                .query_pairs_mut()
                .append_pair(CANARY_PORT_PARAMETER, &port.to_string());
        }
        self
    }

    /// The control's base URL, without credentials, for run.json.
    pub fn url(&self) -> String {
        self.endpoint
            .join("/")
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// How long to wait for the answer to a batch of `targets`: as long as the control
    /// may take over it, and our TLS handshake and the transfer.
    fn wait(&self, targets: usize) -> Duration {
        batch_deadline(self.timeout, targets) + self.timeout + TRANSFER
    }

    /// Asks the control to measure everything of each target, trying again while it is
    /// busy or unreachable, as far as the client's reach of it allows (see `Reach`).
    pub async fn measure(
        &self,
        request: &ControlRequest,
    ) -> Result<ControlResponse, ControlClientError> {
        self.measure_planned(request, Asking::default(), None).await
    }

    /// Asks the control to measure as `asking` says, with facts begun no earlier than
    /// `since`, when given (see [`MAX_AGE_PARAMETER`]).
    async fn measure_planned(
        &self,
        request: &ControlRequest,
        asking: Asking,
        since: Option<Instant>,
    ) -> Result<ControlResponse, ControlClientError> {
        let body = Bytes::from(serde_json::to_vec(request).expect("requests serialize"));
        let wait = self.wait(request.targets.len());
        let mut planned = self.endpoint.clone();
        if asking.ech != EchPlan::Always {
            planned
                .query_pairs_mut()
                .append_pair(ECH_PARAMETER, asking.ech.name());
        }
        if asking.mark_older {
            planned
                .query_pairs_mut()
                .append_pair(OLDER_PARAMETER, MARK_OLDER);
        }
        // Made at each try: a retry's facts may be as old as the time since `since`.
        let url = || {
            let mut url = planned.clone();
            if let Some(since) = since {
                let age = since.elapsed().as_millis().to_string();
                url.query_pairs_mut().append_pair(MAX_AGE_PARAMETER, &age);
            }
            url
        };
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(4))
            .with_max_times(4)
            .with_jitter();
        post_reaching(&self.reach, self.timeout, policy, || async {
            self.post(&url(), body.clone(), wait).await
        })
        .await
    }

    async fn post(
        &self,
        url: &Url,
        body: Bytes,
        wait: Duration,
    ) -> Result<ControlResponse, ControlClientError> {
        let _slot = self.slots.acquire().await.expect("never closed");
        let exchange = Exchange {
            url,
            token: self.token.as_deref(),
            tls: &self.tls,
            timeout: self.timeout,
            source: None,
            wait,
            silence: self.silence,
            redial: true,
            connected: Some(&|| self.reach.reached()),
        };
        let answer = exchange
            .send(Method::POST, "application/json", body)
            .await?;
        let (status, bytes) = (answer.status, &answer.body);
        let message = || server_message(bytes);
        match status {
            200 => {
                let response = serde_json::from_slice(bytes).map_err(|e| {
                    ControlClientError::Rejected(200, format!("unreadable answer: {e}"))
                })?;
                // The control's own answer, not a portal's or a proxy's on the way.
                if let Some(offset) = answer.clock_offset {
                    let _ = self.clock_offset.set(offset);
                }
                Ok(response)
            }
            401 | 403 => Err(ControlClientError::Unauthorized(message())),
            503 => Err(ControlClientError::Busy),
            other => Err(ControlClientError::Rejected(other, message())),
        }
    }
}

/// One HTTP request to a censorprobe server (a control, a collector), over http:// or
/// https:// (verified strictly), with the probe's own HTTP code (`measure::http`).
pub struct Exchange<'a> {
    pub url: &'a Url,
    /// Sent as a bearer token.
    pub token: Option<&'a str>,
    pub tls: &'a TlsContext,
    /// Of the connect (of each round of a dial) and of the TLS handshake.
    pub timeout: Duration,
    /// The local address to connect from.
    pub source: Option<IpAddr>,
    /// The most the whole exchange may take.
    pub wait: Duration,
    /// The longest silence within the answer once its head has come (see
    /// [`answer_silence`]).
    pub silence: Duration,
    /// Whether the connect is a dial, its SYN sent again from fresh ports over two
    /// rounds of `timeout` (`tcp::Dialer::dial`), rather than one connect.
    pub redial: bool,
    /// Told when the connection is made: over https://, once its TLS handshake is done
    /// (a censor may let the connect through and drop the handshake).
    pub connected: Option<&'a (dyn Fn() + Sync)>,
}

/// Why an exchange got no answer.
#[derive(Debug, Clone)]
pub enum ExchangeError {
    /// Naming the server's origin and what failed.
    Transport(String),
    /// As `Transport`: the connect went unanswered through a whole dial.
    Unanswered(String),
    /// As `Transport`: the answer began, then stopped coming (see [`answer_silence`]).
    Stalled(String),
    TimedOut(Duration),
}

/// A server's answer to an [`Exchange`].
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// At most `MAX_RESPONSE` bytes of the body.
    pub body: Vec<u8>,
    /// How far the server's clock was ahead of this machine's (negative: behind), from
    /// its `Date` header, against the middle of the exchange: to a second or so.
    pub clock_offset: Option<TimeDelta>,
}

impl Exchange<'_> {
    /// Sends `body` (of `content_type`, unless empty) and gives the answer.
    pub async fn send(
        &self,
        method: Method,
        content_type: &str,
        body: Bytes,
    ) -> Result<Answer, ExchangeError> {
        // Named as the user gave it: the address it resolved to would be scrubbed from
        // the log line (see `crate::facts::scrub`), leaving nothing to recognise.
        let origin = self.url.origin().ascii_serialization();
        let transport = |e: String| ExchangeError::Transport(format!("{origin}: {e}"));
        let failed = |e: String, silent: bool| match silent {
            true => ExchangeError::Unanswered(format!("{origin}: {e}")),
            false => transport(e),
        };
        let host = http::host_of(self.url).to_string();
        let port = self.url.port_or_known_default().unwrap_or(80);
        // A resolver that does not answer is silence, as a connect that is not answered.
        let looked_up =
            tokio::time::timeout(self.timeout, tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| failed(format!("cannot resolve {host}: no answer"), true))?;
        let address: SocketAddr = looked_up
            .map_err(|e| transport(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| transport(format!("{host} has no address")))?;
        let dialer = Dialer::new(self.timeout, self.source);
        let dialed = match self.redial {
            true => dialer.dial(&[address]).await.result.map(|(tcp, _)| tcp),
            false => dialer.connect(address).await,
        };
        let tcp = dialed.map_err(|e| failed(format!("connect: {}", e.failure), e.unanswered()))?;
        let connected = || {
            if let Some(connected) = self.connected {
                connected();
            }
        };
        let mut headers = vec![("accept", "application/json")];
        if !body.is_empty() {
            headers.push(("content-type", content_type));
        }
        let bearer = self.token.map(|t| format!("Bearer {t}"));
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer));
        }
        let step_failed = |e: StepError| {
            // A handshake that went unanswered is as silent as a connect: a censor
            // filtering the server's name drops it.
            let silent = e.silent() && e.failed_operation == Operation::TlsHandshake;
            failed(format!("{} ({})", e.failure, e.failed_operation), silent)
        };
        let exchange = async {
            let (sent, asked) = if self.url.scheme() == "https" {
                let tls = self
                    .tls
                    .connect_strict(tcp, &host, self.timeout)
                    .await
                    .map_err(step_failed)?;
                connected();
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let request =
                    http::request(method, self.url, h2, &headers, body).expect("valid request");
                let asked = Utc::now();
                (
                    http::send(tls, h2, request).await.map_err(step_failed)?,
                    asked,
                )
            } else {
                connected();
                let request =
                    http::request(method, self.url, false, &headers, body).expect("valid request");
                let asked = Utc::now();
                (
                    http::send(tcp, false, request).await.map_err(step_failed)?,
                    asked,
                )
            };
            let (response, _connection) = sent;
            let clock_offset = clock_offset(response.headers(), asked, Utc::now());
            let status = response.status().as_u16();
            let body = match read_answer(response.into_body(), self.silence).await {
                Ok(body) => body,
                Err(Unread::Failed(e)) => return Err(step_failed(e)),
                Err(Unread::Stalled) => {
                    return Err(ExchangeError::Stalled(format!(
                        "{origin}: its answer stopped for {:?} midway",
                        self.silence
                    )));
                }
            };
            Ok(Answer {
                status,
                body,
                clock_offset,
            })
        };
        tokio::time::timeout(self.wait, exchange)
            .await
            .map_err(|_| ExchangeError::TimedOut(self.wait))?
    }
}

/// The longest silence within an answer once its head has come, for a step timeout of
/// `timeout`: by then the server has done its work, and the rest is the path's. A
/// connection lost at its end would otherwise hold the exchange for the rest of its
/// wait, minutes for a control's batch (`all lossy-heavy` lost batches so in 3 runs of
/// 5). But a lossy link's retransmissions, backed off, leave gaps of seconds in a
/// transfer that goes on: at 30 % loss each way, answers cut at 6 s of silence were cut
/// again at the next try often enough to lose a batch three times in a row. Hence two
/// step timeouts, and never less than `SILENCE_FLOOR`.
pub fn answer_silence(timeout: Duration) -> Duration {
    (timeout * 2).max(SILENCE_FLOOR)
}

/// See [`answer_silence`]: 0.2 s of retransmission timeout doubled six times in a row
/// is 12.6 s, and a gap longer than this is seven losses of one segment in a row.
const SILENCE_FLOOR: Duration = Duration::from_secs(15);

/// Why an answer's body was not read whole.
enum Unread {
    Failed(StepError),
    /// Nothing came for the silence allowed.
    Stalled,
}

/// Reads an answer's body, at most `MAX_RESPONSE` bytes of it (more makes no answer the
/// caller can read), failing at a `silence` between two of its parts.
async fn read_answer(mut body: Incoming, silence: Duration) -> Result<Vec<u8>, Unread> {
    let mut bytes = Vec::new();
    while let Some(frame) = tokio::time::timeout(silence, body.frame())
        .await
        .map_err(|_| Unread::Stalled)?
    {
        let frame = frame.map_err(|e| Unread::Failed(http::classify(&e, Operation::Read)))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let room = MAX_RESPONSE - bytes.len();
        bytes.extend_from_slice(&data[..data.len().min(room)]);
        if data.len() > room {
            break;
        }
    }
    Ok(bytes)
}

/// How far the clock of a server whose answer's head has `headers` was ahead of ours,
/// for a request sent at `asked` and answered at `answered`: its `Date` (to the second,
/// truncated, so taken at the middle of its second) against the middle of the two.
fn clock_offset(
    headers: &hyper::HeaderMap,
    asked: DateTime<Utc>,
    answered: DateTime<Utc>,
) -> Option<TimeDelta> {
    let date = headers.get(hyper::header::DATE)?.to_str().ok()?;
    let theirs = DateTime::parse_from_rfc2822(date).ok()?.with_timezone(&Utc);
    let ours = asked + (answered - asked) / 2;
    Some(theirs + TimeDelta::milliseconds(500) - ours)
}

/// A server's refusal in its own words: its JSON error, else the start of its body.
/// Scrubbed, since they go into the evidence of verdicts.csv and into logs, and
/// whoever answers (the server, a captive portal, a proxy in its place) sees the
/// probe's public address and may well say it.
pub fn server_message(bytes: &[u8]) -> String {
    let text = serde_json::from_slice::<ControlError>(bytes)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).chars().take(200).collect());
    scrub_addresses(&text)
}
/// A target waiting for its batch, and where its result goes.
struct Queued {
    target: ControlTarget,
    /// When the probe began measuring the target: the control's facts must be as young.
    began: Instant,
    reply: oneshot::Sender<Result<ControlResult, String>>,
}

/// How a request asks the control.
#[derive(Debug, Clone, Copy, Default)]
struct Asking {
    ech: EchPlan,
    /// Whether shared facts older than the request's `max_age` answer it too, marked
    /// (see [`OLDER_PARAMETER`]).
    mark_older: bool,
}

/// Gathers targets into batches for one control, asked to leave the ECH comparison
/// for later and to answer with older shared facts, marked; in batches of their own,
/// the targets whose marked facts could sway their verdict, asked again
/// ([`Batcher::again`]), and those whose ECH comparison the probe needs the control's
/// for ([`Batcher::ech`]).
#[derive(Clone)]
pub struct Batcher {
    measure: mpsc::Sender<Queued>,
    again: mpsc::Sender<Queued>,
    ech: mpsc::Sender<Queued>,
}

impl Batcher {
    /// Starts gathering for `client`; every batch carries `control_sni`.
    pub fn start(client: std::sync::Arc<ControlClient>, control_sni: Option<String>) -> Batcher {
        let queue = |ech: EchPlan, mark_older: bool| {
            let (queue, incoming) = mpsc::channel::<Queued>(BATCH * MAX_IN_FLIGHT);
            let asking = Asking { ech, mark_older };
            tokio::spawn(gather(
                client.clone(),
                control_sni.clone(),
                asking,
                incoming,
            ));
            queue
        };
        Batcher {
            measure: queue(EchPlan::Later, true),
            again: queue(EchPlan::Later, false),
            ech: queue(EchPlan::Only, false),
        }
    }

    /// The control's result for one target, all but its ECH comparison: from facts
    /// begun no earlier than the probe `began` measuring the target, or from older
    /// facts it shares, marked [`ControlResult::older`].
    pub async fn measure(
        &self,
        target: ControlTarget,
        began: Instant,
    ) -> Result<ControlResult, String> {
        ask(&self.measure, target, began).await
    }

    /// As [`Batcher::measure`], from facts begun no earlier than `began` only.
    pub async fn again(
        &self,
        target: ControlTarget,
        began: Instant,
    ) -> Result<ControlResult, String> {
        ask(&self.again, target, began).await
    }

    /// The control's ECH comparison alone for one target, at `target`'s addresses, from
    /// facts begun no earlier than `began` only.
    pub async fn ech(
        &self,
        target: ControlTarget,
        began: Instant,
    ) -> Result<ControlResult, String> {
        ask(&self.ech, target, began).await
    }
}

async fn ask(
    queue: &mpsc::Sender<Queued>,
    target: ControlTarget,
    began: Instant,
) -> Result<ControlResult, String> {
    let (reply, result) = oneshot::channel();
    let closed = || "the control batcher stopped".to_string();
    queue
        .send(Queued {
            target,
            began,
            reply,
        })
        .await
        .map_err(|_| closed())?;
    result.await.map_err(|_| closed())?
}

/// Sends what comes on `incoming` in batches of up to [`BATCH`], each after
/// [`LINGER`] at most, asking as `asking` says.
async fn gather(
    client: std::sync::Arc<ControlClient>,
    control_sni: Option<String>,
    asking: Asking,
    mut incoming: mpsc::Receiver<Queued>,
) {
    while let Some(first) = incoming.recv().await {
        let mut batch = vec![first];
        let deadline = Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, incoming.recv()).await {
                Ok(Some(next)) => batch.push(next),
                _ => break,
            }
        }
        tokio::spawn(send_batch(
            client.clone(),
            control_sni.clone(),
            asking,
            batch,
        ));
    }
}

async fn send_batch(
    client: std::sync::Arc<ControlClient>,
    control_sni: Option<String>,
    asking: Asking,
    batch: Vec<Queued>,
) {
    let request = |targets: Vec<ControlTarget>| ControlRequest {
        targets,
        control_sni: control_sni.clone(),
    };
    let all = request(batch.iter().map(|q| q.target.clone()).collect());
    // The youngest target's: facts older than it must not answer it unmarked.
    let since = batch.iter().map(|q| q.began).max();
    match client.measure_planned(&all, asking, since).await {
        // A request the control refuses for one of its targets (too many addresses, an
        // address it may not measure) or for their number (its --max-targets): each
        // target is asked alone, so that one costs only itself its control.
        Err(ControlClientError::Rejected(..)) if batch.len() > 1 => {
            let alone = batch.into_iter().map(|queued| {
                let single = request(vec![queued.target]);
                let client = &client;
                async move {
                    let asked = client
                        .measure_planned(&single, asking, Some(queued.began))
                        .await;
                    answer(vec![queued.reply], asked)
                }
            });
            join_all(alone).await;
        }
        outcome => answer(batch.into_iter().map(|q| q.reply).collect(), outcome),
    }
}

/// Sends each target of a request its result, in the request's order.
fn answer(
    replies: Vec<oneshot::Sender<Result<ControlResult, String>>>,
    outcome: Result<ControlResponse, ControlClientError>,
) {
    match outcome {
        Ok(response) if response.results.len() == replies.len() => {
            for (reply, result) in replies.into_iter().zip(response.results) {
                // A target the control did not measure is judged without it, as when
                // the control cannot be reached. Its words are scrubbed as its errors.
                let result = match &result.not_measured {
                    Some(why) => Err(scrub_addresses(why)),
                    None => Ok(result),
                };
                let _ = reply.send(result);
            }
        }
        Ok(response) => {
            let why = format!(
                "the control answered {} results for {} targets",
                response.results.len(),
                replies.len()
            );
            for reply in replies {
                let _ = reply.send(Err(why.clone()));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const STEP: Duration = Duration::from_secs(3);
    const CONNECT: Duration = Duration::from_millis(100);

    fn unanswered() -> ControlClientError {
        ControlClientError::Unanswered("http://control: connect: generic_timeout_error".into())
    }

    fn refused() -> ControlClientError {
        ControlClientError::Transport("http://control: connect: connection_refused".into())
    }

    fn answered() -> ControlResponse {
        serde_json::from_str(r#"{"results":[]}"#).unwrap()
    }

    #[test]
    fn a_request_dials_an_unanswering_control_twice_at_most() {
        let mut tries = Tries::default();
        assert!(tries.again(&refused(), false));
        assert!(tries.again(&ControlClientError::Busy, false));
        assert!(
            tries.again(&unanswered(), false),
            "the first unanswered dial"
        );
        assert!(!tries.again(&unanswered(), false), "the second");
        assert!(!tries.again(&refused(), false));
        let mut tries = Tries::default();
        assert!(
            !tries.again(&unanswered(), true),
            "another request found it silent"
        );
        assert!(tries.again(&refused(), true), "a refusal costs nothing");
        assert!(!tries.again(&ControlClientError::TimedOut(TRANSFER), false));
    }

    /// A control as `post_reaching` meets it: each post takes `took`, and ends with
    /// `fails`, or an answer if none; unless `fails` is a failure to reach it, the post
    /// connects (telling `reach`) [`CONNECT`] into it. The posts are counted.
    struct Fake {
        reach: Reach,
        posts: AtomicUsize,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                reach: Reach::default(),
                posts: AtomicUsize::new(0),
            }
        }

        async fn ask(
            &self,
            took: Duration,
            fails: Option<ControlClientError>,
        ) -> Result<ControlResponse, ControlClientError> {
            let policy = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_times(4);
            post_reaching(&self.reach, STEP, policy, || {
                let fails = fails.clone();
                async move {
                    self.posts.fetch_add(1, Ordering::SeqCst);
                    if !fails.as_ref().is_some_and(ControlClientError::unreached) {
                        tokio::time::sleep(CONNECT).await;
                        self.reach.reached();
                    }
                    tokio::time::sleep(took).await;
                    fails.map_or_else(|| Ok(answered()), Err)
                }
            })
            .await
        }

        fn posts(&self) -> usize {
            self.posts.load(Ordering::SeqCst)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_control_is_not_waited_out_by_every_request() {
        let control = Fake::new();
        let dial = STEP * 2;
        let first = control.ask(dial, Some(unanswered())).await;
        assert!(matches!(first, Err(ControlClientError::Unanswered(_))));
        assert_eq!(control.posts(), 2, "two dials");
        let right_after = control.ask(dial, Some(unanswered())).await;
        assert!(right_after.is_err());
        assert_eq!(control.posts(), 2, "the failure stands");

        tokio::time::advance(STEP).await;
        let together = join_all((0..5).map(|_| control.ask(dial, Some(unanswered())))).await;
        assert!(together.iter().all(Result::is_err));
        assert_eq!(control.posts(), 3, "one dial for the five");

        tokio::time::advance(STEP).await;
        assert!(control.ask(dial, None).await.is_ok(), "the control back");
        let failing = control.ask(dial, Some(unanswered())).await;
        assert!(failing.is_err());
        assert_eq!(
            control.posts(),
            6,
            "a control reached is dialled twice again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_try_cut_short_leaves_none_waiting() {
        let control = Fake::new();
        let dial = STEP * 2;
        assert!(control.ask(dial, Some(unanswered())).await.is_err());
        tokio::time::advance(STEP).await;
        let cut = tokio::time::timeout(STEP, control.ask(dial, Some(unanswered())));
        let waiting = tokio::time::timeout(STEP * 10, async {
            tokio::task::yield_now().await;
            control.ask(dial, Some(unanswered())).await
        });
        let (cut, waiting) = tokio::join!(cut, waiting);
        assert!(cut.is_err(), "the first try was cut short");
        assert!(matches!(waiting, Ok(Err(_))), "{waiting:?}");
        assert_eq!(control.posts(), 2 + 2, "the one waiting tried in its place");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusing_control_is_tried_once_at_a_time_and_those_waiting_fail_with_it() {
        let control = Fake::new();
        let first = control.ask(CONNECT, Some(refused())).await;
        assert!(matches!(first, Err(ControlClientError::Transport(_))));
        assert_eq!(control.posts(), 5, "five tries");
        let together = join_all((0..5).map(|_| control.ask(CONNECT, Some(refused())))).await;
        assert!(together.iter().all(Result::is_err));
        assert_eq!(control.posts(), 6, "one try for the five, at once");
        assert!(control.ask(CONNECT, Some(refused())).await.is_err());
        assert_eq!(control.posts(), 7, "and one for the next");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_ends_the_wait_and_an_answered_request_loses_nothing() {
        let control = Fake::new();
        assert!(control.ask(STEP, Some(unanswered())).await.is_err());
        tokio::time::advance(STEP).await;
        // The one trying connects, then takes a whole batch's time to be answered: the
        // others go on as soon as it has connected.
        let slow = control.ask(STEP * 10, None);
        let others = async {
            tokio::task::yield_now().await;
            let started = Instant::now();
            let answers = join_all((0..3).map(|_| control.ask(Duration::ZERO, None))).await;
            (started.elapsed(), answers)
        };
        let (slow, (waited, answers)) = tokio::join!(slow, others);
        assert!(slow.is_ok() && answers.iter().all(Result::is_ok));
        assert_eq!(
            waited,
            CONNECT * 2,
            "the wait for the connection, then their own"
        );
        assert_eq!(control.posts(), 2 + 4);

        // The one trying connects, and is cut off: it goes on to its own tries.
        let cut = Fake::new();
        assert!(cut.ask(STEP, Some(unanswered())).await.is_err());
        tokio::time::advance(STEP).await;
        let posts = AtomicUsize::new(0);
        let outcome = post_reaching(&cut.reach, STEP, ExponentialBuilder::default(), || {
            let first = posts.fetch_add(1, Ordering::SeqCst) == 0;
            cut.reach.reached();
            async move {
                match first {
                    true => Err(ControlClientError::Transport("reset".into())),
                    false => Ok(answered()),
                }
            }
        })
        .await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(posts.load(Ordering::SeqCst), 2);

        // Busy answers, then a refused connect: the control was reached meanwhile, and
        // the next request makes its own tries.
        let busy = Fake::new();
        let mut outcomes = vec![ControlClientError::Busy; 4];
        outcomes.push(refused());
        let outcomes = std::sync::Mutex::new(outcomes.into_iter());
        let policy = ExponentialBuilder::default().with_max_times(4);
        let last = post_reaching(&busy.reach, STEP, policy, || {
            let outcome = outcomes.lock().unwrap().next().unwrap();
            if !outcome.unreached() {
                busy.reach.reached();
            }
            async move { Err(outcome) }
        })
        .await;
        assert!(matches!(last, Err(ControlClientError::Transport(_))));
        assert!(matches!(busy.reach.turn(STEP, None), Turn::Own));
    }

    #[test]
    fn a_servers_clock_is_read_from_its_date_against_the_middle_of_the_exchange() {
        let mut headers = hyper::HeaderMap::new();
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let (asked, answered) = (at("2026-12-06T23:00:00Z"), at("2026-12-06T23:00:02Z"));
        assert_eq!(clock_offset(&headers, asked, answered), None);
        headers.insert(
            hyper::header::DATE,
            "Thu, 04 Feb 2027 23:00:01 GMT".parse().unwrap(),
        );
        // 60 days ahead, give or take the half second its Date leaves out.
        assert_eq!(
            clock_offset(&headers, asked, answered),
            Some(TimeDelta::days(60) + TimeDelta::milliseconds(500))
        );
        headers.insert(hyper::header::DATE, "not a date".parse().unwrap());
        assert_eq!(clock_offset(&headers, asked, answered), None);
    }

    /// An exchange with `url` that dials, and tells `tell` of its connection.
    fn telling_exchange<'a>(
        url: &'a Url,
        tls: &'a TlsContext,
        timeout: Duration,
        tell: &'a (dyn Fn() + Sync),
    ) -> Exchange<'a> {
        Exchange {
            url,
            token: None,
            tls,
            timeout,
            source: None,
            wait: STEP,
            silence: STEP,
            redial: true,
            connected: Some(tell),
        }
    }

    /// An exchange tells of the connection it made, and of none when refused.
    #[tokio::test]
    async fn an_exchange_tells_of_its_connection() {
        use std::sync::atomic::AtomicBool;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
        let tls = TlsContext::new(crate::measure::tls::root_store(None).unwrap()).unwrap();
        let connected = AtomicBool::new(false);
        let tell = || connected.store(true, Ordering::SeqCst);
        let exchange = |url| telling_exchange(url, &tls, STEP, &tell);
        let answer = exchange(&url).send(Method::GET, "", Bytes::new()).await;
        assert_eq!(answer.unwrap().status, 200);
        assert!(connected.swap(false, Ordering::SeqCst));

        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused: Url = format!("http://{}/", closed.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(closed);
        let answer = exchange(&refused).send(Method::GET, "", Bytes::new()).await;
        assert!(
            matches!(answer, Err(ExchangeError::Transport(_))),
            "{answer:?}"
        );
        assert!(!connected.load(Ordering::SeqCst));
    }

    /// An answer that stops coming midway (its connection lost on a lossy link) is given
    /// up after its silence, not after the batch's wait, and the request is made again,
    /// twice at most: a path that loses it every time ends the request.
    #[tokio::test]
    async fn an_answer_that_stops_midway_is_asked_again_twice_at_most() {
        use std::sync::atomic::AtomicUsize;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        /// A control whose first `stalls` answers stop after half their body; the number
        /// of requests it took, and the client's outcome.
        async fn ask(stalls: usize) -> (usize, Result<ControlResponse, ControlClientError>) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base: Url = format!("http://{}/", listener.local_addr().unwrap())
                .parse()
                .unwrap();
            let taken = std::sync::Arc::new(AtomicUsize::new(0));
            let counted = taken.clone();
            let server = tokio::spawn(async move {
                let body = br#"{"results":[]}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let mut held = Vec::new();
                loop {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    stream.write_all(head.as_bytes()).await.unwrap();
                    let cut = counted.fetch_add(1, Ordering::SeqCst) < stalls;
                    let sent = if cut { &body[..5] } else { &body[..] };
                    stream.write_all(sent).await.unwrap();
                    held.push(stream);
                }
            });
            let tls = TlsContext::new(crate::measure::tls::root_store(None).unwrap()).unwrap();
            let mut client =
                ControlClient::new(&base, None, tls, Duration::from_millis(200)).unwrap();
            // The least silence a client is given; shortened here for the test's time.
            assert_eq!(client.silence, SILENCE_FLOOR);
            client.silence = Duration::from_millis(400);
            // The batch's wait is many seconds; the silence, far less.
            assert!(client.wait(0) > Duration::from_secs(10));
            let began = Instant::now();
            let outcome = client.measure(&ControlRequest::empty()).await;
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "{:?}",
                began.elapsed()
            );
            server.abort();
            (taken.load(Ordering::SeqCst), outcome)
        }
        let (taken, once) = ask(1).await;
        assert!(once.unwrap().results.is_empty());
        assert_eq!(taken, 2, "one answer lost midway, one read whole");
        let (taken, always) = ask(usize::MAX).await;
        assert!(
            matches!(always, Err(ControlClientError::Stalled(_))),
            "{always:?}"
        );
        assert_eq!(taken, 3, "asked again twice, not more");
    }

    /// A server that takes the connection and never answers the TLS handshake is as
    /// silent as one that never answers the connect, and no connection is told.
    #[tokio::test]
    async fn an_unanswered_handshake_is_silence() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Url = format!(
            "https://localhost:{}/",
            listener.local_addr().unwrap().port()
        )
        .parse()
        .unwrap();
        let held = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let tls = TlsContext::new(crate::measure::tls::root_store(None).unwrap()).unwrap();
        let connected = std::sync::atomic::AtomicBool::new(false);
        let tell = || connected.store(true, Ordering::SeqCst);
        let answer = telling_exchange(&url, &tls, Duration::from_millis(300), &tell)
            .send(Method::GET, "", Bytes::new())
            .await;
        assert!(
            matches!(answer, Err(ExchangeError::Unanswered(_))),
            "{answer:?}"
        );
        assert!(!connected.load(Ordering::SeqCst));
        held.abort();
    }
}
