//! What the handshakes made again with other ClientHellos say (see
//! [`crate::facts::Hello`]): whether a censor filtering the target's name reads one
//! packet or reassembles the stream, and whether what is blocked is the probe's own
//! ClientHello rather than the name.
//!
//! A fingerprint block is interference, but not with the site: a browser's ClientHello
//! reaches it. Calling the target `blocked` would count the probe's TLS library as the
//! site's censorship in every aggregate, so it is an `anomaly` at most, whatever the
//! control saw (docs/verdicts.md).

use super::transport::control_around;
use super::{Blocking, ControlSaw, Finding, Problem, explain};
use crate::facts::failure::{Operation, StepError};
use crate::facts::{Hello, HelloTry, Measurement, TargetFacts, TlsFacts};

/// A handshake with a target's name that failed once connected, where the control
/// name's handshakes to the same address failed once connected too (before it, and right
/// after if one was made), while another ClientHello passed with both names: the
/// probe's own ClientHello is blocked on the path to the address, not the name. Not
/// when the probe's own network accounts for the failure (see `explain::step`).
pub fn fingerprint(probe: &TargetFacts, m: &Measurement, t: &TlsFacts) -> Option<Problem> {
    let e = t.error.as_ref().filter(|_| connected_then_failed(t))?;
    let (before, after) = control_around(probe, t.address, m.measured_at);
    let before = before.filter(|c| connected_then_failed(c))?;
    if after.is_some_and(|c| c.server_answered()) {
        return None;
    }
    let passed = |hello: Hello, control_sni: bool| {
        t.hellos
            .iter()
            .any(|h| h.hello == hello && h.control_sni == control_sni && h.passed())
    };
    let hello = Hello::ALL
        .into_iter()
        .find(|h| passed(*h, false) && passed(*h, true))?;
    let (name, address) = (&t.server_name, t.address);
    let finding = Finding::new(
        Blocking::TlsFingerprint,
        format!(
            "TLS handshakes with the probe's default ClientHello to {address} failed with {name} ({}) and with the control name {} ({}), while the {hello} ClientHello passed with both: what is blocked is the probe's own TLS fingerprint, not {name}",
            e.failure,
            before.server_name,
            before
                .error
                .as_ref()
                .map_or("no error".into(), |e| e.failure.to_string())
        ),
    );
    let problem = Problem::strong(
        finding,
        Some(ControlSaw::NotMeasured(
            "a block of the probe's own ClientHello is no block of the site".into(),
        )),
    );
    let what = format!("TLS handshake with {name} to {address}");
    Some(problem.unless(explain::step(&what, e, t.check.as_ref())))
}

/// A handshake that failed after its connection was made, not for a certificate nor
/// the probe's own machine.
fn connected_then_failed(t: &TlsFacts) -> bool {
    t.error.as_ref().is_some_and(|e| {
        !e.local
            && e.failed_operation == Operation::TlsHandshake
            && !e.failure.is_certificate_error()
            && !t.server_answered()
    })
}

/// What the other ClientHellos with the target's name say of a censor shown to filter
/// it, for the evidence: a split one passed (it reads one packet: stateless), none
/// passed and the split one was torn down as the default was (it reassembles:
/// stateful), or nothing (none made, or the split one timed out, which says nothing).
pub fn dpi(t: &TlsFacts) -> String {
    let own: Vec<&HelloTry> = t.hellos.iter().filter(|h| !h.control_sni).collect();
    let passed: Vec<String> = own
        .iter()
        .filter(|h| h.passed())
        .map(|h| h.hello.to_string())
        .collect();
    // A variant may have been made twice (the first try said nothing): any try counts.
    let split =
        |what: fn(&HelloTry) -> bool| own.iter().any(|h| h.hello == Hello::Split && what(h));
    if split(HelloTry::passed) {
        format!(
            "; a split ClientHello passed: stateless DPI (passed: {})",
            passed.join(", ")
        )
    } else if !passed.is_empty() {
        format!("; the {} ClientHello passed", passed.join(", "))
    } else if split(HelloTry::torn_down) {
        let mut tried: Vec<String> = own.iter().map(|h| h.hello.to_string()).collect();
        tried.dedup();
        format!(
            "; no other ClientHello passed ({}): stateful DPI (reassembles)",
            tried.join(", ")
        )
    } else {
        String::new()
    }
}

/// Where a handshake with a target's name went unanswered, what the other ClientHellos
/// with the name say of the censor's answer, for the evidence: more of them reset (or
/// closed) once connected than unanswered, so it resets the name, and the resets to the
/// default one were lost on the way (loss swallows a censor's reset as any packet, and
/// makes none; a flaky middlebox's reset now and then does not outnumber the silences of
/// a censor that drops). Nothing where they were not made, or said otherwise.
pub fn reset_instead(t: &TlsFacts) -> Option<String> {
    let own = || t.hellos.iter().filter(|h| !h.control_sni);
    let silent = own()
        .filter(|h| h.error.as_ref().is_some_and(StepError::silent))
        .count();
    let mut reset: Vec<String> = own()
        .filter(|h| h.torn_down())
        .map(|h| h.hello.to_string())
        .collect();
    if reset.len() <= silent {
        return None;
    }
    reset.dedup();
    let (hellos, were) = match reset.len() {
        1 => ("ClientHello", "was"),
        _ => ("ClientHellos", "were"),
    };
    Some(format!(
        "; the {} {hellos} with the name {were} reset: the name is reset, and the resets to the default ClientHello were lost on the way",
        reset.join(" and ")
    ))
}
