//! A throwaway certificate authority, so TLS verdicts can be tested without the web PKI.
//!
//! The two kinds of bad certificate a censor's middlebox presents are both made from
//! here: `ca.issue(&["other.test"])` is valid for the wrong names, and
//! `TestCa::new().issue(names)` comes from a CA the probe was never told about.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

static NEXT_CA: AtomicUsize = AtomicUsize::new(1);

pub struct TestCa {
    cert: Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: a verifier that finds a trusted CA by the issuer's name
        // would report a second CA's certificates as badly signed, not unknown.
        let serial = NEXT_CA.fetch_add(1, Ordering::Relaxed);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("censorprobe test CA {serial}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate as PEM into `dir`, for the probe's `--ca-file`.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("test-ca.pem");
        fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A leaf certificate for `names` and its key, as the PEM files `cert.pem` and
    /// `key.pem` in `dir`, for a server's `--tls-cert` and `--tls-key`.
    pub fn write_server_files(&self, dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
        let (chain, key) = self.issue(names);
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        fs::write(&cert_file, pem("CERTIFICATE", &chain[0])).unwrap();
        fs::write(&key_file, pem("PRIVATE KEY", key.secret_der())).unwrap();
        (cert_file, key_file)
    }

    /// A leaf certificate (chain of one) and its key, for DNS names `names`.
    ///
    /// Wildcards are accepted, but note that webpki (and so rustls) only honours a
    /// wildcard followed by at least two labels: `*.lab.test` matches `a.lab.test`,
    /// while `*.test` matches nothing.
    pub fn issue(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let sans: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        (vec![cert.der().clone()], key.into())
    }
}

/// DER as a PEM block of `label`.
fn pem(label: &str, der: &[u8]) -> String {
    let base64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
