//! The lab's HTTPS sites (HTTP/1.1 over TLS), honest, or behind a censor's middlebox:
//! a DPI box that reads the ClientHello and resets the handshakes naming a blocked site
//! (SNI filtering), letting every other through, so that the probe's handshake to the
//! same address with a harmless name still works; or an intercepting one that presents
//! its own certificate.
//!
//! A censor sits on the probe's path only; on loopback, where probe and control reach
//! the same sockets, "the probe's path" is the probe's source address, so a behaviour
//! can be limited to one peer with [`TlsBehaviour::ForPeer`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::Acceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use super::http::{page, respond};
use super::tcp::accept_each;
use crate::measure::tls::provider;

/// What a site's page says, unless told otherwise.
pub const BODY: &str = "<p>It works.</p>";

#[derive(Clone, Debug)]
pub enum TlsBehaviour {
    Normal,
    /// Resets the TCP connection once the ClientHello names this SNI; other SNIs are
    /// served normally, so the probe's control-SNI handshake to the same address works.
    ResetOnSni(String),
    /// Resets the first handshake naming this SNI, and serves every later one, as a
    /// flaky middlebox's stray reset does (a censor's comes every time). Made with
    /// [`TlsBehaviour::reset_on_sni_once`].
    ResetOnSniOnce(String, Arc<AtomicBool>),
    /// Completes the handshake with this (rogue) certificate chain instead, as an
    /// intercepting middlebox does.
    Intercept(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>),
    /// Behaves as `then` for connections from `peer`, normally for everyone else.
    ForPeer {
        peer: IpAddr,
        then: Box<TlsBehaviour>,
    },
}

impl TlsBehaviour {
    pub fn reset_on_sni_once(sni: &str) -> TlsBehaviour {
        TlsBehaviour::ResetOnSniOnce(sni.to_string(), Arc::default())
    }
}

pub struct TlsServer;

impl TlsServer {
    /// Serves HTTP/1.1 over TLS with `chain` on a port of 127.0.0.1; every GET gets
    /// `page(SNI, BODY)`.
    pub async fn spawn(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        behaviour: TlsBehaviour,
    ) -> anyhow::Result<SocketAddr> {
        Self::spawn_with_body(chain, key, behaviour, BODY).await
    }

    /// As [`TlsServer::spawn`], with `body` inside the page's `<body>`.
    pub async fn spawn_with_body(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        behaviour: TlsBehaviour,
        body: &str,
    ) -> anyhow::Result<SocketAddr> {
        let localhost = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        Self::spawn_at(localhost, chain, key, behaviour, body).await
    }

    /// As [`TlsServer::spawn_with_body`], listening on `addr` (another loopback
    /// address, a port shared with a server on another address).
    pub async fn spawn_at(
        addr: SocketAddr,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        behaviour: TlsBehaviour,
        body: &str,
    ) -> anyhow::Result<SocketAddr> {
        let config = server_config(chain, key)?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Self::serve_on(listener, config, behaviour, body);
        Ok(addr)
    }

    /// Serves on `listener` (a blackholed one, say) with `config`, behaving as told.
    pub fn serve_on(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        behaviour: TlsBehaviour,
        body: &str,
    ) {
        let body: Arc<str> = body.into();
        accept_each(listener, move |stream, peer| {
            let behaviour = match &behaviour {
                TlsBehaviour::ForPeer {
                    peer: censored,
                    then,
                } if *censored == peer.ip() => (**then).clone(),
                TlsBehaviour::ForPeer { .. } => TlsBehaviour::Normal,
                other => other.clone(),
            };
            serve(stream, config.clone(), behaviour, body.clone())
        });
    }
}

async fn serve(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    behaviour: TlsBehaviour,
    body: Arc<str>,
) {
    // The ClientHello first, as a middlebox sees it, before choosing what to do.
    let Ok(start) = LazyConfigAcceptor::new(Acceptor::default(), stream).await else {
        return;
    };
    let sni = start.client_hello().server_name().unwrap_or("").to_owned();
    let reset = match &behaviour {
        TlsBehaviour::ResetOnSni(blocked) => sni == *blocked,
        TlsBehaviour::ResetOnSniOnce(blocked, done) => {
            sni == *blocked && !done.swap(true, Ordering::Relaxed)
        }
        _ => false,
    };
    if reset {
        // A zero linger makes the close an RST, like the DPI box's forged reset.
        let _ = start.io.set_zero_linger();
        return;
    }
    let config = match behaviour {
        TlsBehaviour::Intercept(chain, key) => match server_config(chain, key.clone_key()) {
            Ok(config) => config,
            Err(_) => return,
        },
        _ => config,
    };
    let Ok(tls) = start.into_stream(config).await else {
        return;
    };
    respond(tls, 200, page(&sni, &body).into()).await;
}

/// The configuration of a site with this certificate chain and key.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // The responder speaks HTTP/1.1 only; clients offering h2 fall back to it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
