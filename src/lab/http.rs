//! Plain HTTP: a minimal HTTP/1.1 responder, used in the clear and (by `tls`) inside
//! TLS, behind the censor's transparent proxy where the scenario has one (it answers
//! the probe's requests with Iran's national blockpage instead of the page), and the
//! pieces other lab servers make their answers from.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::tcp::{accept_each, listen};

/// The page Iran's filter serves for a blocked site: an iframe to 10.10.34.34. The
/// probe recognises it by OONI's fingerprint of it.
pub const IRAN_BLOCKPAGE: &str = r#"<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256"><title>M1-6</title></head><body><iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy " style="width: 100%; height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0" vspace="0" hspace="0"></iframe></body></html>"#;

/// The most of a request head the lab's servers read.
const MAX_HEAD: usize = 64 * 1024;

/// An ordinary page whose title names it, so that a test can tell which server answered.
pub fn page(name: &str, body: &str) -> String {
    format!("<html><head><title>Test page {name}</title></head><body>{body}</body></html>")
}

/// The request heads a recording server was sent, in the order they came.
pub type Recorded = Arc<Mutex<Vec<String>>>;

pub struct HttpServer;

impl HttpServer {
    /// Answers every request on a port of 127.0.0.1 with `status` and `body`.
    pub async fn spawn(status: u16, body: &str) -> std::io::Result<SocketAddr> {
        Ok(Self::spawn_recording(status, body).await?.0)
    }

    /// As [`HttpServer::spawn`], keeping every request head it reads.
    pub async fn spawn_recording(
        status: u16,
        body: &str,
    ) -> std::io::Result<(SocketAddr, Recorded)> {
        let (listener, addr) = listen().await?;
        let body: Arc<str> = body.into();
        let recorded = Recorded::default();
        let heads = recorded.clone();
        accept_each(listener, move |mut stream, _| {
            let (body, heads) = (body.clone(), heads.clone());
            async move {
                let Some(head) = read_head(&mut stream).await else {
                    return;
                };
                if let Ok(mut heads) = heads.lock() {
                    heads.push(String::from_utf8_lossy(&head).into_owned());
                }
                answer(stream, status, &body).await;
            }
        });
        Ok((addr, recorded))
    }

    /// Answers `censored` to requests from `peer` (the probe's path) and `body` to
    /// everyone else, with status 200.
    pub async fn spawn_censoring(
        peer: IpAddr,
        censored: &str,
        body: &str,
    ) -> std::io::Result<SocketAddr> {
        let (listener, addr) = listen().await?;
        let (censored, body): (Arc<str>, Arc<str>) = (censored.into(), body.into());
        accept_each(listener, move |stream, from| {
            let page = if from.ip() == peer {
                censored.clone()
            } else {
                body.clone()
            };
            respond(stream, 200, page)
        });
        Ok(addr)
    }

    /// Answers the first `errors` requests from `peer` with 503 Service Unavailable,
    /// and every other request with 200 and `body`: a site overloaded whenever the
    /// probe asks (for a time, or for good).
    pub async fn spawn_erring(
        peer: IpAddr,
        errors: usize,
        body: &str,
    ) -> std::io::Result<SocketAddr> {
        let (listener, addr) = listen().await?;
        let body: Arc<str> = body.into();
        let erred = Arc::new(AtomicUsize::new(0));
        accept_each(listener, move |stream, from| {
            let errs = from.ip() == peer && erred.fetch_add(1, Ordering::Relaxed) < errors;
            match errs {
                true => respond(stream, 503, "<h1>Service Unavailable</h1>".into()),
                false => respond(stream, 200, body.clone()),
            }
        });
        Ok(addr)
    }

    /// Answers a request for each path with a 302 to wherever `route` says, or 404.
    pub fn spawn_redirector(
        listener: TcpListener,
        route: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) {
        let route = Arc::new(route);
        accept_each(listener, move |mut stream, _| {
            let route = route.clone();
            async move {
                let Some(head) = read_head(&mut stream).await else {
                    return;
                };
                let response = match request_path(&head).and_then(|path| route(&path)) {
                    Some(location) => redirect(&location),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .into()
                    }
                };
                write_then_close(stream, response.as_bytes()).await;
            }
        });
    }
}

/// Reads one request head, whatever it asks, and answers it, then closes the connection.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    status: u16,
    body: Arc<str>,
) {
    if read_head(&mut stream).await.is_some() {
        answer(stream, status, &body).await;
    }
}

/// Answers with `status` and an HTML `body`, then closes the connection.
async fn answer<S: AsyncWrite + Unpin>(stream: S, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    write_then_close(stream, response.as_bytes()).await;
}

/// Reads a request head, up to its blank line; `None` if the client leaves first or
/// sends more than 64 KiB of it.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        head.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

/// The path of a request head's request line.
pub fn request_path(head: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head);
    head.split_whitespace().nth(1).map(str::to_string)
}

/// A whole 302 response to `location`.
pub fn redirect(location: &str) -> String {
    format!(
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

/// Writes `bytes` and closes the connection (a FIN after the last byte).
pub async fn write_then_close<S: AsyncWrite + Unpin>(mut stream: S, bytes: &[u8]) {
    if stream.write_all(bytes).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}
