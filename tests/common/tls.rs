//! An HTTPS server, honest or resetting handshakes for one SNI like a DPI box does.
//!
//! A censor sits on the probe's path only; on loopback, where probe and control reach
//! the same sockets, "the probe's path" is the probe's source address, so a behaviour
//! can be limited to one peer with [`TlsBehaviour::ForPeer`].

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::Acceptor;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{LazyConfigAcceptor, TlsConnector};

use super::http::{respond, test_page};
use super::tcp::accept_each;

#[derive(Clone, Debug)]
pub enum TlsBehaviour {
    Normal,
    /// Resets the TCP connection once the ClientHello names this SNI; other SNIs are
    /// served normally, so the probe's control-SNI handshake to the same address works.
    ResetOnSni(String),
    /// Completes the handshake with this (rogue) certificate chain instead, as an
    /// intercepting middlebox does.
    Intercept(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>),
    /// Behaves as `then` for connections from `peer`, normally for everyone else.
    ForPeer {
        peer: IpAddr,
        then: Box<TlsBehaviour>,
    },
}

pub struct TlsServer;

/// A test CA, its PEM file (for the probe's `--ca-file`) in a directory of its own, and
/// an honest HTTPS server with a certificate from it: the canary's server of most labs.
pub struct Healthy {
    pub ca: super::TestCa,
    pub ca_file: std::path::PathBuf,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Healthy {
    /// Serves `names` (the first is the certificate's common name).
    pub async fn spawn(names: &[&str]) -> Healthy {
        let ca = super::TestCa::new();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = ca.write_pem(dir.path());
        let (chain, key) = ca.issue(names);
        let addr = TlsServer::spawn(chain, key, TlsBehaviour::Normal).await;
        Healthy {
            ca,
            ca_file,
            addr,
            dir,
        }
    }
}

impl TlsServer {
    /// Serves HTTP/1.1 over TLS with `chain` on a port of 127.0.0.1; every GET gets
    /// `test_page(SNI, …)`.
    pub async fn spawn(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        behaviour: TlsBehaviour,
    ) -> SocketAddr {
        Self::spawn_with_body(chain, key, behaviour, "<p>It works.</p>").await
    }

    /// As [`TlsServer::spawn`], with `body` inside the page's `<body>`.
    pub async fn spawn_with_body(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        behaviour: TlsBehaviour,
        body: &str,
    ) -> SocketAddr {
        Self::spawn_at(
            SocketAddr::new(super::LOCALHOST, 0),
            chain,
            key,
            behaviour,
            body,
        )
        .await
    }

    /// As [`TlsServer::spawn_with_body`], listening on `addr` (another loopback
    /// address, a port shared with a server on another address).
    pub async fn spawn_at(
        addr: SocketAddr,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        behaviour: TlsBehaviour,
        body: &str,
    ) -> SocketAddr {
        let config = server_config(chain, key);
        let body: Arc<str> = body.into();
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
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
        addr
    }
}

async fn serve(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    behaviour: TlsBehaviour,
    body: Arc<str>,
) {
    // Read the ClientHello before choosing what to do, as a middlebox does.
    let Ok(start) = LazyConfigAcceptor::new(Acceptor::default(), stream).await else {
        return;
    };
    let sni = start.client_hello().server_name().unwrap_or("").to_owned();
    if let TlsBehaviour::ResetOnSni(blocked) = &behaviour
        && sni == *blocked
    {
        // A zero linger makes the close send an RST instead of a FIN.
        SockRef::from(&start.io)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        return;
    }
    let config = match behaviour {
        TlsBehaviour::Intercept(chain, key) => server_config(chain, key.clone_key()),
        _ => config,
    };
    let Ok(tls) = start.into_stream(config).await else {
        return;
    };
    respond(tls, 200, test_page(&sni, &body).into()).await;
}

pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    // http/1.1 only, so that clients offering h2 fall back to it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS client that trusts only the CA in `ca_pem` and offers `alpn` (a probe offers
/// `h2` and then `http/1.1`).
pub fn client(ca_pem: &Path, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca_pem).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}
