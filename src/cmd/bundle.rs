//! `censorprobe bundle RUN`: one archive of a run to send a researcher: the run's own
//! files (which hold no address of the probe's: see "Safety" in docs/robustness.md), a
//! summary in words, and the HTML report over it. What it holds is said before it is
//! written; no path of the volunteer's machine goes in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::browse;
use crate::error::InputError;
use crate::output;
use crate::rundir::{self, REPORT_HTML, RUN_JSON, SUMMARY_TXT};

pub fn command(run: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = browse::run_dir(run, &super::places::results_dir())?;
    let info = rundir::read_info(&dir).map_err(InputError)?;
    let out = out.map_or_else(
        || PathBuf::from(format!("{}.tar.gz", info.run_id)),
        Path::to_path_buf,
    );
    make(&dir, &info.run_id, &out, |_| true)?;
    outln!(
        "Written: {}. Send it to the researcher you measure for; it holds no address of yours.",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Bundles the run `run_id` in `dir` into `out`: the run's files that `keep` keeps (by
/// name), its summary and its HTML report, listed on standard output first.
pub fn make(
    dir: &Path,
    run_id: &str,
    out: &Path,
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let summary = browse::summary(dir, None)?;
    // The report is written beside the archive, put in, and removed; named after the
    // archive, not the run, so that two bundles of one run at once (an upload and a
    // bundle) do not write and remove each other's.
    let archive = out.file_name().unwrap_or_default().to_string_lossy();
    let report = rundir::aside(&out.with_file_name(format!(".{archive}.{REPORT_HTML}")));
    output::html::write(&[dir.to_path_buf()], &report, Default::default())?;
    let written = write(dir, run_id, out, &summary, &report, keep);
    let _ = std::fs::remove_file(&report);
    written
}

/// What goes into the archive under a name: a file as it is, or bytes made for it.
enum Content {
    File(PathBuf),
    Made(Vec<u8>),
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::File(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
            Content::Made(bytes) => bytes.len() as u64,
        }
    }
}

fn write(
    dir: &Path,
    run_id: &str,
    out: &Path,
    summary: &str,
    report: &Path,
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    // The run's files, a name each (the run's id for its folder), then what was made.
    let folder = PathBuf::from(run_id);
    let mut files: Vec<(PathBuf, Content)> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !path.is_file() || name.starts_with('.') || name.ends_with(".tmp") || !keep(&name) {
            continue;
        }
        let content = match name == RUN_JSON {
            true => Content::Made(shareable_info(&path)?),
            false => Content::File(path),
        };
        files.push((folder.join(name), content));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.push((
        folder.join(REPORT_HTML),
        Content::File(report.to_path_buf()),
    ));
    files.push((
        folder.join(SUMMARY_TXT),
        Content::Made(summary.as_bytes().to_vec()),
    ));
    outln!("{} will hold:", out.display());
    for (name, content) in &files {
        outln!("  {}  ({} bytes)", name.display(), content.len());
    }
    rundir::replace_with(out, |writer| {
        let mut archive = tar::Builder::new(GzEncoder::new(writer, Compression::default()));
        archive.mode(tar::HeaderMode::Deterministic);
        for (name, content) in &files {
            match content {
                Content::File(path) => archive
                    .append_path_with_name(path, name)
                    .with_context(|| format!("cannot add {}", path.display()))?,
                Content::Made(bytes) => {
                    let mut header = tar::Header::new_gnu();
                    header.set_size(bytes.len() as u64);
                    header.set_mode(0o644);
                    archive.append_data(&mut header, name, bytes.as_slice())?;
                }
            }
        }
        archive.into_inner()?.finish()?.flush()?;
        Ok(())
    })
}

/// run.json as it may leave the machine: the files its settings name (the targets
/// file, a CA file, an ASN database), which `--resume` reads again from their paths,
/// by their names alone, since a path may name the volunteer's home.
fn shareable_info(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut info: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    for key in ["targets_file", "ca_file", "asn_db"] {
        if let Some(named) = info["settings"][key].as_str() {
            let name = Path::new(named)
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            info["settings"][key] = name.into();
        }
    }
    Ok(serde_json::to_vec_pretty(&info)?)
}
