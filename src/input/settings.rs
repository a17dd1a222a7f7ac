//! The settings of `run` and `control serve`: every default, written once, and the
//! flags both commands share.
//!
//! Each default here is read by the flag's help and by the code that falls back on it:
//! `run` takes a setting from its flag, else from targets.toml's `[settings]`, else from
//! here; `control serve` from its flag, else from here. Here, at the bottom of the
//! layers, because the targets file, the commands, the control server and the lab all
//! read them.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use ipnet::IpNet;

use crate::input::targets::{self, ResolverSpec};

/// The deadline of every step: long enough for a handshake over a slow link, short
/// enough that a blackholed target, which waits it out, does not hold the run up. The
/// probe's and the control's alike, since a probe reckons how long the control may take
/// over a batch by its own timeout.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Network operations in flight at once at the probe: what a home connection bears,
/// its router's NAT table included (each one allows four fresh connection attempts,
/// see `measure::limits`).
pub const RUN_CONCURRENCY: usize = 64;

/// Operations in flight at once against one server address at the probe: no server
/// sees a burst from one probe (impolite, and a burst can itself trip a censor's rate
/// rules).
pub const RUN_PER_HOST: usize = 4;

/// Network operations in flight at once at the control: a server's link, shared by the
/// many probes it serves.
pub const CONTROL_CONCURRENCY: usize = 256;

/// Operations in flight at once against one server address at the control: many
/// probes' targets share the same addresses (a CDN's), yet no server may see a burst.
pub const CONTROL_PER_HOST: usize = 8;

/// The resolvers when neither a flag nor the targets file names one: the system's, the
/// one everything else on the machine asks.
pub const RESOLVERS: &[ResolverSpec] = &[ResolverSpec::System];

/// The ports a domain gets a TCP connect and TLS handshakes on when neither its service
/// nor `[settings]` names any: HTTPS's.
pub const TLS_PORTS: &[u16] = &[443];

/// The ports a domain gets QUIC handshakes on (an HTTPS URL too, when its port is one
/// of them) when neither its service nor `[settings]` names any: none, QUIC is measured
/// where a targets file asks for it (the shipped one does). A router cannot see a QUIC
/// connection close, so each handshake's flow keeps a place in its connection table for
/// half a minute to two; on a long list, or a router with a small table, those places
/// crowd out the run's other connections, and the probe's own router full must never
/// read as blocking (testbed scenario nat-small: with QUIC to every site, connects that
/// the full table dropped came out blocked).
pub const QUIC_PORTS: &[u16] = &[];

/// The ports a domain gets a plain TCP connect on when neither its service nor
/// `[settings]` names any: HTTP's.
pub const TCP_PORTS: &[u16] = &[80];

/// The most a control's request may take: a probe's batch of 50 targets gets 12 + 50/4
/// step timeouts, 245 s at the default timeout, and fits.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(300);

/// Requests the control measures at once: beyond, probes are told to come back, so
/// that the requests measured keep their pace.
pub const MAX_IN_FLIGHT: usize = 32;

/// Targets in one request: twice a probe's batch.
pub const MAX_TARGETS: usize = 100;

/// The size of a request body: a probe's batch, addresses included, is far smaller.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Connections open at once at the control: each holds a descriptor and buffers, which a
/// flood of connections must not exhaust.
pub const MAX_CONNECTIONS: usize = 2048;

/// Connections open at once from one client: room for the probes behind one address (a
/// NAT), not for one client to take them all.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 128;

/// What to measure with, given the same way to the probe and to the control.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct MeasureFlags {
    /// A resolver to measure DNS with: system, udp://IP:PORT, tcp://IP:PORT or
    /// doh://HOST/PATH. Repeatable; replaces the default list (a run's: its targets
    /// file's resolvers, else system; the control's: system).
    #[arg(long = "resolver", value_name = "SPEC", value_parser = ResolverSpec::from_str)]
    pub resolvers: Vec<ResolverSpec>,
    /// Extra CA certificates (PEM) to trust, e.g. a lab's test CA.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// An IP-to-ASN (and country) database: a MaxMind-format file, a CSV of ranges, or
    /// a directory of them (default: the data directory's ip-db, where it exists;
    /// scripts/fetch-ip-db.sh fills it).
    #[arg(long, value_name = "PATH")]
    pub asn_db: Option<PathBuf>,
    /// A CIDR block exempt from the bogon check (a lab network). Repeatable.
    #[arg(long = "treat-as-public", value_name = "CIDR", value_parser = targets::parse_cidr)]
    pub treat_as_public: Vec<IpNet>,
}

/// The parser of a flag that counts places (`--concurrency`, `--max-targets`, ...): at
/// least 1 (no place would let nothing through), and at most `u32::MAX`, which keeps
/// the multiples the limits take of it (`measure::limits`) in range.
pub fn places() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=u64::from(u32::MAX))
}

/// The parser of `--probe-cc`: a country code of two letters (ISO 3166-1 alpha-2, as
/// OONI writes them), upper-cased.
pub fn parse_cc(s: &str) -> Result<String, String> {
    match s.len() == 2 && s.chars().all(|c| c.is_ascii_alphabetic()) {
        true => Ok(s.to_ascii_uppercase()),
        false => Err(format!(
            "{s:?} is not a country code: two letters, as IR or RU"
        )),
    }
}

/// The parser of `--probe-asn`: an autonomous system number, with or without its
/// `AS`, written as OONI does (`AS58224`).
pub fn parse_asn(s: &str) -> Result<String, String> {
    let digits = s
        .strip_prefix("AS")
        .or_else(|| s.strip_prefix("as"))
        .unwrap_or(s);
    match digits.parse::<u32>() {
        Ok(n) if n > 0 => Ok(format!("AS{n}")),
        _ => Err(format!("{s:?} is not an AS number: AS58224, or 58224")),
    }
}

/// The parser of a flag in seconds (`--timeout`, `--request-deadline`), within the
/// bounds of targets.toml's `timeout_secs`.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    targets::parse_timeout(secs)
}

/// A duration as such a flag is written, for its help and its default.
pub fn secs(duration: Duration) -> String {
    duration.as_secs_f64().to_string()
}
