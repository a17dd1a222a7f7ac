//! DNS over HTTPS.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::OnceCell;
use url::Url;

use super::message::Question;
use super::{DnsIo, Exchange};
use crate::facts::failure::{Failure, Operation, StepError};
use crate::measure::http;

/// The largest DNS message we read over TCP or DoH.
const MAX_MESSAGE: usize = 65_535;

/// DNS over HTTPS (RFC 8484, POST), over a connection whose certificate must verify:
/// an answer from an impostor resolver is worth nothing.
pub(super) async fn exchange(
    io: &DnsIo<'_>,
    url: &Url,
    address: &OnceCell<Result<SocketAddr, StepError>>,
    query: Vec<u8>,
    question: &Question,
) -> Result<Exchange, (Option<String>, StepError)> {
    let host = http::host_of(url).to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let server = address
        .get_or_init(|| async {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return Ok(SocketAddr::new(ip, port));
            }
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(mut addrs) => addrs
                    .next()
                    .ok_or_else(|| StepError::new(Operation::Resolve, Failure::DnsNoAnswer)),
                Err(e) => Err(StepError::new(Operation::Resolve, Failure::unknown(e))),
            }
        })
        .await
        .clone()
        .map_err(|e| (None, e))?;
    let name = Some(url.to_string());
    let _permit = io.limits.host(server.ip()).await;
    let started = Instant::now();
    let tcp = io
        .dialer
        .connect(server)
        .await
        .map_err(|e| (name.clone(), e))?;
    let tls = io
        .tls
        .connect_strict(tcp, &host, io.timeout)
        .await
        .map_err(|e| (name.clone(), e))?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let headers = [
        ("content-type", "application/dns-message"),
        ("accept", "application/dns-message"),
    ];
    let request = http::request(hyper::Method::POST, url, h2, &headers, Bytes::from(query))
        .map_err(|e| {
            (
                name.clone(),
                StepError::new(Operation::Resolve, Failure::unknown(e)),
            )
        })?;
    let exchange = async {
        let (response, _connection) = http::send(tls, h2, request).await?;
        let status = response.status();
        let body = http::read_to_cap(response.into_body(), MAX_MESSAGE, io.timeout).await;
        if let Some(e) = body.error {
            return Err(e);
        }
        if !status.is_success() {
            return Err(StepError::new(
                Operation::Resolve,
                Failure::unknown(format!("DoH server answered HTTP {status}")),
            ));
        }
        Ok(body.bytes)
    };
    match tokio::time::timeout(io.timeout, exchange).await {
        Err(_) => Err((name, StepError::timeout(Operation::Resolve))),
        Ok(Err(e)) => Err((name, e)),
        Ok(Ok(message)) => Ok(Exchange::one(server, &message, started, question)),
    }
}
