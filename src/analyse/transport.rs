//! TCP and TLS.
//!
//! A TLS handshake that is reset or stalls with the target's name, while handshakes
//! with the control name to the same address go through before it and right after (or
//! the address then stops answering at all, as a residual block does), is SNI
//! filtering: that is proven at the probe alone. Any other failure is blocking only if the control
//! succeeded at the same step on the same address, and an outage if it failed there
//! too. IPv6 addresses the probe (or the control) cannot route to say something about
//! that vantage point's network, not about the censor, and are left out.
//!
//! A failure the probe's own network accounts for (its own error; a timeout after
//! which the canary could not be reached either) or that another target's trigger of a
//! residual block on the same address may explain is `inconclusive` (see `explain`).

use std::net::SocketAddr;

use chrono::{DateTime, Utc};

use super::{Blocking, Context, ControlSaw, Finding, Problem, explain, hello};
use crate::facts::TargetFacts;
use crate::facts::failure::{Failure, Operation, StepError};
use crate::facts::{FirstBytes, Measurement, QuicFacts, Step, TlsFacts};

pub fn problems(
    probe: &TargetFacts,
    control: Option<&TargetFacts>,
    context: &Context,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for m in &probe.measurements {
        match &m.step {
            Step::TcpConnect(t) => {
                if let Some(e) = t
                    .error
                    .as_ref()
                    .filter(|e| !left_out(probe, context, t.address, e))
                {
                    out.push(connect_problem(probe, m, t.address, e, control, context));
                }
                if let Some(f) = &t.first_bytes {
                    out.extend(protocol_problem(probe, m, t.address, f, control));
                }
            }
            Step::TlsHandshake(t) if !t.control_sni => {
                if let Some(problem) = tls_problem(probe, m, t, control, context) {
                    out.push(problem);
                }
            }
            _ => {}
        }
    }
    out
}

/// A connect that failed, to `address`, in the step `m` (a connect, a handshake's, a
/// fetch's), with the step's tries and check.
pub fn connect_problem(
    probe: &TargetFacts,
    m: &Measurement,
    address: SocketAddr,
    e: &StepError,
    control: Option<&TargetFacts>,
    context: &Context,
) -> Problem {
    let (tries, check) = match &m.step {
        Step::TcpConnect(t) => (t.tries, t.check.as_ref()),
        Step::TlsHandshake(t) => (t.tries, t.check.as_ref()),
        Step::Http(h) => (1, h.check.as_ref()),
        _ => (1, None),
    };
    let what = format!("TCP connect to {address}");
    let mut finding = tcp_finding(&address.to_string(), e);
    if tries > 1 {
        finding.evidence.push_str(&format!(" ({tries} tries)"));
    }
    let why = explain::step(&what, e, check)
        .or_else(|| explain::silent_after_trigger(probe, m, address, e, m.measured_at))
        .or_else(|| explain::like_the_canary(&what, address, e, &context.canary_failed))
        .or_else(|| explain::answered_before(probe, m, address, check));
    Problem::weak(finding, control.map(|c| connect_at(c, address))).unless(why)
}

/// A connect that worked, after whose first bytes (see [`FirstBytes`]) the endpoint
/// took no connection: every try of the connect right after went unanswered. The
/// endpoint answered, so this is no blackhole; a protocol filter where the control
/// connected again after the same bytes, a server that shuns such bytes where it did
/// not. A reconnect refused or reset is a server's answer, and not taken for one.
pub fn protocol_problem(
    probe: &TargetFacts,
    m: &Measurement,
    address: SocketAddr,
    f: &FirstBytes,
    control: Option<&TargetFacts>,
) -> Option<Problem> {
    let again = &f.reconnect;
    let e = again
        .error
        .as_ref()
        .filter(|e| e.local || e.failure.is_unanswered())?;
    let mut finding = Finding::new(
        Blocking::ProtocolFiltered,
        format!(
            "TCP connect to {address} worked, but after {} bytes that were neither TLS nor HTTP were sent on it (the server: {}) the connect right after failed: {}",
            f.sent,
            f.reply.as_str(),
            e.failure
        ),
    );
    if again.tries > 1 {
        finding
            .evidence
            .push_str(&format!(" ({} tries)", again.tries));
    }
    let what = format!("TCP connect to {address} after the first bytes");
    let ended = again.ended_at();
    let why = explain::step(&what, e, again.check.as_ref()).or_else(|| {
        let answers = explain::answers(&probe.measurements);
        explain::residual(address, ended, ended, &m.target, &probe.triggers, &answers)
    });
    let saw = control.map(|c| first_bytes_at(c, address));
    Some(Problem::weak(finding, saw).unless(why))
}

/// What the control's first-bytes probe to the same endpoint gave: whether it connected
/// again after the same bytes.
fn first_bytes_at(control: &TargetFacts, address: SocketAddr) -> ControlSaw {
    let theirs = control.measurements.iter().find_map(|m| match &m.step {
        Step::TcpConnect(t) if t.address == address => t.first_bytes.as_ref(),
        _ => None,
    });
    let Some(f) = theirs else {
        return ControlSaw::NotMeasured(format!(
            "the control did not send the same bytes to {address}"
        ));
    };
    match &f.reconnect.error {
        None => ControlSaw::Success(format!(
            "the control connected to {address} again after the same bytes (the server: {})",
            f.reply.as_str()
        )),
        Some(e) => ControlSaw::failed(
            Some(e),
            f.reconnect.check.as_ref(),
            format!(
                "the control could not connect to {address} again after the same bytes either ({})",
                e.failure
            ),
        ),
    }
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

/// A failed connect that says nothing of the target: to an IPv6 address without a route
/// there, or unanswered where the probe reached no IPv6 address in the run (neither the
/// canary nor this target) while it reached the target over IPv4. That is the vantage
/// point's IPv6 broken (a route to nowhere, a tunnel down), which browsers fall back
/// from, not a block. Where the probe's IPv6 works, the address counts.
fn left_out(probe: &TargetFacts, context: &Context, address: SocketAddr, e: &StepError) -> bool {
    let broken_ipv6 = || {
        address.is_ipv6()
            && e.failed_operation == Operation::Connect
            && e.failure.is_unanswered()
            && !context.ipv6
            && !reached_over(probe, true)
            && reached_over(probe, false)
    };
    no_route(address, e) || broken_ipv6()
}

/// Whether a connection of the probe's to an IPv6 (or IPv4) address of the target got
/// through.
pub fn reached_over(probe: &TargetFacts, ipv6: bool) -> bool {
    probe.measurements.iter().any(|m| match &m.step {
        Step::TcpConnect(t) => t.address.is_ipv6() == ipv6 && t.error.is_none(),
        Step::TlsHandshake(t) | Step::QuicHandshake(QuicFacts { handshake: t, .. }) => {
            t.address.is_ipv6() == ipv6 && t.server_answered()
        }
        Step::Http(h) => h
            .hops
            .iter()
            .any(|hop| hop.status.is_some() && hop.address.is_some_and(|a| a.is_ipv6() == ipv6)),
        Step::Ech(f) => {
            f.address.is_ipv6() == ipv6 && f.handshakes.iter().any(|h| h.handshake_done)
        }
        Step::Dns(_) => false,
    })
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
            Some(e) => ControlSaw::failed(
                Some(e),
                t.check.as_ref(),
                format!(
                    "the control's connect to {address} failed too ({})",
                    e.failure
                ),
            ),
        },
        None => ControlSaw::NotMeasured(format!("the control did not connect to {address}")),
    }
}

/// What the control's handshake with the same name to the same address gave; for a
/// certificate, any address of the control's will do (CDNs hand out different ones),
/// unless the control refused the very certificate shown at the same one.
fn handshake_at(control: &TargetFacts, t: &TlsFacts, any_address: bool) -> ControlSaw {
    let theirs = handshakes(&control.measurements);
    let same = |c: &&&TlsFacts| !c.control_sni && c.server_name == t.server_name;
    let at = theirs.iter().filter(same).find(|c| c.address == t.address);
    let valid = |c: &&TlsFacts| c.vouches_for_name();
    match at {
        Some(c) if valid(c) => ControlSaw::Success(format!(
            "the control's handshake with {} to {} succeeded",
            c.server_name, c.address
        )),
        // The very certificate the control refused at the same address is the site's own
        // there (a default host on one of its addresses, a node serving a broken chain):
        // what the site's other addresses show says nothing of this one. Another one
        // there is another party's.
        _ if any_address
            && !at.is_some_and(|c| c.handshake_done && same_leaf(c, t))
            && theirs.iter().filter(same).any(valid) =>
        {
            ControlSaw::Success(format!(
                "the control got a valid certificate for {}",
                t.server_name
            ))
        }
        Some(c) if !any_address && c.server_answered() => ControlSaw::Success(format!(
            "the control's handshake with {} to {} succeeded",
            c.server_name, c.address
        )),
        Some(c) => ControlSaw::failed(
            c.error.as_ref(),
            c.check.as_ref(),
            format!(
                "the control's handshake with {} to {} failed too ({})",
                c.server_name,
                c.address,
                c.error
                    .as_ref()
                    .map_or("no error".into(), |e| e.failure.to_string())
            ),
        ),
        None => ControlSaw::NotMeasured(format!(
            "the control did not try {} at {}",
            t.server_name, t.address
        )),
    }
}

/// Whether two handshakes were shown the same certificate.
fn same_leaf(a: &TlsFacts, b: &TlsFacts) -> bool {
    let leaf = |t: &TlsFacts| t.certificate.as_ref().map(|c| c.sha256.clone());
    leaf(a).is_some() && leaf(a) == leaf(b)
}

fn tls_problem(
    probe: &TargetFacts,
    m: &Measurement,
    t: &TlsFacts,
    control: Option<&TargetFacts>,
    context: &Context,
) -> Option<Problem> {
    let e = t.error.as_ref()?;
    let (name, address) = (&t.server_name, t.address);
    if e.failed_operation == Operation::Connect {
        return (!left_out(probe, context, address, e))
            .then(|| connect_problem(probe, m, address, e, control, context));
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
        let problem = Problem::strong(finding, control.map(|c| handshake_at(c, t, true)));
        let why = explain::dates_only(t, m.measured_at, control).or_else(|| {
            explain::intercepted_like_the_canary(t, context.canary_intercepted.as_ref())
        });
        return Some(problem.unless(why));
    }
    if let Some(problem) = hello::fingerprint(probe, m, t) {
        return Some(problem);
    }
    // The handshake is recorded from when its name was sent.
    let contrast =
        name_singled_out(probe, address, m.measured_at).map(|c| format!("{c}{}", hello::dpi(t)));
    let reset_instead = hello::reset_instead(t).filter(|_| e.failure == Failure::GenericTimeout);
    let (blocking, strong) = match (&e.failure, &contrast, &reset_instead) {
        (f, Some(_), _) if f.is_reset_or_eof() => (Blocking::TlsReset, true),
        (Failure::GenericTimeout, Some(_), Some(_)) => (Blocking::TlsReset, true),
        (Failure::GenericTimeout, Some(_), None) => (Blocking::TlsTimeout, true),
        _ => (Blocking::TlsFailure, false),
    };
    let contrast = contrast.map(|c| format!("{c}{}", reset_instead.unwrap_or_default()));
    let evidence = format!(
        "TLS handshake with {name} to {address} failed ({}){}",
        e.failure,
        contrast.map_or(String::new(), |c| format!(" {c}"))
    );
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
    let tries = explain::tries_like(e, t.tries, t.first_failure.as_ref());
    let why = explain::step_tried(&what, e, t.check.as_ref(), tries, &[])
        .or_else(|| explain::silent_after_trigger(probe, m, address, e, m.measured_at))
        .or_else(|| slow_path(probe, address, m.measured_at, e, context))
        .or_else(|| explain::like_the_canary(&what, address, e, &context.canary_failed));
    Some(problem.unless(why))
}

/// Why a handshake with a target's name that timed out at `address` (sent at `sent`)
/// is no sign: the control name's right after it there finished, but took half the
/// deadline or more (a saturated link, a congested path), so that the name's could
/// have run out of time just as well. A censor that drops the name's handshake leaves
/// the control name's as quick as ever.
pub fn slow_path(
    probe: &TargetFacts,
    address: SocketAddr,
    sent: DateTime<Utc>,
    e: &StepError,
    context: &Context,
) -> Option<String> {
    if e.failed_operation != Operation::TlsHandshake || !e.failure.is_timeout() {
        return None;
    }
    let deadline = context.deadline?.as_secs_f64() * 1000.0;
    let after = control_around(probe, address, sent).1?;
    let took = after.handshake_ms.filter(|ms| *ms >= deadline / 2.0)?;
    Some(format!(
        "the TLS handshake with the control name {} to the same address right after took {took:.0} ms, half the deadline of {deadline:.0} ms or more: the path was slow for any name then, and the name's handshake could have run out of time as well",
        after.server_name
    ))
}

/// Whether a handshake with a target's name to `address`, sent at `sent`, failed for
/// its name, from the control-SNI handshakes to the same address around it: the one
/// made before (once per address in the run) and the one made right after the failure.
/// It did when the address answered the control name before, and after the failure
/// either answered it again or stopped answering at all (the residual block a forbidden
/// name sets off); not when the control name then failed once connected too (a server
/// that stopped doing TLS with anyone), nor without an answer before. Gives how the
/// control name fared, for the evidence.
pub fn name_singled_out(
    probe: &TargetFacts,
    address: SocketAddr,
    sent: DateTime<Utc>,
) -> Option<String> {
    let (before, after) = control_around(probe, address, sent);
    let before = before.filter(|t| t.server_answered())?;
    let name = &before.server_name;
    match after.map(|t| (t.server_answered(), t.error.as_ref())) {
        None => Some(format!(
            "while a handshake with the control name {name} to the same address succeeded"
        )),
        Some((true, _)) => Some(format!(
            "while handshakes with the control name {name} to the same address succeeded before and right after"
        )),
        Some((false, Some(e))) if !e.local && e.failed_operation == Operation::Connect => {
            Some(format!(
                "while a handshake with the control name {name} to the same address succeeded before, and right after the address did not take a connection at all ({}), as a residual block set off by the name does",
                e.failure
            ))
        }
        Some(_) => None,
    }
}

/// The control-SNI handshakes to `address` around a handshake with a target's name sent
/// at `sent`: the last one before (once per address in the run), and the first after.
pub fn control_around(
    probe: &TargetFacts,
    address: SocketAddr,
    sent: DateTime<Utc>,
) -> (Option<&TlsFacts>, Option<&TlsFacts>) {
    let around = probe.measurements.iter().filter_map(|m| match &m.step {
        Step::TlsHandshake(t) if t.control_sni && t.address == address => Some((m, t)),
        _ => None,
    });
    let (mut before, mut after) = (None, None);
    for (m, t) in around {
        match m.measured_at <= sent {
            true => before = Some(t),
            false => after = after.or(Some(t)),
        }
    }
    (before, after)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Blocking, Control, Verdict};
    use crate::facts::Reply;
    use crate::facts::failure::Failure;

    /// The endpoint, went dark after the first bytes at the probe.
    fn dark() -> Vec<crate::facts::Measurement> {
        vec![first_bytes(
            DC_443,
            Reply::Silent,
            Some(Failure::GenericTimeout),
        )]
    }

    /// The control connected again after the same bytes (the server closed on them).
    fn took_them() -> (
        Vec<crate::facts::Measurement>,
        Vec<crate::facts::Measurement>,
    ) {
        (vec![], vec![first_bytes(DC_443, Reply::Closed, None)])
    }

    #[test]
    fn dark_after_the_first_bytes_where_the_control_connected_again_is_protocol_filtering() {
        let filtered = compare(endpoint(), (vec![], dark()), took_them());
        assert_eq!(
            kind(&filtered),
            (Verdict::Blocked, Some(Blocking::ProtocolFiltered)),
            "{}",
            filtered.verdict.evidence
        );
        let said = &filtered.verdict.evidence;
        assert!(
            said.contains("neither TLS nor HTTP") && said.contains("again after the same bytes"),
            "{said}"
        );
        // Dark from the start: a blackhole, as before.
        let blackhole = compare(
            endpoint(),
            (vec![], vec![tcp(DC_443, Some(Failure::GenericTimeout))]),
            took_them(),
        );
        assert_eq!(
            kind(&blackhole),
            (Verdict::Blocked, Some(Blocking::TcpBlackhole))
        );
        // A control that did not make the probe (an older one): nothing to compare.
        let unmeasured = compare(
            endpoint(),
            (vec![], dark()),
            (vec![], vec![tcp(DC_443, None)]),
        );
        assert_eq!(kind(&unmeasured), (Verdict::Inconclusive, None));
    }

    #[test]
    fn without_a_control_it_is_a_sign_only() {
        let alone = judge(endpoint(), vec![], dark());
        assert_eq!(
            kind(&alone),
            (Verdict::Anomaly, Some(Blocking::ProtocolFiltered))
        );
        let unavailable = judge_with(
            &facts(&endpoint(), vec![], dark()),
            Control::Unavailable("refused"),
        );
        assert_eq!(kind(&unavailable), (Verdict::Inconclusive, None));
    }

    #[test]
    fn the_probes_own_network_down_after_the_bytes_is_inconclusive() {
        let lost = reconnect_checked(dark().remove(0), Some(Failure::GenericTimeout));
        let own = compare(endpoint(), (vec![], vec![lost]), took_them());
        assert_eq!(kind(&own), (Verdict::Inconclusive, None));
        assert!(
            own.verdict.evidence.contains("the probe's own network"),
            "{}",
            own.verdict.evidence
        );
        // The canary answered right after: the endpoint, not the link.
        let answered = reconnect_checked(dark().remove(0), None);
        let filtered = compare(endpoint(), (vec![], vec![answered]), took_them());
        assert_eq!(
            kind(&filtered),
            (Verdict::Blocked, Some(Blocking::ProtocolFiltered))
        );
    }

    #[test]
    fn a_server_that_closes_on_the_bytes_and_takes_the_next_connection_is_ok() {
        for reply in [Reply::Closed, Reply::Reset, Reply::Answered, Reply::Silent] {
            let fine = compare(
                endpoint(),
                (vec![], vec![first_bytes(DC_443, reply, None)]),
                took_them(),
            );
            assert_eq!(kind(&fine), (Verdict::Ok, None), "{reply:?}");
        }
        // A server that shuns such bytes, at both: no problem of the path's.
        let shunned = || {
            vec![first_bytes(
                DC_443,
                Reply::Closed,
                Some(Failure::GenericTimeout),
            )]
        };
        let both = compare(endpoint(), (vec![], shunned()), (vec![], shunned()));
        assert_eq!(
            kind(&both),
            (Verdict::Ok, None),
            "{}",
            both.verdict.evidence
        );
        // Refused right after: the server's answer, not a path gone dark.
        let refused = compare(
            endpoint(),
            (
                vec![],
                vec![first_bytes(
                    DC_443,
                    Reply::Closed,
                    Some(Failure::ConnectionRefused),
                )],
            ),
            took_them(),
        );
        assert_eq!(kind(&refused), (Verdict::Ok, None));
    }

    /// The first bytes that darkened an address are a trigger: another target's failure
    /// there after them is their echo, not evidence; and a neighbour's trigger between
    /// the connect and the reconnect explains the reconnect's failure.
    #[test]
    fn first_bytes_that_darkened_an_address_explain_its_neighbours_failures() {
        let mut probe = at(
            first_bytes(FB_443, Reply::Silent, Some(Failure::GenericTimeout)),
            -10,
        );
        probe.target = DC_443.into();
        let triggers = crate::facts::Trigger::of(&probe);
        assert_eq!(triggers.len(), 1);
        assert_eq!(triggers[0].sent, crate::facts::Sent::FirstBytes);
        let dns = || vec![lookup(&[(FB, None)])];
        let mut ours = facts(&domain(&[]), dns(), vec![timed_out_connect()]);
        ours.triggers = triggers.clone();
        let theirs = facts(&domain(&[]), dns(), vec![tcp(FB_443, None)]).into_control();
        let echo = judge_with(&ours, Control::Measured(&theirs));
        assert_eq!(kind(&echo), (Verdict::Inconclusive, None));
        assert!(
            echo.verdict.evidence.contains("neither TLS nor HTTP"),
            "{}",
            echo.verdict.evidence
        );
        // The other way round: a name's trigger after the connect, before the reconnect.
        let mut neighbour = triggers[0].clone();
        neighbour.sent = crate::facts::Sent::Name("forbidden.test".into());
        neighbour.target = "forbidden.test".into();
        neighbour.address = DC_443.parse().unwrap();
        neighbour.at = chrono::Utc::now() - chrono::TimeDelta::seconds(5);
        let mut endpoint_facts = facts(&endpoint(), vec![], vec![at(dark().remove(0), -20)]);
        endpoint_facts.triggers = vec![neighbour];
        let theirs = facts(&endpoint(), vec![], took_them().1).into_control();
        let echo = judge_with(&endpoint_facts, Control::Measured(&theirs));
        assert_eq!(
            kind(&echo),
            (Verdict::Inconclusive, None),
            "{}",
            echo.verdict.evidence
        );
    }
}
