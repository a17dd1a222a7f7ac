//! A blackhole: a listening socket whose incoming packets from some sources vanish, so
//! that their connects hang until the client gives up, as when a censor drops the SYNs
//! to a blocked address (or when a server is down for everyone).
//!
//! It needs no root: a classic BPF socket filter on the listener, which Linux runs on
//! every packet addressed to it before TCP sees it, drops those of the chosen sources.

use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;

/// Whose packets vanish.
#[derive(Debug, Clone, Copy)]
pub enum Blackholed {
    /// Those from one address: a censor on that address's path.
    Source(Ipv4Addr),
    /// Everybody's: an outage.
    Everyone,
}

/// A listener on a free port of 127.0.0.1 that never hears from `blackholed`.
pub fn listener(blackholed: Blackholed) -> std::io::Result<TcpListener> {
    listener_at(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), blackholed)
}

/// A port of 127.0.0.1 on which every connect hangs until the client gives up, for as
/// long as the runtime runs: a blocked address, or a server gone for everyone.
pub fn port() -> std::io::Result<SocketAddr> {
    let listener = listener(Blackholed::Everyone)?;
    let addr = listener.local_addr()?;
    // Nothing reaches it to accept: it only has to stay open.
    tokio::spawn(async move {
        let _held = listener;
        std::future::pending::<()>().await
    });
    Ok(addr)
}

/// As [`listener`], on `addr` (0.0.0.0 blackholes a port on every local address; an
/// IPv6 address, a port there, for everyone: a source is an IPv4 address).
pub fn listener_at(addr: SocketAddr, blackholed: Blackholed) -> std::io::Result<TcpListener> {
    if addr.is_ipv6() && matches!(blackholed, Blackholed::Source(_)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "an IPv6 listener cannot drop an IPv4 source's packets",
        ));
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    drop_packets(&socket, blackholed)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Makes `socket` (a listener: the connects to it) never hear from `blackholed` again.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn drop_packets(socket: &Socket, blackholed: Blackholed) -> std::io::Result<()> {
    use socket2::SockFilter;
    // Classic BPF (linux/filter.h): load a word, compare, return how much to keep.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    // Offsets from SKF_NET_OFF address the IP header; its source is at byte 12.
    const IPV4_SOURCE: i32 = -0x100000 + 12;
    const DROP: SockFilter = SockFilter::new(RET_K, 0, 0, 0);
    const KEEP: SockFilter = SockFilter::new(RET_K, 0, 0, u32::MAX);
    match blackholed {
        Blackholed::Everyone => socket.attach_filter(&[DROP]),
        Blackholed::Source(source) => socket.attach_filter(&[
            SockFilter::new(LD_W_ABS, 0, 0, IPV4_SOURCE as u32),
            SockFilter::new(JEQ_K, 0, 1, source.to_bits()),
            DROP,
            KEEP,
        ]),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn drop_packets(_: &Socket, _: Blackholed) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the lab's blackhole needs Linux's socket filters",
    ))
}
