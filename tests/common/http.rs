//! A minimal HTTP/1.1 responder, used in the clear and (by `tls`) inside TLS.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// The page Iran's filter serves for a blocked site: an iframe to 10.10.34.34. The
/// probe recognises it by this fingerprint.
pub const IRAN_BLOCKPAGE: &str = r#"<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256"><title>M1-6</title></head><body><iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy " style="width: 100%; height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0" vspace="0" hspace="0"></iframe></body></html>"#;

/// An ordinary page whose title names it, so a test can tell which server answered.
pub fn test_page(name: &str, body: &str) -> String {
    format!("<html><head><title>Test page {name}</title></head><body>{body}</body></html>")
}

pub struct HttpServer;

impl HttpServer {
    /// Answers every request on a port of 127.0.0.1 with `status` and `body`.
    pub async fn spawn(status: u16, body: &str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body: Arc<str> = body.into();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(respond(stream, status, body.clone()));
            }
        });
        addr
    }
}

impl HttpServer {
    /// Answers `censored` to requests from `peer` (the probe's path) and `body` to
    /// everyone else, with status 200.
    pub async fn spawn_censoring(peer: std::net::IpAddr, censored: &str, body: &str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (censored, body): (Arc<str>, Arc<str>) = (censored.into(), body.into());
        tokio::spawn(async move {
            loop {
                let Ok((stream, from)) = listener.accept().await else {
                    continue;
                };
                let page = if from.ip() == peer {
                    censored.clone()
                } else {
                    body.clone()
                };
                tokio::spawn(respond(stream, 200, page));
            }
        });
        addr
    }
}

/// Reads one request head, whatever it asks, and answers it, then closes the connection.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    status: u16,
    body: Arc<str>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(len) => request.extend_from_slice(&buf[..len]),
        }
    }
    let reason = match status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(response.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}
