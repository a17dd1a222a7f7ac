//! The control protocol: `POST /v1/measure` with a JSON `ControlRequest`, answered with
//! a `ControlResponse`. Documented with an example in the README.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::facts::Measurement;
use crate::plan::{Target, TargetKind};

pub const MEASURE_PATH: &str = "/v1/measure";
pub const HEALTH_PATH: &str = "/health";

/// What a probe asks the control to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    pub targets: Vec<ControlTarget>,
    /// The name the control uses as control SNI (the probe's canary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_sni: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlTarget {
    pub service: String,
    /// As named in verdicts.csv: a domain, `IP:PORT`, or a URL.
    pub target: String,
    #[serde(default)]
    pub tls_ports: Vec<u16>,
    #[serde(default)]
    pub tcp_ports: Vec<u16>,
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
            asns: Vec::new(),
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
}

/// An error answer: `{"error": "..."}` with a 4xx or 5xx status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlError {
    pub error: String,
}
