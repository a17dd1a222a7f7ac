//! `censorprobe demo`: the lab's censored network on loopback, measured by a real run.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::MultiProgress;

use crate::lab;

pub async fn command(out: Option<PathBuf>, progress: &MultiProgress) -> anyhow::Result<ExitCode> {
    let lab = lab::Lab::start().await?;
    out!("{}", lab.intro()?);
    let report = lab.run(out, progress).await?;
    super::print_report(&report);
    out!("\n{}", lab.outro());
    Ok(ExitCode::SUCCESS)
}
