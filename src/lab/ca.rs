//! The lab's certificate authority. No censor technique here: the lab's sites present
//! certificates it issued, and the probe and the control trust it through `--ca-file`,
//! as they would a lab's or a company's CA, so that only the censor makes TLS fail.
//!
//! The two kinds of bad certificate a censor's middlebox presents are both made from
//! here: `ca.issue(&["other.test"])` is valid for the wrong names, and
//! `Ca::new()?.issue(names)` comes from a CA the probe was never told about.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

static NEXT_CA: AtomicUsize = AtomicUsize::new(1);

pub struct Ca {
    cert: Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA with a key of its own, made afresh for every lab.
    pub fn new() -> anyhow::Result<Ca> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: a verifier that finds a trusted CA by the issuer's name
        // would report a second CA's certificates as badly signed, not unknown.
        let serial = NEXT_CA.fetch_add(1, Ordering::Relaxed);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("censorprobe lab CA {serial}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().context("cannot make the lab CA's key")?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, as PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// Writes the CA certificate as PEM into `dir`, for `--ca-file`.
    pub fn write_pem(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join("lab-ca.pem");
        std::fs::write(&path, self.pem())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// A leaf certificate (a chain of one) and its key for the DNS names `names` (the
    /// first is its common name). A wildcard covers one label, and only before at least
    /// two more (`*.lab.test`, not `*.test`), as webpki wants.
    pub fn issue(
        &self,
        names: &[&str],
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        self.issue_with(names, |_| {})
    }

    /// The same, valid only from `from` to `until` (year, month, day): a certificate
    /// out of date, or one that a clock far off reads as such.
    pub fn issue_valid(
        &self,
        names: &[&str],
        from: (i32, u8, u8),
        until: (i32, u8, u8),
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        self.issue_with(names, |params| {
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        })
    }

    fn issue_with(
        &self,
        names: &[&str],
        dates: impl FnOnce(&mut CertificateParams),
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let (cert, key) = self.leaf_with(names, dates)?;
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        Ok((vec![cert.der().clone()], key.into()))
    }

    /// A leaf certificate for `names` and its key, as the PEM files `cert.pem` and
    /// `key.pem` in `dir`, for a server's `--tls-cert` and `--tls-key`.
    pub fn write_server_files(
        &self,
        dir: &Path,
        names: &[&str],
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let (cert, key) = self.leaf(names)?;
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        for (file, pem) in [(&cert_file, cert.pem()), (&key_file, key.serialize_pem())] {
            std::fs::write(file, pem)
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
        Ok((cert_file, key_file))
    }

    fn leaf(&self, names: &[&str]) -> anyhow::Result<(Certificate, KeyPair)> {
        self.leaf_with(names, |_| {})
    }

    fn leaf_with(
        &self,
        names: &[&str],
        dates: impl FnOnce(&mut CertificateParams),
    ) -> anyhow::Result<(Certificate, KeyPair)> {
        let sans: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(sans)?;
        dates(&mut params);
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().context("cannot make a certificate's key")?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert, key))
    }
}
