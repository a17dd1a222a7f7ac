//! TCP connect with a deadline, from a chosen source address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use crate::failure::{Operation, StepError};

/// How connections are made: within a deadline, and from `source` when one is set
/// (a multi-homed host choosing its interface; a lab telling its vantage points apart).
#[derive(Debug, Clone, Copy)]
pub struct Dialer {
    pub timeout: Duration,
    pub source: Option<IpAddr>,
}

impl Dialer {
    pub fn new(timeout: Duration, source: Option<IpAddr>) -> Dialer {
        Dialer { timeout, source }
    }

    /// The local address to bind a socket talking to `peer` to (port 0: any).
    pub fn local_for(&self, peer: SocketAddr) -> SocketAddr {
        let ip = match (self.source, peer) {
            (Some(source), _) if source.is_ipv4() == peer.is_ipv4() => source,
            (_, SocketAddr::V4(_)) => Ipv4Addr::UNSPECIFIED.into(),
            (_, SocketAddr::V6(_)) => Ipv6Addr::UNSPECIFIED.into(),
        };
        SocketAddr::new(ip, 0)
    }

    /// Connects, telling a refusal, a reset, an unreachable network and a silent drop
    /// (our own deadline) apart, as the kernel reported them.
    pub async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, StepError> {
        let fail = |e: std::io::Error| StepError::io(Operation::Connect, &e);
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(fail)?;
        if self.source.is_some() {
            socket.bind(self.local_for(addr)).map_err(fail)?;
        }
        // Small request writes should leave at once, as a browser's do.
        socket.set_nodelay(true).map_err(fail)?;
        match tokio::time::timeout(self.timeout, socket.connect(addr)).await {
            Err(_) => Err(StepError::timeout(Operation::Connect)),
            Ok(result) => result.map_err(fail),
        }
    }
}
