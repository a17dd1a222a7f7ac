//! The flat rows of the CSV files. The CSV crate cannot write nested values, and
//! researchers want one flat table anyway; every detail stays in measurements.jsonl.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::analyse::{Blocking, TargetVerdict, Verdict};
use crate::facts::{Measurement, QuicFacts, Step};
use crate::input::targets::KindName;
use crate::rundir::RunSettings;

/// A row of verdicts.csv. The first nine columns are docs/design.md's contract (and
/// all of schema 1); the last four, from schema 2, say what a researcher filters on
/// without joining run.json. A schema-1 row reads with them empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VerdictRow {
    pub run_id: String,
    pub measured_at: String,
    pub probe_cc: String,
    pub probe_asn: String,
    pub service: String,
    pub target: String,
    pub verdict: String,
    pub blocking: String,
    pub evidence: String,
    /// domain, url or endpoint.
    #[serde(default)]
    pub target_kind: Option<KindName>,
    /// The censorprobe that judged the row (for `analyse` and `compare`, the one that
    /// judged it again, which may be newer than run.json's).
    #[serde(default)]
    pub software_version: String,
    /// Whether a control's facts judged the target.
    #[serde(default)]
    pub controlled: Option<bool>,
    /// The run's resolvers as run.json names them, `;`-joined (empty for a
    /// measurement imported from OONI, whose resolver is its own).
    #[serde(default)]
    pub resolvers: String,
}

/// Which columns a verdicts file has: schema 1's nine, or the current thirteen. A file
/// is read by its header, whichever it is; a run resumed goes on in its own layout, so
/// that no file holds rows of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Schema1,
    Schema2,
}

/// The current layout's columns, in order; schema 1's are the first nine.
const COLUMNS: [&str; 13] = [
    "run_id",
    "measured_at",
    "probe_cc",
    "probe_asn",
    "service",
    "target",
    "verdict",
    "blocking",
    "evidence",
    "target_kind",
    "software_version",
    "controlled",
    "resolvers",
];

impl Layout {
    /// The layout of the verdicts.csv of a run whose run.json has `schema_version`.
    pub fn of_schema(schema_version: u32) -> Layout {
        match schema_version {
            0 | 1 => Layout::Schema1,
            _ => Layout::Schema2,
        }
    }

    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Layout::Schema1 => &COLUMNS[..9],
            Layout::Schema2 => &COLUMNS,
        }
    }

    /// The layout a header is, if it is one.
    fn of_header(header: &csv::StringRecord) -> Option<Layout> {
        [Layout::Schema1, Layout::Schema2]
            .into_iter()
            .find(|layout| header.iter().eq(layout.columns().iter().copied()))
    }
}

impl VerdictRow {
    /// The row's verdict and blocking kind (empty for none), parsed.
    pub fn judgement(&self) -> Result<(Verdict, Option<Blocking>), String> {
        let verdict = self.verdict.parse()?;
        let blocking = match self.blocking.as_str() {
            "" => None,
            kind => Some(kind.parse()?),
        };
        Ok((verdict, blocking))
    }

    /// The verdict the row was written from (a schema-1 row was judged without a control,
    /// as far as it says).
    pub fn into_verdict(self) -> Result<TargetVerdict, String> {
        let (verdict, blocking) = self.judgement()?;
        Ok(TargetVerdict {
            service: self.service,
            target: self.target,
            verdict,
            blocking,
            evidence: self.evidence,
            controlled: self.controlled.unwrap_or(false),
        })
    }

    /// The row of `v`, a target of `run` measured at `measured_at`, judged by this
    /// censorprobe; `resolvers` as [`resolvers_column`] makes it.
    pub fn new(
        run: &RunColumns,
        resolvers: &str,
        measured_at: &str,
        v: &TargetVerdict,
    ) -> VerdictRow {
        VerdictRow {
            run_id: run.run_id.clone(),
            measured_at: measured_at.to_string(),
            probe_cc: run.probe_cc.clone(),
            probe_asn: run.probe_asn.clone(),
            service: v.service.clone(),
            target: v.target.clone(),
            verdict: v.verdict.to_string(),
            blocking: v.blocking.map(|b| b.to_string()).unwrap_or_default(),
            evidence: v.evidence.clone(),
            target_kind: Some(KindName::of(&v.target)),
            software_version: env!("CARGO_PKG_VERSION").into(),
            controlled: Some(v.controlled),
            resolvers: resolvers.to_string(),
        }
    }

    /// The row as a record of `layout`'s columns: all of them, or schema 1's nine.
    pub fn record(&self, layout: Layout) -> Vec<String> {
        [
            self.run_id.clone(),
            self.measured_at.clone(),
            self.probe_cc.clone(),
            self.probe_asn.clone(),
            self.service.clone(),
            self.target.clone(),
            self.verdict.clone(),
            self.blocking.clone(),
            self.evidence.clone(),
            self.target_kind.map_or("", KindName::as_str).to_string(),
            self.software_version.clone(),
            self.controlled.map_or(String::new(), |c| c.to_string()),
            self.resolvers.clone(),
        ]
        .into_iter()
        .take(layout.columns().len())
        .collect()
    }
}

/// The `resolvers` column of a run with these settings.
pub fn resolvers_column(settings: &RunSettings) -> String {
    settings
        .resolvers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";")
}

/// The rows of a verdicts file in order, each with its line number. A run killed
/// mid-write can leave its last row torn: that row is left out with a warning and the
/// rows before stand (`run --resume` repairs the file); any other row that does not read
/// is an error naming the file and the line. Every command reads verdicts this way.
pub struct VerdictRows {
    path: PathBuf,
    /// Which columns the file has.
    pub layout: Layout,
    headers: csv::StringRecord,
    records: std::iter::Peekable<csv::StringRecordsIntoIter<File>>,
}

/// Opens a verdicts file (verdicts.csv, or one written by `analyse` or `compare`).
pub fn read_verdicts(path: &Path) -> anyhow::Result<VerdictRows> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .clone();
    if headers.is_empty() {
        bail!("{} has no header", path.display());
    }
    let layout = Layout::of_header(&headers).ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not a verdicts file: its first line is {:?}, not {:?}",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(","),
            Layout::Schema2.columns().join(",")
        )
    })?;
    Ok(VerdictRows {
        path: path.to_path_buf(),
        layout,
        headers,
        records: reader.into_records().peekable(),
    })
}

impl Iterator for VerdictRows {
    type Item = anyhow::Result<(u64, VerdictRow)>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = self.records.next()?;
        let parsed = record.and_then(|r| {
            let row: VerdictRow = r.deserialize(Some(&self.headers))?;
            Ok((r.position().map_or(0, |p| p.line()), row))
        });
        match parsed {
            Ok(row) => Some(Ok(row)),
            Err(e) if self.records.peek().is_none() => {
                tracing::warn!("{}: torn last row left out: {e}", self.path.display());
                None
            }
            Err(e) => Some(Err(anyhow::anyhow!("{}: {e}", self.path.display()))),
        }
    }
}

/// A run's verdicts, read back from its verdicts.csv one at a time: a bad row is an
/// error naming the file and its line.
pub fn run_verdicts(
    dir: &Path,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<TargetVerdict>>> {
    let path = dir.join(super::VERDICTS_CSV);
    Ok(read_verdicts(&path)?.map(move |row| {
        let (line, row) = row?;
        row.into_verdict()
            .map_err(|e| anyhow::anyhow!("{}:{line}: {e}", path.display()))
    }))
}

/// The columns every row of a run shares.
#[derive(Debug, Clone)]
pub struct RunColumns {
    pub run_id: String,
    pub probe_cc: String,
    pub probe_asn: String,
}

/// A row of measurements.csv: one measurement, the columns of its step filled in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeasurementRow {
    pub run_id: String,
    pub measured_at: String,
    pub vantage: String,
    pub service: String,
    pub target: String,
    pub step: String,
    /// The resolver (dns) as configured.
    pub resolver: String,
    /// The name looked up (dns) or sent as SNI (tls_handshake), or the URL (http).
    pub hostname: String,
    pub query_type: String,
    /// The address connected to (tcp, tls, http) or the resolver asked (dns).
    pub address: String,
    pub control_sni: String,
    pub failure: String,
    pub failed_operation: String,
    pub runtime_ms: String,
    pub rcode: String,
    /// Space-separated addresses of the first matching reply.
    pub answers: String,
    /// Number of replies to the query (its datagrams are sent more than once; replies
    /// with different answers: a racing answer).
    pub replies: String,
    pub tls_version: String,
    pub cert_issuer: String,
    pub http_status: String,
    pub body_length: String,
    pub title: String,
    /// Tries the step took (a lookup, connect, handshake or fetch that got no answer is
    /// tried again before it counts).
    pub tries: String,
    /// After a failure: the check of the probe's own network made right after it
    /// (`passed`, or how it failed).
    pub check: String,
    /// `true` when the failure came from the probe's own machine, not the network.
    pub local_failure: String,
}

impl MeasurementRow {
    pub fn new(run_id: &str, m: &Measurement) -> MeasurementRow {
        let mut row = MeasurementRow {
            run_id: run_id.to_string(),
            measured_at: m
                .measured_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            vantage: m.vantage.as_str().to_string(),
            service: m.service.to_string(),
            target: m.target.clone(),
            step: m.step.name().to_string(),
            runtime_ms: format!("{:.1}", m.runtime_ms),
            ..MeasurementRow::default()
        };
        if let Some(e) = m.step.error() {
            row.failure = e.failure.to_string();
            row.failed_operation = e.failed_operation.to_string();
            row.local_failure = e.local.to_string();
        }
        let (tries, check) = m.step.tries_and_check();
        row.tries = tries.to_string();
        row.check = check.map_or(String::new(), |c| match &c.error {
            None => "passed".into(),
            Some(e) => e.failure.to_string(),
        });
        match &m.step {
            Step::Dns(d) => {
                row.resolver = d.resolver.clone();
                row.hostname = d.hostname.clone();
                row.query_type = d.query_type.as_str().to_string();
                row.address = d.resolver_address.clone().unwrap_or_default();
                row.rcode = d
                    .replies
                    .iter()
                    .find(|r| r.matches_query)
                    .map(|r| r.rcode.clone())
                    .unwrap_or_default();
                row.answers = d
                    .addresses
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect::<Vec<_>>()
                    .join(" ");
                row.replies = d.replies.len().to_string();
            }
            Step::TcpConnect(t) => row.address = t.address.to_string(),
            Step::TlsHandshake(t) | Step::QuicHandshake(QuicFacts { handshake: t, .. }) => {
                row.address = t.address.to_string();
                row.hostname = t.server_name.clone();
                row.control_sni = t.control_sni.to_string();
                row.tls_version = t.tls_version.clone().unwrap_or_default();
                row.cert_issuer = t
                    .certificate
                    .as_ref()
                    .map(|c| c.issuer.clone())
                    .unwrap_or_default();
            }
            Step::Ech(f) => {
                row.address = f.address.to_string();
                row.hostname = f.server_name.clone();
            }
            Step::Http(h) => {
                row.hostname = h.url.clone();
                if let Some(hop) = h.final_response().or(h.hops.last()) {
                    row.address = hop.address.map(|a| a.to_string()).unwrap_or_default();
                    row.http_status = hop.status.map(|s| s.to_string()).unwrap_or_default();
                    row.body_length = hop
                        .status
                        .map(|_| hop.body_length.to_string())
                        .unwrap_or_default();
                    row.title = hop.title.clone().unwrap_or_default();
                    row.tls_version = hop
                        .tls
                        .as_ref()
                        .and_then(|t| t.tls_version.clone())
                        .unwrap_or_default();
                }
            }
        }
        row
    }
}
/// A verdict row's `measured_at`: RFC 3339 to the second, empty when nothing was measured.
pub fn measured_at_column(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "run_id,measured_at,probe_cc,probe_asn,service,target,verdict,blocking,evidence\n";
    const ROW: &str = "r1,2026-01-01T00:00:00Z,IR,AS1,chat,chat.test,blocked,tls-reset,why\n";

    fn rows(text: &str) -> anyhow::Result<Vec<(u64, VerdictRow)>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verdicts.csv");
        std::fs::write(&path, text).unwrap();
        read_verdicts(&path)?.collect()
    }

    #[test]
    fn a_torn_last_row_is_left_out_and_a_torn_middle_row_is_an_error() {
        let whole = rows(&format!("{HEADER}{ROW}{ROW}")).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!((whole[1].0, whole[1].1.target.as_str()), (3, "chat.test"));
        let torn_last = rows(&format!("{HEADER}{ROW}r1,2026-01-01T00:00:00Z,IR")).unwrap();
        assert_eq!(torn_last.len(), 1);
        let torn_middle = rows(&format!("{HEADER}r1,2026\n{ROW}")).unwrap_err();
        assert!(
            torn_middle.to_string().contains("verdicts.csv"),
            "{torn_middle}"
        );
        assert!(rows("").unwrap_err().to_string().contains("has no header"));
    }
}
