//! The command line of censorprobe: parse it, set up logging and the runtime, run the
//! command (`censorprobe::cmd`), and turn its error into an exit code
//! (`censorprobe::error`).

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use indicatif::{MultiProgress, ProgressDrawTarget};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use censorprobe::cmd::{self, Cli};
use censorprobe::error::{self, EXIT_INTERNAL_ERROR};
use censorprobe::facts::scrub::Scrubbing;

/// Log lines go to stderr without tearing the progress bar.
#[derive(Clone)]
struct LogWriter(MultiProgress);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Every log line is scrubbed of addresses (see "Safety" in docs/robustness.md): a line can
/// quote any error text, a library's included, and logs end up in bug reports.
impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Scrubbing<LogWriter>;
    fn make_writer(&'a self) -> Scrubbing<LogWriter> {
        Scrubbing(self.clone())
    }
}

/// Colour in log lines only on a terminal, and not there either under `NO_COLOR`
/// (no-color.org): a log in a file or a pipe keeps no escape codes.
fn colour() -> bool {
    use std::io::IsTerminal;
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let progress = match cli.quiet {
        true => MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        false => MultiProgress::new(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(cli.log_level())),
        )
        .with_writer(LogWriter(progress.clone()))
        .with_target(false)
        .with_ansi(colour())
        .init();
    // Thousands of targets in flight each hold a socket or two: the default soft limit
    // of open files (often 1024) would fail them, the hard limit rarely does.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-files limit: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(io::stderr().lock(), "error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL_ERROR);
        }
    };
    let result = runtime.block_on(cmd::execute(cli.command, &progress));
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(io::stderr().lock(), "error: {e:#}");
            ExitCode::from(error::exit_code(&e))
        }
    }
}
