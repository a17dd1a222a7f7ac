//! The entry points of the fuzzers in `fuzz/`: the parsers at the probe's edges, each fed
//! arbitrary bytes as they would arrive, with the properties every answer must have.
//! An error is an `Err`, never a panic; a panic here (or an assertion) is a crash.
//!
//! The cargo-fuzz targets call these, and so does `tests/fuzz_parsers.rs`, which replays
//! every input in `fuzz/seeds/` (the seeds, and the crashes fuzzing found) on stable
//! Rust in `cargo test`.

use std::path::Path;

use crate::analyse::fingerprints::http_blockpage;
use crate::control::server;
use crate::facts::{HttpHop, QueryType};
use crate::input::bogon::AddressPolicy;
use crate::input::targets::TargetsFile;
use crate::input::testlist;
use crate::measure::dns::{Question, parse_reply};
use crate::measure::http::title_of;

/// A fuzzer's entry point.
pub type EntryPoint = fn(&[u8]);

/// Every fuzzer: its name (the directory of its seeds, the cargo-fuzz target) and its
/// entry point.
pub const TARGETS: [(&str, EntryPoint); 5] = [
    ("targets_toml", targets_toml),
    ("dns_reply", dns_reply),
    ("html", html),
    ("control_request", control_request),
    ("test_list", test_list),
];

/// targets.toml as `run` reads it: a file, or an error that points into it.
pub fn targets_toml(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Err(e) = TargetsFile::parse(text, Path::new("targets.toml")) {
        let lines = text.lines().count().max(1);
        assert!(e.line >= 1 && e.line <= lines, "{e}: line out of the file");
    }
}

/// A datagram as the probe reads every reply to a query, A and AAAA. The question's ID
/// is the message's own first two bytes, so that the matching checks are reached, not
/// only the decoder.
pub fn dns_reply(bytes: &[u8]) {
    let id = u16::from_be_bytes([
        bytes.first().copied().unwrap_or(0),
        bytes.get(1).copied().unwrap_or(0),
    ]);
    for qtype in [QueryType::A, QueryType::Aaaa] {
        let question = Question::new(id, "example.com", qtype).expect("a valid name");
        let reply = parse_reply(bytes, &question);
        if reply.rcode == "malformed" {
            assert!(!reply.matches_query, "a malformed reply matched its query");
        } else {
            assert_eq!(reply.id, id, "a reply's ID is its first two bytes");
        }
    }
}

/// A page as the probe reads it: its title, and the blockpage fingerprints of its body
/// and of a Location header holding the same text.
pub fn html(bytes: &[u8]) {
    let body = String::from_utf8_lossy(bytes);
    let title = title_of(&body);
    if let Some(title) = &title {
        assert!(
            title.chars().count() <= 256,
            "a title of more than 256 chars"
        );
        assert_eq!(title.trim(), title, "a title is trimmed");
    }
    let hop = HttpHop {
        status: Some(302),
        headers: vec![("location".into(), body.to_string())],
        body_length: body.len() as u64,
        title,
        body_prefix: body.to_string(),
        ..HttpHop::new("http://x.test/")
    };
    let _ = http_blockpage(&hop);
}

/// A request body as the control server reads and checks it before it measures
/// anything: accepted, or refused with a 4xx and a message; never a private address.
pub fn control_request(bytes: &[u8]) {
    let policy = AddressPolicy::new(Vec::new());
    match server::read_and_check(bytes, 100, &policy) {
        Ok(targets) => assert!(targets <= 100, "more targets than the limit"),
        Err((status, message)) => {
            assert!((400..500).contains(&status), "{status}: {message}");
            assert!(!message.is_empty());
        }
    }
}

/// A Citizen Lab test list: accepted whole, with only fetchable URLs under category
/// codes in capitals, or refused.
pub fn test_list(bytes: &[u8]) {
    let policy = AddressPolicy::new(Vec::new());
    if let Ok(services) = testlist::parse(bytes, Path::new("list.csv"), &[], &policy) {
        for service in services {
            assert!(matches!(service.urls[0].scheme(), "http" | "https"));
            assert!(!service.name.is_empty());
            assert_eq!(service.name, service.name.to_ascii_uppercase());
        }
    }
}
