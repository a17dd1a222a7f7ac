//! The accept loop every lab server runs, and TCP ports that misbehave: one that
//! refuses connects, one that accepts them and never answers, and one behind a
//! protocol filter.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::blackhole::{self, Blackholed};

/// A listener on a free port of 127.0.0.1, and its address.
pub async fn listen() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves every connection `listener` accepts with `handle(stream, peer)`, each on a
/// task of its own, for as long as the runtime runs.
pub fn accept_each<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(handle(stream, peer));
        }
    });
}

/// An address on 127.0.0.1 with nothing listening, so connects are refused. The port
/// was free a moment ago; another process taking it meanwhile is unlikely.
pub fn closed_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

/// A port of 127.0.0.1 that accepts every connection and never answers (it reads what
/// it is sent and drops it): a TLS server that stalls every handshake.
pub async fn silent() -> std::io::Result<SocketAddr> {
    let (listener, addr) = listen().await?;
    accept_each(listener, |mut stream, _| async move {
        let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
    });
    Ok(addr)
}

/// A port of 127.0.0.1 that takes connections until one starts with bytes that are
/// neither TLS (a handshake record) nor HTTP (a method), and from then on hears from
/// `blackholed` no more: a protocol filter (Iran's) on the way, which drops everything
/// after such bytes. What it is sent is read and dropped.
pub async fn protocol_filtered(blackholed: Blackholed) -> std::io::Result<SocketAddr> {
    let (listener, addr) = listen().await?;
    // The same socket, for the connections' tasks to shut.
    let socket = Arc::new(socket2::SockRef::from(&listener).try_clone()?);
    accept_each(listener, move |mut stream, _| {
        let socket = socket.clone();
        async move {
            let mut first = [0u8; 1];
            let read = stream.read_exact(&mut first).await;
            if read.is_ok() && first[0] != 0x16 && !first[0].is_ascii_uppercase() {
                let _ = blackhole::drop_packets(&socket, blackholed);
            }
            let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
        }
    });
    Ok(addr)
}
