//! OONI's measurement format as it is read: the envelope (df-000), the event lists every
//! experiment shares (df-002 queries, df-005 tcp_connect, df-006 tls_handshakes, df-001
//! requests) and Web Connectivity's control (its test helper's summary).
//!
//! Read leniently, as a decade of probes wrote it: every key may be missing or null,
//! a failure may be `false` (measurement-kit) instead of null, a body may be text or
//! base64, headers a map or a list. What is missing stays missing.

use std::collections::BTreeMap;

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::analyse::Context;
use crate::facts::{Measurement, Trigger};
use crate::input::targets::Target;

/// df-000, and the test keys every test read here shares (read in the same pass).
#[derive(Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub test_name: Option<String>,
    #[serde(default)]
    pub test_version: Option<String>,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub measurement_start_time: Option<String>,
    #[serde(default)]
    pub probe_cc: Option<String>,
    #[serde(default)]
    pub probe_asn: Option<String>,
    #[serde(default)]
    pub report_id: Option<String>,
    #[serde(default)]
    pub measurement_uid: Option<String>,
    #[serde(default)]
    pub software_name: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub test_keys: Option<TestKeys>,
}

/// The test keys this import reads. Web Connectivity's `control` is its test helper's
/// summary; `x_control` is the control as censorprobe exports it, in the probe's shapes.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TestKeys {
    #[serde(deserialize_with = "list")]
    pub queries: Vec<Query>,
    #[serde(deserialize_with = "list")]
    pub x_dns_duplicate_responses: Vec<Query>,
    #[serde(deserialize_with = "list")]
    pub tcp_connect: Vec<Connect>,
    #[serde(deserialize_with = "list")]
    pub tls_handshakes: Vec<Handshake>,
    #[serde(default, deserialize_with = "list")]
    pub quic_handshakes: Vec<Handshake>,
    #[serde(deserialize_with = "list")]
    pub requests: Vec<Transaction>,
    #[serde(deserialize_with = "failure")]
    pub http_experiment_failure: Option<String>,
    pub control: Option<HelperControl>,
    #[serde(deserialize_with = "failure")]
    pub control_failure: Option<String>,
    pub x_control: Option<Box<TestKeys>>,
    pub x_censorprobe_facts: Option<ExportedFacts>,
}

/// censorprobe's own facts, whole, as its export writes them beside the OONI shapes:
/// judged in their place, since those shapes have no room for the checks of the probe's
/// network, the retries, late answers, other targets' triggers and the canary's
/// findings its verdicts weigh. A run's facts are all there as written, or the line is
/// malformed.
#[derive(Deserialize)]
pub struct ExportedFacts {
    pub target: Target,
    pub context: Context,
    pub probe: Vec<Measurement>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub control: Option<Vec<Measurement>>,
    /// Why the run's control had nothing for the target, where it had a control.
    #[serde(default)]
    pub control_unavailable: Option<String>,
}

/// df-002: one query and its answers.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Query {
    pub engine: Option<String>,
    pub resolver_address: Option<String>,
    pub hostname: Option<String>,
    pub query_type: Option<String>,
    #[serde(deserialize_with = "list")]
    pub answers: Vec<Answer>,
    #[serde(deserialize_with = "failure")]
    pub failure: Option<String>,
    pub t0: Option<f64>,
    pub t: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Answer {
    pub answer_type: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub hostname: Option<String>,
    pub ttl: Option<u32>,
    pub asn: Option<u32>,
}

/// df-005.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Connect {
    pub ip: Option<String>,
    pub port: Option<u16>,
    pub status: ConnectStatus,
    pub t0: Option<f64>,
    pub t: Option<f64>,
    pub transaction_id: Option<i64>,
    #[serde(deserialize_with = "list")]
    pub tags: Vec<String>,
}

/// A QUIC handshake's facts beyond OONI's shape.
#[derive(Deserialize, Default)]
pub struct QuicExtra {
    pub local_port: Option<u16>,
    pub datagrams_received: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConnectStatus {
    pub success: Option<bool>,
    #[serde(deserialize_with = "failure")]
    pub failure: Option<String>,
}

/// df-006.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Handshake {
    pub address: Option<String>,
    pub server_name: Option<String>,
    pub tls_version: Option<String>,
    pub cipher_suite: Option<String>,
    pub negotiated_protocol: Option<String>,
    #[serde(deserialize_with = "list")]
    pub peer_certificates: Vec<Binary>,
    #[serde(deserialize_with = "failure")]
    pub failure: Option<String>,
    pub t0: Option<f64>,
    pub t: Option<f64>,
    pub transaction_id: Option<i64>,
    #[serde(deserialize_with = "list")]
    pub tags: Vec<String>,
    /// censorprobe's own facts of a QUIC handshake (`export --ooni`).
    #[serde(default)]
    pub x_censorprobe: Option<QuicExtra>,
}

/// OONI's binary data: `{"format": "base64", "data": ...}`, or plain text.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Binary {
    Text(String),
    Encoded { format: String, data: String },
}

impl Binary {
    pub fn bytes(&self) -> Vec<u8> {
        use base64::Engine as _;
        match self {
            Binary::Encoded { format, data } if format == "base64" => {
                base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .unwrap_or_default()
            }
            Binary::Encoded { data, .. } | Binary::Text(data) => data.as_bytes().to_vec(),
        }
    }
}

/// df-001: one HTTP round trip (a hop of a fetch).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Transaction {
    pub address: Option<String>,
    #[serde(deserialize_with = "failure")]
    pub failure: Option<String>,
    pub request: Request,
    pub response: Response,
    pub t0: Option<f64>,
    pub t: Option<f64>,
    pub transaction_id: Option<i64>,
    /// What censorprobe's export adds to a hop (see `output::ooni`).
    pub x_censorprobe: Option<HopFacts>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct HopFacts {
    pub fetch: usize,
    pub control_sni: Option<String>,
    pub again: bool,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub body_length: Option<u64>,
    pub transfer_ms: Option<f64>,
    pub active_rate: Option<f64>,
    pub peak_rate: Option<f64>,
    pub read_ms: Option<f64>,
    pub silent_ms: Option<f64>,
    pub received_after_handshake: Option<u64>,
    pub close_notify: bool,
    pub failed_operation: Option<crate::facts::failure::Operation>,
    pub fetch_error: Option<crate::facts::failure::StepError>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Request {
    pub url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Response {
    pub code: Option<i64>,
    #[serde(deserialize_with = "headers")]
    pub headers: Vec<(String, String)>,
    #[serde(deserialize_with = "header_list")]
    pub headers_list: Vec<(String, String)>,
    pub body: Option<Binary>,
    pub body_is_truncated: Option<bool>,
}

/// Web Connectivity's test helper: what it saw of the same input from outside.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct HelperControl {
    pub dns: Option<HelperDns>,
    pub tcp_connect: Option<BTreeMap<String, HelperStatus>>,
    pub tls_handshake: Option<BTreeMap<String, HelperStatus>>,
    pub http_request: Option<HelperHttp>,
    pub ip_info: Option<BTreeMap<String, HelperIpInfo>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct HelperDns {
    #[serde(deserialize_with = "failure")]
    pub failure: Option<String>,
    #[serde(deserialize_with = "list")]
    pub addrs: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct HelperStatus {
    pub status: Option<bool>,
    #[serde(deserialize_with = "failure")]
    pub failure: Option<String>,
    pub server_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct HelperHttp {
    pub body_length: Option<i64>,
    #[serde(deserialize_with = "failure")]
    pub failure: Option<String>,
    pub title: Option<String>,
    #[serde(deserialize_with = "headers")]
    pub headers: Vec<(String, String)>,
    pub status_code: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct HelperIpInfo {
    pub asn: Option<u32>,
}

/// A list that may be null.
fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A failure string, or null, or `false` for none (measurement-kit). Read without
/// buffering, as most fields of a measurement are failures.
fn failure<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Failure;
    impl<'de> Visitor<'de> for Failure {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a failure string, null or false")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok((!s.is_empty()).then(|| s.to_string()))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Failure)
}

/// Headers as a map of one value or of a list of values, or null.
fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Headers;
    /// One header's value or values, appended under its name.
    struct Values<'a>(&'a str, &'a mut Vec<(String, String)>);
    impl<'de> de::DeserializeSeed<'de> for Values<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Values<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a header value or a list of them")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
            self.1.push((self.0.to_string(), s.to_string()));
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(v) = seq.next_element::<String>()? {
                self.1.push((self.0.to_string(), v));
            }
            Ok(())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    }
    impl<'de> Visitor<'de> for Headers {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of headers, or null")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                map.next_value_seed(Values(&name, &mut out))?;
            }
            Ok(out)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Vec::new())
        }
    }
    d.deserialize_any(Headers)
}

/// `headers_list`: `[[name, value], ...]`, or null.
fn header_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    Ok(Option::<Vec<(String, String)>>::deserialize(d)?.unwrap_or_default())
}
