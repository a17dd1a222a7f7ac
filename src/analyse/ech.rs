//! ECH: handshakes that offered ECH failed where the same without it, with the same
//! name to the same address, went through (see `facts::EchFacts` for what was made).
//!
//! `ech-blocked` needs the pattern whole: every handshake with ECH (two at least, one
//! per round) reset or silent after connecting, and every one without it, the target's
//! own and those of the comparison, through. Loss fails one handshake now and then,
//! whichever it is, and never that pattern but by a rare chance; a block of the whole
//! address (a residual one, the path failing) fails those without ECH too. Those are
//! `inconclusive` when every handshake with ECH failed (the ECH hello may have set off
//! the block, or not); a handshake with ECH that went through says it passes. A server
//! that refused ECH with a TLS alert answered, and that is no block; a server on TLS 1.2
//! is never compared (`measure::ech`).
//!
//! The site itself is reachable without ECH, but a browser that offers ECH (Chrome and
//! Firefox offer real ECH where the name publishes a configuration, Chrome GREASE ECH
//! by default elsewhere) fails to reach it: `blocked` where the control's handshake with ECH
//! to the same address went through, as any step the control passed; a sign
//! (`anomaly`) where the control could not say, the probe's pairing singling ECH out by
//! itself.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};

use super::{Blocking, Context, ControlSaw, Finding, Problem, explain};
use crate::facts::failure::Operation;
use crate::facts::{EchFacts, EchHandshake, EchOffer, Step, TargetFacts};

/// The problems of the target's ECH comparisons.
pub fn problems(
    probe: &TargetFacts,
    control: Option<&TargetFacts>,
    context: &Context,
) -> Vec<Problem> {
    let answers = explain::answers(&probe.measurements);
    probe
        .measurements
        .iter()
        .filter_map(|m| match &m.step {
            Step::Ech(f) => ech_problem(f, control).map(|p| {
                let why =
                    residual(probe, &m.target, f, &answers).or_else(|| like_the_canary(f, context));
                p.unless(why)
            }),
            _ => None,
        })
        .collect()
}

/// Whether the canary's comparison showed the whole pattern of a block of ECH: its
/// handshakes offering ECH torn down every time, at least twice, and those without it
/// through, with no residual block to account for it (a loss, or a path failing for
/// every handshake, must not excuse every target's block for the run).
pub fn canary(canary: &TargetFacts) -> bool {
    let answers = explain::answers(&canary.measurements);
    canary.measurements.iter().any(|m| match &m.step {
        Step::Ech(f) => {
            ech_problem(f, None).is_some_and(|p| p.explained.is_none())
                && residual(canary, &m.target, f, &answers).is_none()
        }
        _ => false,
    })
}

/// Why ECH torn down at the target is no block of it: the canary's was too. A network
/// that blocks every ECH hello (a censor's, or a firewall of the probe's own network)
/// cannot be told from a block of this target's, as one that drops all QUIC cannot.
fn like_the_canary(f: &EchFacts, context: &Context) -> Option<String> {
    context.canary_ech_torn_down.then(|| {
        format!(
            "the canary's handshakes offering ECH were torn down too, where those without it went through: a network that blocks every ECH hello (a censor's, or a firewall of the probe's own) cannot be told from a block of {}",
            f.server_name
        )
    })
}

/// A residual block that another target set off on the address before a handshake of
/// the comparison without ECH went unanswered: it fails those with ECH and without
/// alike, and says nothing of ECH. Only those without ECH are looked at: another
/// target's failed ECH handshake with the same name (a URL's, a domain's) is a trigger
/// on the address too, and the block of ECH it shows, which spares the plain handshakes,
/// is no residual. Unanswered is silent after connecting, or no connection at all (a
/// residual block drops everything); a reset answers.
fn residual(
    probe: &TargetFacts,
    target: &str,
    f: &EchFacts,
    answers: &[(SocketAddr, DateTime<Utc>)],
) -> Option<String> {
    let unanswered = |h: &&EchHandshake| {
        h.error.as_ref().is_some_and(|e| {
            !e.local && (e.failed_operation == Operation::Connect || e.failure.is_timeout())
        })
    };
    f.with(EchOffer::None).filter(unanswered).find_map(|h| {
        let ended = h.ended_at();
        explain::residual(f.address, ended, ended, target, &probe.triggers, answers)
    })
}

fn comparisons(facts: &TargetFacts) -> impl Iterator<Item = &EchFacts> {
    facts.measurements.iter().filter_map(|m| match &m.step {
        Step::Ech(f) => Some(f),
        _ => None,
    })
}

/// The comparison's problem: every handshake with ECH that reached the server torn down
/// (see `EchHandshake::torn_down`), and those without it through or not.
pub fn ech_problem(f: &EchFacts, control: Option<&TargetFacts>) -> Option<Problem> {
    if !f.ech_torn_down() {
        return None;
    }
    let with: Vec<_> = f.with_ech_sent().collect();
    let without: Vec<_> = f.with(EchOffer::None).collect();
    let through = without.iter().filter(|h| h.handshake_done).count();
    let failure = with[0].error.as_ref().map(|e| e.failure.to_string());
    let evidence = format!(
        "TLS handshakes with {} to {} offering ECH (GREASE) failed {} of {} ({}), while the same without ECH went through {through} of {} in random order with them, after the target's own",
        f.server_name,
        f.address,
        with.len(),
        with.len(),
        failure.unwrap_or_default(),
        without.len(),
    );
    let finding = Finding::new(Blocking::EchBlocked, evidence);
    let why = if through < without.len() {
        Some(format!(
            "{}; a block of the whole address (which the ECH may have set off, or the path failing) cannot be told from one of ECH",
            finding.evidence
        ))
    } else if with.len() < 2 {
        Some(format!(
            "{}; once only, which loss can do",
            finding.evidence
        ))
    } else {
        None
    };
    let saw = control.map(|c| ech_at(c, f));
    Some(Problem::strong(finding, saw).unless(why))
}

/// Whether the control's facts hold a comparison with `f`'s name that the analysis can
/// read (at the same address first, else at any; not one that reached no server, nor
/// one its own machine failed): where they do not, the probe asks the control for one.
pub fn control_compared(control: &TargetFacts, f: &EchFacts) -> bool {
    matches!(
        ech_at(control, f),
        ControlSaw::Success(_) | ControlSaw::Failure(_)
    )
}

/// What the control's comparison with the same name gave: at the same address, else at
/// any (a CDN hands out different ones); one that reached no server says nothing.
fn ech_at(control: &TargetFacts, f: &EchFacts) -> ControlSaw {
    let same_name = || {
        comparisons(control)
            .filter(|c| c.server_name.eq_ignore_ascii_case(&f.server_name) && c.reached())
    };
    let Some(theirs) = same_name()
        .find(|c| c.address == f.address)
        .or_else(|| same_name().next())
    else {
        return ControlSaw::NotMeasured(format!(
            "the control made no handshake offering ECH with {}",
            f.server_name
        ));
    };
    if theirs.with_ech_sent().any(|h| h.handshake_done) {
        return ControlSaw::Success(format!(
            "the control's handshake with {} to {} offering ECH went through",
            theirs.server_name, theirs.address
        ));
    }
    match theirs.with_ech_sent().find_map(|h| h.error.as_ref()) {
        Some(e) if e.local => {
            ControlSaw::NotMeasured(explain::at_control(e, None).unwrap_or_default())
        }
        Some(e) => ControlSaw::Failure(format!(
            "the control's handshake with {} to {} offering ECH failed too ({})",
            theirs.server_name, theirs.address, e.failure
        )),
        None => ControlSaw::NotMeasured(format!(
            "the control made no handshake offering ECH with {}",
            f.server_name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::{Blocking, Outcome, Verdict};
    use super::{EchHandshake, EchOffer, Step, control_compared};
    use crate::facts::EchOffer::{Grease, None as Plain};
    use crate::facts::Measurement;
    use crate::facts::failure::{Failure, Operation, StepError};

    fn reachable() -> Vec<Measurement> {
        vec![
            tcp(FB_443, None),
            tls(FB_443, true, None),
            tls(FB_443, false, None),
        ]
    }

    fn with_ech(handshakes: &[(EchOffer, Option<Failure>)]) -> Vec<Measurement> {
        [reachable(), vec![ech(FB_443, handshakes)]].concat()
    }

    /// The censor's pattern: both rounds, ECH failing, the plain one through.
    fn singled_out(failure: Failure) -> Vec<Measurement> {
        with_ech(&[
            (Plain, None),
            (Grease, Some(failure.clone())),
            (Grease, Some(failure)),
            (Plain, None),
        ])
    }

    fn passes() -> Vec<Measurement> {
        with_ech(&[(Grease, None), (Plain, None)])
    }

    fn dns() -> Vec<Measurement> {
        vec![lookup(&[(FB, None)])]
    }

    /// The handshakes of an ECH comparison, to make its failures other than a fixture's.
    fn handshakes(m: &mut Measurement) -> &mut Vec<EchHandshake> {
        match &mut m.step {
            Step::Ech(f) => &mut f.handshakes,
            _ => panic!("not an ECH comparison"),
        }
    }

    /// The control's comparison is read where its handshake offering ECH went through
    /// or was failed by the network; not where it reached nothing, nor where its own
    /// machine failed it (the first failure says which), nor without one offering ECH.
    #[test]
    fn the_control_compared_only_what_its_network_did() {
        let ours = ech(FB_443, &[(Grease, Some(Failure::ConnectionReset))]);
        let Step::Ech(ours) = &ours.step else {
            unreachable!()
        };
        let failing = |failures: &[(Operation, bool)]| {
            let mut m = ech(
                FB_443,
                &vec![(Grease, Some(Failure::GenericTimeout)); failures.len()],
            );
            for (h, (operation, local)) in handshakes(&mut m).iter_mut().zip(failures) {
                let error = h.error.as_mut().unwrap();
                error.failed_operation = *operation;
                error.local = *local;
            }
            m
        };
        let compared =
            |theirs: Measurement| control_compared(&facts(&domain(&[]), dns(), vec![theirs]), ours);
        let handshake = Operation::TlsHandshake;
        assert!(compared(ech(FB_443, &[(Grease, None)])));
        assert!(compared(failing(&[(handshake, false)])));
        assert!(!compared(failing(&[(Operation::Connect, false)])));
        assert!(!compared(failing(&[(handshake, true)])));
        assert!(!compared(failing(&[(handshake, true), (handshake, false)])));
        assert!(!compared(ech(FB_443, &[(Plain, None)])));
    }

    fn ech_blocked_saying(outcome: &Outcome, words: &[&str]) {
        let evidence = &outcome.verdict.evidence;
        assert_eq!(
            kind(outcome),
            (Verdict::Blocked, Some(Blocking::EchBlocked)),
            "{evidence}"
        );
        for said in words {
            assert!(evidence.contains(said), "{said:?} not in: {evidence}");
        }
    }

    #[test]
    fn ech_failing_every_time_where_the_plain_handshake_passes_is_blocked() {
        for failure in [Failure::GenericTimeout, Failure::ConnectionReset] {
            let outcome = compare(
                domain(&[]),
                (dns(), singled_out(failure)),
                (dns(), passes()),
            );
            ech_blocked_saying(
                &outcome,
                &["offering ECH (GREASE) failed 2 of 2", "went through 2 of 2"],
            );
        }
        // Without a control, a sign.
        let alone = judge(domain(&[]), dns(), singled_out(Failure::GenericTimeout));
        assert_eq!(kind(&alone), (Verdict::Anomaly, Some(Blocking::EchBlocked)));
        // The canary's ECH torn down as much (a network that blocks every ECH hello):
        // no block of this target's.
        let everywhere = canary_context(dns(), singled_out(Failure::ConnectionReset));
        assert!(everywhere.canary_ech_torn_down);
        let outcome = compare_in(
            &everywhere,
            domain(&[]),
            (dns(), singled_out(Failure::ConnectionReset)),
            (dns(), passes()),
        );
        inconclusive_saying(
            &outcome,
            &["the canary's handshakes offering ECH were torn down too"],
        );
        // Every handshake of the canary's torn down, those without ECH too (the path
        // failing): no sign of a network blocking ECH, and the block stands.
        let all_failed = canary_context(
            dns(),
            with_ech(&[
                (Plain, Some(Failure::ConnectionReset)),
                (Grease, Some(Failure::ConnectionReset)),
                (Grease, Some(Failure::ConnectionReset)),
                (Plain, Some(Failure::ConnectionReset)),
            ]),
        );
        assert!(!all_failed.canary_ech_torn_down);
        // Where the canary's ECH went through, the block stands.
        let spared = canary_context(dns(), passes());
        let outcome = compare_in(
            &spared,
            domain(&[]),
            (dns(), singled_out(Failure::ConnectionReset)),
            (dns(), passes()),
        );
        assert_eq!(
            kind(&outcome),
            (Verdict::Blocked, Some(Blocking::EchBlocked))
        );
    }

    /// A handshake offering ECH whose connect was turned down (a flaky path resets one
    /// now and then) never sent its ECH: it neither clears ECH nor counts against it.
    #[test]
    fn a_handshake_with_ech_that_reached_nothing_says_nothing_of_it() {
        let reached_nothing = |mut probe: Vec<Measurement>| {
            let comparison = handshakes(probe.last_mut().unwrap());
            let mut unsent = comparison[0].clone();
            unsent.ech = Grease;
            unsent.error = Some(StepError::new(Operation::Connect, Failure::ConnectionReset));
            comparison.push(unsent);
            compare(domain(&[]), (dns(), probe), (dns(), passes()))
        };
        let outcome = reached_nothing(singled_out(Failure::ConnectionReset));
        ech_blocked_saying(&outcome, &["offering ECH (GREASE) failed 2 of 2"]);
        let once = reached_nothing(with_ech(&[
            (Grease, Some(Failure::ConnectionReset)),
            (Plain, None),
        ]));
        assert_eq!(kind(&once), (Verdict::Inconclusive, None));
        assert!(
            once.verdict.evidence.contains("once only"),
            "{}",
            once.verdict.evidence
        );
    }

    /// The control could not connect to the probe's address (a CDN's node inside the
    /// probe's network): its comparison there says nothing, and one at an address of
    /// its own does.
    #[test]
    fn a_control_comparison_that_reached_nothing_is_passed_over() {
        let mut unreached = ech(
            FB_443,
            &[
                (Grease, Some(Failure::GenericTimeout)),
                (Plain, Some(Failure::GenericTimeout)),
            ],
        );
        for h in handshakes(&mut unreached) {
            h.error.as_mut().unwrap().failed_operation = Operation::Connect;
        }
        let elsewhere = ech("157.240.9.9:443", &[(Grease, None)]);
        let judged = |theirs: Vec<Measurement>| {
            compare(
                domain(&[]),
                (dns(), singled_out(Failure::ConnectionReset)),
                (dns(), [reachable(), theirs].concat()),
            )
        };
        let outcome = judged(vec![unreached.clone(), elsewhere]);
        ech_blocked_saying(&outcome, &["157.240.9.9:443 offering ECH went through"]);
        // Nothing else: the control could not say.
        let alone = judged(vec![unreached]);
        assert_eq!(kind(&alone), (Verdict::Anomaly, Some(Blocking::EchBlocked)));
    }

    #[test]
    fn ech_failing_at_the_control_too_is_the_servers() {
        let theirs = with_ech(&[(Plain, None), (Grease, Some(Failure::ConnectionReset))]);
        let outcome = compare(
            domain(&[]),
            (dns(), singled_out(Failure::ConnectionReset)),
            (dns(), theirs),
        );
        assert_eq!(
            kind(&outcome),
            (Verdict::Ok, None),
            "{}",
            outcome.verdict.evidence
        );
        assert!(outcome.verdict.evidence.contains("at both vantage points"));
    }

    #[test]
    fn loss_a_dead_address_and_a_refusing_server_are_never_ech_blocked() {
        let cases = [
            // Loss: ECH failed once, then went through.
            (
                vec![
                    (Grease, Some(Failure::GenericTimeout)),
                    (Plain, None),
                    (Plain, None),
                    (Grease, None),
                ],
                Verdict::Ok,
            ),
            // The plain one failed too: the address, or the path.
            (
                vec![
                    (Grease, Some(Failure::GenericTimeout)),
                    (Plain, Some(Failure::GenericTimeout)),
                ],
                Verdict::Inconclusive,
            ),
            // Failed in the second round only.
            (
                vec![
                    (Plain, None),
                    (Grease, Some(Failure::GenericTimeout)),
                    (Grease, Some(Failure::GenericTimeout)),
                    (Plain, Some(Failure::ConnectionReset)),
                ],
                Verdict::Inconclusive,
            ),
            // Once only (an older or partial record).
            (
                vec![(Plain, None), (Grease, Some(Failure::ConnectionReset))],
                Verdict::Inconclusive,
            ),
            // The server refused ECH with an alert: it answered.
            (
                vec![
                    (Plain, None),
                    (Grease, Some(Failure::SslFailedHandshake)),
                    (Grease, Some(Failure::SslFailedHandshake)),
                    (Plain, None),
                ],
                Verdict::Ok,
            ),
            // The probe's own machine.
            (
                vec![
                    (Plain, None),
                    (Grease, Some(Failure::unknown("too many open files"))),
                ],
                Verdict::Ok,
            ),
        ];
        for (handshakes, verdict) in cases {
            let ours = with_ech(&handshakes);
            let outcome = compare(domain(&[]), (dns(), ours), (dns(), passes()));
            assert_eq!(
                kind(&outcome),
                (verdict, None),
                "{handshakes:?}: {}",
                outcome.verdict.evidence
            );
        }
    }

    /// Another target's name, sent to the address before the comparison, set off a
    /// residual block there: a handshake without ECH that then got no connection, or no
    /// answer, is that block's, and says nothing of ECH.
    #[test]
    fn a_residual_block_another_target_set_off_is_named() {
        use crate::facts::failure::Operation;
        use crate::facts::{Sent, Step, Trigger};
        let trigger = Trigger {
            address: FB_443.parse().unwrap(),
            sent: Sent::Name("forbidden.test".into()),
            target: "forbidden.test".into(),
            at: chrono::Utc::now() - chrono::TimeDelta::seconds(5),
            failure: Failure::GenericTimeout,
        };
        let theirs = facts(&domain(&[]), dns(), passes()).into_control();
        for plain_failed_at in [Operation::Connect, Operation::TlsHandshake] {
            let mut comparison = ech(
                FB_443,
                &[
                    (Grease, Some(Failure::GenericTimeout)),
                    (Plain, Some(Failure::GenericTimeout)),
                ],
            );
            if let Step::Ech(f) = &mut comparison.step {
                f.handshakes[1].error.as_mut().unwrap().failed_operation = plain_failed_at;
            }
            let before: Vec<_> = reachable().into_iter().map(|m| at(m, -10)).collect();
            let mut ours = facts(&domain(&[]), dns(), [before, vec![comparison]].concat());
            let alone = judge_with(&ours, super::super::Control::Measured(&theirs));
            assert!(
                alone
                    .verdict
                    .evidence
                    .contains("cannot be told from one of ECH"),
                "{}",
                alone.verdict.evidence
            );
            ours.triggers = vec![trigger.clone()];
            let outcome = judge_with(&ours, super::super::Control::Measured(&theirs));
            assert_eq!(kind(&outcome), (Verdict::Inconclusive, None));
            assert!(
                outcome
                    .verdict
                    .evidence
                    .contains("residual blocking set off by another target"),
                "{plain_failed_at:?}: {}",
                outcome.verdict.evidence
            );
        }
    }
}
