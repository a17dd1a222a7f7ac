//! QUIC handshakes: HTTP/3's transport, TLS 1.3 carried in UDP.
//!
//! A censor that leaves TCP alone may drop UDP to an address (Iran, since 2022), or read
//! the name in the QUIC Initial packet, whose keys anyone can derive, and drop the flow
//! (China). A handshake here is made to the address and with the name of a TCP+TLS
//! one, each from an endpoint (a UDP socket) of its own, so that the two transports can
//! be compared and one handshake's flow state cannot spill onto the next.
//!
//! The socket counts the datagrams that come back. A failed handshake that got none
//! met a path that drops the flow (or a host that does not speak QUIC); one that got
//! some met loss or a server that stopped half-way, which is not what a censor that
//! drops QUIC leaves.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{
    AsyncUdpSocket, ConnectionError, Endpoint, EndpointConfig, Runtime, TokioRuntime,
    TransportConfig, UdpPoller,
};
use rustls::pki_types::CertificateDer;

use super::tls::{TlsContext, server_name_of};
use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{Burst, QuicFacts, TlsFacts};

/// How long a finished connection may take to tell the server it is closed: its
/// endpoint is let go in the background, so the probe never waits for it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A QUIC handshake with `server_name` to `address`, from a new UDP socket bound to
/// `local`. The handshake's deadline is `timeout`; within it, quinn sends
/// the Initial again as its loss timer says, as a TCP connect does its SYN. One that
/// timed out is made again after `retry_after`, up to `tries` in all, from the same
/// socket: every flow a probe opens takes a place in its router's connection table for
/// as long as the router keeps it (half a minute to two for UDP, which a router cannot
/// see close), and a router with a small table must not be filled by the probe's own
/// tries. Of tries that all timed out the first is kept, with the datagrams all got back.
#[allow(clippy::too_many_arguments)]
pub async fn handshake(
    tls: &TlsContext,
    address: SocketAddr,
    server_name: &str,
    control_sni: bool,
    timeout: Duration,
    local: SocketAddr,
    retry_after: Duration,
    tries: u32,
) -> QuicFacts {
    let mut facts = QuicFacts {
        handshake: TlsFacts::new(address, server_name, control_sni),
        local_port: None,
        datagrams_received: None,
    };
    let name = match server_name_of(server_name) {
        Ok(name) => name,
        Err(e) => {
            facts.handshake.error = Some(StepError {
                failed_operation: Operation::QuicHandshake,
                ..e
            });
            return facts;
        }
    };
    let received = Arc::new(AtomicU64::new(0));
    let endpoint = match counting_endpoint(local, received.clone()) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            facts.handshake.error = Some(StepError::io(Operation::QuicHandshake, &e));
            return facts;
        }
    };
    facts.local_port = endpoint.local_addr().ok().map(|a| a.port());
    let first = connect(tls, &endpoint, facts.clone(), &name, timeout).await;
    let timed_out = |f: &QuicFacts| super::timed_out(&f.handshake.error);
    let mut kept = first.clone();
    while timed_out(&kept) && kept.handshake.tries < tries {
        tokio::time::sleep(retry_after).await;
        let made = kept.handshake.tries + 1;
        let next = connect(tls, &endpoint, facts.clone(), &name, timeout).await;
        kept = match timed_out(&next) {
            false => next,
            true => first.clone(),
        };
        kept.handshake.tries = made;
    }
    let facts = kept;
    let datagrams_received = received.load(Ordering::Relaxed);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
    });
    QuicFacts {
        datagrams_received: Some(datagrams_received),
        ..facts
    }
}

/// QUIC handshakes with `server_name` to `address` made at once, `count` of them, each
/// from a socket of its own (a flow of its own for every router on the way) and given
/// one try within `timeout`: how many the server answered. A path that loses most UDP
/// leaves some unanswered, and answers others; one that drops the address's QUIC, none.
pub async fn burst(
    tls: &TlsContext,
    address: SocketAddr,
    server_name: &str,
    timeout: Duration,
    local: SocketAddr,
    count: usize,
) -> Burst {
    let once = |_| async {
        let once = handshake(
            tls,
            address,
            server_name,
            true,
            timeout,
            local,
            Duration::ZERO,
            1,
        );
        once.await.handshake.server_answered()
    };
    Burst::of(futures_util::future::join_all((0..count).map(once)).await)
}

/// The handshake on `endpoint`, its outcome recorded in `facts`.
async fn connect(
    tls: &TlsContext,
    endpoint: &Endpoint,
    mut facts: QuicFacts,
    name: &rustls::pki_types::ServerName<'static>,
    timeout: Duration,
) -> QuicFacts {
    let fail = |facts: &mut QuicFacts, failure: Failure| {
        facts.handshake.error = Some(StepError::new(Operation::QuicHandshake, failure));
    };
    let (address, server_name) = (facts.handshake.address, facts.handshake.server_name.clone());
    let mut config = tls.quic();
    config.transport_config(Arc::new(transport(timeout)));
    let connecting = match endpoint.connect_with(config, address, &server_name) {
        Ok(connecting) => connecting,
        Err(e) => {
            fail(&mut facts, Failure::unknown(format!("quic: {e}")));
            return facts;
        }
    };
    let connection = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => {
            fail(&mut facts, Failure::GenericTimeout);
            return facts;
        }
        Ok(Err(e)) => {
            fail(&mut facts, failure_of(&e));
            return facts;
        }
        Ok(Ok(connection)) => connection,
    };
    facts.handshake.tls_version = Some("TLSv1.3".into());
    facts.handshake.alpn = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .map(|p| String::from_utf8_lossy(&p).into_owned());
    let chain = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .map(|chain| *chain)
        .unwrap_or_default();
    tls.record_peer(&mut facts.handshake, name, &chain, Operation::QuicHandshake);
    connection.close(0u32.into(), b"");
    facts
}

/// A client endpoint on a new socket bound to `local`, counting into `received` the
/// datagrams that arrive.
fn counting_endpoint(local: SocketAddr, received: Arc<AtomicU64>) -> io::Result<Endpoint> {
    let socket = UdpSocket::bind(local)?;
    let runtime = Arc::new(TokioRuntime);
    let inner = runtime.wrap_udp_socket(socket)?;
    let socket = Arc::new(Counting { inner, received });
    Endpoint::new_with_abstract_socket(EndpointConfig::default(), None, socket, runtime)
}

/// A UDP socket that counts the datagrams it receives.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn AsyncUdpSocket>,
    received: Arc<AtomicU64>,
}

impl AsyncUdpSocket for Counting {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &polled {
            // One buffer may hold several datagrams of `stride` bytes (GRO).
            let datagrams: usize = meta[..*n]
                .iter()
                .map(|m| m.len.div_ceil(m.stride.max(1)))
                .sum();
            self.received.fetch_add(datagrams as u64, Ordering::Relaxed);
        }
        polled
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// quinn's idle timeout is also its handshake's: the step's own deadline decides.
fn transport(timeout: Duration) -> TransportConfig {
    let mut transport = TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(timeout + Duration::from_secs(1))
        .unwrap_or(quinn::VarInt::MAX.into());
    transport.max_idle_timeout(Some(idle));
    transport
}

/// A failed handshake in OONI's taxonomy. A TLS alert from the server (a QUIC error code
/// 0x100 + alert) is the server's answer, as over TCP; a stateless reset is a reset.
fn failure_of(e: &ConnectionError) -> Failure {
    match e {
        ConnectionError::TimedOut => Failure::GenericTimeout,
        ConnectionError::Reset => Failure::ConnectionReset,
        ConnectionError::ConnectionClosed(close)
            if (0x100..0x200).contains(&u64::from(close.error_code)) =>
        {
            Failure::SslFailedHandshake
        }
        other => Failure::unknown(format!("quic: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_alert_is_the_servers_answer_and_a_timeout_is_none() {
        let alert = ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: quinn::TransportErrorCode::crypto(112),
            frame_type: None,
            reason: Default::default(),
        });
        assert_eq!(failure_of(&alert), Failure::SslFailedHandshake);
        assert_eq!(
            failure_of(&ConnectionError::TimedOut),
            Failure::GenericTimeout
        );
        assert_eq!(
            failure_of(&ConnectionError::Reset),
            Failure::ConnectionReset
        );
    }
}
