//! TCP connect with a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::failure::{Operation, StepError};

/// Connects, telling a refusal, a reset, an unreachable network and a silent drop
/// (our own deadline) apart, as the kernel reported them.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, StepError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Err(StepError::timeout(Operation::Connect)),
        Ok(Err(e)) => Err(StepError::io(Operation::Connect, &e)),
        Ok(Ok(stream)) => {
            // Small request writes should leave at once, as a browser's do.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}
