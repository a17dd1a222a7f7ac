//! An HTTPS server, honest or resetting handshakes for one SNI like a DPI box does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::Acceptor;
use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use super::http::{respond, test_page};

#[derive(Clone, Debug)]
pub enum TlsBehaviour {
    Normal,
    /// Resets the TCP connection once the ClientHello names this SNI; other SNIs are
    /// served normally, so the probe's control-SNI handshake to the same address works.
    ResetOnSni(String),
}

pub struct TlsServer;

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
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        // http/1.1 only, so that clients offering h2 fall back to it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let body: Arc<str> = body.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(
                    stream,
                    config.clone(),
                    behaviour.clone(),
                    body.clone(),
                ));
            }
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
    let Ok(tls) = start.into_stream(config).await else {
        return;
    };
    respond(tls, 200, test_page(&sni, &body).into()).await;
}
