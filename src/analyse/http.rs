//! HTTP evidence without a control: blockpage fingerprints first (they prove
//! interference whatever else happened), then the failure of the fetch, named by the
//! layer it happened in.

use super::transport::tcp_finding;
use super::{Blocking, Finding, fingerprints};
use crate::facts::{HttpFacts, Measurement, Step};
use crate::failure::{Failure, Operation};

pub fn finding(measurements: &[Measurement]) -> Option<Finding> {
    measurements.iter().find_map(|m| match &m.step {
        Step::Http(h) => fetch_finding(h),
        _ => None,
    })
}

fn fetch_finding(h: &HttpFacts) -> Option<Finding> {
    for hop in &h.hops {
        if let Some(name) = fingerprints::http_blockpage(hop) {
            return Some(Finding::new(
                Blocking::HttpBlockpage,
                format!("{} answered with {name}", hop.url),
            ));
        }
    }
    let e = h.error.as_ref()?;
    let hop = h.hops.last().map_or(h.url.as_str(), |hop| hop.url.as_str());
    let at = h
        .hops
        .last()
        .and_then(|hop| hop.address)
        .map_or_else(|| hop.to_string(), |a| a.to_string());
    let finding = match e.failed_operation {
        Operation::Resolve => Finding::new(
            Blocking::DnsFailure,
            format!("could not resolve the host of {hop}: {}", e.failure),
        ),
        Operation::Connect => tcp_finding(&at, e),
        Operation::TlsHandshake if e.failure.is_certificate_error() => Finding::new(
            Blocking::TlsMitm,
            format!(
                "the certificate {at} presented for {hop} is not valid for it ({})",
                e.failure
            ),
        ),
        Operation::TlsHandshake if e.failure == Failure::GenericTimeout => Finding::new(
            Blocking::TlsTimeout,
            format!("TLS handshake for {hop} with {at} timed out"),
        ),
        Operation::TlsHandshake => Finding::new(
            Blocking::TlsFailure,
            format!("TLS handshake for {hop} with {at} failed: {}", e.failure),
        ),
        Operation::HttpRoundTrip | Operation::Read => Finding::new(
            Blocking::HttpFailure,
            format!(
                "fetching {hop} from {at} failed: {} ({})",
                e.failure, e.failed_operation
            ),
        ),
    };
    Some(finding)
}
