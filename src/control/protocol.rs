//! The control protocol: `POST /v1/measure` with a JSON `ControlRequest`, answered with
//! a `ControlResponse`. Documented with an example in docs/control.md.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::facts::Measurement;
use crate::input::targets::{self, Target, TargetKind};

pub const MEASURE_PATH: &str = "/v1/measure";
/// The query parameter of [`MEASURE_PATH`] that says when the control makes the ECH
/// comparison (`measure::ech::EchPlan`): `later` (not at all: a probe asks for it where
/// its own failed), `only` (nothing else, at the addresses the request names), `always`
/// (the default). A control that predates it ignores it and measures everything, which
/// answers both.
pub const ECH_PARAMETER: &str = "ech";
/// The query parameter of [`MEASURE_PATH`] that bounds how old a measurement begun for
/// another request may be and still answer this one, in milliseconds (see
/// `control::recent`): a probe sends how long ago it began the youngest target of the
/// batch (its DNS lookup), so that the control's facts are not older than its own.
/// Without it, any still shared (10 s); a control that predates it ignores it, and
/// its older facts then answer as they did.
pub const MAX_AGE_PARAMETER: &str = "max_age";
/// The query parameter of [`MEASURE_PATH`] that lets any measurement still shared
/// answer, however old, marked [`ControlResult::older`] where it is older than
/// `max_age` allows (`older=mark`, the only value): a probe asks again, bound by
/// `max_age` alone, for the targets whose verdict such facts could sway, and takes the
/// others as they are.
pub const OLDER_PARAMETER: &str = "older";
/// [`OLDER_PARAMETER`]'s value.
pub const MARK_OLDER: &str = "mark";
/// The query parameter of [`MEASURE_PATH`] that says at which port the request's
/// canary (its `control_sni`) answers: the control then checks its own network after a
/// step it failed, as a probe does, on that canary, so that its failure is not taken
/// for the target's being down. Without it, no check; a control that predates it
/// ignores it.
pub const CANARY_PORT_PARAMETER: &str = "canary_port";
pub const HEALTH_PATH: &str = "/health";

/// Step timeouts one target may take at the control, one after another: its DNS (a
/// lookup, another after a silence, and a check of the resolver), then on each address
/// (all at once) a connect (its tries take up to two), a handshake with the control SNI
/// and one with the target's name (a handshake that timed out is made again), then the
/// same two over QUIC.
const STEPS_PER_TARGET: u32 = 12;
/// Targets of a batch per further step timeout: the batch's targets are measured at
/// once, but those on one address share its places (8 by default, `--per-host`), and a
/// stalled chain holds one for two handshakes: a quarter of a step per target.
const TARGETS_PER_STEP: u32 = 4;

/// How long a control whose steps time out after `step_timeout` may take over a batch
/// of `targets`: twelve step timeouts plus a quarter of one per target (10 s steps:
/// 122.5 s for one target, 245 s for 50). The control measures within this (and within its
/// `--request-deadline`) and answers what it cut off as not measured; the probe waits
/// this long for its own step timeout, which the control shares by default, plus the
/// transfer. Both sides compute it, so that a large batch is neither cut short by the
/// control nor given up on by the probe while the control is still within its rights.
pub fn batch_deadline(step_timeout: Duration, targets: usize) -> Duration {
    let targets = u32::try_from(targets).unwrap_or(u32::MAX);
    step_timeout
        .saturating_mul(STEPS_PER_TARGET)
        .saturating_add(step_timeout.saturating_mul(targets) / TARGETS_PER_STEP)
}

/// What a probe asks the control to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    pub targets: Vec<ControlTarget>,
    /// The name the control uses as control SNI (the probe's canary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_sni: Option<String>,
}

impl ControlRequest {
    /// A request with no targets: the control answers where the probe is, and a wrong
    /// token shows before anything is measured.
    pub fn empty() -> ControlRequest {
        ControlRequest {
            targets: Vec::new(),
            control_sni: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlTarget {
    pub service: Arc<str>,
    /// As named in verdicts.csv: a domain, `IP:PORT`, or a URL.
    pub target: String,
    #[serde(default = "targets::empty")]
    pub tls_ports: Arc<[u16]>,
    #[serde(default = "targets::empty")]
    pub tcp_ports: Arc<[u16]>,
    #[serde(default = "targets::empty", skip_serializing_if = "targets::is_empty")]
    pub quic_ports: Arc<[u16]>,
    /// The addresses the probe's DNS gave, for the control to test too.
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

impl ControlTarget {
    pub fn new(target: &Target, addresses: Vec<IpAddr>) -> ControlTarget {
        ControlTarget {
            service: target.service.clone(),
            target: target.to_string(),
            tls_ports: target.tls_ports.clone(),
            tcp_ports: target.tcp_ports.clone(),
            quic_ports: target.quic_ports.clone(),
            addresses,
        }
    }

    /// The target to measure, or why the request names none.
    pub fn to_target(&self) -> Result<Target, String> {
        Ok(Target {
            service: self.service.clone(),
            kind: TargetKind::parse(&self.target)?,
            tls_ports: self.tls_ports.clone(),
            tcp_ports: self.tcp_ports.clone(),
            quic_ports: self.quic_ports.clone(),
            asns: targets::empty(),
        })
    }
}

/// The control's facts. It tells the probe its network (from the client address, when
/// it has an ASN database) but never the address itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_asn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_cc: Option<String>,
    pub results: Vec<ControlResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlResult {
    pub target: String,
    /// Addresses of the request the control refused to measure (private, reserved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_addresses: Vec<IpAddr>,
    pub measurements: Vec<Measurement>,
    /// Why the control has no facts on this target (its deadline for the batch ran out
    /// first), when it has none: the probe then judges the target without a control,
    /// never by an empty list of facts. Absent otherwise, so that an old control's
    /// answers still read, and an old probe, which refuses unknown fields, refuses the
    /// answer rather than take the empty list for facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_measured: Option<String>,
    /// The measurement was begun before the request's `max_age` allows, and answers it
    /// only as `older=mark` lets it. Sent only to a request with `older=mark`: an old
    /// probe, which refuses unknown fields, never asks for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub older: bool,
}

/// An error answer: `{"error": "..."}` with a 4xx or 5xx status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlError {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_has_twelve_step_timeouts_plus_a_quarter_of_one_per_target() {
        let step = Duration::from_secs(10);
        assert_eq!(batch_deadline(step, 0), Duration::from_secs(120));
        assert_eq!(batch_deadline(step, 1), Duration::from_millis(122_500));
        assert_eq!(batch_deadline(step, 50), Duration::from_secs(245));
        assert_eq!(
            batch_deadline(Duration::from_secs(2), 100),
            Duration::from_secs(74)
        );
        // The largest step timeout (an hour) and a count past u32: no overflow.
        assert!(batch_deadline(Duration::from_secs(3600), usize::MAX) > step * 1800);
    }

    /// `not_measured` is left out when absent, and an answer without it reads.
    #[test]
    fn not_measured_is_optional_both_ways() {
        let measured = ControlResult {
            target: "a.test".into(),
            refused_addresses: Vec::new(),
            measurements: Vec::new(),
            not_measured: None,
            older: false,
        };
        let json = serde_json::to_string(&measured).unwrap();
        assert_eq!(json, r#"{"target":"a.test","measurements":[]}"#);
        assert_eq!(
            serde_json::from_str::<ControlResult>(&json).unwrap(),
            measured
        );
        let cut = r#"{"target":"a.test","measurements":[],"not_measured":"deadline"}"#;
        let cut: ControlResult = serde_json::from_str(cut).unwrap();
        assert_eq!(cut.not_measured.as_deref(), Some("deadline"));
    }
}
