//! A benchmark on loopback, not a test: it prints figures and asserts nothing about
//! speed. Run it with the release binary:
//!
//!     cargo test --release --test bench_loopback -- --ignored --nocapture
//!
//! N synthetic domains behind a wildcard resolver, spread over 4,096 loopback
//! addresses (as real services have their own, so the per-host limit applies as it
//! would), all served by one HTTPS server with a wildcard certificate; a share of them
//! blackholed. It runs `censorprobe run` on them and prints wall time, targets per
//! second, CPU time, peak resident memory and the time to the first verdict row.
//! scripts/bench.sh does the same on the namespace testbed, with the control and
//! `curl --parallel` for comparison.

#[allow(dead_code)]
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;

/// Names under this zone resolve to 127.1.x.y, by the number in their first label.
const ZONE: &str = "b.bench.test";

fn address_of(name: &str) -> IpAddr {
    let label = name.split('.').next().unwrap_or_default();
    let n: u32 = label
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    IpAddr::V4(Ipv4Addr::new(
        127,
        1,
        (n / 254 % 16) as u8,
        (n % 254) as u8 + 1,
    ))
}

/// Peak resident memory of a process, in MiB, from /proc (Linux).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    proc_status_kib(pid, "VmHWM").map(|kib| kib as f64 / 1024.0)
}

/// CPU seconds (user + system) a process used, from /proc (Linux).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().ok()? + fields[12].parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn bench(targets: usize, blackholed_share: f64) {
    let ca = Ca::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_pem(dir.path()).unwrap();
    let (chain, key) = ca
        .issue(&[&format!("*.{ZONE}"), "canary.bench.test"])
        .unwrap();
    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    let server = TlsServer::spawn_at(any, chain, key, TlsBehaviour::Normal, "<p>bench</p>")
        .await
        .unwrap();
    // Every SYN to this port, on any loopback address, vanishes.
    let blackhole = blackhole::listener_at(any, blackhole::Blackholed::Everyone).unwrap();
    let blackhole_port = blackhole.local_addr().unwrap().port();
    let resolver = DnsServer::spawn_with(move |name| {
        let ip = match name {
            "canary.bench.test" => LOCALHOST,
            _ if name.ends_with(ZONE) => address_of(name),
            _ => return None,
        };
        Some(DnsBehaviour::Answer(vec![ip]))
    })
    .unwrap();
    let blackholed = (targets as f64 * blackholed_share) as usize;
    let names: Vec<String> = (0..targets)
        .map(|i| match i < blackholed {
            true => format!("\"h{i}.{ZONE}\""),
            false => format!("\"t{i}.{ZONE}\""),
        })
        .collect();
    // Blackholed targets are tried on the blackhole's port, at their own addresses.
    let (blackholed_names, open_names) = names.split_at(blackholed);
    let mut targets_toml = format!(
        "[settings]\ncanary = \"canary.bench.test\"\ntls_ports = [{}]\ntcp_ports = []\n\n[[service]]\nname = \"bench\"\ndomains = [{}]\n",
        server.port(),
        open_names.join(", ")
    );
    if !blackholed_names.is_empty() {
        targets_toml += &format!(
            "\n[[service]]\nname = \"bench-blackholed\"\ntls_ports = [{blackhole_port}]\ndomains = [{}]\n",
            blackholed_names.join(", ")
        );
    }
    let targets_file = dir.path().join("targets.toml");
    std::fs::write(&targets_file, targets_toml).unwrap();
    let out = dir.path().join("out");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .args([
            "run",
            "--yes",
            "--timeout",
            "2",
            "--treat-as-public",
            "127.0.0.0/8",
        ])
        .arg("--targets")
        .arg(&targets_file)
        .arg("--out")
        .arg(&out)
        .args([
            "--resolver",
            &format!("udp://{resolver}"),
            "--ca-file",
            ca_file.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let verdicts = out.join("verdicts.csv");
    let (mut first_row, mut peak, mut cpu) = (None, 0.0f64, 0.0f64);
    loop {
        tokio::select! {
            status = child.wait() => {
                assert!(status.unwrap().success());
                break;
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {
                peak = peak.max(peak_rss_mib(pid).unwrap_or(0.0));
                cpu = cpu.max(cpu_secs(pid).unwrap_or(0.0));
                if first_row.is_none() && std::fs::read_to_string(&verdicts).is_ok_and(|t| t.lines().count() > 1) {
                    first_row = Some(started.elapsed());
                }
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let rows = std::fs::read_to_string(&verdicts).unwrap().lines().count() - 1;
    println!(
        "{targets} targets ({blackholed} blackholed): {wall:.2} s wall, {:.0} targets/s, {cpu:.2} s CPU (at least), peak RSS {peak:.1} MiB, first verdict after {:.2} s, {rows} verdict rows",
        targets as f64 / wall,
        first_row.map_or(f64::NAN, |d| d.as_secs_f64())
    );
    // The figures are only worth something if every target was measured: a row each,
    // and one for the canary; all but the blackholed ones (and the canary) come out ok.
    assert_eq!(
        rows,
        targets + 1,
        "verdict rows for {targets} targets and the canary"
    );
    let mut reader = csv::Reader::from_path(&verdicts).unwrap();
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "verdict")
        .expect("verdicts.csv has a verdict column");
    let ok = reader
        .records()
        .filter(|r| &r.as_ref().unwrap()[column] == "ok")
        .count();
    assert_eq!(
        ok,
        targets - blackholed + 1,
        "ok verdicts of {targets} targets, {blackholed} of them blackholed, and the canary"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run with --ignored --nocapture, preferably with --release"]
async fn throughput_on_loopback() {
    for (targets, blackholed) in [(1_000, 0.0), (1_000, 0.3), (10_000, 0.0), (10_000, 0.3)] {
        bench(targets, blackholed).await;
    }
}
