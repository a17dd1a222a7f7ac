//! The accept loop every lab server runs, and TCP ports that misbehave: one that
//! refuses connects and one that accepts them and never answers.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};

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
