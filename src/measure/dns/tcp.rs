//! DNS over TCP.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::message::Question;
use super::{DnsIo, Exchange};
use crate::facts::failure::{Operation, StepError};

/// DNS over TCP: two-byte length framing on a connection of our own, so that resets
/// are seen as resets.
pub(super) async fn exchange(
    io: &DnsIo<'_>,
    server: SocketAddr,
    query: &[u8],
    question: &Question,
) -> Result<Exchange, (Option<String>, StepError)> {
    let name = Some(server.to_string());
    let _permit = io.limits.host(server.ip()).await;
    let started = Instant::now();
    let mut stream = io
        .dialer
        .connect(server)
        .await
        .map_err(|e| (name.clone(), e))?;
    let exchange = async {
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut message = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut message).await?;
        Ok::<_, std::io::Error>(message)
    };
    match tokio::time::timeout(io.timeout, exchange).await {
        Err(_) => Err((name, StepError::timeout(Operation::Resolve))),
        Ok(Err(e)) => Err((name, StepError::io(Operation::Resolve, &e))),
        Ok(Ok(message)) => Ok(Exchange::one(server, &message, started, question)),
    }
}
