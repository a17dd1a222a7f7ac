//! `control serve --collect DIR`: a collector of finished runs, so that a volunteer's
//! run reaches the researchers aggregating many without anyone mailing a folder.
//!
//! A probe posts a run's bundle (as `censorprobe bundle` writes it) to `POST /v1/runs`
//! with its own token, from the operator's tokens file; `GET /v1/runs` lists the runs
//! that token uploaded, and no other. The collector faces the internet as the control
//! does, so an upload is bounded in size (as sent and unpacked) and in time, and is
//! checked whole before anything is stored: only a run's own files, plain files in the
//! run's folder, each readable by this censorprobe, none naming the address the upload
//! came from. A run is stored by rename, whole or not at all, as
//! `DIR/<probe_cc>/<probe_asn>/<day>/<run_id>/`, where `aggregate` and `report` find it.
//!
//! A run_id is taken once: an upload of a run already stored for the same probe, with the
//! same content, is answered as the first was (so a probe retries an upload cut short
//! without a thought), and any other upload with its run_id is refused.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::server::{ApiError, BodyLimit, ServeArgs, bearer_token, digest, read_body};
use crate::facts::scrub::mentions;
use crate::rundir::rows::{MeasurementRow, read_verdicts};
use crate::rundir::writer::JsonlRecord;
use crate::rundir::{
    self, MEASUREMENTS_CSV, MEASUREMENTS_JSONL, REPORT_HTML, RUN_JSON, RunInfo, SUMMARY_TXT,
    VERDICTS_CSV,
};

/// Where runs are posted and listed.
pub const RUNS_PATH: &str = "/v1/runs";
/// The default of `--max-upload`: a run of thousands of targets is a few MiB gzipped.
pub const MAX_UPLOAD: usize = 64 << 20;
/// How much larger than `--max-upload` an upload may grow unpacked: CSV and JSON lines
/// compress about tenfold, and a gzip bomb must not fill the collector's disk.
const UNPACK_RATIO: u64 = 16;
/// The memory all uploads being read at once share (or one `--max-upload`, if larger).
const UPLOAD_BUDGET: usize = 256 << 20;

/// The files a collected run may hold: the run's own (its Parquet copies and derived
/// verdicts are left out: they are made again from these), and what a bundle adds.
pub const RUN_FILES: [&str; 6] = [
    RUN_JSON,
    VERDICTS_CSV,
    MEASUREMENTS_CSV,
    MEASUREMENTS_JSONL,
    REPORT_HTML,
    SUMMARY_TXT,
];
/// Those a run must hold.
const REQUIRED: [&str; 2] = [RUN_JSON, VERDICTS_CSV];
/// Those made from the others when the bundle is (they may differ between two bundles
/// of one run), which the run's content is therefore compared without.
const MADE: [&str; 2] = [REPORT_HTML, SUMMARY_TXT];
/// The most a bundle's summary or page may hold.
const MADE_MAX: u64 = 16 * 1024 * 1024;
/// Room for a tar's headers and padding above the files it holds.
const TAR_OVERHEAD: u64 = 1024 * 1024;

/// Uploads being unpacked and checked, in DIR; left over by a crash, removed at start.
const INCOMING: &str = ".incoming";
/// Who uploaded each run, its content's digest, and where it is stored: one
/// `<run_id>.json` per run.
const INDEX: &str = ".runs";

/// A run as stored, answered to its upload (and to a retry of it) and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    pub run_id: String,
    /// Below the collector's DIR: `<probe_cc>/<probe_asn>/<day>/<run_id>`.
    pub path: String,
    pub stored_at: DateTime<Utc>,
    /// The bytes of the upload that stored it.
    pub size: u64,
}

/// The answer to `GET /v1/runs`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<StoredRun>,
}

/// A run's line in the index.
#[derive(Serialize, Deserialize)]
struct Record {
    probe: String,
    /// SHA-256 of the run's content (see [`content_digest`]), in hex.
    content: String,
    #[serde(flatten)]
    run: StoredRun,
}

/// Why an upload is refused; it prints as the message the probe is sent.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("not a gzipped tar archive as `censorprobe bundle` writes it: {0}")]
    NotABundle(String),
    #[error(
        "{0:?}: an entry must be named RUN_ID/FILE, without `..`, an absolute path or more folders"
    )]
    BadPath(String),
    #[error("{0:?} is a {1}: only plain files are taken (no links, devices or folders)")]
    NotAFile(String, String),
    #[error("{0:?} is not a file of a run: a run's bundle holds {files}", files = RUN_FILES.join(", "))]
    UnknownFile(String),
    #[error("{0:?} is in the archive twice")]
    Twice(String),
    #[error("the archive holds no {0}")]
    Missing(&'static str),
    #[error("the archive's files are in {0:?}, not in the folder of the run's id {1:?}")]
    WrongFolder(String, String),
    #[error("unpacked, the archive is larger than {0} bytes (16 times --max-upload)")]
    TooLargeUnpacked(u64),
    #[error("{0} is larger than the {1} bytes a bundle's {0} may be")]
    TooLargeFile(&'static str, u64),
    #[error("{0}")]
    Unreadable(String),
    #[error("{RUN_JSON}: {0} {1:?} cannot name a folder of the collector")]
    UnsafeLabel(&'static str, String),
    #[error(
        "{0} names the address this upload comes from: a run must hold no address of its probe's"
    )]
    NamesProbe(&'static str),
    #[error(
        "run {0} is stored already, with other content or for another probe: a run_id is taken once"
    )]
    Taken(String),
}

impl Rejection {
    fn status(&self) -> StatusCode {
        match self {
            Rejection::Taken(_) => StatusCode::CONFLICT,
            Rejection::TooLargeUnpacked(_) | Rejection::TooLargeFile(..) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        ApiError::new(rejection.status(), rejection.to_string())
    }
}

/// A probe allowed to upload, by the digest of its token (compared as the control's
/// token is: see `server::token_matches`).
struct Probe {
    name: String,
    token: [u8; 32],
}

/// The collecting part of a control server.
pub struct Collector {
    dir: PathBuf,
    probes: Vec<Probe>,
    max_upload: usize,
    /// How long an upload may take to arrive: --request-deadline.
    deadline: Duration,
    /// Bytes of the uploads being read, within [`UPLOAD_BUDGET`].
    budget: Semaphore,
    /// Held while a checked run is indexed and renamed into place, so that of uploads
    /// of one run at once, exactly one stores it and the others find it stored.
    storing: Mutex<()>,
    /// Uploads being checked at once, one per core: a check reads and scans every file,
    /// and uploads beyond wait their turn rather than share the machine. Held by the
    /// check itself, so that a client that hangs up does not free its place early.
    checking: Arc<Semaphore>,
}

/// The routes of `/v1/runs`.
pub fn routes(collector: Arc<Collector>) -> Router {
    Router::new()
        .route(RUNS_PATH, get(list).post(upload))
        .with_state(collector)
}

impl Collector {
    /// The collector of `args`, if `--collect` asks for one: its tokens read, its
    /// directory made, and uploads left over by a crash removed.
    pub fn new(args: &ServeArgs) -> anyhow::Result<Option<Collector>> {
        let (Some(dir), Some(tokens)) = (&args.collect, &args.collect_tokens) else {
            return Ok(None);
        };
        let probes = read_tokens(tokens)?;
        let incoming = dir.join(INCOMING);
        let _ = std::fs::remove_dir_all(&incoming);
        for made in [incoming, dir.join(INDEX)] {
            std::fs::create_dir_all(&made)
                .with_context(|| format!("--collect: cannot create {}", made.display()))?;
        }
        Ok(Some(Collector {
            dir: dir.clone(),
            probes,
            max_upload: args.max_upload,
            deadline: args.request_deadline,
            budget: Semaphore::new(UPLOAD_BUDGET.max(args.max_upload)),
            storing: Mutex::new(()),
            checking: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(1, usize::from),
            )),
        }))
    }

    /// The probe whose token the request bears. Every probe's digest is compared, in
    /// constant time, whichever matches.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let given = digest(bearer_token(headers));
        let mut found = None;
        for probe in &self.probes {
            if bool::from(probe.token.ct_eq(&given)) {
                found = Some(probe.name.clone());
            }
        }
        found.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this collector needs your probe's token: send Authorization: Bearer <token>",
            )
        })
    }

    /// Checks an upload and stores it: the run as stored, and whether this upload
    /// stored it (rather than finding it stored by an earlier one).
    fn store(
        &self,
        probe: &str,
        client: IpAddr,
        bundle: &[u8],
    ) -> Result<(StoredRun, bool), ApiError> {
        let incoming = Incoming::new(&self.dir)?;
        let unpack_cap = self.max_upload as u64 * UNPACK_RATIO;
        let folder = unpack(bundle, &incoming.0, unpack_cap)?;
        let info = check(&incoming.0, &folder, client)?;
        let content = content_digest(&incoming.0);
        let path = format!(
            "{}/{}/{}/{}",
            info.probe_cc,
            info.probe_asn,
            info.started_at.format("%Y-%m-%d"),
            info.run_id
        );
        let record = Record {
            probe: probe.to_string(),
            content,
            run: StoredRun {
                run_id: info.run_id.clone(),
                path,
                stored_at: Utc::now(),
                size: bundle.len() as u64,
            },
        };
        self.commit(&incoming.0, record)
    }

    /// Puts a checked run in place under [`Collector::storing`]: its record first, then
    /// the rename, so that a crash between leaves a record of a run not there, which
    /// the next upload of it replaces.
    fn commit(&self, unpacked: &Path, record: Record) -> Result<(StoredRun, bool), ApiError> {
        let _storing = self
            .storing
            .lock()
            .expect("the collector's lock is poisoned");
        let run_id = &record.run.run_id;
        let indexed = self.dir.join(INDEX).join(format!("{run_id}.json"));
        if let Some(stored) = read_record(&indexed).filter(|r| self.dir.join(&r.run.path).is_dir())
        {
            return match stored.probe == record.probe && stored.content == record.content {
                true => Ok((stored.run, false)),
                false => Err(Rejection::Taken(run_id.clone()).into()),
            };
        }
        let place = self.dir.join(&record.run.path);
        if place.exists() {
            // Put there by hand, not by an upload: not ours to replace.
            return Err(Rejection::Taken(run_id.clone()).into());
        }
        let stored = (|| {
            rundir::replace_file(&indexed, &serde_json::to_vec_pretty(&record)?)?;
            let parent = place.parent().context("a run's place has a parent")?;
            std::fs::create_dir_all(parent)?;
            std::fs::rename(unpacked, &place)?;
            // The rename itself survives a power cut only once its folder is on disk.
            std::fs::File::open(parent)?.sync_all()?;
            anyhow::Ok(())
        })();
        stored.map_err(|e| {
            tracing::warn!("cannot store run {run_id}: {e:#}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the collector cannot store the run now; retry later",
            )
        })?;
        Ok((record.run, true))
    }

    /// The runs `probe` uploaded, oldest first.
    fn runs_of(&self, probe: &str) -> Vec<StoredRun> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(INDEX)) else {
            return Vec::new();
        };
        let mut runs: Vec<StoredRun> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| read_record(&e.path()))
            .filter(|r| r.probe == probe && self.dir.join(&r.run.path).is_dir())
            .map(|r| r.run)
            .collect();
        runs.sort_by(|a, b| (a.stored_at, &a.run_id).cmp(&(b.stored_at, &b.run_id)));
        runs
    }
}

fn read_record(path: &Path) -> Option<Record> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The probes of a tokens file: a line `PROBE_NAME TOKEN` each, blank lines and `#`
/// comments aside. A name becomes no path, but is kept to what one could (letters,
/// digits, `.`, `_`, `-`); a token has at least 16 characters, and no two probes share
/// a name or a token.
fn read_tokens(path: &Path) -> anyhow::Result<Vec<Probe>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --collect-tokens {}", path.display()))?;
    let mut probes: Vec<Probe> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), index + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, token] = fields[..] else {
            anyhow::bail!("{}: expected `PROBE_NAME TOKEN`", at());
        };
        anyhow::ensure!(
            is_safe_name(name),
            "{}: a probe's name is letters, digits, `.`, `_` and `-`, not starting with `.`",
            at()
        );
        anyhow::ensure!(
            token.len() >= 16,
            "{}: the token of {name} is shorter than 16 characters",
            at()
        );
        let token = digest(token);
        anyhow::ensure!(
            !probes.iter().any(|p| p.name == name || p.token == token),
            "{}: {name} or its token is named twice",
            at()
        );
        probes.push(Probe {
            name: name.to_string(),
            token,
        });
    }
    anyhow::ensure!(
        !probes.is_empty(),
        "--collect-tokens {}: no probe in it",
        path.display()
    );
    Ok(probes)
}

/// Whether `name` can be a folder's name on any system: at most 128 letters, digits,
/// `.`, `_` and `-`, not starting with `.` (so neither `.` nor `..`, nor hidden).
fn is_safe_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// An upload's folder in DIR/.incoming, removed with whatever it holds when dropped
/// (after a rename, there is nothing left to remove).
struct Incoming(PathBuf);

impl Incoming {
    fn new(dir: &Path) -> Result<Incoming, ApiError> {
        let path = dir
            .join(INCOMING)
            .join(format!("{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&path).map_err(|e| {
            tracing::warn!("cannot create {}: {e}", path.display());
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the collector cannot take an upload now; retry later",
            )
        })?;
        Ok(Incoming(path))
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unpacks a bundle's files into `into`, flat, refusing whatever is not a plain file
/// named `FOLDER/FILE` for a file of [`RUN_FILES`], and stopping once more than
/// `cap` bytes come out. Gives the folder.
fn unpack(bundle: &[u8], into: &Path, cap: u64) -> Result<String, ApiError> {
    // The cap is on the decompressed stream itself, not only on the files copied out:
    // the tar reader takes an extension header (a long name, PAX attributes) whole
    // into memory before the loop below sees it, so a small upload could otherwise
    // claim gigabytes there. Headers and padding get a little room above the files.
    let over = Rc::new(Cell::new(false));
    let stream = Capped {
        inner: GzDecoder::new(bundle),
        left: cap + TAR_OVERHEAD,
        over: over.clone(),
    };
    let not_a_bundle = |e: std::io::Error| match over.get() {
        true => Rejection::TooLargeUnpacked(cap),
        false => Rejection::NotABundle(e.to_string()),
    };
    let mut archive = tar::Archive::new(stream);
    let mut folder: Option<String> = None;
    let mut seen = HashSet::new();
    let mut left = cap;
    for entry in archive.entries().map_err(not_a_bundle)? {
        let mut entry = entry.map_err(not_a_bundle)?;
        let named = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            return Err(Rejection::NotAFile(named, format!("{kind:?}").to_lowercase()).into());
        }
        let (dir, name) = match named.split('/').collect::<Vec<_>>()[..] {
            [dir, name] if is_safe_name(dir) && !name.is_empty() => {
                (dir.to_string(), name.to_string())
            }
            _ => return Err(Rejection::BadPath(named).into()),
        };
        let Some(&name) = RUN_FILES.iter().find(|known| **known == name) else {
            return Err(Rejection::UnknownFile(named).into());
        };
        if *folder.get_or_insert_with(|| dir.clone()) != dir {
            return Err(Rejection::BadPath(named).into());
        }
        if !seen.insert(name) {
            return Err(Rejection::Twice(named).into());
        }
        let too_large = || ApiError::from(Rejection::TooLargeUnpacked(cap));
        if entry.size() > left {
            return Err(too_large());
        }
        // The bundle's own summary and page are small; nothing reads them but the
        // address check, which must not be handed a gigabyte to scan.
        if MADE.contains(&name) && entry.size() > MADE_MAX {
            return Err(Rejection::TooLargeFile(name, MADE_MAX).into());
        }
        let path = into.join(name);
        let written = (|| {
            let mut file = std::fs::File::create_new(&path)?;
            let copied = std::io::copy(&mut (&mut entry).take(left), &mut file)?;
            file.sync_all()?;
            Ok::<_, std::io::Error>(copied)
        })()
        .map_err(not_a_bundle)?;
        left -= written;
    }
    for required in REQUIRED {
        if !seen.contains(required) {
            return Err(Rejection::Missing(required).into());
        }
    }
    Ok(folder.expect("a run.json was unpacked, so a folder was named"))
}

/// A reader that gives at most `left` bytes, and notes in `over` that more were asked
/// for: what ends the stream there is the cap, not the archive.
struct Capped<R> {
    inner: R,
    left: u64,
    over: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            if !buf.is_empty() {
                self.over.set(true);
            }
            return Ok(0);
        }
        let most = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..most])?;
        self.left -= read as u64;
        Ok(read)
    }
}

/// Checks an unpacked run as this censorprobe reads it: run.json of a schema version it
/// reads, in the folder of its run_id, with labels that make safe folder names; every
/// table readable; and no file naming `client`, the address it was uploaded from.
fn check(dir: &Path, folder: &str, client: IpAddr) -> Result<RunInfo, ApiError> {
    // The readers' errors name their file, or the folder, by its path, which is the
    // collector's own.
    let folder_path = dir.display().to_string();
    let unreadable = |file: &str, e: anyhow::Error| {
        Rejection::Unreadable(
            format!("{file}: {e:#}")
                .replace(&format!("{folder_path}/"), "")
                .replace(&folder_path, "the run"),
        )
    };
    let info = rundir::read_info(dir).map_err(|e| unreadable(RUN_JSON, e))?;
    if info.run_id != folder {
        return Err(Rejection::WrongFolder(folder.to_string(), info.run_id).into());
    }
    let labels = [
        ("run_id", &info.run_id, is_safe_name(&info.run_id)),
        ("probe_cc", &info.probe_cc, is_cc(&info.probe_cc)),
        ("probe_asn", &info.probe_asn, is_asn(&info.probe_asn)),
    ];
    for (label, value, safe) in labels {
        if !safe {
            return Err(Rejection::UnsafeLabel(label, value.clone()).into());
        }
    }
    // A run as every reader takes it (aggregate, report): else stored and then skipped.
    rundir::check_run(dir).map_err(|e| unreadable(VERDICTS_CSV, e))?;
    read_tables(dir, &info).map_err(|(file, e)| unreadable(file, e))?;
    for file in RUN_FILES {
        let Ok(bytes) = std::fs::read(dir.join(file)) else {
            continue;
        };
        if mentions(&String::from_utf8_lossy(&bytes), client) {
            return Err(Rejection::NamesProbe(file).into());
        }
    }
    Ok(info)
}

/// Reads every table of an unpacked run with the crate's readers; the error names the
/// file.
fn read_tables(dir: &Path, info: &RunInfo) -> Result<(), (&'static str, anyhow::Error)> {
    for row in read_verdicts(&dir.join(VERDICTS_CSV)).map_err(|e| (VERDICTS_CSV, e))? {
        let (line, row) = row.map_err(|e| (VERDICTS_CSV, e))?;
        row.judgement()
            .map_err(|e| (VERDICTS_CSV, anyhow::anyhow!("line {line}: {e}")))?;
        // Readers group by the rows' own labels: a row of another run or network
        // would be counted there, under this probe's upload.
        let labels = (&row.run_id, &row.probe_cc, &row.probe_asn);
        if labels != (&info.run_id, &info.probe_cc, &info.probe_asn) {
            return Err((
                VERDICTS_CSV,
                anyhow::anyhow!(
                    "line {line}: run {} on {} {}, where run.json says run {} on {} {}",
                    row.run_id,
                    row.probe_cc,
                    row.probe_asn,
                    info.run_id,
                    info.probe_cc,
                    info.probe_asn
                ),
            ));
        }
    }
    let measurements = dir.join(MEASUREMENTS_CSV);
    if measurements.is_file() {
        let mut reader =
            csv::Reader::from_path(&measurements).map_err(|e| (MEASUREMENTS_CSV, e.into()))?;
        for row in reader.deserialize::<MeasurementRow>() {
            row.map_err(|e| (MEASUREMENTS_CSV, e.into()))?;
        }
    }
    let jsonl = dir.join(MEASUREMENTS_JSONL);
    if jsonl.is_file() {
        let text = std::fs::read_to_string(&jsonl).map_err(|e| (MEASUREMENTS_JSONL, e.into()))?;
        for (index, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            serde_json::from_str::<JsonlRecord>(line).map_err(|e| {
                (
                    MEASUREMENTS_JSONL,
                    anyhow::anyhow!("line {}: {e}", index + 1),
                )
            })?;
        }
    }
    Ok(())
}

/// A country as run.json names it: two capital letters (ZZ: not located).
fn is_cc(cc: &str) -> bool {
    cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase())
}

/// A network as run.json names it: AS and its number (AS0: not located).
fn is_asn(asn: &str) -> bool {
    asn.strip_prefix("AS")
        .is_some_and(|n| (1..=10).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The digest of a run's content: its files but the bundle's made ones ([`MADE`]),
/// each by name and length, so that two bundles of one run compare equal.
fn content_digest(dir: &Path) -> String {
    let mut hash = Sha256::new();
    for file in RUN_FILES.iter().filter(|f| !MADE.contains(f)) {
        let Ok(bytes) = std::fs::read(dir.join(file)) else {
            continue;
        };
        hash.update(file.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    let mut hex = String::with_capacity(64);
    for byte in hash.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

async fn upload(
    State(collector): State<Arc<Collector>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<StoredRun>), ApiError> {
    let probe = collector.authenticate(&headers)?;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is larger than this collector's limit of {} bytes (--max-upload)",
                collector.max_upload
            ),
        )
    };
    let limit = BodyLimit {
        max: collector.max_upload,
        budget: &collector.budget,
        deadline: collector.deadline,
    };
    let (bundle, _held) = read_body(body, limit, too_large).await?;
    let storing = collector.clone();
    let turn = collector
        .checking
        .clone()
        .acquire_owned()
        .await
        .expect("never closed");
    let stored = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        storing.store(&probe, client.ip(), &bundle)
    })
    .await
    .map_err(|e| {
        tracing::warn!("an upload's check stopped: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the upload's check stopped",
        )
    })?;
    let (run, created) = stored?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(run)))
}

async fn list(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
) -> Result<Json<RunList>, ApiError> {
    let probe = collector.authenticate(&headers)?;
    let runs = tokio::task::spawn_blocking(move || collector.runs_of(&probe))
        .await
        .unwrap_or_default();
    Ok(Json(RunList { runs }))
}
