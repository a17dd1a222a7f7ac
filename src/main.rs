//! The command line of censorprobe.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::MultiProgress;
use ipnet::IpNet;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use censorprobe::report::summary;
use censorprobe::run::{self, InputError, RunArgs};
use censorprobe::targets::{self, ResolverSpec};

/// Exit codes, as documented in the README.
const EXIT_INPUT_ERROR: u8 = 2;
const EXIT_INTERNAL_ERROR: u8 = 3;

#[derive(Parser)]
#[command(
    name = "censorprobe",
    version,
    about = "Measures whether services are reachable over DNS, TCP, TLS and HTTP, and how they are blocked"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure every target of a targets file and write the results.
    Run(RunCommand),
}

#[derive(clap::Args)]
struct RunCommand {
    /// The targets file.
    #[arg(long, default_value = "targets.toml")]
    targets: PathBuf,
    /// Write the run into DIR (default: results/<run_id>/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A resolver to measure DNS with: system, udp://IP:PORT, tcp://IP:PORT or
    /// doh://HOST/PATH. Repeatable; replaces the targets file's list.
    #[arg(long = "resolver", value_name = "SPEC", value_parser = parse_resolver)]
    resolvers: Vec<ResolverSpec>,
    /// Extra CA certificates (PEM) to trust, e.g. a lab's test CA.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// An IP-to-ASN database: a MaxMind-format file or a CSV of ranges.
    #[arg(long, value_name = "FILE")]
    asn_db: Option<PathBuf>,
    /// A CIDR block exempt from the bogon check (a lab network). Repeatable.
    #[arg(long = "treat-as-public", value_name = "CIDR", value_parser = targets::parse_cidr)]
    treat_as_public: Vec<IpNet>,
    /// Measurement operations in flight at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: Option<u32>,
    /// Operations in flight at once against one server address.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    per_host: Option<u32>,
    /// The deadline of every step, in seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<std::time::Duration>,
}

fn parse_resolver(s: &str) -> Result<ResolverSpec, String> {
    s.parse()
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    targets::parse_timeout(secs)
}

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

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let progress = MultiProgress::new();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(LogWriter(progress.clone()))
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL_ERROR);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(cmd) => run_command(cmd, &progress).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<InputError>() {
                Some(_) => ExitCode::from(EXIT_INPUT_ERROR),
                None => ExitCode::from(EXIT_INTERNAL_ERROR),
            }
        }
    }
}

async fn run_command(cmd: RunCommand, progress: &MultiProgress) -> anyhow::Result<ExitCode> {
    let args = RunArgs {
        targets: cmd.targets,
        out: cmd.out,
        resolvers: cmd.resolvers,
        ca_file: cmd.ca_file,
        asn_db: cmd.asn_db,
        treat_as_public: cmd.treat_as_public,
        concurrency: cmd.concurrency.map(|n| n as usize),
        per_host: cmd.per_host.map(|n| n as usize),
        timeout: cmd.timeout,
    };
    let report = run::run(args, progress).await?;
    print!("{}", summary::render(&report.verdicts, report.no_network));
    println!("\nResults: {}", report.dir.display());
    Ok(ExitCode::SUCCESS)
}
