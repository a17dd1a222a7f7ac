//! The lab's certificate authority. No censor technique here: the lab's sites present
//! certificates it issued, and the probe and the control trust it through `--ca-file`,
//! as they would a lab's or a company's CA, so that only the censor makes TLS fail.

use anyhow::Context;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Ca {
    cert: Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA with a key of its own, made afresh for every demo.
    pub fn new() -> anyhow::Result<Ca> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "censorprobe demo CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().context("cannot make the demo CA's key")?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, for `--ca-file`.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf certificate (a chain of one) and its key for `name`. A wildcard covers
    /// one label, and only before at least two more (`*.demo.test`), as webpki wants.
    pub fn issue(
        &self,
        name: &str,
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let mut params = CertificateParams::new(vec![name.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().context("cannot make a certificate's key")?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        Ok((vec![cert.der().clone()], key.into()))
    }
}
