//! The lab of `censorprobe demo`: the whole job, on a censored network simulated on loopback,
//! without root and without the internet.
//!
//! The probe stands at 127.0.0.1 behind a censor; a control server, in-process, stands
//! at 127.0.0.2 outside it. Both reach the same loopback sockets, so the censor's "path"
//! is the probe's source address: each censoring server misbehaves for 127.0.0.1 only.
//! The demo (`cmd::demo`) makes the real run on the lab's targets file, asking the
//! real control server, with the real analysis.
//!
//! Its fake servers (`ca`, `dns`, `http`, `tls`, `tcp`, `blackhole`) are the loopback
//! tests' too, and `catalog` says what each scenario does and what the probe must
//! conclude, for the demo, the loopback tests and the testbed suite alike.

pub mod blackhole;
pub mod ca;
pub mod catalog;
pub mod dns;
pub mod http;
pub mod tcp;
pub mod tls;

use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::control::server::{ControlServer, ServeArgs};
use crate::input::settings::MeasureFlags;
use crate::input::targets::ResolverSpec;
use blackhole::Blackholed;
use catalog::Catalog;
use dns::{DnsBehaviour, DnsServer};
use http::HttpServer;
use tls::{TlsBehaviour, TlsServer};

const PROBE: Ipv4Addr = Ipv4Addr::LOCALHOST;
const CONTROL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Loopback, which the bogon check would otherwise refuse to measure.
const LAB_NETWORK: &str = "127.0.0.0/8";
/// What Iran's resolvers answer for a blocked name: its blockpage server.
const BLOCKPAGE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 10, 34, 34);
/// Short, so that the blackholed connects give up soon; loopback answers in microseconds.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// The lab's services (`<name>.demo.test`), in the order the intro lists them. What the
/// censor does to each, and the verdict an honest probe gives it, are the catalog's
/// (`demo` in scenarios.toml).
const SERVICES: [&str; 7] = ["canary", "news", "chat", "video", "social", "wiki", "forum"];
/// The width of the intro's column of what the censor does.
const INTRO_TEXT_WIDTH: usize = 44;

/// The lab's control, which serves as long as it lives, and the files of its run. Its
/// fake servers serve as long as the runtime runs: the command's.
pub struct Lab {
    /// Where the lab's files are, and the results unless told otherwise.
    dir: PathBuf,
    targets: PathBuf,
    ca_file: PathBuf,
    control: url::Url,
    _control: JoinSet<()>,
}

impl Lab {
    /// Starts every server of the lab, and the control, on loopback ports.
    pub async fn start() -> anyhow::Result<Lab> {
        let dir =
            std::env::temp_dir().join(format!("censorprobe-demo-{:08x}", rand::random::<u32>()));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

        let ca = ca::Ca::new()?;
        let ca_file = ca.write_pem(&dir)?;
        let (chain, key) = ca.issue(&["*.demo.test"])?;
        let site = tls::server_config(chain, key)?;

        let names: Vec<String> = SERVICES
            .iter()
            .map(|name| format!("{name}.demo.test"))
            .collect();
        let zone = |lie: Option<(&str, Ipv4Addr)>| -> Vec<(&str, DnsBehaviour)> {
            names
                .iter()
                .map(|name| {
                    let address = match lie {
                        Some((lied_about, address)) if lied_about == name => address,
                        _ => PROBE,
                    };
                    (name.as_str(), DnsBehaviour::Answer(vec![address.into()]))
                })
                .collect()
        };
        let probe_resolver = DnsServer::spawn(&zone(Some(("social.demo.test", BLOCKPAGE_ADDRESS))))
            .context("cannot bind a UDP port on loopback")?;
        let control_resolver =
            DnsServer::spawn(&zone(None)).context("cannot bind a UDP port on loopback")?;

        // canary, news and chat share an address, as sites behind a CDN do: the DPI box
        // tells chat apart by its SNI alone.
        let (https, https_addr) = tcp::listen().await.context("cannot listen on loopback")?;
        let sni_filter = TlsBehaviour::ForPeer {
            peer: PROBE.into(),
            then: Box::new(TlsBehaviour::ResetOnSni("chat.demo.test".into())),
        };
        TlsServer::serve_on(https, site.clone(), sni_filter, tls::BODY);
        let video = blackhole::listener(Blackholed::Source(PROBE))?;
        let video_port = video.local_addr()?.port();
        TlsServer::serve_on(video, site.clone(), TlsBehaviour::Normal, tls::BODY);
        let forum = blackhole::listener(Blackholed::Everyone)?;
        let forum_port = forum.local_addr()?.port();
        // A site nobody reaches.
        TlsServer::serve_on(forum, site, TlsBehaviour::Normal, tls::BODY);
        let wiki = HttpServer::spawn_censoring(
            PROBE.into(),
            http::IRAN_BLOCKPAGE,
            &http::page("wiki.demo.test", "<p>The wiki.</p>"),
        )
        .await
        .context("cannot listen on loopback")?;

        let targets = dir.join("targets.toml");
        let file = targets_file(
            probe_resolver,
            https_addr.port(),
            video_port,
            forum_port,
            wiki.port(),
        );
        std::fs::write(&targets, file)
            .with_context(|| format!("cannot write {}", targets.display()))?;
        let mut control_task = JoinSet::new();
        let control = control(&mut control_task, control_resolver, &ca_file).await?;
        Ok(Lab {
            dir,
            targets,
            ca_file,
            control,
            _control: control_task,
        })
    }

    /// What the lab simulates, to print before the run.
    pub fn intro(&self) -> anyhow::Result<String> {
        let catalog = Catalog::load()?;
        let mut out = String::from(
            "censorprobe demo: a censored network, simulated on this machine's loopback.\n\
             Nothing leaves the machine; nothing needs root.\n\n\
             The probe measures from 127.0.0.1, behind a censor, asking the censor's resolver.\n\
             A control server measures the same targets from 127.0.0.2, outside the censor,\n\
             with an honest resolver. The services of the lab, and what the censor does:\n\n",
        );
        let _ = writeln!(
            out,
            "  {:9}{:25}what the censor does",
            "service", "honest verdict"
        );
        for name in SERVICES {
            let scenario = catalog.demo_service(name)?;
            let outcome = scenario.outcome()?;
            let verdict = match outcome.blocking {
                Some(blocking) => format!("{}, {blocking}", outcome.verdict),
                None => outcome.verdict.to_string(),
            };
            let mut lines = wrap(&scenario.censor, INTRO_TEXT_WIDTH).into_iter();
            let first = lines.next().unwrap_or_default();
            let _ = writeln!(out, "  {name:9}{verdict:25}{first}");
            for line in lines {
                let _ = writeln!(out, "{:36}{line}", "");
            }
        }
        let _ = writeln!(
            out,
            "\nMeasuring (a blackholed connect waits out the {} s step timeout)...\n",
            STEP_TIMEOUT.as_secs()
        );
        Ok(out)
    }

    /// The lab's targets file, which its servers answer for.
    pub fn targets(&self) -> &Path {
        &self.targets
    }

    /// The lab CA's certificate, which the probe must trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The lab's control server.
    pub fn control(&self) -> &url::Url {
        &self.control
    }

    /// Where the lab keeps its files, and the run's unless told otherwise.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where to look next, to print after the summary.
    pub fn outro(&self) -> String {
        format!(
            "There, verdicts.csv gives each verdict with its evidence, and measurements.csv\n\
             every measurement, the probe's beside the control's (in full: measurements.jsonl).\n\
             The lab's targets file: {}\n",
            self.targets.display()
        )
    }
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// The lab's targets.toml: every name through the censor's resolver, on the lab's ports.
fn targets_file(resolver: SocketAddr, https: u16, video: u16, forum: u16, wiki: u16) -> String {
    format!(
        r#"# The lab of `censorprobe demo`: every name is served on loopback.
[settings]
timeout_secs = {timeout}
resolvers = ["udp://{resolver}"]
canary = "canary.demo.test"
treat_as_public = ["{LAB_NETWORK}"]
tls_ports = [{https}]
tcp_ports = []

[[service]]
name = "news"
domains = ["news.demo.test"]
urls = ["https://news.demo.test:{https}/"]

[[service]]
name = "chat"
domains = ["chat.demo.test"]

[[service]]
name = "video"
domains = ["video.demo.test"]
tls_ports = [{video}]

[[service]]
name = "social"
domains = ["social.demo.test"]

[[service]]
name = "wiki"
urls = ["http://wiki.demo.test:{wiki}/"]

[[service]]
name = "forum"
domains = ["forum.demo.test"]
tls_ports = [{forum}]
"#,
        timeout = STEP_TIMEOUT.as_secs()
    )
}

/// Starts the control server in-process, listening at 127.0.0.2 and measuring from
/// there with the honest resolver, and returns its URL.
async fn control(
    servers: &mut JoinSet<()>,
    resolver: SocketAddr,
    ca_file: &Path,
) -> anyhow::Result<url::Url> {
    let listener = TcpListener::bind((CONTROL, 0)).await.with_context(|| {
        format!("the demo needs a second loopback address, {CONTROL}, for its control (Linux has all of 127.0.0.0/8)")
    })?;
    let address = listener.local_addr()?;
    // `control serve`'s defaults, but for the lab's address, resolver, CA, network,
    // deadlines and source.
    let args = ServeArgs {
        listen: address,
        measure: MeasureFlags {
            ca_file: Some(ca_file.to_path_buf()),
            treat_as_public: vec![LAB_NETWORK.parse()?],
            resolvers: vec![ResolverSpec::Udp(resolver)],
            ..MeasureFlags::default()
        },
        timeout: STEP_TIMEOUT,
        request_deadline: Duration::from_secs(60),
        bind: Some(CONTROL.into()),
        ..ServeArgs::default()
    };
    let server = ControlServer::new(&args)?;
    servers.spawn(server.serve_on(listener, std::future::pending()));
    Ok(format!("http://{address}").parse()?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The catalog's demo services are the lab's, each with the verdict it gives.
    #[test]
    fn the_catalog_has_every_service_of_the_demo_and_only_those() {
        let catalog = Catalog::load().unwrap();
        let listed: BTreeSet<&str> = catalog
            .scenarios()
            .iter()
            .flat_map(|s| s.demo.iter().map(String::as_str))
            .collect();
        assert_eq!(listed, BTreeSet::from(SERVICES));
        for service in SERVICES {
            catalog.demo_service(service).unwrap().outcome().unwrap();
        }
    }

    #[test]
    fn wrap_breaks_between_words() {
        assert_eq!(wrap("a bb ccc dd", 6), ["a bb", "ccc dd"]);
        assert_eq!(wrap("toolongword x", 4), ["toolongword", "x"]);
    }
}
