//! Plain HTTP: the lab's wiki, behind the censor's transparent proxy, which answers the
//! probe's requests with Iran's national blockpage (an iframe to 10.10.34.34) instead
//! of the page. Also the HTTP/1.1 responder the HTTPS sites use inside TLS.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The page Iran's filter serves for a blocked site, as OONI's fingerprints know it.
pub const IRAN_BLOCKPAGE: &str = r#"<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256"><title>M1-6</title></head><body><iframe src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy " style="width: 100%; height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0" vspace="0" hspace="0"></iframe></body></html>"#;

/// A site's page, titled with its name.
pub fn page(site: &str) -> String {
    format!("<html><head><title>{site}</title></head><body><p>Welcome to {site}.</p></body></html>")
}

/// Serves `page` on `listener`, but [`IRAN_BLOCKPAGE`] to connections from `censored`.
pub fn spawn_blockpage(
    servers: &mut JoinSet<()>,
    listener: TcpListener,
    censored: IpAddr,
    page: String,
) {
    let (page, blockpage): (Arc<str>, Arc<str>) = (page.into(), IRAN_BLOCKPAGE.into());
    servers.spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let body = match peer.ip() == censored {
                true => blockpage.clone(),
                false => page.clone(),
            };
            tokio::spawn(async move { respond(stream, &body).await });
        }
    });
}

/// Reads one request head, whatever it asks, answers 200 with `body`, and closes.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, body: &str) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(len) => request.extend_from_slice(&buf[..len]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(response.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}
