//! Results on disk, streamed as targets finish, and the summary printed at the end.
//!
//! Every row is flushed when its target is done, so a run that is killed keeps all it
//! measured; run.json is rewritten atomically (write, then rename) so it is never torn.

pub mod html;
pub mod parquet;
pub mod rows;
pub mod summary;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::analyse::TargetVerdict;
use crate::facts::Measurement;
use crate::plan::Target;
use crate::targets::ResolverSpec;
use rows::{MeasurementRow, RunColumns, VerdictRow};

/// The version of the result files' layout; readers refuse what they do not know.
pub const SCHEMA_VERSION: u32 = 1;

pub const MEASUREMENTS_CSV: &str = "measurements.csv";
pub const MEASUREMENTS_JSONL: &str = "measurements.jsonl";
pub const VERDICTS_CSV: &str = "verdicts.csv";
pub const RUN_JSON: &str = "run.json";

/// run.json: what ran, when, with which settings, on which targets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub schema_version: u32,
    pub software_name: String,
    pub software_version: String,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub probe_cc: String,
    pub probe_asn: String,
    pub settings: RunSettings,
    pub targets: Vec<Target>,
    /// Set when neither the canary nor any target could be reached.
    pub no_network: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSettings {
    pub targets_file: String,
    pub timeout_secs: f64,
    pub concurrency: usize,
    pub per_host: usize,
    pub resolvers: Vec<ResolverSpec>,
    pub canary: Option<String>,
    pub treat_as_public: Vec<ipnet::IpNet>,
    pub ca_file: Option<String>,
    pub asn_db: Option<String>,
    /// The control server asked during the run, if any.
    pub control: Option<String>,
}

/// One JSON line of measurements.jsonl.
#[derive(Debug, Serialize, Deserialize)]
pub struct JsonlRecord {
    pub run_id: String,
    #[serde(flatten)]
    pub measurement: Measurement,
}

pub struct ResultsWriter {
    dir: PathBuf,
    run_id: String,
    measurements_csv: csv::Writer<File>,
    measurements_jsonl: BufWriter<File>,
    verdicts: VerdictsWriter,
}

/// verdicts.csv, or a file of recomputed verdicts.
pub struct VerdictsWriter {
    columns: RunColumns,
    csv: csv::Writer<File>,
}

impl VerdictsWriter {
    /// Writes to `file`, which must be new unless `replace` is set.
    pub fn create(path: &Path, info: &RunInfo, replace: bool) -> anyhow::Result<VerdictsWriter> {
        let file = open(path, replace)?;
        let mut writer = VerdictsWriter {
            columns: RunColumns {
                run_id: info.run_id.clone(),
                probe_cc: info.probe_cc.clone(),
                probe_asn: info.probe_asn.clone(),
            },
            csv: headerless(file),
        };
        writer.csv.write_record(csv_header::<VerdictRow>())?;
        writer.csv.flush()?;
        Ok(writer)
    }

    pub fn write(&mut self, measured_at: &str, verdict: &TargetVerdict) -> anyhow::Result<()> {
        self.csv
            .serialize(VerdictRow::new(&self.columns, measured_at, verdict))?;
        self.csv.flush().context("cannot write verdicts")?;
        Ok(())
    }
}

fn open(path: &Path, replace: bool) -> anyhow::Result<File> {
    let mut options = OpenOptions::new();
    match replace {
        true => options.write(true).create(true).truncate(true),
        false => options.write(true).create_new(true),
    };
    options
        .open(path)
        .with_context(|| match !replace && path.exists() {
            true => format!(
                "{} already exists: choose another --out, results are never overwritten",
                path.display()
            ),
            false => format!("cannot create {}", path.display()),
        })
}

impl ResultsWriter {
    /// Creates the run's directory and files. An existing run is never overwritten.
    pub fn create(dir: &Path, info: &RunInfo) -> anyhow::Result<ResultsWriter> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create results directory {}", dir.display()))?;
        let mut writer = ResultsWriter {
            dir: dir.to_path_buf(),
            run_id: info.run_id.clone(),
            measurements_csv: headerless(open(&dir.join(MEASUREMENTS_CSV), false)?),
            measurements_jsonl: BufWriter::new(open(&dir.join(MEASUREMENTS_JSONL), false)?),
            verdicts: VerdictsWriter::create(&dir.join(VERDICTS_CSV), info, false)?,
        };
        // The header goes out even if nothing is ever measured.
        writer
            .measurements_csv
            .write_record(csv_header::<MeasurementRow>())?;
        writer.measurements_csv.flush()?;
        writer.write_info(info)?;
        Ok(writer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends measurements to both measurement files and flushes them.
    pub fn write_measurements(&mut self, measurements: &[Measurement]) -> anyhow::Result<()> {
        for m in measurements {
            self.measurements_csv
                .serialize(MeasurementRow::new(&self.run_id, m))?;
            serde_json::to_writer(
                &mut self.measurements_jsonl,
                &JsonlRecord {
                    run_id: self.run_id.clone(),
                    measurement: m.clone(),
                },
            )?;
            self.measurements_jsonl.write_all(b"\n")?;
        }
        self.measurements_csv
            .flush()
            .context("cannot write measurements.csv")?;
        self.measurements_jsonl
            .flush()
            .context("cannot write measurements.jsonl")?;
        Ok(())
    }

    pub fn write_verdict(
        &mut self,
        measured_at: &str,
        verdict: &TargetVerdict,
    ) -> anyhow::Result<()> {
        self.verdicts.write(measured_at, verdict)
    }

    pub fn write_info(&self, info: &RunInfo) -> anyhow::Result<()> {
        let tmp = self.dir.join(format!("{RUN_JSON}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(info)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join(RUN_JSON)).context("cannot write run.json")?;
        Ok(())
    }
}

fn headerless(file: File) -> csv::Writer<File> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(file)
}

/// The header of a row type, as the CSV writer names its fields, so that a file with
/// no rows still says what its columns are.
fn csv_header<T: Default + Serialize>() -> Vec<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.serialize(T::default()).expect("row types serialize");
    let bytes = writer.into_inner().expect("writing to memory cannot fail");
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header = reader.headers().expect("a header was just written");
    header.iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_columns_follow_the_contract() {
        assert_eq!(
            csv_header::<VerdictRow>(),
            [
                "run_id",
                "measured_at",
                "probe_cc",
                "probe_asn",
                "service",
                "target",
                "verdict",
                "blocking",
                "evidence"
            ]
        );
    }

    #[test]
    fn measurement_columns_start_with_the_keys() {
        let header = csv_header::<MeasurementRow>();
        assert_eq!(header.len(), 22);
        assert_eq!(
            &header[..6],
            [
                "run_id",
                "measured_at",
                "vantage",
                "service",
                "target",
                "step"
            ]
        );
    }
}
