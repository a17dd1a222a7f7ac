//! The TLS pieces of a test that are not a server of the lab: a healthy site with its
//! CA file, and a client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::{Ca, TlsBehaviour, TlsServer};

/// A test CA, its PEM file (for the probe's `--ca-file`) in a directory of its own, and
/// an honest HTTPS server with a certificate from it: the canary's server of most labs.
pub struct Healthy {
    pub ca: Ca,
    pub ca_file: std::path::PathBuf,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Healthy {
    /// Serves `names` (the first is the certificate's common name).
    pub async fn spawn(names: &[&str]) -> Healthy {
        let ca = Ca::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = ca.write_pem(dir.path()).unwrap();
        let (chain, key) = ca.issue(names).unwrap();
        let addr = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
            .await
            .unwrap();
        Healthy {
            ca,
            ca_file,
            addr,
            dir,
        }
    }
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
