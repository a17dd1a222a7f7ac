//! What a connection has received, watched from under the TLS or HTTP stream that
//! reads it: whether the server has answered at all (an exchange's work place, see
//! `limits::Limits::during`), and a freeze in the middle of a TLS record, of which TLS
//! gives nothing until it is whole (the fetch's `record_round_trip`); and, from over
//! the TLS stream, whether the server ended its session (see [`Ended`]).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::unacknowledged::Unacknowledged;

/// The write half of a stream wrapper that only watches its reads: every call passes
/// straight to the wrapped stream, `io`.
macro_rules! writes_pass_through {
    ($wrapper:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.io).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }
        }
    };
}
pub(super) use writes_pass_through;

/// What a connection has received: raw bytes, and when the first and the last came.
/// Shared between the [`Counted`] stream and those who watch it.
#[derive(Clone, Default)]
pub struct Tally(Arc<(Mutex<Received>, Notify)>);

#[derive(Clone, Copy, Default)]
struct Received {
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Tally {
    fn received(&self) -> Received {
        *self
            .0
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for the first byte, if none has come yet.
    pub async fn heard(&self) {
        let told = self.0.1.notified();
        if self.first().is_none() {
            told.await;
        }
    }

    /// The bytes received, and when the last came.
    pub fn get(&self) -> (u64, Option<Instant>) {
        let received = self.received();
        (received.bytes, received.last)
    }

    /// When the first byte came, if one has.
    pub fn first(&self) -> Option<Instant> {
        self.received().first
    }
}

/// A connection watched from outside the streams that own it: what it has received
/// (its [`Counted`] stream's tally), and its socket, asked whether the peer has
/// acknowledged what was sent.
pub struct Watched {
    pub tally: Tally,
    socket: Option<OwnedFd>,
}

impl Watched {
    pub fn new(stream: &TcpStream) -> Watched {
        Watched {
            tally: Tally::default(),
            socket: stream.as_fd().try_clone_to_owned().ok(),
        }
    }

    /// `stream`, counted in this watch's tally.
    pub fn counted<S>(&self, stream: S) -> Counted<S> {
        Counted::new(stream, &self.tally)
    }

    /// Whether the peer has neither sent anything nor acknowledged all that was sent:
    /// the path drops what goes to it (a censor, or a link down). A peer whose kernel
    /// acknowledges but who has not answered yet is alive, only slow. Not known without
    /// the socket: then false.
    pub fn unheard(&self) -> bool {
        self.tally.first().is_none()
            && self
                .socket
                .as_ref()
                .and_then(Unacknowledged::unacknowledged)
                .is_some_and(|queued| queued > 0)
    }
}

/// A stream that adds what it reads to its [`Tally`].
pub struct Counted<S> {
    io: S,
    tally: Tally,
}

impl<S> Counted<S> {
    /// `io`, counted in `tally`.
    pub fn new(io: S, tally: &Tally) -> Counted<S> {
        Counted {
            io,
            tally: tally.clone(),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }
}

impl<S: Unacknowledged> Unacknowledged for Counted<S> {
    fn unacknowledged(&self) -> Option<u32> {
        self.io.unacknowledged()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        let came = buf.filled().len() - before;
        if came > 0 {
            let (received, heard) = &*self.tally.0;
            let mut tally = received.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            tally.bytes += came as u64;
            if tally.first.is_none() {
                tally.first = Some(now);
                heard.notify_waiters();
            }
            tally.last = Some(now);
        }
        read
    }
}

writes_pass_through!(Counted);

/// A stream that tells whether it came to a clean end: a read that brought nothing and
/// no error. Over rustls that is the server's `close_notify` alert (a FIN without one
/// is an error, `UnexpectedEof`); the flag is shared with whoever made the stream, as
/// hyper owns it once the exchange begins.
pub struct Ended<S> {
    io: S,
    ended: Arc<AtomicBool>,
}

impl<S> Ended<S> {
    /// `io`, and the flag set once it ends.
    pub fn new(io: S) -> (Ended<S>, Arc<AtomicBool>) {
        let ended = Arc::new(AtomicBool::new(false));
        let stream = Ended {
            io,
            ended: ended.clone(),
        };
        (stream, ended)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Ended<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let (before, room) = (buf.filled().len(), buf.remaining());
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && room > 0 && buf.filled().len() == before {
            self.ended.store(true, Ordering::Relaxed);
        }
        read
    }
}

writes_pass_through!(Ended);
