//! QUIC, judged against TCP+TLS to the same address.
//!
//! A QUIC handshake says something only where a TCP+TLS handshake with the same name
//! to the same address was answered: many sites do not speak QUIC at all, and a failure
//! of TCP+TLS is judged in `transport` already. Then, at each address:
//!
//! - The name's QUIC handshake got no answer while the control name's to the same
//!   address was answered: QUIC filtered by name (the Initial packet's keys come from
//!   its own header, so a censor can read the SNI in it). Proven at the probe; `blocked`
//!   where the control's QUIC handshake with the name went through.
//! - The control name got no answer either (the name is then not tried): UDP to the
//!   address dropped, or an address that does not speak QUIC. Only the control can tell
//!   them apart, so this is `blocked` where the control's QUIC handshakes to the same
//!   address were answered, and no finding otherwise. And only where the probe's QUIC
//!   was seen to work (it reached the canary over every address family, or this target
//!   at another address of the same family): many networks drop all QUIC (an office
//!   firewall, an ISP in a shutdown) or all of one family's (a tunnel whose small MTU
//!   drops QUIC's large first packets), and that is no block of this address; it is
//!   `inconclusive` then.
//!
//! What the probe's own network or another target's trigger accounts for is
//! `inconclusive`, as everywhere (see `explain`).

use std::net::SocketAddr;

use super::{Blocking, Context, ControlSaw, Finding, Problem, explain};
use crate::facts::{Measurement, QuicFacts, Step, TargetFacts, TlsFacts};

pub fn problems(
    probe: &TargetFacts,
    control: Option<&TargetFacts>,
    context: &Context,
) -> Vec<Problem> {
    // Each address once, in the order it was measured.
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for (_, q) in quic(probe) {
        if !addresses.contains(&q.handshake.address) {
            addresses.push(q.handshake.address);
        }
    }
    addresses
        .into_iter()
        .filter_map(|address| quic_problem(probe, address, control, context))
        .collect()
}

/// Whether a QUIC handshake of these facts to an address of the family of `address`
/// was answered: the probe's QUIC works over it.
fn reached(facts: &TargetFacts, address: SocketAddr) -> bool {
    quic(facts).any(|(_, q)| {
        q.handshake.address.is_ipv6() == address.is_ipv6() && q.handshake.server_answered()
    })
}

/// What the canary's QUIC handshakes got (see `Context::quic`): None where it made none;
/// an answer only where one came over every address family that TCP+TLS reached it by.
/// A network may drop one family's large datagrams alone (a tunnel with a small MTU),
/// and QUIC's first packets are large.
pub fn canary(facts: &TargetFacts) -> Option<bool> {
    quic(facts).next()?;
    let dark_family = quic(facts).any(|(_, q)| {
        let address = q.handshake.address;
        tls_answered(facts, address).is_some() && !reached(facts, address)
    });
    Some(!dark_family && quic(facts).any(|(_, q)| q.handshake.server_answered()))
}

/// The QUIC handshakes among the facts, with their measurements.
fn quic(facts: &TargetFacts) -> impl Iterator<Item = (&Measurement, &QuicFacts)> {
    facts.measurements.iter().filter_map(|m| match &m.step {
        Step::QuicHandshake(q) => Some((m, q)),
        _ => None,
    })
}

/// A TCP+TLS handshake with a target's name to `address` that the server answered.
fn tls_answered(facts: &TargetFacts, address: SocketAddr) -> Option<&TlsFacts> {
    facts
        .tcp_tls()
        .filter(|t| !t.control_sni && t.address == address)
        .find(|t| t.server_answered())
}

/// The QUIC problem at `address`, if any: only a handshake from which not one datagram
/// came back counts (see [`QuicFacts::dark`]); one that got some and failed met loss or
/// a server that stopped half-way, not a path that drops QUIC.
fn quic_problem(
    probe: &TargetFacts,
    address: SocketAddr,
    control: Option<&TargetFacts>,
    context: &Context,
) -> Option<Problem> {
    let tls = tls_answered(probe, address)?;
    let at = |control_sni: bool| {
        quic(probe)
            .find(|(_, q)| q.handshake.address == address && q.handshake.control_sni == control_sni)
    };
    let (named, control_name) = (at(false), at(true));
    let name = &tls.server_name;
    let answered = |q: &QuicFacts| q.handshake.server_answered();
    // The control name's handshake right after the name's: answered, the name was
    // singled out; dark too, the path went dark (the probe's own router out of room for
    // flows, say), which says nothing of the name.
    let after = named.and_then(|(m, _)| {
        quic(probe).find(|(a, q)| {
            q.handshake.address == address
                && q.handshake.control_sni
                && a.measured_at > m.measured_at
        })
    });
    let singled_out = after.is_some_and(|(_, q)| answered(q));
    // By name: the name's handshake dark between the control name's answered ones,
    // proven at the probe. By address: the control name's dark (the name's, without one).
    let ((m, failed), by_name) = match (named, control_name) {
        (Some((_, q)), _) if !q.dark() => return None,
        (Some(_), Some(_)) if !singled_out => return None,
        (Some(named), Some((_, c))) if answered(c) => (named, Some(c)),
        (Some(named), None) => (named, None),
        (_, Some(control_name)) if control_name.1.dark() => (control_name, None),
        _ => return None,
    };
    let by = match by_name {
        Some(c) => format!(
            "while ones with the control name {} to the same address were answered before and right after: QUIC blocked by name",
            c.handshake.server_name
        ),
        None => "QUIC blocked by address".to_string(),
    };
    let e = failed.handshake.error.as_ref()?;
    let saw = control.map(|c| quic_at(c, name, address, by_name.is_some()));
    // UDP to the address dropped and an address that does not speak QUIC look the same
    // from the probe: only the control's answer there makes it a finding, and where the
    // control could not try (its own machine failed, it measured no QUIC there) nothing
    // can be said either way. Without the control's facts, or with the control dark there
    // too, it is no finding.
    let speaks_or_unknown = matches!(
        saw,
        Some(ControlSaw::Success(_) | ControlSaw::NotMeasured(_))
    );
    if by_name.is_none() && !speaks_or_unknown {
        return None;
    }
    let finding = Finding::new(
        Blocking::QuicBlocked,
        format!(
            "QUIC handshake with {} to {address} failed ({}){} and not one datagram came back, while TCP+TLS with {name} to the same address was answered; {by}",
            failed.handshake.server_name,
            e.failure,
            tries(&failed.handshake),
        ),
    );
    let problem = match by_name {
        Some(_) => Problem::strong(finding, saw),
        None => Problem::weak(finding, saw),
    };
    let what = format!(
        "QUIC handshake with {} to {address}",
        failed.handshake.server_name
    );
    // Its tries span the whole step, as a connect's do (and the control name's sends no
    // name that could set a block off): a trigger any time before its end may explain it.
    let check = failed.handshake.check.as_ref();
    let why = explain::step_tried(&what, e, check, failed.handshake.tries, &[])
        .or_else(|| explain::silent_after_trigger(probe, m, address, e, m.ended_at()))
        .or_else(|| {
            let unseen =
                by_name.is_none() && context.quic != Some(true) && !reached(probe, address);
            let canary = match context.quic {
                Some(_) => {
                    "the probe's QUIC handshake to the canary got no answer either, over one address family at least"
                }
                None => "the probe's QUIC was not tried at the canary in this run",
            };
            unseen.then(|| format!(
                "{}; {canary}: a network that drops all QUIC cannot be told from a block of this address",
                problem.finding.evidence
            ))
        });
    Some(problem.unless(why))
}

fn failure(q: &TlsFacts) -> String {
    q.error
        .as_ref()
        .map_or("no error".into(), |e| e.failure.to_string())
}

fn tries(q: &TlsFacts) -> String {
    match q.tries {
        1 => String::new(),
        n => format!(" ({n} tries)"),
    }
}

/// What the control's QUIC handshakes to `address` gave: the one with `name` if it made
/// it, else the control name's (a QUIC answer from the address all the same). For a
/// block by name, the name's alone: a front end that answers QUIC for any name while
/// the site behind it is dark for everyone answers the control name too.
fn quic_at(control: &TargetFacts, name: &str, address: SocketAddr, by_name: bool) -> ControlSaw {
    let is_named = |q: &TlsFacts| !q.control_sni && q.server_name == name;
    let theirs: Vec<&TlsFacts> = quic(control)
        .map(|(_, q)| &q.handshake)
        .filter(|q| q.address == address && (!by_name || is_named(q)))
        .collect();
    let named = theirs.iter().find(|q| is_named(q));
    let answered = named
        .filter(|q| q.server_answered())
        .or(theirs.iter().find(|q| q.server_answered()));
    if let Some(q) = answered {
        return ControlSaw::Success(format!(
            "the control's QUIC handshake with {} to {address} was answered",
            q.server_name
        ));
    }
    match named.or(theirs.first()) {
        Some(q) if q.error.as_ref().is_some_and(|e| e.local) => ControlSaw::NotMeasured(
            explain::at_control(q.error.as_ref().expect("checked"), None).unwrap_or_default(),
        ),
        Some(q) => ControlSaw::Failure(format!(
            "the control's QUIC handshake with {} to {address} failed too ({})",
            q.server_name,
            failure(q)
        )),
        None if by_name => ControlSaw::NotMeasured(format!(
            "the control made no QUIC handshake with {name} to {address}"
        )),
        None => ControlSaw::NotMeasured(format!("the control made no QUIC handshake to {address}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Blocking, Context, Verdict};
    use crate::facts::failure::Failure;
    use crate::facts::{Burst, Meanwhile, Measurement, Step};

    const TIMEOUT: Option<Failure> = Some(Failure::GenericTimeout);

    fn dns() -> Vec<Measurement> {
        vec![lookup(&[(FB, None)])]
    }

    /// TCP+TLS to the address answered, then the QUIC handshakes given.
    fn reached_then(quic: Vec<Measurement>) -> Vec<Measurement> {
        let mut steps = vec![
            tcp(FB_443, None),
            tls(FB_443, true, None),
            tls(FB_443, false, None),
        ];
        steps.extend(quic);
        steps
    }

    /// The control name's QUIC handshake, the name's, and the control name's right after.
    fn around(name: Measurement, after: Measurement) -> Vec<Measurement> {
        reached_then(vec![quic(FB_443, true, None, 6), at(name, 1), at(after, 2)])
    }

    /// A control whose QUIC handshake with the name went through.
    fn control_answered() -> Vec<Measurement> {
        reached_then(vec![quic(FB_443, false, None, 6)])
    }

    /// The verdict of a domain target on these facts, with its evidence, in a run whose
    /// QUIC reached the canary.
    fn judged(
        probe: Vec<Measurement>,
        control: Vec<Measurement>,
    ) -> ((Verdict, Option<Blocking>), String) {
        let works = Context {
            quic: Some(true),
            ..Context::default()
        };
        judged_in(&works, probe, control)
    }

    fn judged_in(
        context: &Context,
        probe: Vec<Measurement>,
        control: Vec<Measurement>,
    ) -> ((Verdict, Option<Blocking>), String) {
        let o = compare_in(context, domain(&[]), (dns(), probe), (dns(), control));
        (kind(&o), o.verdict.evidence)
    }

    const OK: (Verdict, Option<Blocking>) = (Verdict::Ok, None);
    const INCONCLUSIVE: (Verdict, Option<Blocking>) = (Verdict::Inconclusive, None);
    const BLOCKED: (Verdict, Option<Blocking>) = (Verdict::Blocked, Some(Blocking::QuicBlocked));

    #[test]
    fn the_name_dark_where_the_control_name_was_answered_is_blocked_by_name() {
        let probe = around(quic(FB_443, false, TIMEOUT, 0), quic(FB_443, true, None, 6));
        let (verdict, evidence) = judged(probe.clone(), control_answered());
        assert_eq!(verdict, BLOCKED, "{evidence}");
        assert!(evidence.contains("by name"), "{evidence}");
        // The control's handshake with the name dark too, though its control name's was
        // answered (a front end answering QUIC for any name, the site behind it dark):
        // no block.
        let front_end = reached_then(vec![
            quic(FB_443, true, None, 6),
            quic(FB_443, false, TIMEOUT, 0),
        ]);
        let (verdict, evidence) = judged(probe.clone(), front_end);
        assert_eq!(verdict, OK, "{evidence}");
        // Without a control, a sign.
        let alone = judge(domain(&[]), dns(), probe);
        assert_eq!(
            kind(&alone),
            (Verdict::Anomaly, Some(Blocking::QuicBlocked))
        );
    }

    #[test]
    fn an_address_dark_to_quic_is_blocked_only_where_the_control_got_an_answer() {
        let probe = reached_then(vec![quic(FB_443, true, TIMEOUT, 0)]);
        let (verdict, evidence) = judged(probe.clone(), control_answered());
        assert_eq!(verdict, BLOCKED, "{evidence}");
        assert!(evidence.contains("by address"), "{evidence}");
        // A site that speaks no QUIC, from anywhere: nothing to say.
        let dark_too = reached_then(vec![quic(FB_443, true, TIMEOUT, 0)]);
        let (verdict, evidence) = judged(probe.clone(), dark_too);
        assert_eq!(verdict, OK, "{evidence}");
        assert_eq!(kind(&judge(domain(&[]), dns(), probe)), OK);
    }

    /// A network that drops all QUIC (the canary's too) darkens every address alike:
    /// that is no block of this one. The name singled out is, whatever the canary says;
    /// and the target's QUIC answered at another of its addresses shows QUIC works.
    #[test]
    fn an_address_dark_where_the_probes_quic_reached_no_one_is_inconclusive() {
        let unseen = Context::default();
        let dark = || quic(FB_443, true, TIMEOUT, 0);
        let (verdict, evidence) =
            judged_in(&unseen, reached_then(vec![dark()]), control_answered());
        assert_eq!(verdict, INCONCLUSIVE, "{evidence}");
        assert!(
            evidence.contains("QUIC blocked by address")
                && evidence.contains("not tried at the canary"),
            "{evidence}"
        );
        // The canary's QUIC dark too: said so.
        let dark_there = Context {
            quic: Some(false),
            ..Context::default()
        };
        let (verdict, evidence) =
            judged_in(&dark_there, reached_then(vec![dark()]), control_answered());
        assert_eq!(verdict, INCONCLUSIVE, "{evidence}");
        assert!(
            evidence.contains("QUIC handshake to the canary got no answer either"),
            "{evidence}"
        );
        let by_name = around(quic(FB_443, false, TIMEOUT, 0), quic(FB_443, true, None, 6));
        let (verdict, evidence) = judged_in(&unseen, by_name, control_answered());
        assert_eq!(verdict, BLOCKED, "{evidence}");
        let mut elsewhere = reached_then(vec![dark()]);
        let mut answered = quic(FB_443, true, None, 6);
        if let Step::QuicHandshake(q) = &mut answered.step {
            q.handshake.address = "157.240.1.36:443".parse().unwrap();
        }
        elsewhere.push(answered);
        let (verdict, evidence) = judged_in(&unseen, elsewhere, control_answered());
        assert_eq!(verdict, BLOCKED, "{evidence}");
    }

    #[test]
    fn the_name_dark_and_the_control_name_dark_right_after_is_no_finding() {
        // The probe's router out of room for new flows, say: not the name.
        let probe = around(
            quic(FB_443, false, TIMEOUT, 0),
            quic(FB_443, true, TIMEOUT, 0),
        );
        let (verdict, evidence) = judged(probe, control_answered());
        assert_eq!(verdict, OK, "{evidence}");
    }

    #[test]
    fn an_address_dark_where_the_control_could_not_try_quic_is_inconclusive() {
        let probe = reached_then(vec![quic(FB_443, true, TIMEOUT, 0)]);
        // The control reached the site but made no QUIC handshake there.
        let (verdict, evidence) = judged(probe.clone(), reached_then(vec![]));
        assert_eq!(verdict, INCONCLUSIVE, "{evidence}");
        assert!(evidence.contains("made no QUIC handshake"), "{evidence}");
        // Its own machine out of descriptors.
        let mut starved = quic(FB_443, false, Some(Failure::TooManyOpenFiles), 0);
        if let Step::QuicHandshake(q) = &mut starved.step {
            q.handshake.error.as_mut().unwrap().local = true;
        }
        let (verdict, evidence) = judged(probe, reached_then(vec![starved]));
        assert_eq!(verdict, INCONCLUSIVE, "{evidence}");
    }

    #[test]
    fn a_handshake_that_got_datagrams_back_is_loss_not_a_block() {
        let probe = reached_then(vec![
            quic(FB_443, true, None, 6),
            quic(FB_443, false, TIMEOUT, 3),
        ]);
        let (verdict, evidence) = judged(probe, control_answered());
        assert_eq!(verdict, OK, "{evidence}");
    }

    #[test]
    fn the_probes_own_network_down_is_inconclusive() {
        let dark = checked(quic(FB_443, true, TIMEOUT, 0), TIMEOUT);
        let (verdict, evidence) = judged(reached_then(vec![dark]), control_answered());
        assert_eq!(verdict, INCONCLUSIVE, "{evidence}");
        assert!(evidence.contains("the probe's own network"), "{evidence}");
    }

    /// A link down for a few seconds through both tries of the name's handshake, and back
    /// for the control name's right after and for the check: a pulse of the link made as
    /// the handshake was tried again found it down.
    #[test]
    fn the_name_dark_while_a_pulse_found_the_link_down_is_inconclusive() {
        let pulsed = |answered| {
            let mut name = checked(quic(FB_443, false, TIMEOUT, 0), None);
            if let Step::QuicHandshake(q) = &mut name.step {
                q.handshake.check.as_mut().unwrap().during = Some(Burst { made: 6, answered });
            }
            judged(
                around(name, quic(FB_443, true, None, 6)),
                control_answered(),
            )
        };
        let (verdict, evidence) = pulsed(0);
        assert_eq!(verdict, INCONCLUSIVE, "{evidence}");
        assert!(
            evidence.contains("while the probe's link was down"),
            "{evidence}"
        );
        let (verdict, evidence) = pulsed(1);
        assert_eq!(verdict, BLOCKED, "{evidence}");
    }

    /// A path that loses most of QUIC's datagrams (a policer, a firewall's UDP table)
    /// leaves a handshake dark at both its tries now and then, between the control
    /// name's answered ones: the run's other QUIC handshakes, and those made at once to
    /// the canary right after, needing more than one try as often tell it from a censor's
    /// drop of the name, which leaves the others answered at once.
    #[test]
    fn the_name_dark_on_a_path_losing_quic_is_inconclusive() {
        let lossy = |meanwhile: Meanwhile, burst: Burst| {
            let mut name = checked(quic(FB_443, false, TIMEOUT, 0), None);
            if let Step::QuicHandshake(q) = &mut name.step {
                q.handshake.tries = 2;
                let check = q.handshake.check.as_mut().unwrap();
                (check.meanwhile, check.quic) = (Some(meanwhile), Some(burst));
            }
            judged(
                around(name, quic(FB_443, true, None, 6)),
                control_answered(),
            )
        };
        let counts = |answered, tries| Meanwhile {
            answered,
            tries,
            packets: 0,
        };
        // Four handshakes answered in seven tries, three of the canary's six unanswered.
        let (verdict, evidence) = lossy(
            counts(4, 7),
            Burst {
                made: 6,
                answered: 3,
            },
        );
        assert_eq!(verdict, INCONCLUSIVE, "{evidence}");
        assert!(evidence.contains("losing QUIC's datagrams"), "{evidence}");
        // One of the canary's six lost, the others answered at once: a lossy link's
        // now and then, no sign that two tries of one handshake went dark by chance.
        // Nor where none of the canary's six was answered (no QUIC at that port of its).
        for (meanwhile, burst) in [
            (
                counts(10, 10),
                Burst {
                    made: 6,
                    answered: 5,
                },
            ),
            (
                counts(4, 4),
                Burst {
                    made: 6,
                    answered: 6,
                },
            ),
            (
                counts(4, 4),
                Burst {
                    made: 6,
                    answered: 0,
                },
            ),
        ] {
            let (verdict, evidence) = lossy(meanwhile, burst);
            assert_eq!(verdict, BLOCKED, "{meanwhile:?} {burst:?}: {evidence}");
        }
    }

    #[test]
    fn quic_is_not_judged_where_tcp_and_tls_failed_too() {
        let probe = vec![
            tcp(FB_443, None),
            tls(FB_443, true, None),
            tls(FB_443, false, Some(Failure::ConnectionReset)),
            quic(FB_443, true, TIMEOUT, 0),
        ];
        let target = domain(&[]);
        let ours = facts(&target, dns(), probe);
        let theirs = facts(&target, dns(), control_answered());
        let works = Context {
            quic: Some(true),
            ..Context::default()
        };
        assert!(super::problems(&ours, Some(&theirs), &works).is_empty());
    }

    /// The canary's QUIC answered over IPv6 and went dark over IPv4, where TCP+TLS
    /// reached it (a tunnel dropping large IPv4 datagrams): QUIC is not seen to work.
    #[test]
    fn the_canarys_quic_works_only_where_it_works_over_every_family() {
        let (v4, v6) = ("198.18.0.10:443", "[2001:db8::10]:443");
        let canary = |v4_datagrams| {
            let steps = vec![
                tls(v4, false, None),
                tls(v6, false, None),
                quic(
                    v4,
                    false,
                    (v4_datagrams == 0).then_some(Failure::GenericTimeout),
                    v4_datagrams,
                ),
                quic(v6, false, None, 3),
            ];
            super::canary(&facts(&domain(&[]), dns(), steps))
        };
        assert_eq!(canary(0), Some(false));
        assert_eq!(canary(3), Some(true));
        // No IPv6 route: the family TCP+TLS did not reach is not asked of QUIC.
        let without_v6 = vec![
            tls(v4, false, None),
            tls(v6, false, Some(Failure::NetworkUnreachable)),
            quic(v4, false, None, 3),
        ];
        assert_eq!(
            super::canary(&facts(&domain(&[]), dns(), without_v6)),
            Some(true)
        );
    }
}
