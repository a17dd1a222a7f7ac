//! The lab's HTTPS sites (HTTP/1.1 over TLS), optionally behind the censor's DPI box,
//! which reads the ClientHello of the probe's connections and resets those that name a
//! blocked site (SNI filtering), letting every other handshake through: the probe's
//! handshake to the same address with a harmless name still works.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::Acceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::LazyConfigAcceptor;

use super::http::{page, respond};
use crate::measure::tls::provider;

/// What the DPI box resets: handshakes from `source` whose SNI is `sni`.
#[derive(Clone)]
pub struct SniFilter {
    pub source: IpAddr,
    pub sni: String,
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

/// Serves on `listener` a page titled with the SNI of each connection, behind `filter`.
pub fn spawn(
    servers: &mut JoinSet<()>,
    listener: TcpListener,
    config: Arc<ServerConfig>,
    filter: Option<SniFilter>,
) {
    servers.spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(serve(stream, peer, config.clone(), filter.clone()));
        }
    });
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    filter: Option<SniFilter>,
) {
    // The ClientHello first, as the DPI box sees it, before any answer.
    let Ok(start) = LazyConfigAcceptor::new(Acceptor::default(), stream).await else {
        return;
    };
    let sni = start.client_hello().server_name().unwrap_or("").to_owned();
    if filter.is_some_and(|f| f.source == peer.ip() && f.sni == sni) {
        // A zero linger makes the close an RST, like the DPI box's forged reset.
        let _ = start.io.set_zero_linger();
        return;
    }
    let Ok(tls) = start.into_stream(config).await else {
        return;
    };
    respond(tls, &page(&sni)).await;
}
