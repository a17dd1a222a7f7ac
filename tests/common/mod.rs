//! What the integration tests share: the lab's fake servers (`censorprobe::lab`: a CA,
//! DNS, TLS, HTTP and TCP servers that play honest and censoring networks on
//! 127.0.0.1, the demo's too), re-exported, and a runner for the real binary and its
//! control server. Every server binds port 0 and runs as a tokio task, so it lives as
//! long as the test's runtime; nothing here ever talks to anything but loopback.
//!
//! Each test crate uses a different part of this module, so the crates declare it with
//! `#[allow(dead_code)]`.

#![allow(unused_imports)]

pub mod control;
pub mod probe;
pub mod tls;

pub use censorprobe::lab::blackhole;
pub use censorprobe::lab::ca::Ca;
pub use censorprobe::lab::dns::{DnsBehaviour, DnsServer};
pub use censorprobe::lab::http::{HttpServer, IRAN_BLOCKPAGE, page};
pub use censorprobe::lab::tcp::{accept_each, closed_port, listen, protocol_filtered, silent};
pub use censorprobe::lab::tls::{TlsBehaviour, TlsServer};
pub use control::ControlServer;
pub use tls::Healthy;

use std::net::{IpAddr, Ipv4Addr};

/// The address every lab server listens on.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A bogon that Iran's DNS hijack answers with (its blockpage server); the probe must
/// never contact it, since it is not in `--treat-as-public 127.0.0.0/8`.
pub const IRAN_BLOCKPAGE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 10, 34, 34));

/// Gives up on the rest of a test that cannot run on this host, saying why; under
/// CI=true it fails instead, since CI must run every test. The caller returns right
/// after.
pub fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "CI=true, and this test cannot run here: {reason}; .ci/run installs what the tests need"
        );
    }
    eprintln!("skipped: {reason}");
}

/// A memory field of `/proc/PID/status` in KiB: `VmHWM`, the peak resident set (the
/// kernel keeps the maximum, so polling misses nothing but the last moments), or
/// `VmRSS`, the resident set now. None once the process is gone, or off Linux.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// A finished command's exit status and output, for an assertion's message.
pub fn text(output: &std::process::Output) -> String {
    format!(
        "exit: {}\n--- stdout:\n{}\n--- stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A targets file in `dir` whose run takes about a second and reaches nothing, no
/// server needed: a canary whose resolver refuses (with [`DEAD_END_FLAGS`]) and a
/// closed port on loopback. Such a run finds no network: [`assert_no_network`].
pub fn dead_end_targets(dir: &std::path::Path) -> std::path::PathBuf {
    let targets = dir.join("targets.toml");
    std::fs::write(
        &targets,
        "[settings]\ncanary = \"canary.test\"\n\n[[service]]\nname = \"s\"\nendpoints = [\"127.0.0.1:9\"]\n",
    )
    .unwrap();
    targets
}

/// The flags a run of [`dead_end_targets`] goes with: a resolver that refuses,
/// loopback counted as public, a one-second step timeout.
pub const DEAD_END_FLAGS: [&str; 6] = [
    "--resolver",
    "udp://127.0.0.1:1",
    "--treat-as-public",
    "127.0.0.0/8",
    "--timeout",
    "1",
];

/// Asserts that a run finished having found no network, as a run of
/// [`dead_end_targets`] must: an exit code of its own, so that a CI job cannot pass on
/// a dead link.
pub fn assert_no_network(output: &std::process::Output) {
    assert_eq!(
        output.status.code(),
        Some(i32::from(censorprobe::error::EXIT_NO_NETWORK)),
        "{}",
        text(output)
    );
}
