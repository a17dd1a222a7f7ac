//! TCP and TLS evidence without a control.
//!
//! A TLS handshake that is reset or stalls with the target's name, while a handshake
//! with the control name to the same address goes through, is SNI filtering; the same
//! failure with both names says only that the address misbehaves. A certificate that
//! does not verify for the name is interception. IPv6 addresses the probe cannot route
//! to are the probe's network, not the censor's, and are left out.

use super::{Blocking, Finding};
use crate::facts::{Measurement, Step, TlsFacts};
use crate::failure::{Failure, Operation, StepError};

pub fn finding(measurements: &[Measurement]) -> Option<Finding> {
    let tls: Vec<&TlsFacts> = measurements
        .iter()
        .filter_map(|m| match &m.step {
            Step::TlsHandshake(t) => Some(t),
            _ => None,
        })
        .collect();
    let tcp = measurements.iter().find_map(|m| match &m.step {
        Step::TcpConnect(t) => t
            .error
            .as_ref()
            .filter(|e| !no_ipv6(t.address.is_ipv6(), e))
            .map(|e| tcp_finding(&t.address.to_string(), e)),
        _ => None,
    });
    tcp.or_else(|| {
        tls.iter()
            .filter(|t| !t.control_sni)
            .find_map(|t| tls_finding(t, &tls))
    })
}

fn no_ipv6(is_ipv6: bool, e: &StepError) -> bool {
    is_ipv6 && e.failure == Failure::NetworkUnreachable
}

/// A failed connect: a timeout is a blackhole, a reset or refusal says so.
pub fn tcp_finding(address: &str, e: &StepError) -> Finding {
    let blocking = match e.failure {
        Failure::ConnectionRefused => Blocking::TcpRefused,
        Failure::ConnectionReset | Failure::ConnectionAborted | Failure::Eof => Blocking::TcpReset,
        _ => Blocking::TcpBlackhole,
    };
    Finding::new(
        blocking,
        format!("TCP connect to {address} failed: {}", e.failure),
    )
}

fn tls_finding(t: &TlsFacts, all: &[&TlsFacts]) -> Option<Finding> {
    let e = t.error.as_ref()?;
    if e.failed_operation == Operation::Connect {
        return (!no_ipv6(t.address.is_ipv6(), e)).then(|| tcp_finding(&t.address.to_string(), e));
    }
    let name = &t.server_name;
    let address = t.address;
    if t.handshake_done && e.failure.is_certificate_error() {
        let issuer = t
            .certificate
            .as_ref()
            .map_or("unknown", |c| c.issuer.as_str());
        return Some(Finding::new(
            Blocking::TlsMitm,
            format!(
                "the certificate {address} presented for {name} is not valid for it ({}), issuer: {issuer}",
                e.failure
            ),
        ));
    }
    let control = all
        .iter()
        .find(|c| c.control_sni && c.address == address)
        .filter(|c| c.server_answered());
    let blocking = match (&e.failure, control) {
        (f, Some(_)) if f.is_reset_or_eof() => Blocking::TlsReset,
        (Failure::GenericTimeout, Some(_)) => Blocking::TlsTimeout,
        _ => Blocking::TlsFailure,
    };
    let evidence = match control {
        Some(c) => format!(
            "TLS handshake with {name} to {address} failed ({}) while a handshake with the control name {} to the same address succeeded",
            e.failure, c.server_name
        ),
        None => format!(
            "TLS handshake with {name} to {address} failed ({})",
            e.failure
        ),
    };
    Some(Finding::new(blocking, evidence))
}
