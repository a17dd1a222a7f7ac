//! A real `censorprobe control serve` process for a test, killed when dropped, and
//! the requests a probe (or someone abusing the server) sends it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap};
use hyper::{Method, Request};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use censorprobe::control::protocol::{ControlError, ControlResponse, MEASURE_PATH};
use censorprobe::measure::http::send;

pub struct ControlServer {
    pub child: Child,
    /// The base URL it announced, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub address: SocketAddr,
    /// What it printed: `listening on URL`.
    pub announced: String,
    /// Held open, so that the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ControlServer {
    /// Starts `control serve --listen 127.0.0.1:0 <args>` and waits for its
    /// "listening on URL" line.
    pub async fn spawn(args: &[&str]) -> ControlServer {
        ControlServer::spawn_with(args, &[]).await
    }

    /// [`ControlServer::spawn`], with these environment variables besides.
    pub async fn spawn_with(args: &[&str], env: &[(&str, &std::path::Path)]) -> ControlServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_censorprobe"))
            .args(["control", "serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line))
            .await
            .expect("the control server did not announce itself within 20 s")
            .unwrap();
        let announced = line.trim_end().to_string();
        let url = announced
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!("unexpected first line from the control server: {announced:?}")
            })
            .to_string();
        let address = url.split_once("://").unwrap().1.parse().unwrap();
        ControlServer {
            child,
            url,
            address,
            announced,
            _stdout: stdout,
        }
    }
}

/// A measure request for `body` (JSON), with `token` if any: in origin form with a Host
/// header for HTTP/1.1, in absolute form for HTTP/2 (`h2`), as a probe sends it.
pub fn measure_request(
    server: SocketAddr,
    token: Option<&str>,
    body: impl Into<Bytes>,
    h2: bool,
) -> Request<Full<Bytes>> {
    let mut request = Request::builder().method(Method::POST);
    request = match h2 {
        true => request.uri(format!("https://control.test{MEASURE_PATH}")),
        false => request.uri(MEASURE_PATH).header(HOST, server.to_string()),
    };
    request = request.header(CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Full::new(body.into())).unwrap()
}

/// A GET of `path`, over HTTP/1.1.
pub fn get(server: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .header(HOST, server.to_string())
        .body(Full::default())
        .unwrap()
}

/// A control server's answer.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    /// The measurement results; panics with the reply unless it is a 200.
    pub fn results(&self) -> ControlResponse {
        assert_eq!(self.status, 200, "{}", self.text);
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// The error message; panics with the reply unless it has `status`.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let error: ControlError =
            serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text));
        error.error
    }
}

/// One exchange on `io` (over HTTP/2 when `h2`), with the probe's own HTTP code: the
/// answer, or why there is none (a connection closed or reset before it).
pub async fn exchange<S>(io: S, h2: bool, request: Request<Full<Bytes>>) -> Result<Reply, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (response, _connection) = send(io, h2, request)
        .await
        .map_err(|e| e.failure.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}
