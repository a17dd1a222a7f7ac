//! The collector (`control serve --collect`) as an operator and an attacker meet it,
//! and `upload` as a volunteer does: the real binary on both ends, over loopback.
//!
//! The runs uploaded are real runs of a loopback target, so their files name
//! 127.0.0.1 (the target, the resolver). A collector refuses a run naming the address
//! it was uploaded from, so uploads here come from 127.0.0.5 (`upload --bind`, and a
//! socket bound there for raw requests), as a probe's public address differs from the
//! addresses it measures.

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use common::{ControlServer, DEAD_END_FLAGS, assert_no_network, dead_end_targets, text};

const BIN: &str = env!("CARGO_BIN_EXE_censorprobe");
/// Where uploads come from: not an address the runs name.
const UPLOADER: &str = "127.0.0.5";
const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789abc";

/// Two finished runs of a loopback target, made once for all the tests (a run takes
/// seconds): each test copies what it needs. They find no network (there is none to
/// find on a closed port), and are whole runs all the same.
fn runs() -> &'static [PathBuf; 2] {
    static RUNS: OnceLock<[PathBuf; 2]> = OnceLock::new();
    RUNS.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("collect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let targets = dead_end_targets(&dir);
        ["a", "b"].map(|name| {
            let out = dir.join(name);
            let made = probe(&dir, &run_args(&targets, &out, &[]));
            assert_no_network(&made);
            out
        })
    })
}

/// `run` of `targets` into `out`, on network IR/AS64500, with `flags` besides.
fn run_args(targets: &Path, out: &Path, flags: &[&str]) -> Vec<String> {
    let on_network = ["--probe-cc", "IR", "--probe-asn", "AS64500"];
    [
        "run",
        "--targets",
        targets.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
    .into_iter()
    .chain(DEAD_END_FLAGS)
    .chain(on_network)
    .chain(flags.iter().copied())
    .map(String::from)
    .collect()
}

/// `censorprobe ARGS` with `home` as its data home, consent given.
fn probe(home: &Path, args: &[String]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("CENSORPROBE_YES", "1")
        .env_remove("CENSORPROBE_UPLOAD_TOKEN")
        .output()
        .unwrap()
}

/// `upload` of `run` to `url` as Alice, from [`UPLOADER`].
fn upload(home: &Path, run: Option<&Path>, url: &str, flags: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["upload".into()];
    args.extend(run.map(|r| r.to_str().unwrap().to_string()));
    args.extend(["--to", url, "--token", ALICE, "--bind", UPLOADER].map(String::from));
    args.extend(flags.iter().map(|f| f.to_string()));
    probe(home, &args)
}

/// A copy of `run` in `into`, under its own name.
fn copy_run(run: &Path, into: &Path) -> PathBuf {
    let copy = into.join(run.file_name().unwrap());
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(run).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    copy
}

fn run_id(run: &Path) -> String {
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    info["run_id"].as_str().unwrap().to_string()
}

/// The bundle of `run`, as `censorprobe bundle` writes it.
fn bundle(run: &Path, scratch: &Path) -> Vec<u8> {
    let out = scratch.join("bundle.tar.gz");
    let made = probe(
        scratch,
        &[
            "bundle",
            run.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from),
    );
    assert!(made.status.success(), "{}", text(&made));
    std::fs::read(out).unwrap()
}

/// A collector into `dir`, of Alice and Bob, with `flags` besides.
async fn collector(dir: &Path, flags: &[&str]) -> ControlServer {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("# the probes\nalice {ALICE}\nbob {BOB}\n")).unwrap();
    let store = dir.join("store");
    let mut args = vec![
        "--collect",
        store.to_str().unwrap(),
        "--collect-tokens",
        tokens.to_str().unwrap(),
    ];
    args.extend(flags);
    ControlServer::spawn(&args).await
}

/// An answer to a raw request: its status and body (0 and what was read when the
/// connection ended without one).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The error message, asserting the status.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        self.json()["error"].as_str().unwrap().to_string()
    }
}

/// `head` (its lines, without the blank line ending it) and `body`, sent from
/// [`UPLOADER`] over HTTP/1.1, and the answer read until the server closes.
async fn raw(server: &ControlServer, head: &str, body: &[u8]) -> Answer {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{UPLOADER}:0").parse().unwrap())
        .unwrap();
    let mut stream = socket.connect(server.address).await.unwrap();
    stream
        .write_all(
            format!(
                "{head}\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.address
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // The server may answer, and close, before it has read all of the body.
    let _ = stream.write_all(body).await;
    let mut read = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut read)).await;
    answer(&read)
}

fn answer(read: &[u8]) -> Answer {
    let read = String::from_utf8_lossy(read);
    let (head, body) = read.split_once("\r\n\r\n").unwrap_or((&read, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        body: body.to_string(),
    }
}

async fn post(server: &ControlServer, token: &str, bundle: &[u8]) -> Answer {
    let head = format!(
        "POST /v1/runs HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/gzip\r\nContent-Length: {}",
        bundle.len()
    );
    raw(server, &head, bundle).await
}

async fn list(server: &ControlServer, token: &str) -> Vec<serde_json::Value> {
    let head = format!("GET /v1/runs HTTP/1.1\r\nAuthorization: Bearer {token}");
    let answer = raw(server, &head, b"").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()["runs"].as_array().unwrap().clone()
}

/// Every folder in the store that holds a file, relative to it, hidden ones included:
/// only whole runs (and the index) may be there.
fn stored(store: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut has_file = false;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => stack.push(path),
                false => has_file = true,
            }
        }
        if has_file {
            found.push(dir.strip_prefix(store).unwrap().display().to_string());
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn an_upload_is_stored_listed_to_its_probe_alone_and_a_retry_changes_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let server = collector(scratch.path(), &[]).await;
    let store = scratch.path().join("store");
    let run = copy_run(&runs()[0], scratch.path());
    let id = run_id(&run);

    let uploaded = upload(scratch.path(), Some(&run), &server.url, &[]);
    assert!(uploaded.status.success(), "{}", text(&uploaded));
    let day = &std::fs::read_to_string(run.join("run.json")).unwrap();
    let info: serde_json::Value = serde_json::from_str(day).unwrap();
    let day = &info["started_at"].as_str().unwrap()[..10];
    let place = format!("IR/AS64500/{day}/{id}");
    assert!(text(&uploaded).contains(&place), "{}", text(&uploaded));
    let files: Vec<String> = {
        let mut names: Vec<String> = std::fs::read_dir(store.join(&place))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        files,
        [
            "measurements.csv",
            "measurements.jsonl",
            "report.html",
            "run.json",
            "summary.txt",
            "verdicts.csv"
        ]
    );

    let listed = list(&server, ALICE).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["run_id"], id.as_str());
    assert_eq!(listed[0]["path"], place.as_str());
    assert!(listed[0]["size"].as_u64().unwrap() > 0);
    assert!(listed[0]["stored_at"].is_string());
    assert!(
        list(&server, BOB).await.is_empty(),
        "Bob sees no run of Alice's"
    );

    // A retry, and a bundle of the same run made again, are answered as the first.
    let again = upload(scratch.path(), Some(&run), &server.url, &[]);
    assert!(again.status.success(), "{}", text(&again));
    let bytes = bundle(&run, scratch.path());
    let retried = post(&server, ALICE, &bytes).await;
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(retried.json(), listed[0]);

    // Bob cannot overwrite it; a wrong token is not let in at all.
    let error = post(&server, BOB, &bytes).await.error(409);
    assert!(error.contains("taken once"), "{error}");
    let error = post(&server, "not-a-token-at-all", &bytes).await.error(401);
    assert!(error.contains("token"), "{error}");
    let answer = raw(&server, "GET /v1/runs HTTP/1.1", b"").await;
    assert_eq!(answer.status, 401, "{answer:?}");

    // Another run under the same id is refused, even from Alice.
    let mut changed: serde_json::Value = info.clone();
    changed["finished_at"] = "2001-01-01T00:00:00Z".into();
    std::fs::write(run.join("run.json"), serde_json::to_vec(&changed).unwrap()).unwrap();
    let other = bundle(&run, scratch.path());
    post(&server, ALICE, &other).await.error(409);

    assert_eq!(stored(&store), [".runs".to_string(), place.clone()]);
    assert_eq!(list(&server, ALICE).await, listed);

    // `aggregate` and `report` find runs in the collector's tree.
    let second = copy_run(&runs()[1], scratch.path());
    let uploaded = upload(scratch.path(), Some(&second), &server.url, &[]);
    assert!(uploaded.status.success(), "{}", text(&uploaded));
    let aggregated = probe(
        scratch.path(),
        &["aggregate".into(), store.display().to_string()],
    );
    assert!(aggregated.status.success(), "{}", text(&aggregated));
    assert!(
        String::from_utf8_lossy(&aggregated.stderr).contains("merged 2 runs"),
        "{}",
        text(&aggregated)
    );
    assert!(String::from_utf8_lossy(&aggregated.stdout).contains(&format!("IR,AS64500,{day}")));
}

/// A tar.gz of `entries`, each a header made by `edit` from a plain file's and its
/// bytes, its name written as is (the tar crate's own setters refuse `..` and `/`).
fn tar_gz(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut archive = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (name, kind, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        if !kind.is_file() {
            header.set_size(0);
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        let data: &[u8] = if kind.is_file() { bytes } else { b"" };
        archive.append(&header, data).unwrap();
    }
    archive.into_inner().unwrap().finish().unwrap()
}

/// A gzipped tar whose first entry is a GNU long-name header claiming `size` bytes, and
/// then that many zeros: a few MiB on the wire.
fn long_name_bomb(size: u64) -> Vec<u8> {
    use std::io::Write;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(size);
    header.set_cksum();
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..size / zeros.len() as u64 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap()
}

/// The files of a run as the entries of a bundle of it, under its id.
fn files_of(run: &Path) -> Vec<(String, Vec<u8>)> {
    let id = run_id(run);
    [
        "run.json",
        "verdicts.csv",
        "measurements.csv",
        "measurements.jsonl",
    ]
    .iter()
    .map(|name| {
        (
            format!("{id}/{name}"),
            std::fs::read(run.join(name)).unwrap(),
        )
    })
    .collect()
}

#[tokio::test]
async fn uploads_that_break_the_rules_are_refused_with_a_reason_and_leave_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let server = collector(scratch.path(), &[]).await;
    let store = scratch.path().join("store");
    let run = &runs()[0];
    let id = run_id(run);
    let files = files_of(run);
    let regular = tar::EntryType::Regular;
    let with = |extra: (&str, tar::EntryType, &[u8])| -> Vec<u8> {
        let mut entries: Vec<(&str, tar::EntryType, &[u8])> = files
            .iter()
            .map(|(name, bytes)| (name.as_str(), regular, bytes.as_slice()))
            .collect();
        entries.insert(1, extra);
        tar_gz(&entries)
    };
    let summary_naming_me = format!("measured from {UPLOADER}:5353\n");
    let newer = {
        let mut info: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
        info["schema_version"] = 99.into();
        serde_json::to_vec(&info).unwrap()
    };
    let entries_of_newer: Vec<(&str, tar::EntryType, &[u8])> = files
        .iter()
        .map(|(name, bytes)| match name.ends_with("/run.json") {
            true => (name.as_str(), regular, newer.as_slice()),
            false => (name.as_str(), regular, bytes.as_slice()),
        })
        .collect();
    let bad_verdicts = format!("{id}/verdicts.csv");
    // The same rows, labelled as another network's.
    let rows_elsewhere = files
        .iter()
        .find(|(name, _)| name.ends_with("/verdicts.csv"))
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).replace(",IR,AS64500,", ",RU,AS12389,"))
        .unwrap();
    let relabelled: Vec<(&str, tar::EntryType, &[u8])> = files
        .iter()
        .map(|(name, bytes)| match name.ends_with("/verdicts.csv") {
            true => (name.as_str(), regular, rows_elsewhere.as_bytes()),
            false => (name.as_str(), regular, bytes.as_slice()),
        })
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a ../ path",
            with(("../escaped.csv", regular, b"x")),
            "without `..`",
        ),
        (
            "a ../ inside",
            with((&format!("{id}/../../summary.txt"), regular, b"x")),
            "without `..`",
        ),
        (
            "an absolute path",
            with(("/tmp/summary.txt", regular, b"x")),
            "absolute",
        ),
        (
            "a symlink",
            with((&format!("{id}/summary.txt"), tar::EntryType::Symlink, b"")),
            "is a symlink",
        ),
        (
            "a hard link",
            with((&format!("{id}/summary.txt"), tar::EntryType::Link, b"")),
            "is a link",
        ),
        (
            "an unknown file",
            with((&format!("{id}/notes.sh"), regular, b"x")),
            "not a file of a run",
        ),
        (
            "the uploader's address",
            with((
                &format!("{id}/summary.txt"),
                regular,
                summary_naming_me.as_bytes(),
            )),
            "summary.txt names the address this upload comes from",
        ),
        (
            "a newer schema",
            tar_gz(&entries_of_newer),
            "newer than this censorprobe reads",
        ),
        (
            "a verdicts file twice",
            with((&bad_verdicts, regular, b"not,a\nverdict")),
            "twice",
        ),
        (
            "not gzip",
            b"PK\x03\x04 a zip".to_vec(),
            "not a gzipped tar archive",
        ),
        (
            "rows of another network",
            tar_gz(&relabelled),
            "run.json says run",
        ),
    ];
    for (case, bytes, reason) in cases {
        let error = post(&server, ALICE, &bytes).await.error(400);
        assert!(error.contains(reason), "{case}: {error}");
    }
    let mut broken_csv = files_of(run);
    broken_csv[1].1 = b"run_id,measured_at\nr1,2026\nr1,2026,x,y\n".to_vec();
    let entries: Vec<(&str, tar::EntryType, &[u8])> = broken_csv
        .iter()
        .map(|(name, bytes)| (name.as_str(), regular, bytes.as_slice()))
        .collect();
    let error = post(&server, ALICE, &tar_gz(&entries)).await.error(400);
    assert!(error.starts_with("verdicts.csv:"), "{error}");
    assert!(!error.contains(&*store.display().to_string()), "{error}");

    assert_eq!(
        stored(&store),
        Vec::<String>::new(),
        "nothing stored, nothing left over"
    );
    assert!(list(&server, ALICE).await.is_empty());
}

#[tokio::test]
async fn an_upload_too_large_or_too_slow_is_cut_off() {
    let scratch = tempfile::tempdir().unwrap();
    let server = collector(
        scratch.path(),
        &["--max-upload", "100000", "--request-deadline", "2"],
    )
    .await;
    let store = scratch.path().join("store");

    // A claim of 10 GB is refused before a byte of the body is sent.
    let started = Instant::now();
    let head = format!(
        "POST /v1/runs HTTP/1.1\r\nAuthorization: Bearer {ALICE}\r\nContent-Length: 10000000000"
    );
    let error = raw(&server, &head, b"").await.error(413);
    assert!(error.contains("--max-upload"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A body without a length is cut off once it grows past the limit.
    let head = format!(
        "POST /v1/runs HTTP/1.1\r\nAuthorization: Bearer {ALICE}\r\nTransfer-Encoding: chunked"
    );
    let chunk = format!("{:x}\r\n{}\r\n", 60_000, "x".repeat(60_000));
    let body = format!("{chunk}{chunk}0\r\n\r\n");
    raw(&server, &head, body.as_bytes()).await.error(413);

    // A byte a second: cut off at the request's deadline (2 s).
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{UPLOADER}:0").parse().unwrap())
        .unwrap();
    let mut stream = socket.connect(server.address).await.unwrap();
    let head = format!(
        "POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\nContent-Length: 5000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(20) {
        if stream.write_all(b"x").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => read.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(8),
        "still sending after {elapsed:?}"
    );
    let answer = answer(&read);
    let error = answer.error(408);
    assert!(error.contains("did not arrive"), "{error}");
    assert_eq!(stored(&store), Vec::<String>::new());
}

#[tokio::test]
async fn uploads_of_one_run_at_once_store_it_once_and_all_succeed() {
    let scratch = tempfile::tempdir().unwrap();
    let server = collector(scratch.path(), &[]).await;
    let store = scratch.path().join("store");
    let bytes = bundle(&runs()[1], scratch.path());
    let answers =
        futures_util::future::join_all((0..8).map(|_| post(&server, ALICE, &bytes))).await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.status == 201 || a.status == 200),
        "{answers:?}"
    );
    assert!(
        answers.iter().all(|a| a.json() == answers[0].json()),
        "{answers:?}"
    );
    let path = answers[0].json()["path"].as_str().unwrap().to_string();
    assert_eq!(stored(&store), [".runs".to_string(), path]);
}

#[tokio::test]
async fn a_collector_out_of_reach_leaves_the_run_queued_for_upload_queued() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path();
    let run = copy_run(&runs()[0], home);
    let id = run_id(&run);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    // One send again, as a flaky link would get; the default's four add 15 s of pauses.
    let failed = upload(home, Some(&run), &closed, &["--retries", "1"]);
    let queue = home.join("data/censorprobe/upload-queue");
    assert!(!failed.status.success(), "{}", text(&failed));
    assert!(
        text(&failed).contains(&format!("queued in {}", queue.display())),
        "{}",
        text(&failed)
    );
    assert!(
        std::fs::read_to_string(&queue)
            .unwrap()
            .starts_with(&format!("{id} "))
    );

    // A second failure queues it once.
    let _ = upload(home, Some(&run), &closed, &["--retries", "0"]);
    assert_eq!(std::fs::read_to_string(&queue).unwrap().lines().count(), 1);

    let server = collector(home, &[]).await;
    let sent = upload(home, None, &server.url, &["--queued"]);
    assert!(sent.status.success(), "{}", text(&sent));
    assert!(
        text(&sent).contains(&format!("Uploaded queued run {id}")),
        "{}",
        text(&sent)
    );
    assert_eq!(std::fs::read_to_string(&queue).unwrap(), "");
    assert_eq!(list(&server, ALICE).await.len(), 1);
}

/// `--retries N`: a collector that fails every time is sent the run N times more, then
/// the run is queued.
#[test]
fn retries_say_how_many_more_times_a_failing_collector_is_sent_the_run() {
    // A collector that takes each connection and closes it unanswered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    for (retries, sent) in [("0", 1), ("2", 3)] {
        let scratch = tempfile::tempdir().unwrap();
        let run = copy_run(&runs()[0], scratch.path());
        tries.store(0, Ordering::SeqCst);
        let failed = upload(scratch.path(), Some(&run), &url, &["--retries", retries]);
        assert!(!failed.status.success(), "{}", text(&failed));
        assert!(text(&failed).contains("queued in"), "{}", text(&failed));
        assert_eq!(tries.load(Ordering::SeqCst), sent, "--retries {retries}");
    }
}

#[tokio::test]
async fn run_upload_sends_the_run_at_its_end() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path();
    let server = collector(home, &[]).await;
    let targets = runs()[0].parent().unwrap().join("targets.toml");
    let out = home.join("run");
    let made = probe(
        home,
        &run_args(
            &targets,
            &out,
            &[
                "--bind",
                UPLOADER,
                "--upload",
                &server.url,
                "--upload-token",
                ALICE,
            ],
        ),
    );
    assert_no_network(&made);
    assert!(text(&made).contains("Uploaded to"), "{}", text(&made));
    let listed = list(&server, ALICE).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["run_id"], run_id(&out).as_str());
}

/// A collector on https with a certificate of a private CA: refused without that CA
/// (the upload is queued, nothing is sent in clear), taken with `--ca-file`.
#[tokio::test]
async fn an_https_collector_of_a_private_ca_is_trusted_with_ca_file() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path();
    let ca = common::Ca::new().unwrap();
    let ca_pem = ca.write_pem(home).unwrap();
    let (cert, key) = ca.write_server_files(home, &["127.0.0.1"]).unwrap();
    let server = collector(
        home,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let run = copy_run(&runs()[0], home);
    let id = run_id(&run);
    let holds_it = || stored(&home.join("store")).iter().any(|p| p.ends_with(&id));

    let untrusted = upload(home, Some(&run), &server.url, &["--retries", "0"]);
    assert!(!untrusted.status.success(), "{}", text(&untrusted));
    assert!(
        text(&untrusted).contains("ssl_unknown_authority"),
        "{}",
        text(&untrusted)
    );
    assert!(!holds_it());

    let trusted = upload(
        home,
        Some(&run),
        &server.url,
        &["--ca-file", ca_pem.to_str().unwrap()],
    );
    assert!(trusted.status.success(), "{}", text(&trusted));
    assert!(holds_it(), "{:?}", stored(&home.join("store")));
}

/// A header the tar reader would take whole into memory (a GNU long name of 64 MiB, a
/// few KiB gzipped) is cut off at the unpacking cap, not read to its end.
#[tokio::test]
async fn a_header_bomb_is_cut_off_at_the_unpacking_cap() {
    let scratch = tempfile::tempdir().unwrap();
    // A cap of 16 x 1 MB.
    let server = collector(scratch.path(), &["--max-upload", "1000000"]).await;
    let bomb = long_name_bomb(64 << 20);
    assert!(bomb.len() < 1_000_000, "{} bytes", bomb.len());
    let error = post(&server, ALICE, &bomb).await.error(413);
    assert!(
        error.contains("unpacked, the archive is larger than 16000000 bytes"),
        "{error}"
    );
    assert!(stored(&scratch.path().join("store")).is_empty());
}
