//! `censorprobe upload RUN --to URL`: sends a finished run to a collector (`control serve
//! --collect`), as a bundle of the files it takes (see `control::collect`).
//!
//! An upload is idempotent at the collector (a run stored is answered as stored), so a
//! cut connection, a timeout or a busy collector is simply met by sending the whole
//! bundle again, a few times with backoff. A collector out of reach after that (the
//! volunteer's network is down, or censored) leaves the run queued in the data
//! directory's `upload-queue`, which `upload --queued` and every later upload send.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use hyper::Method;
use url::Url;

use super::{browse, bundle, places};
use crate::control::client::{Exchange, ExchangeError, answer_silence, server_message};
use crate::control::collect::{RUN_FILES, RUNS_PATH, StoredRun};
use crate::control::protocol::ControlError;
use crate::error::InputError;
use crate::measure::tls::{TlsContext, root_store};
use crate::rundir;

/// The connect and TLS handshake's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most one try of an upload may take: a bundle of a few MiB on a slow link.
const UPLOAD_WAIT: Duration = Duration::from_secs(300);
/// The queue's file in the data directory: a line `RUN_ID DIR` per run.
const QUEUE: &str = "upload-queue";
/// Sends of a bundle again after a transient failure, by default (`--retries`).
pub const RETRIES: usize = 4;

/// The command line of `upload`.
#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// The run's id (as `list` gives it) or its directory.
    #[arg(value_name = "RUN", required_unless_present = "queued")]
    pub run: Option<PathBuf>,
    #[command(flatten)]
    pub to: UploadTo,
    /// Send the runs queued by uploads that could not reach a collector (every upload
    /// sends them too, after its run).
    #[arg(long)]
    pub queued: bool,
}

/// Where runs are uploaded, and how: what `upload` and `run --upload` share.
#[derive(Debug, Clone, clap::Args)]
pub struct UploadTo {
    /// The collector (`control serve --collect`): its http:// or https:// URL.
    #[arg(long = "to", value_name = "URL")]
    pub url: Url,
    /// This probe's token at the collector.
    #[arg(
        long = "token",
        value_name = "T",
        env = "CENSORPROBE_UPLOAD_TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    /// Upload from this local address (a multi-homed host, a lab).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// Extra CA certificates (PEM) to trust for an https:// collector whose certificate
    /// a private CA issued.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Send the run again this many times, with backoff, while the network or the
    /// collector fails, before it is queued (0: queue it at the first failure, as a
    /// scheduled job on a metered link may want).
    #[arg(long, value_name = "N", default_value_t = RETRIES)]
    pub retries: usize,
}

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot reach the collector {0}")]
    Unreachable(String),
    #[error("no answer from the collector within {0:?}")]
    TimedOut(Duration),
    #[error("the collector failed (HTTP {0}): {1}")]
    Failing(u16, String),
    #[error("the collector refused the run (HTTP {0}): {1}")]
    Refused(u16, String),
    #[error("{0:#}")]
    Local(anyhow::Error),
}

impl From<ExchangeError> for UploadError {
    fn from(e: ExchangeError) -> UploadError {
        match e {
            ExchangeError::Transport(e)
            | ExchangeError::Unanswered(e)
            | ExchangeError::Stalled(e) => UploadError::Unreachable(e),
            ExchangeError::TimedOut(wait) => UploadError::TimedOut(wait),
        }
    }
}

impl UploadError {
    /// Whether trying again at once may succeed: a failure of the network or of the
    /// collector, or a collector that asks for patience (408, 429).
    fn transient(&self) -> bool {
        matches!(
            self,
            UploadError::Unreachable(_)
                | UploadError::TimedOut(_)
                | UploadError::Failing(..)
                | UploadError::Refused(408 | 429, _)
        )
    }

    /// Whether the run stays queued: anything but the collector's own verdict on the
    /// run (400: it breaks the rules; 409: its id is taken), which no retry changes. A
    /// wrong or rotated token (401, 403), a wrong URL or a collector started without
    /// --collect (404), a proxy's size limit (413) are put right by their owner, and
    /// the run must still be there when they are.
    fn kept(&self) -> bool {
        !matches!(
            self,
            UploadError::Refused(400 | 409, _) | UploadError::Local(_)
        )
    }
}

/// The runs' endpoint of the collector at `url`, below its path: a collector behind a
/// reverse proxy's path (`https://host/censorprobe`) keeps it.
fn endpoint(url: &Url) -> anyhow::Result<Url> {
    let mut base = url.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    Ok(base.join(RUNS_PATH.trim_start_matches('/'))?)
}

/// `censorprobe upload`: the run given, then the queue.
pub async fn command(args: UploadArgs) -> anyhow::Result<ExitCode> {
    let uploader = Uploader::new(&args.to).map_err(InputError)?;
    if let Some(run) = &args.run {
        let dir = browse::run_dir(run, &places::results_dir()).map_err(InputError)?;
        match uploader.upload(&dir).await {
            Ok(stored) => outln!("Uploaded: {} (stored as {})", stored.run_id, stored.path),
            Err(e) if e.kept() => {
                let queue = enqueue(&dir)?;
                anyhow::bail!(
                    "{e}; queued in {}: `censorprobe upload --queued --to URL` sends it",
                    queue.display()
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    send_queued(&uploader).await?;
    Ok(ExitCode::SUCCESS)
}

/// `run --upload`: uploads the run just made, else says why on standard error and
/// queues it if a later try may succeed; the run stands either way, and so does its
/// exit code.
pub async fn after_run(dir: &Path, to: &UploadTo) {
    let uploader = match Uploader::new(to) {
        Ok(uploader) => uploader,
        Err(e) => return errln!("warning: the run was not uploaded: {e:#}"),
    };
    match uploader.upload(dir).await {
        Ok(stored) => {
            outln!("Uploaded to {}: {}", to.url, stored.path);
            if let Err(e) = send_queued(&uploader).await {
                errln!("warning: {e:#}");
            }
        }
        Err(e) if e.kept() => {
            let queued = enqueue(dir).map_or_else(
                |q| format!("and cannot be queued ({q:#})"),
                |queue| format!("queued in {}", queue.display()),
            );
            errln!(
                "warning: the run was not uploaded ({e}); it stands in {}, {queued}: `censorprobe upload --queued --to URL` sends it",
                dir.display()
            );
        }
        Err(e) => errln!(
            "warning: the run was not uploaded ({e}); it stands in {}",
            dir.display()
        ),
    }
}

/// Uploads to one collector.
struct Uploader {
    endpoint: Url,
    token: String,
    tls: TlsContext,
    source: Option<IpAddr>,
    retries: usize,
}

impl Uploader {
    fn new(to: &UploadTo) -> anyhow::Result<Uploader> {
        anyhow::ensure!(
            matches!(to.url.scheme(), "http" | "https") && to.url.host().is_some(),
            "--to {}: expected an http:// or https:// URL",
            to.url
        );
        Ok(Uploader {
            endpoint: endpoint(&to.url)?,
            token: to.token.clone(),
            tls: TlsContext::new(root_store(to.ca_file.as_deref())?)?,
            source: to.bind,
            retries: to.retries,
        })
    }

    /// Bundles the run in `dir` and posts it, again while the network or the collector
    /// fails.
    async fn upload(&self, dir: &Path) -> Result<StoredRun, UploadError> {
        let bundle = Bytes::from(make_bundle(dir).map_err(UploadError::Local)?);
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(8))
            .with_max_times(self.retries)
            .with_jitter();
        (|| self.post(bundle.clone()))
            .retry(policy)
            .when(UploadError::transient)
            .notify(|e, after| tracing::info!("{e}; trying again in {after:?}"))
            .await
    }

    async fn post(&self, bundle: Bytes) -> Result<StoredRun, UploadError> {
        let exchange = Exchange {
            url: &self.endpoint,
            token: Some(&self.token),
            tls: &self.tls,
            timeout: CONNECT_TIMEOUT,
            source: self.source,
            wait: UPLOAD_WAIT,
            silence: answer_silence(CONNECT_TIMEOUT),
            redial: false,
            connected: None,
        };
        let answer = exchange
            .send(Method::POST, "application/gzip", bundle)
            .await?;
        let (status, body) = (answer.status, answer.body);
        match status {
            200 | 201 => serde_json::from_slice(&body)
                .map_err(|e| UploadError::Failing(status, format!("unreadable answer: {e}"))),
            500.. => Err(UploadError::Failing(status, server_message(&body))),
            // A refusal in the collector's own words (its JSON error) is its verdict on
            // the run; a 400 from anything else on the way (a captive portal, a proxy,
            // a censor's box) is no answer about the run, and keeps it queued.
            400 | 409 if serde_json::from_slice::<ControlError>(&body).is_err() => {
                Err(UploadError::Failing(status, server_message(&body)))
            }
            _ => Err(UploadError::Refused(status, server_message(&body))),
        }
    }
}

/// The bundle of the run in `dir`, with the files a collector takes, as bytes: written
/// to a temporary file (`bundle` writes files), read, and removed.
fn make_bundle(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let info = rundir::read_info(dir)?;
    let out = std::env::temp_dir().join(format!(
        "censorprobe-upload-{}-{:08x}.tar.gz",
        info.run_id,
        rand::random::<u32>()
    ));
    let made =
        bundle::make(dir, &info.run_id, &out, |name| RUN_FILES.contains(&name)).and_then(|()| {
            std::fs::read(&out).with_context(|| format!("cannot read {}", out.display()))
        });
    let _ = std::fs::remove_file(&out);
    made
}

/// The queue file, and a lock held while it is read and rewritten.
fn queue_file() -> anyhow::Result<(PathBuf, std::fs::File)> {
    let dir = places::data_dir()
        .context("no data directory (neither $XDG_DATA_HOME nor $HOME) to queue the upload in")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!(".{QUEUE}.lock")))
        .context("cannot open the upload queue's lock")?;
    lock.lock().context("cannot lock the upload queue")?;
    Ok((dir.join(QUEUE), lock))
}

/// A queued run: its id, and its directory.
#[derive(Debug, Clone, PartialEq)]
struct Queued {
    run_id: String,
    dir: PathBuf,
}

fn read_queue(path: &Path) -> Vec<Queued> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(run_id, dir)| Queued {
            run_id: run_id.to_string(),
            dir: PathBuf::from(dir),
        })
        .collect()
}

fn write_queue(path: &Path, queue: &[Queued]) -> anyhow::Result<()> {
    let text: String = queue
        .iter()
        .map(|q| format!("{} {}\n", q.run_id, q.dir.display()))
        .collect();
    rundir::replace_file(path, text.as_bytes())
}

/// Queues the run in `dir` (once); gives the queue's file.
fn enqueue(dir: &Path) -> anyhow::Result<PathBuf> {
    let run_id = rundir::read_info(dir)?.run_id;
    let dir = std::path::absolute(dir)?;
    let (path, _lock) = queue_file()?;
    let mut queue = read_queue(&path);
    if !queue.iter().any(|q| q.run_id == run_id) {
        queue.push(Queued { run_id, dir });
        write_queue(&path, &queue)?;
    }
    Ok(path)
}

/// Uploads the queued runs, taking off the queue those stored and those refused (which
/// no retry would change); fails naming those left.
async fn send_queued(uploader: &Uploader) -> anyhow::Result<()> {
    let path = queue_file()?.0;
    let queued = read_queue(&path);
    let mut done = Vec::new();
    let mut left = 0;
    for run in queued {
        match uploader.upload(&run.dir).await {
            Ok(stored) => {
                outln!(
                    "Uploaded queued run {} (stored as {})",
                    run.run_id,
                    stored.path
                );
                done.push(run);
            }
            Err(e) if e.kept() => {
                errln!("queued run {} not uploaded: {e}", run.run_id);
                left += 1;
            }
            Err(e) => {
                errln!("queued run {} taken off the queue: {e}", run.run_id);
                done.push(run);
            }
        }
    }
    if !done.is_empty() {
        // Read again under the lock: a run queued meanwhile stays.
        let (path, _lock) = queue_file()?;
        let rest: Vec<Queued> = read_queue(&path)
            .into_iter()
            .filter(|q| !done.contains(q))
            .collect();
        write_queue(&path, &rest)?;
    }
    anyhow::ensure!(
        left == 0,
        "{left} queued runs not uploaded; they stay in {}",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_keeps_a_collectors_path() {
        let at = |url: &str| endpoint(&url.parse().unwrap()).unwrap().to_string();
        assert_eq!(
            at("https://c.example:8443"),
            "https://c.example:8443/v1/runs"
        );
        assert_eq!(
            at("https://c.example/censorprobe"),
            "https://c.example/censorprobe/v1/runs"
        );
        assert_eq!(
            at("https://c.example/censorprobe/"),
            "https://c.example/censorprobe/v1/runs"
        );
    }

    #[test]
    fn only_the_collectors_verdict_on_the_run_takes_it_off_the_queue() {
        let refused = |status| UploadError::Refused(status, String::new());
        for status in [401, 403, 404, 408, 413, 429] {
            assert!(refused(status).kept(), "{status}");
        }
        for status in [400, 409] {
            assert!(!refused(status).kept(), "{status}");
        }
        assert!(refused(429).transient() && !refused(401).transient());
    }
}
