//! TLS handshakes with a recording verifier.
//!
//! The verifier lets every handshake finish, whatever the certificate, and the
//! certificate is then checked against webpki's roots (plus `--ca-file`) after the
//! fact. That way an intercepting censor's certificate is kept as evidence instead of
//! being an opaque handshake error. Handshake signatures are still verified, so the
//! peer did prove it holds the key of the certificate it showed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore, SignatureScheme,
    WantsVerifier,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{CertificateFacts, TlsFacts};
use crate::measure::tls_variants::Hellos;

/// The one crypto provider of the program (two would make rustls refuse to choose).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Root store: Mozilla's roots from webpki-roots (the same on every probe, versioned
/// in Cargo.lock, so verdicts are reproducible), plus the roots of `--ca-file`.
pub fn root_store(ca_file: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read --ca-file {}", path.display()))?
        {
            let cert = cert.with_context(|| format!("{}: bad PEM certificate", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("{}: not a usable CA certificate", path.display()))?;
            added += 1;
        }
        anyhow::ensure!(
            added > 0,
            "{}: no certificates in --ca-file",
            path.display()
        );
    }
    Ok(roots)
}

/// Private CAs that services use for their own hosts, each trusted only for names under
/// its domains: Signal's servers (chat, storage, cdsi, sfu.voip.signal.org) show
/// certificates of Signal's own CA, which no browser's store holds (OONI's signal test
/// adds it the same way). Without it, every such handshake would read as interception.
const PRIVATE_ANCHORS: &[(&[&str], &str)] = &[(
    &["signal.org", "whispersystems.org"],
    include_str!("anchors/signal-messenger.pem"),
)];

/// Everything a handshake needs, built once per run.
#[derive(Clone)]
pub struct TlsContext {
    webpki: Arc<WebPkiServerVerifier>,
    /// A verifier of each private anchor ([`PRIVATE_ANCHORS`]), with its domains.
    private: Vec<(Vec<String>, Arc<WebPkiServerVerifier>)>,
    /// Records instead of refusing; used for measurements.
    recording: Arc<ClientConfig>,
    /// The same, with other ClientHellos (see `tls_variants`).
    hellos: Arc<Hellos>,
    /// Refuses invalid certificates; used where we must trust the peer (DoH).
    strict: Arc<ClientConfig>,
    /// The recording configuration for QUIC: TLS 1.3 only, offering HTTP/3.
    quic: quinn::ClientConfig,
    verified: Arc<Verified>,
}

/// How long a chain's verification stands for the same chain and name. A target's
/// handshakes (its own, its fetch's, the ECH comparison's, the control's likewise) show
/// one chain within seconds, and each verification is two or three signature checks;
/// a minute is too short for a chain's validity to change but at its very edge.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Verifications kept at most: a run of 100,000 names keeps a few thousand.
const VERIFIED_KEPT: usize = 4096;

/// Chain verifications made lately, by the SHA-256 of the name and every certificate
/// of the chain (a chain that differs in one byte is verified afresh).
#[derive(Default)]
struct Verified(Mutex<HashMap<[u8; 32], Kept>>);

/// A verification and when it was made.
type Kept = (Instant, Result<(), Refusal>);

/// Why a chain was refused for a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub failure: Failure,
    /// Refused for its dates alone: checked again at a time within the leaf's validity,
    /// the chain is valid for the name (see [`TlsFacts::valid_but_for_dates`]).
    pub only_dates: bool,
}

impl Refusal {
    fn of(failure: Failure) -> Refusal {
        Refusal {
            failure,
            only_dates: false,
        }
    }
}

impl Verified {
    fn key(chain: &[CertificateDer<'_>], name: &ServerName<'_>) -> [u8; 32] {
        let mut digest = Sha256::new();
        let name = name.to_str();
        digest.update((name.len() as u64).to_be_bytes());
        digest.update(name.as_bytes());
        for cert in chain {
            digest.update((cert.len() as u64).to_be_bytes());
            digest.update(cert.as_ref());
        }
        digest.finalize().into()
    }

    /// The verification of `key`, made by `verify` unless one younger than
    /// [`VERIFIED_FOR`] is kept.
    fn get_or(
        &self,
        key: [u8; 32],
        verify: impl FnOnce() -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        let fresh = |(at, _): &Kept| at.elapsed() < VERIFIED_FOR;
        if let Some((_, result)) = self
            .0
            .lock()
            .expect("verifications lock poisoned")
            .get(&key)
            .filter(|kept| fresh(kept))
        {
            return result.clone();
        }
        // Made outside the lock: other handshakes' verifications go on meanwhile.
        let result = verify();
        let mut kept = self.0.lock().expect("verifications lock poisoned");
        if kept.len() >= VERIFIED_KEPT {
            kept.retain(|_, entry| fresh(entry));
            if kept.len() >= VERIFIED_KEPT {
                kept.clear();
            }
        }
        kept.insert(key, (Instant::now(), result.clone()));
        result
    }
}

impl TlsContext {
    pub fn new(roots: RootCertStore) -> anyhow::Result<TlsContext> {
        TlsContext::with_private_anchors(roots, PRIVATE_ANCHORS)
    }

    /// The same, with `anchors` (each: the domains it is trusted for, and its PEM) as
    /// the private anchors.
    fn with_private_anchors(
        roots: RootCertStore,
        anchors: &[(&[&str], &str)],
    ) -> anyhow::Result<TlsContext> {
        let provider = provider();
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .context("cannot build the certificate verifier")?;
        let recording = recording_on(&webpki, provider.clone())?;
        let hellos = Hellos::new(&recording, |other| recording_on(&webpki, other))?;
        let mut strict = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("cannot configure TLS")?
            .with_webpki_verifier(webpki.clone())
            .with_no_client_auth();
        strict.alpn_protocols = BROWSER_ALPN.iter().map(|p| p.to_vec()).collect();
        let quic = quic_recording_on(&webpki, provider.clone())?;
        let private = anchors
            .iter()
            .map(|(domains, pem)| {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots.add(cert.context("a built-in anchor")?)?;
                }
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()?;
                Ok((domains.iter().map(|d| d.to_string()).collect(), verifier))
            })
            .collect::<anyhow::Result<_>>()
            .context("cannot load the built-in trust anchors")?;
        Ok(TlsContext {
            webpki,
            private,
            recording: Arc::new(recording),
            hellos: Arc::new(hellos),
            strict: Arc::new(strict),
            quic,
            verified: Arc::default(),
        })
    }

    /// The configurations of the other ClientHellos.
    pub fn hellos(&self) -> &Hellos {
        &self.hellos
    }

    /// A configuration for measurements from `builder` (its protocol versions, its ECH
    /// mode): the recording verifier, and a browser's ALPN.
    pub fn recording(&self, builder: ConfigBuilder<ClientConfig, WantsVerifier>) -> ClientConfig {
        recording(&self.webpki, builder, BROWSER_ALPN)
    }

    /// A handshake on `tcp` with `server_name` as SNI (none for an IP address). Returns
    /// the facts, and the stream when the handshake finished.
    pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        tcp: S,
        address: SocketAddr,
        server_name: &str,
        control_sni: bool,
        timeout: Duration,
    ) -> (TlsFacts, Option<TlsStream<S>>) {
        let config = self.recording.clone();
        self.handshake_with(config, tcp, address, server_name, control_sni, timeout)
            .await
    }

    /// The same, with another configuration (one of [`TlsContext::hellos`], or one
    /// made by [`TlsContext::recording`]).
    pub async fn handshake_with<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        config: Arc<ClientConfig>,
        tcp: S,
        address: SocketAddr,
        server_name: &str,
        control_sni: bool,
        timeout: Duration,
    ) -> (TlsFacts, Option<TlsStream<S>>) {
        let mut facts = TlsFacts::new(address, server_name, control_sni);
        let name = match server_name_of(server_name) {
            Ok(name) => name,
            Err(e) => {
                facts.error = Some(e);
                return (facts, None);
            }
        };
        let connector = TlsConnector::from(config);
        let began = Instant::now();
        let stream = match tokio::time::timeout(timeout, connector.connect(name.clone(), tcp)).await
        {
            Err(_) => {
                facts.error = Some(StepError::timeout(Operation::TlsHandshake));
                return (facts, None);
            }
            Ok(Err(e)) => {
                facts.error = Some(StepError::io(Operation::TlsHandshake, &e));
                return (facts, None);
            }
            Ok(Ok(stream)) => stream,
        };
        facts.handshake_ms = Some(began.elapsed().as_secs_f64() * 1000.0);
        let (_, conn) = stream.get_ref();
        facts.tls_version = conn
            .protocol_version()
            .map(|v| format!("{v:?}").replace('_', "."));
        facts.cipher_suite = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()));
        facts.alpn = conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        self.record_peer(
            &mut facts,
            &name,
            conn.peer_certificates().unwrap_or_default(),
            Operation::TlsHandshake,
        );
        (facts, Some(stream))
    }

    /// The client configuration of QUIC handshakes, which record as TCP+TLS ones do.
    pub fn quic(&self) -> quinn::ClientConfig {
        self.quic.clone()
    }

    /// Records what a finished handshake negotiated and the certificate it was shown
    /// (the whole chain but for a control-SNI handshake), and checks the chain for the
    /// name, as a browser would have before going on.
    pub fn record_peer(
        &self,
        facts: &mut TlsFacts,
        name: &ServerName<'_>,
        chain: &[CertificateDer<'_>],
        operation: Operation,
    ) {
        facts.handshake_done = true;
        facts.certificate = chain
            .first()
            .map(|leaf| describe(leaf, if facts.control_sni { &[] } else { chain }));
        if let Err(refusal) = self.verify(chain, name) {
            facts.error = Some(StepError::new(operation, refusal.failure));
            facts.valid_but_for_dates = refusal.only_dates;
        }
    }

    /// Checks a chain for a name, as a browser would have before going on (or gives
    /// the same check made lately: see [`Verified`]).
    fn verify(&self, chain: &[CertificateDer<'_>], name: &ServerName<'_>) -> Result<(), Refusal> {
        self.verified
            .get_or(Verified::key(chain, name), || self.verify_now(chain, name))
    }

    /// Checks a chain for a name by this machine's clock. A chain refused for its dates
    /// is checked again at a time within its leaf's validity: valid then, only the dates
    /// were wrong, which a clock far off does as much as a certificate out of date,
    /// and an interceptor's certificate never does on its own (it fails on its issuer
    /// or its name, at any time); refused then too, that other failure is the one given
    /// (webpki checks the dates first, so they would hide it).
    fn verify_now(
        &self,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
    ) -> Result<(), Refusal> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(Refusal::of(Failure::SslInvalidCertificate));
        };
        let at = |now| self.verify_at(leaf, intermediates, name, now);
        let e = match at(UnixTime::now()) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let then = within_validity(leaf).filter(|_| out_of_date(&e)).map(at);
        match then {
            Some(Ok(())) => Err(Refusal {
                failure: Failure::from_tls(&e),
                only_dates: true,
            }),
            // What else is wrong with it, which its dates hid: the telling failure.
            Some(Err(other)) => Err(Refusal::of(Failure::from_tls(&other))),
            None => Err(Refusal::of(Failure::from_tls(&e))),
        }
    }

    fn verify_at(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let verified = self
            .webpki
            .verify_server_cert(leaf, intermediates, name, &[], now);
        let unknown = matches!(
            &verified,
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        );
        // A chain no public root vouches for, for a name a private anchor covers: that
        // anchor's word, the name checked as ever.
        let private = self
            .private
            .iter()
            .find(|(domains, _)| under(name, domains));
        let verified = match private {
            Some((_, anchor)) if unknown => {
                anchor.verify_server_cert(leaf, intermediates, name, &[], now)
            }
            _ => verified,
        };
        verified.map(|_| ())
    }

    /// A handshake that refuses invalid certificates, for talking to a resolver.
    pub async fn connect_strict(
        &self,
        tcp: TcpStream,
        server_name: &str,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, StepError> {
        let name = server_name_of(server_name)?;
        let connector = TlsConnector::from(self.strict.clone());
        match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
            Err(_) => Err(StepError::timeout(Operation::TlsHandshake)),
            Ok(Err(e)) => {
                let tls = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
                if let Some(tls) = tls.filter(|tls| out_of_date(tls)) {
                    // The control and the DoH resolvers are trusted only over a valid
                    // certificate, so a clock far off leaves them out of reach: said
                    // once, since every request to them fails alike.
                    static SAID: Once = Once::new();
                    SAID.call_once(|| {
                        tracing::warn!(
                            "{server_name}'s certificate reads as out of date by this machine's clock ({tls}): the clock is probably wrong; set it and run again"
                        );
                    });
                }
                Err(StepError::io(Operation::TlsHandshake, &e))
            }
            Ok(Ok(stream)) => Ok(stream),
        }
    }
}

/// What a browser offers, so that a handshake looks like one.
const BROWSER_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Whether `name` is one of `domains` or under one.
fn under(name: &ServerName<'_>, domains: &[String]) -> bool {
    let ServerName::DnsName(name) = name else {
        return false;
    };
    let name = name.as_ref().trim_end_matches('.').to_ascii_lowercase();
    domains
        .iter()
        .any(|d| name == *d || name.ends_with(&format!(".{d}")))
}

/// A configuration that records instead of refusing, on `provider`, offering what a
/// browser does so that a handshake looks like one.
fn recording_on(
    webpki: &Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot configure TLS")?;
    Ok(recording(webpki, builder, BROWSER_ALPN))
}

/// The same for QUIC: TLS 1.3 only, offering HTTP/3.
fn quic_recording_on(
    webpki: &Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<quinn::ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("cannot configure TLS for QUIC")?;
    let quic =
        quinn::crypto::rustls::QuicClientConfig::try_from(recording(webpki, builder, &[b"h3"]))
            .context("cannot configure QUIC")?;
    Ok(quinn::ClientConfig::new(Arc::new(quic)))
}

/// A configuration from `builder` whose verifier records, offering `alpn`.
fn recording(
    webpki: &Arc<WebPkiServerVerifier>,
    builder: ConfigBuilder<ClientConfig, WantsVerifier>,
    alpn: &[&[u8]],
) -> ClientConfig {
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordingVerifier {
            webpki: webpki.clone(),
        }))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

pub fn server_name_of(name: &str) -> Result<ServerName<'static>, StepError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(name.to_string()).map_err(|e| {
        StepError::new(
            Operation::TlsHandshake,
            Failure::unknown(format!("bad server name: {e}")),
        )
    })
}

/// Whether a certificate was refused for its dates, or one of its chain's.
fn out_of_date(e: &rustls::Error) -> bool {
    use rustls::CertificateError as C;
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. }
        )
    )
}

/// The middle of the leaf's validity, when it can be read.
fn within_validity(leaf: &CertificateDer<'_>) -> Option<UnixTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let validity = cert.validity();
    let (from, until) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let middle = u64::try_from(from + (until - from) / 2).ok()?;
    Some(UnixTime::since_unix_epoch(Duration::from_secs(middle)))
}

fn describe(leaf: &CertificateDer<'_>, chain: &[CertificateDer<'_>]) -> CertificateFacts {
    certificate_facts(leaf.as_ref(), chain)
}

/// Subject, issuer, names and fingerprint of the leaf (DER), and the chain as base64
/// when one is given.
pub fn certificate_facts(leaf: &[u8], chain: &[impl AsRef<[u8]>]) -> CertificateFacts {
    let sha256 = Sha256::digest(leaf)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let chain = chain
        .iter()
        .map(|c| base64::engine::general_purpose::STANDARD.encode(c.as_ref()))
        .collect();
    let mut facts = CertificateFacts {
        subject: String::new(),
        issuer: String::new(),
        san: Vec::new(),
        not_before: String::new(),
        not_after: String::new(),
        sha256,
        chain,
    };
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) {
        facts.subject = cert.subject().to_string();
        facts.issuer = cert.issuer().to_string();
        facts.not_before = cert.validity().not_before.to_string();
        facts.not_after = cert.validity().not_after.to_string();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            facts.san = san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => Some(IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?).to_string()),
                        16 => Some(IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?).to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
        }
    }
    facts
}

/// Accepts any certificate for the handshake to go on; the chain is judged afterwards
/// by `TlsContext::verify`.
#[derive(Debug)]
struct RecordingVerifier {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::ca::Ca;

    /// A context that trusts `ca` for names under `domain` alone.
    fn trusting(ca: &Ca, domain: &str) -> TlsContext {
        TlsContext::with_private_anchors(root_store(None).unwrap(), &[(&[domain], &ca.pem())])
            .unwrap()
    }

    #[test]
    fn a_private_anchor_vouches_only_for_its_own_domains() {
        let private = Ca::new().unwrap();
        let tls = trusting(&private, "private.test");
        let check = |names: &[&str], name: &str| {
            let (chain, _) = private.issue(names).unwrap();
            tls.verify(&chain, &server_name_of(name).unwrap())
                .map_err(|r| r.failure)
        };
        assert_eq!(check(&["chat.private.test"], "chat.private.test"), Ok(()));
        assert_eq!(check(&["private.test"], "private.test"), Ok(()));
        // The same CA for a name outside its domains is a CA no one trusts.
        assert_eq!(
            check(&["www.bank.test"], "www.bank.test"),
            Err(Failure::SslUnknownAuthority)
        );
        assert_eq!(
            check(&["notprivate.test"], "notprivate.test"),
            Err(Failure::SslUnknownAuthority)
        );
        // Trusted, and still checked for the name.
        assert_eq!(
            check(&["chat.private.test"], "storage.private.test"),
            Err(Failure::SslInvalidHostname)
        );
    }

    #[test]
    fn a_certificate_refused_for_its_dates_alone_is_told_from_an_interceptors() {
        let ca = Ca::new().unwrap();
        let tls = trusting(&ca, "dated.test");
        let name = server_name_of("www.dated.test").unwrap();
        let verify = |chain: &[CertificateDer<'_>]| tls.verify(chain, &name);
        let dates_alone = |failure| {
            Err(Refusal {
                failure,
                only_dates: true,
            })
        };
        // Expired, or not valid yet (as a clock years behind or ahead reads a valid
        // one): the site's own certificate all the same.
        let (expired, _) = ca
            .issue_valid(&["www.dated.test"], (2001, 1, 1), (2002, 1, 1))
            .unwrap();
        assert_eq!(
            verify(&expired),
            dates_alone(Failure::SslInvalidCertificate)
        );
        let (early, _) = ca
            .issue_valid(&["www.dated.test"], (2200, 1, 1), (2201, 1, 1))
            .unwrap();
        assert_eq!(verify(&early), dates_alone(Failure::SslInvalidCertificate));
        // Out of date and wrong besides: for another name, or from a CA no one trusts,
        // which is the failure given.
        let (other_name, _) = ca
            .issue_valid(&["mail.dated.test"], (2001, 1, 1), (2002, 1, 1))
            .unwrap();
        assert_eq!(
            verify(&other_name),
            Err(Refusal::of(Failure::SslInvalidHostname))
        );
        let (untrusted, _) = Ca::new()
            .unwrap()
            .issue_valid(&["www.dated.test"], (2001, 1, 1), (2002, 1, 1))
            .unwrap();
        assert_eq!(
            verify(&untrusted),
            Err(Refusal::of(Failure::SslUnknownAuthority))
        );
        // Valid now: nothing refused.
        let (valid, _) = ca.issue(&["www.dated.test"]).unwrap();
        assert_eq!(verify(&valid), Ok(()));
    }

    #[test]
    fn a_verification_kept_stands_only_for_the_same_chain_and_name() {
        let ca = Ca::new().unwrap();
        let tls = trusting(&ca, "kept.test");
        let (chain, _) = ca.issue(&["a.kept.test"]).unwrap();
        let name = |n: &str| server_name_of(n).unwrap();
        // What is kept is what is given: a verdict planted for the chain and name is
        // served, until it is older than VERIFIED_FOR, when the chain is checked again.
        let key = Verified::key(&chain, &name("a.kept.test"));
        let plant = |at: Instant| {
            let planted = (at, Err(Refusal::of(Failure::SslInvalidCertificate)));
            tls.verified.0.lock().unwrap().insert(key, planted);
        };
        plant(Instant::now());
        assert_eq!(
            tls.verify(&chain, &name("a.kept.test")),
            Err(Refusal::of(Failure::SslInvalidCertificate))
        );
        plant(Instant::now() - VERIFIED_FOR - Duration::from_secs(1));
        for _ in 0..2 {
            assert_eq!(tls.verify(&chain, &name("a.kept.test")), Ok(()));
            // The same chain for another name: its own verdict, not the one kept.
            assert_eq!(
                tls.verify(&chain, &name("b.kept.test")),
                Err(Refusal::of(Failure::SslInvalidHostname))
            );
        }
        // A chain that differs in one byte of its leaf is verified afresh.
        let mut forged = chain[0].as_ref().to_vec();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let forged = vec![CertificateDer::from(forged)];
        assert_ne!(tls.verify(&forged, &name("a.kept.test")), Ok(()));
        assert_eq!(tls.verified.0.lock().unwrap().len(), 3);
    }

    #[test]
    fn the_built_in_anchors_load() {
        let tls = TlsContext::new(root_store(None).unwrap()).unwrap();
        assert_eq!(tls.private.len(), PRIVATE_ANCHORS.len());
    }
}
