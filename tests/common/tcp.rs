//! TCP ports that misbehave: one that swallows SYNs and one that refuses them; and the
//! accept loop every lab server runs.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

pub struct TcpBlackhole;

impl TcpBlackhole {
    /// A port of 127.0.0.1 on which connects hang until the client gives up, as when a
    /// censor drops SYNs; made without root by filling a listener's accept queue.
    ///
    /// The listener has a backlog of 0 and never accepts; we connect to it until a
    /// connect of our own hangs, at which point Linux drops every further SYN. The
    /// sockets stay open for as long as the runtime runs.
    pub fn spawn() -> SocketAddr {
        let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        listener
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        let mut queue_full = false;
        for _ in 0..8 {
            let filler = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
            let connected = filler.connect_timeout(&addr.into(), Duration::from_millis(200));
            fillers.push(filler);
            if let Err(error) = connected {
                assert_eq!(
                    error.kind(),
                    std::io::ErrorKind::TimedOut,
                    "filling the blackhole's accept queue"
                );
                queue_full = true;
                break;
            }
        }
        assert!(queue_full, "the blackhole's accept queue never filled");
        tokio::spawn(async move {
            let _held = (listener, fillers);
            std::future::pending::<()>().await
        });
        addr
    }
}

/// An address on 127.0.0.1 with nothing listening, so connects are refused. The port
/// was free a moment ago; another process taking it meanwhile is unlikely.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Serves every connection `listener` accepts with `handle(stream, peer)`, each on a
/// task of its own, for as long as the runtime runs.
pub fn accept_each<F, Fut>(listener: tokio::net::TcpListener, handle: F)
where
    F: Fn(tokio::net::TcpStream, SocketAddr) -> Fut + Send + 'static,
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

/// A port of 127.0.0.1 that accepts every connection and never answers (it reads what
/// it is sent and drops it): a TLS server that stalls every handshake.
pub async fn silent() -> SocketAddr {
    let (listener, addr) = listen().await;
    accept_each(listener, |mut stream, _| async move {
        let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
    });
    addr
}

/// A listener on a free port of 127.0.0.1, and its address.
pub async fn listen() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}
