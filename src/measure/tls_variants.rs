//! The handshake of a target's name made again with other ClientHellos after it failed
//! once connected (see [`Hello`]): split in two segments inside the name, padded past a
//! packet, and with another fingerprint. Which of them pass tells a censor that reads
//! one packet from one that reassembles the stream, and a block of this library's own
//! ClientHello from a block of the name.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::future::join_all;
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, ClientConfig, NamedGroup};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::received::Counted;
use super::tls::{TlsContext, provider};
use super::unacknowledged::Unacknowledged;
use super::{Again, Measurer, now};
use crate::facts::{Hello, HelloTry, TlsFacts};

/// How long the split ClientHello waits between its two parts, so that they leave as
/// two segments and a censor holding the first sees it alone.
const SPLIT_PAUSE: Duration = Duration::from_millis(200);

/// How often the split ClientHello asks, after its pause, whether its first part was
/// acknowledged yet.
const ACK_POLL: Duration = Duration::from_millis(10);

/// Junk ALPN entries that make the padded ClientHello longer than a packet: seven of
/// 250 bytes, past Ethernet's 1460-byte segment on their own.
const PADDING: (usize, usize) = (7, 250);

/// A browser's cipher suites, in its order (Chrome's, without GREASE): the library's
/// own order starts with AES-256.
const BROWSER_SUITES: [CipherSuite; 9] = [
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// A browser's key exchange groups before post-quantum ones: the library's first is a
/// hybrid with a key share of 1,216 bytes.
const BROWSER_GROUPS: [NamedGroup; 3] = [
    NamedGroup::X25519,
    NamedGroup::secp256r1,
    NamedGroup::secp384r1,
];

/// The configurations of the ClientHellos other than the default (the split one is the
/// default's, cut in two as it is written).
pub struct Hellos {
    padded: Arc<ClientConfig>,
    alternate: Arc<ClientConfig>,
}

impl Hellos {
    /// From the default configuration, and a maker of one like it on another provider.
    pub fn new(
        default: &ClientConfig,
        on: impl Fn(Arc<CryptoProvider>) -> anyhow::Result<ClientConfig>,
    ) -> anyhow::Result<Hellos> {
        let mut padded = default.clone();
        let (count, length) = PADDING;
        padded
            .alpn_protocols
            .extend((0..count).map(|i| format!("x-pad-{i}-{}", "p".repeat(length - 8)).into()));
        let mut alternate = on(Arc::new(browser_like(&provider())))?;
        alternate.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Hellos {
            padded: Arc::new(padded),
            alternate: Arc::new(alternate),
        })
    }

    /// The configuration of `hello`; none for the split one, which is the default's.
    fn config(&self, hello: Hello) -> Option<Arc<ClientConfig>> {
        match hello {
            Hello::Split => None,
            Hello::Padded => Some(self.padded.clone()),
            Hello::Alternate => Some(self.alternate.clone()),
        }
    }
}

/// `default` with a browser's cipher suites and groups, in its order.
fn browser_like(default: &CryptoProvider) -> CryptoProvider {
    let mut provider = default.clone();
    in_order_of(&mut provider.cipher_suites, &BROWSER_SUITES, |s| s.suite());
    in_order_of(&mut provider.kx_groups, &BROWSER_GROUPS, |g| g.name());
    provider
}

/// Keeps of `items` those whose key is in `list`, in its order.
fn in_order_of<T, K: PartialEq>(items: &mut Vec<T>, list: &[K], key: impl Fn(&T) -> K) {
    let rank = |item: &T| list.iter().position(|k| *k == key(item));
    items.retain(|item| rank(item).is_some());
    items.sort_by_key(rank);
}

impl Measurer {
    /// After a handshake with `name` failed once connected at `address`: the same
    /// handshake with each other ClientHello, and with `control` (the control SNI) too
    /// where that failed at the address before. All at once, each on a connection of its
    /// own, waiting half the step timeout at most. With `again` (the default handshake
    /// was torn down, not stalled), a variant that did not get through is made again as
    /// a step is (see `Again`: a silence once more, a refusal or reset up to three tries
    /// in all, not more on a flaky network: each try may renew a residual block), and
    /// every try is kept: otherwise one lost packet, or one reset of a flaky middlebox,
    /// would hide that a split ClientHello gets through a stateless censor.
    pub(super) async fn other_hellos(
        &self,
        address: SocketAddr,
        name: &str,
        control: Option<&str>,
        again: bool,
    ) -> Vec<HelloTry> {
        let names = std::iter::once((name, false)).chain(control.map(|sni| (sni, true)));
        let tries = names.flat_map(|(name, control_sni)| {
            Hello::ALL.map(|hello| self.hello_again(hello, address, name, control_sni, again))
        });
        join_all(tries).await.into_iter().flatten().collect()
    }

    /// [`Self::hello_once`], and with `again` made again while it does not get through.
    async fn hello_again(
        &self,
        hello: Hello,
        address: SocketAddr,
        server_name: &str,
        control_sni: bool,
        again: bool,
    ) -> Vec<HelloTry> {
        let first = self
            .hello_once(hello, address, server_name, control_sni)
            .await;
        let mut tries = vec![first.clone()];
        if !again {
            return tries;
        }
        let mut again = Again::new(first, |h| h.error.as_ref());
        while again.another().await {
            let next = self
                .hello_once(hello, address, server_name, control_sni)
                .await;
            tries.push(next.clone());
            again.took(next);
        }
        tries
    }

    /// One handshake with `hello`; one with the target's name in its address's turn.
    async fn hello_once(
        &self,
        hello: Hello,
        address: SocketAddr,
        server_name: &str,
        control_sni: bool,
    ) -> HelloTry {
        let started = now();
        let (work, stream) = self.at_work(None, address).await;
        let (facts, name_at) = match stream {
            Err(error) => {
                let facts = TlsFacts {
                    error: Some(error),
                    ..TlsFacts::new(address, server_name, control_sni)
                };
                (facts, None)
            }
            Ok(stream) => {
                // A variant that timed out says nothing: it need not wait as long.
                let timeout = self.options.timeout / 2;
                let variant = |stream| {
                    handshake(
                        &self.tls,
                        hello,
                        stream,
                        address,
                        server_name,
                        control_sni,
                        timeout,
                    )
                };
                self.in_turn_at_work(work, stream, address, !control_sni, variant)
                    .await
                    .0
            }
        };
        HelloTry {
            hello,
            server_name: server_name.to_string(),
            control_sni,
            measured_at: started.0,
            runtime_ms: started.1.elapsed().as_secs_f64() * 1000.0,
            handshake_done: facts.handshake_done,
            name_at,
            error: facts.error,
        }
    }
}

/// A handshake on `stream` with `hello`; gives its facts and where the name was in the
/// ClientHello.
async fn handshake(
    tls: &TlsContext,
    hello: Hello,
    stream: Counted<TcpStream>,
    address: SocketAddr,
    server_name: &str,
    control_sni: bool,
    timeout: Duration,
) -> (TlsFacts, Option<u32>) {
    let split = hello == Hello::Split;
    // Without it the kernel may hold the first part until the second joins it. Should
    // it fail, Nagle's algorithm still sends the first part alone (nothing is in flight).
    if split {
        let _ = stream.get_ref().set_nodelay(true);
    }
    let name_at = Arc::new(OnceLock::new());
    let io = FirstWrite {
        io: stream,
        name: server_name.as_bytes().to_vec(),
        stage: match split {
            true => Stage::Cut,
            false => Stage::Look,
        },
        name_at: name_at.clone(),
    };
    let (facts, _) = match tls.hellos().config(hello) {
        Some(config) => {
            tls.handshake_with(config, io, address, server_name, control_sni, timeout)
                .await
        }
        None => {
            tls.handshake(io, address, server_name, control_sni, timeout)
                .await
        }
    };
    (facts, name_at.get().copied())
}

/// A stream that finds the server name in its first write (the ClientHello) and, for
/// the split ClientHello, writes that in two parts cut inside the name: the second
/// after a pause, and only once the peer acknowledged the first where the kernel can
/// tell. A first part lost on the way is sent again by the kernel, and a
/// retransmission may carry the second part with it in one segment, the name whole:
/// a censor that reads one packet would tear that down, and the split ClientHello
/// would read as one that reassembles the stream. Reads pass straight through.
struct FirstWrite<S> {
    io: S,
    name: Vec<u8>,
    stage: Stage,
    /// Where the name began in the first write.
    name_at: Arc<OnceLock<u32>>,
}

enum Stage {
    /// Before the first write: find the name.
    Look,
    /// The same, and then cut the write inside it.
    Cut,
    /// Bytes of the first part still to write.
    First(usize),
    /// The first part written: wait before the rest, then until it is acknowledged.
    Pause(Pin<Box<Sleep>>),
    Through,
}

/// Where to cut a first write of `len` bytes: inside the name, found at `at`, or in the
/// middle.
fn cut_point(len: usize, name: Option<(usize, usize)>) -> usize {
    match name {
        Some((at, name_len)) => at + (name_len / 2).max(1),
        None => (len / 2).max(1),
    }
    .min(len)
}

impl<S: AsyncWrite + Unacknowledged + Unpin> AsyncWrite for FirstWrite<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            match &mut this.stage {
                Stage::Look | Stage::Cut => {
                    let at = (!this.name.is_empty())
                        .then(|| buf.windows(this.name.len()).position(|w| w == this.name))
                        .flatten();
                    if let Some(at) = at {
                        let _ = this.name_at.set(at as u32);
                    }
                    this.stage = match this.stage {
                        Stage::Cut => {
                            Stage::First(cut_point(buf.len(), at.map(|at| (at, this.name.len()))))
                        }
                        _ => Stage::Through,
                    };
                }
                Stage::First(left) => {
                    let part = &buf[..(*left).min(buf.len())];
                    let written = ready!(Pin::new(&mut this.io).poll_write(cx, part))?;
                    *left -= written.min(*left);
                    if *left == 0 {
                        this.stage = Stage::Pause(Box::pin(tokio::time::sleep(SPLIT_PAUSE)));
                    }
                    return Poll::Ready(Ok(written));
                }
                Stage::Pause(pause) => {
                    ready!(pause.as_mut().poll(cx));
                    // Unacknowledged until the handshake's timeout: the try says nothing.
                    match this.io.unacknowledged() {
                        Some(queued) if queued > 0 => {
                            pause.as_mut().reset(tokio::time::Instant::now() + ACK_POLL)
                        }
                        _ => this.stage = Stage::Through,
                    }
                }
                Stage::Through => return Pin::new(&mut this.io).poll_write(cx, buf),
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstWrite<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::RootCertStore;
    use rustls::pki_types::ServerName;
    use tokio::io::AsyncWriteExt;

    /// A configuration on `provider`, as the recording one is (its verifier aside).
    fn on(provider: Arc<CryptoProvider>) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The ClientHello a configuration writes for `name`, as sent (a TLS record).
    fn client_hello(config: &Arc<ClientConfig>, name: &str) -> Vec<u8> {
        let name = ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    /// The cipher-suite list of a ClientHello record, with its length.
    fn cipher_suites(hello: &[u8]) -> &[u8] {
        // The record's header (5), the handshake's (4), the version (2), the random (32),
        // then the session ID with its length.
        let session = 5 + 4 + 2 + 32;
        let at = session + 1 + hello[session] as usize;
        let len = u16::from_be_bytes([hello[at], hello[at + 1]]) as usize;
        &hello[at..at + 2 + len]
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What the testbed's scenario `fingerprint` matches (scripts/testbed/scenarios/
    /// fingerprint.sh): the default ClientHello's cipher-suite list, with its length.
    const DEFAULT_SUITES: &str = "0014130213011303c02cc02bcca9c030c02fcca800ff";

    #[test]
    fn only_the_alternate_hello_lacks_the_default_cipher_suites() {
        let default = Arc::new(on(provider()).unwrap());
        let hellos = Hellos::new(&default, on).unwrap();
        let default_hello = client_hello(&default, "site.test");
        assert_eq!(hex(cipher_suites(&default_hello)), DEFAULT_SUITES);
        let padded = client_hello(&hellos.padded, "site.test");
        assert_eq!(hex(cipher_suites(&padded)), DEFAULT_SUITES);
        assert!(
            padded.len() > default_hello.len() + 1460,
            "{}",
            padded.len()
        );
        let alternate = client_hello(&hellos.alternate, "site.test");
        assert!(!hex(&alternate).contains(DEFAULT_SUITES));
        assert!(
            hex(cipher_suites(&alternate)).starts_with("0014130113021303c02bc02f"),
            "{}",
            hex(cipher_suites(&alternate))
        );
    }

    #[tokio::test]
    async fn the_split_hello_is_written_in_two_parts_cut_inside_the_name() {
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        let hello = b"\x16\x03\x01....signal.test....".to_vec();
        let name_at = Arc::new(OnceLock::new());
        let mut io = FirstWrite {
            io: ours,
            name: b"signal.test".to_vec(),
            stage: Stage::Cut,
            name_at: name_at.clone(),
        };
        let first = io.write(&hello).await.unwrap();
        assert_eq!(&hello[..first], b"\x16\x03\x01....signa");
        assert_eq!(name_at.get(), Some(&7));
        let began = tokio::time::Instant::now();
        io.write_all(&hello[first..]).await.unwrap();
        assert!(began.elapsed() >= SPLIT_PAUSE);
        drop(io);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut got)
            .await
            .unwrap();
        assert_eq!(got, hello);
    }

    impl Unacknowledged for tokio::io::DuplexStream {
        fn unacknowledged(&self) -> Option<u32> {
            None
        }
    }

    /// The peer's socket drops what arrives, so nothing is acknowledged: the second part
    /// waits, past the pause, until the first was sent again and acknowledged.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_second_part_waits_until_the_first_is_acknowledged() {
        use crate::lab::blackhole::{Blackholed, drop_packets};
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        ours.set_nodelay(true).unwrap();
        let (mut theirs, _) = listener.accept().await.unwrap();
        drop_packets(&socket2::SockRef::from(&theirs), Blackholed::Everyone).unwrap();
        let hello = b"\x16\x03\x01....signal.test....".to_vec();
        let mut io = FirstWrite {
            io: ours,
            name: b"signal.test".to_vec(),
            stage: Stage::Cut,
            name_at: Arc::new(OnceLock::new()),
        };
        let first = io.write(&hello).await.unwrap();
        assert_eq!(io.io.unacknowledged(), Some(first as u32));
        let rest = hello[first..].to_vec();
        let writing = tokio::spawn(async move { io.write_all(&rest).await.map(|_| io) });
        tokio::time::sleep(SPLIT_PAUSE * 3).await;
        assert!(
            !writing.is_finished(),
            "the rest was written unacknowledged"
        );
        socket2::SockRef::from(&theirs).detach_filter().unwrap();
        let io = writing.await.unwrap().unwrap();
        assert_eq!(io.io.unacknowledged(), Some(0));
        drop(io);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, hello);
    }

    #[test]
    fn without_the_name_the_cut_is_in_the_middle() {
        assert_eq!(cut_point(10, None), 5);
        assert_eq!(cut_point(1, None), 1);
        assert_eq!(cut_point(100, Some((40, 11))), 45);
    }
}
