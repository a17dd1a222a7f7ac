//! TCP and TLS.
//!
//! A TLS handshake that is reset or stalls with the target's name, while a handshake
//! with the control name to the same address goes through, is SNI filtering: that is
//! proven at the probe alone. Any other failure is blocking only if the control
//! succeeded at the same step on the same address, and an outage if it failed there
//! too. IPv6 addresses the probe (or the control) cannot route to say something about
//! that vantage point's network, not about the censor, and are left out.
//!
//! A failure the probe's own network accounts for (its own error; a timeout after
//! which the canary could not be reached either) or that another target's trigger of a
//! residual block on the same address may explain is `inconclusive` (see `explain`).

use std::net::SocketAddr;

use super::{Blocking, ControlSaw, Finding, Problem, explain};
use crate::facts::{Check, Measurement, Step, TlsFacts};
use crate::failure::{Failure, Operation, StepError};
use crate::measure::TargetFacts;

pub fn problems(probe: &TargetFacts, control: Option<&TargetFacts>) -> Vec<Problem> {
    let tls = handshakes(&probe.measurements);
    let mut out = Vec::new();
    for m in &probe.measurements {
        match &m.step {
            Step::TcpConnect(t) => {
                if let Some(e) = t.error.as_ref().filter(|e| !no_route(t.address, e)) {
                    out.push(connect_problem(
                        probe,
                        m,
                        t.address,
                        e,
                        t.tries,
                        t.check.as_ref(),
                        control,
                    ));
                }
            }
            Step::TlsHandshake(t) if !t.control_sni => {
                if let Some(problem) = tls_problem(probe, m, t, &tls, control) {
                    out.push(problem);
                }
            }
            _ => {}
        }
    }
    out
}

/// A connect that failed, to `address`, in the step `m`.
pub fn connect_problem(
    probe: &TargetFacts,
    m: &Measurement,
    address: SocketAddr,
    e: &StepError,
    tries: u32,
    check: Option<&Check>,
    control: Option<&TargetFacts>,
) -> Problem {
    let what = format!("TCP connect to {address}");
    let mut finding = tcp_finding(&address.to_string(), e);
    if tries > 1 {
        finding.evidence.push_str(&format!(" ({tries} tries)"));
    }
    let why = explain::step(&what, e, check)
        .or_else(|| explain::silent_after_trigger(probe, m, address, e, m.measured_at));
    Problem::weak(finding, control.map(|c| connect_at(c, address))).unless(why)
}

fn handshakes(measurements: &[Measurement]) -> Vec<&TlsFacts> {
    measurements
        .iter()
        .filter_map(|m| match &m.step {
            Step::TlsHandshake(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// An IPv6 address with no route: the vantage point has no IPv6.
fn no_route(address: SocketAddr, e: &StepError) -> bool {
    address.is_ipv6() && e.failure == Failure::NetworkUnreachable
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

/// What the control's connect to the same address and port gave.
fn connect_at(control: &TargetFacts, address: SocketAddr) -> ControlSaw {
    let theirs = control.measurements.iter().find_map(|m| match &m.step {
        Step::TcpConnect(t) if t.address == address => Some(t),
        _ => None,
    });
    match theirs {
        Some(t) => match &t.error {
            None => ControlSaw::Success(format!("the control connected to {address}")),
            Some(e) if no_route(address, e) => {
                ControlSaw::NotMeasured("the control has no IPv6 route".into())
            }
            Some(e) if e.local => {
                ControlSaw::NotMeasured(explain::at_control(e, None).unwrap_or_default())
            }
            Some(e) => ControlSaw::Failure(format!(
                "the control's connect to {address} failed too ({})",
                e.failure
            )),
        },
        None => ControlSaw::NotMeasured(format!("the control did not connect to {address}")),
    }
}

/// What the control's handshake with the same name to the same address gave; for a
/// certificate, any address of the control's will do (CDNs hand out different ones).
fn handshake_at(control: &TargetFacts, t: &TlsFacts, any_address: bool) -> ControlSaw {
    let theirs = handshakes(&control.measurements);
    let same = |c: &&&TlsFacts| !c.control_sni && c.server_name == t.server_name;
    let at = theirs.iter().filter(same).find(|c| c.address == t.address);
    let valid = |c: &&TlsFacts| c.handshake_done && c.error.is_none();
    match at {
        Some(c) if valid(c) => ControlSaw::Success(format!(
            "the control's handshake with {} to {} succeeded",
            c.server_name, c.address
        )),
        _ if any_address && theirs.iter().filter(same).any(valid) => ControlSaw::Success(format!(
            "the control got a valid certificate for {}",
            t.server_name
        )),
        Some(c) if !any_address && c.server_answered() => ControlSaw::Success(format!(
            "the control's handshake with {} to {} succeeded",
            c.server_name, c.address
        )),
        Some(c) if c.error.as_ref().is_some_and(|e| e.local) => ControlSaw::NotMeasured(
            explain::at_control(c.error.as_ref().expect("checked"), None).unwrap_or_default(),
        ),
        Some(c) => ControlSaw::Failure(format!(
            "the control's handshake with {} to {} failed too ({})",
            c.server_name,
            c.address,
            c.error
                .as_ref()
                .map_or("no error".into(), |e| e.failure.to_string())
        )),
        None => ControlSaw::NotMeasured(format!(
            "the control did not try {} at {}",
            t.server_name, t.address
        )),
    }
}

fn tls_problem(
    probe: &TargetFacts,
    m: &Measurement,
    t: &TlsFacts,
    all: &[&TlsFacts],
    control: Option<&TargetFacts>,
) -> Option<Problem> {
    let e = t.error.as_ref()?;
    let (name, address) = (&t.server_name, t.address);
    if e.failed_operation == Operation::Connect {
        return (!no_route(address, e))
            .then(|| connect_problem(probe, m, address, e, 1, t.check.as_ref(), control));
    }
    if t.handshake_done && e.failure.is_certificate_error() {
        let issuer = t
            .certificate
            .as_ref()
            .map_or("unknown", |c| c.issuer.as_str());
        let finding = Finding::new(
            Blocking::TlsMitm,
            format!(
                "the certificate {address} presented for {name} is not valid for it ({}), issuer: {issuer}",
                e.failure
            ),
        );
        return Some(Problem::strong(
            finding,
            control.map(|c| handshake_at(c, t, true)),
        ));
    }
    let control_sni = all
        .iter()
        .find(|c| c.control_sni && c.address == address)
        .filter(|c| c.server_answered());
    let (blocking, strong) = match (&e.failure, control_sni) {
        (f, Some(_)) if f.is_reset_or_eof() => (Blocking::TlsReset, true),
        (Failure::GenericTimeout, Some(_)) => (Blocking::TlsTimeout, true),
        _ => (Blocking::TlsFailure, false),
    };
    let evidence = match control_sni {
        Some(c) => format!(
            "TLS handshake with {name} to {address} failed ({}) while a handshake with the control name {} to the same address succeeded",
            e.failure, c.server_name
        ),
        None => format!(
            "TLS handshake with {name} to {address} failed ({})",
            e.failure
        ),
    };
    let saw = control.map(|c| handshake_at(c, t, false));
    let mut finding = Finding::new(blocking, evidence);
    if t.tries > 1 {
        finding.evidence.push_str(&format!(" ({} tries)", t.tries));
    }
    let problem = match strong {
        true => Problem::strong(finding, saw),
        false => Problem::weak(finding, saw),
    };
    let what = format!("TLS handshake with {name} to {address}");
    // The handshake is recorded from when its name was sent.
    let why = explain::step(&what, e, t.check.as_ref())
        .or_else(|| explain::silent_after_trigger(probe, m, address, e, m.measured_at));
    Some(problem.unless(why))
}
