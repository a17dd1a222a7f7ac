//! How many of the bytes written to a TCP connection its peer has not acknowledged
//! yet: the split ClientHello waits for its first part's acknowledgement before it
//! writes the rest (see `tls_variants`), and an exchange whose bytes have gone
//! unacknowledged gives its work place back (see `received::Watched`).
//!
//! Neither the standard library nor socket2 asks the kernel this (Linux's SIOCOUTQ), so
//! this module holds the crate's one `unsafe` call, and nothing else.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::net::TcpStream;

/// A stream that can tell how many of the bytes written to it its peer has not
/// acknowledged yet; none where it cannot.
pub trait Unacknowledged {
    fn unacknowledged(&self) -> Option<u32>;
}

impl Unacknowledged for TcpStream {
    fn unacknowledged(&self) -> Option<u32> {
        queued(self.as_fd())
    }
}

/// A duplicate of a connection's descriptor: the same socket, asked from outside the
/// stream that owns it.
impl Unacknowledged for OwnedFd {
    fn unacknowledged(&self) -> Option<u32> {
        queued(self.as_fd())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn queued(socket: BorrowedFd<'_>) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: on a socket, TIOCOUTQ (SIOCOUTQ) writes one int through the pointer, which
    // outlives the call; the descriptor is open while it is borrowed.
    let done = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    (done == 0).then(|| queued.max(0) as u32)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn queued(_: BorrowedFd<'_>) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// While the peer's socket drops what arrives, the bytes written stay
    /// unacknowledged; once it takes them, the kernel's retransmission is acknowledged.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn written_bytes_stay_unacknowledged_until_the_peer_takes_them() {
        use crate::lab::blackhole::{Blackholed, drop_packets};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (theirs, _) = listener.accept().await.unwrap();
        assert_eq!(ours.unacknowledged(), Some(0));
        drop_packets(&socket2::SockRef::from(&theirs), Blackholed::Everyone).unwrap();
        ours.write_all(b"hello").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(ours.unacknowledged(), Some(5));
        socket2::SockRef::from(&theirs).detach_filter().unwrap();
        for _ in 0..300 {
            if ours.unacknowledged() == Some(0) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("5 bytes still unacknowledged 3 s after the peer took them again");
    }
}
