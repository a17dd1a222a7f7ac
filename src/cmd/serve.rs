//! `censorprobe control serve`: the control vantage point.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{MeasureFlags, parse_timeout};
use crate::control::server::{self, ServeArgs};

#[derive(clap::Args)]
pub struct ServeCommand {
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// Require this bearer token from probes.
    #[arg(
        long,
        value_name = "T",
        env = "CENSORPROBE_CONTROL_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    measure: MeasureFlags,
    /// The most a request may take, in seconds. A batch of N targets gets 8 + N/4 step
    /// timeouts (--timeout), at most this; targets still unmeasured then are answered
    /// as not measured, the others with their facts. Probes wait as long, by their own
    /// --timeout.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, default_value = "240")]
    request_deadline: std::time::Duration,
    /// Requests measured at once; beyond this, probes get 503 at once.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: u32,
    /// Targets in one request.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    max_targets: u32,
    /// Size of a request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(1..))]
    max_body: u32,
    /// Connections open at once; beyond this, new ones are answered 503 and closed.
    #[arg(long, value_name = "N", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Connections open at once from one client (an IPv4 address or an IPv6 /64);
    /// beyond this, new ones are answered 503 and closed.
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_client: u32,
}

pub async fn command(cmd: ServeCommand) -> anyhow::Result<ExitCode> {
    let flags = cmd.measure;
    server::serve(ServeArgs {
        listen: cmd.listen,
        token: cmd.token,
        tls_cert: cmd.tls_cert,
        tls_key: cmd.tls_key,
        ca_file: flags.ca_file,
        asn_db: flags.asn_db,
        treat_as_public: flags.treat_as_public,
        resolvers: flags.resolvers,
        timeout: flags.timeout.unwrap_or(std::time::Duration::from_secs(10)),
        request_deadline: cmd.request_deadline,
        max_in_flight: cmd.max_in_flight as usize,
        max_connections: cmd.max_connections as usize,
        max_connections_per_client: cmd.max_connections_per_client as usize,
        max_targets: cmd.max_targets as usize,
        max_body_bytes: cmd.max_body as usize,
        concurrency: flags.concurrency.map_or(256, |n| n as usize),
        per_host: flags.per_host.map_or(8, |n| n as usize),
        bind: flags.bind,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
