//! Property tests of the parsers that read what others wrote: targets.toml, DNS replies,
//! page titles and blockpage fingerprints, the control server's request JSON, and
//! Citizen Lab test lists. Each gets arbitrary input ("an error is `Err`, never a
//! panic") and, where one exists, a round trip. The cargo-fuzz targets in `fuzz/` run
//! the same entry points (`censorprobe::fuzzing`) for longer; their seeds and the inputs
//! they found that crashed are kept in `fuzz/seeds/` and replayed here
//! (`seeds_never_panic`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

use censorprobe::analyse::fingerprints::http_blockpage;
use censorprobe::control::protocol::{ControlRequest, ControlTarget};
use censorprobe::facts::{HttpHop, QueryType};
use censorprobe::fuzzing;
use censorprobe::input::bogon::AddressPolicy;
use censorprobe::input::targets::TargetsFile;
use censorprobe::input::targets::{Target, TargetKind};
use censorprobe::input::testlist;
use censorprobe::measure::dns::{Question, parse_reply};
use censorprobe::measure::http::title_of;

const CASES: u32 = 500;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // Failures are reported with their input; no files are written beside the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A lower-case domain name of two to four labels. No label has "--" in its third
/// and fourth places: IDNA reserves those ("xn--" is punycode, which must decode).
fn domain() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z][a-z0-9]{0,2}(-?[a-z0-9]){0,8}", 2..5).prop_map(|l| l.join("."))
}

fn endpoint() -> impl Strategy<Value = SocketAddr> {
    (any::<IpAddr>(), 1u16..).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn url() -> impl Strategy<Value = String> {
    (
        prop_oneof!["http", "https"],
        domain(),
        "(/[a-zA-Z0-9._~-]{0,12}){0,3}",
    )
        .prop_map(|(scheme, host, path)| format!("{scheme}://{host}{path}"))
}

/// Pieces a targets file is made of, right and wrong, to be strung together: they
/// reach the validation behind the TOML parser far more often than random text.
fn toml_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[settings]\n".to_string()),
        Just("[[service]]\n".to_string()),
        "[a-z_é]{1,12}".prop_map(|k| format!("{k} = 1\n")),
        "[a-zA-Z0-9 _.é-]{0,12}".prop_map(|n| format!("name = \"{n}\"\n")),
        domain().prop_map(|d| format!("domains = [\"{d}\"]\n")),
        url().prop_map(|u| format!("urls = [\"{u}\"]\n")),
        endpoint().prop_map(|e| format!("endpoints = [\"{e}\"]\n")),
        "[ -~]{0,20}".prop_map(|v| format!("endpoints = [{v:?}]\n")),
        any::<f64>().prop_map(|t| format!("timeout_secs = {t:?}\n")),
        any::<i64>().prop_map(|n| format!("concurrency = {n}\n")),
        any::<i32>().prop_map(|p| format!("tls_ports = [{p}]\n")),
        "[ -~]{0,24}".prop_map(|r| format!("resolvers = [{r:?}]\n")),
        "[ -~]{0,24}".prop_map(|c| format!("treat_as_public = [{c:?}]\n")),
        ".{0,16}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn targets_file_never_panics(text in ".{0,300}") {
        fuzzing::targets_toml(text.as_bytes());
    }

    #[test]
    fn targets_file_pieces_never_panic(pieces in prop::collection::vec(toml_piece(), 0..12)) {
        // Errors point into the file.
        fuzzing::targets_toml(pieces.concat().as_bytes());
    }

    #[test]
    fn targets_file_round_trips(
        services in prop::collection::vec(
            (
                prop::collection::vec(domain(), 0..3),
                prop::collection::vec(url(), 0..3),
                prop::collection::vec(endpoint(), 1..3),
            ),
            1..4,
        ),
    ) {
        let mut text = String::from("[settings]\ntimeout_secs = 2.5\n");
        for (i, (domains, urls, endpoints)) in services.iter().enumerate() {
            let endpoints: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
            text += &format!(
                "\n[[service]]\nname = \"s{i}\"\ndomains = {domains:?}\nurls = {urls:?}\nendpoints = {endpoints:?}\n"
            );
        }
        let file = TargetsFile::parse(&text, Path::new("targets.toml"))
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(file.services.len(), services.len());
        for (service, (domains, urls, endpoints)) in file.services.iter().zip(&services) {
            prop_assert_eq!(&service.domains, domains);
            let parsed: Vec<url::Url> = urls.iter().map(|u| u.parse().unwrap()).collect();
            prop_assert_eq!(&service.urls, &parsed);
            prop_assert_eq!(&service.endpoints, endpoints);
        }
    }

    #[test]
    fn dns_reply_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), id: u16) {
        let question = Question::new(id, "example.com", QueryType::A).unwrap();
        let reply = parse_reply(&bytes, &question);
        if reply.rcode == "malformed" {
            prop_assert!(!reply.matches_query);
        } else {
            prop_assert_eq!(reply.id.to_be_bytes(), [bytes[0], bytes[1]]);
        }
    }

    #[test]
    fn dns_reply_round_trips(
        id: u16,
        name in domain(),
        addresses in prop::collection::vec(any::<Ipv4Addr>(), 0..20),
        ttl: u32,
    ) {
        let bytes = dns_message(id, &name, &addresses, ttl);
        let question = Question::new(id, &name, QueryType::A).unwrap();
        let reply = parse_reply(&bytes, &question);
        prop_assert!(reply.matches_query);
        prop_assert_eq!(&reply.rcode, "NoError");
        let got: Vec<IpAddr> = reply.addresses().collect();
        let want: Vec<IpAddr> = addresses.iter().map(|a| IpAddr::V4(*a)).collect();
        prop_assert_eq!(got, want);
        prop_assert!(reply.answers.iter().all(|a| a.ttl == ttl));
        // Another ID, or another name, is not an answer to the query.
        let other = Question::new(id.wrapping_add(1), &name, QueryType::A).unwrap();
        prop_assert!(!parse_reply(&bytes, &other).matches_query);
        let other = Question::new(id, &format!("x{name}"), QueryType::A).unwrap();
        prop_assert!(!parse_reply(&bytes, &other).matches_query);
    }

    #[test]
    fn damaged_dns_replies_never_panic(
        name in domain(),
        addresses in prop::collection::vec(any::<Ipv4Addr>(), 1..5),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = dns_message(7, &name, &addresses, 60);
        for (at, byte) in damage {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let question = Question::new(7, &name, QueryType::A).unwrap();
        let _ = parse_reply(&bytes, &question);
    }

    #[test]
    fn title_never_panics_and_is_folded(
        body in ".{0,400}",
        before in ".{0,50}",
        inner in "(?s).{0,300}",
        after in ".{0,50}",
    ) {
        // Raw text rarely holds a title; the wrapped page always does, so the folding
        // runs on arbitrary inner text (white space, tags, a `</title>` of its own).
        let page = format!("{before}<title>{inner}</title>{after}");
        for (text, wrapped) in [(&body, false), (&page, true)] {
            fuzzing::html(text.as_bytes());
            let title = title_of(text);
            prop_assert!(!wrapped || title.is_some(), "no title in {:?}", text);
            if let Some(title) = title {
                prop_assert!(title.chars().count() <= 256);
                prop_assert_eq!(title.trim(), title.as_str());
                prop_assert!(!title.contains("  "));
                prop_assert!(
                    title.chars().all(|c| c == ' ' || !c.is_whitespace()),
                    "unfolded white space in {:?}",
                    title
                );
            }
        }
    }

    #[test]
    fn title_round_trips(title in "[^<]{0,300}", before in "[^<]{0,50}", after in ".{0,50}") {
        let page = format!("{before}<html><head><TITLE id=t>{title}</title></head>{after}");
        let folded: String = title
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(256)
            .collect::<String>()
            .trim_end()
            .to_string();
        prop_assert_eq!(title_of(&page), Some(folded));
    }

    #[test]
    fn blockpage_matching_never_panics(
        status in prop::option::of(any::<u16>()),
        headers in prop::collection::vec((".{0,12}", ".{0,40}"), 0..6),
        body in ".{0,400}",
    ) {
        let mut hop = hop(&body);
        hop.status = status;
        hop.headers = headers;
        let _ = http_blockpage(&hop);
    }

    #[test]
    fn blockpage_fingerprint_found_anywhere(before in ".{0,200}", after in ".{0,200}") {
        let body = format!("{before}<iframe src=\"http://10.10.34.34?type=Invalid Site\">{after}");
        prop_assert!(http_blockpage(&hop(&body)).is_some());
    }

    #[test]
    fn control_request_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        fuzzing::control_request(&bytes);
    }

    #[test]
    fn control_request_json_never_panics(
        targets in prop::collection::vec(
            (".{0,12}", prop_oneof![".{0,30}", domain(), url(), endpoint().prop_map(|e| e.to_string())],
             prop::collection::vec(any::<i32>(), 0..3), prop::collection::vec(".{0,20}", 0..3)),
            0..4,
        ),
        control_sni in prop::option::of(".{0,20}"),
    ) {
        let targets: Vec<serde_json::Value> = targets
            .into_iter()
            .map(|(service, target, ports, addresses)| serde_json::json!({
                "service": service, "target": target, "tls_ports": ports, "addresses": addresses,
            }))
            .collect();
        let request = serde_json::json!({"targets": targets, "control_sni": control_sni});
        fuzzing::control_request(request.to_string().as_bytes());
    }

    #[test]
    fn control_target_round_trips(
        kind in prop_oneof![
            domain().prop_map(TargetKind::Domain),
            endpoint().prop_map(TargetKind::Endpoint),
            url().prop_map(|u| TargetKind::Url(u.parse().unwrap())),
        ],
        tls_ports in prop::collection::vec(1u16.., 0..3),
        tcp_ports in prop::collection::vec(1u16.., 0..3),
        quic_ports in prop::collection::vec(1u16.., 0..3),
        addresses in prop::collection::vec(any::<IpAddr>(), 0..3),
    ) {
        let target = Target { service: "svc".into(), kind, tls_ports: tls_ports.into(), tcp_ports: tcp_ports.into(), quic_ports: quic_ports.into(), asns: Vec::new().into() };
        let request = ControlRequest {
            targets: vec![ControlTarget::new(&target, addresses.clone())],
            control_sni: Some("canary.test".into()),
        };
        let json = serde_json::to_vec(&request).unwrap();
        let back: ControlRequest = serde_json::from_slice(&json).unwrap();
        prop_assert_eq!(&back, &request);
        prop_assert_eq!(back.targets[0].to_target(), Ok(target));
        prop_assert_eq!(&back.targets[0].addresses, &addresses);
    }

    #[test]
    fn test_list_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        fuzzing::test_list(&bytes);
    }

    #[test]
    fn test_list_rows_never_panic(
        rows in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![url(), "[A-Za-z]{0,5}", ".{0,16}", Just("\"a,\"\"b\"".to_string()),
                            Just("ftp://x.org/".to_string()), Just("http://10.0.0.1/".to_string())],
                0..7,
            ),
            0..8,
        ),
        bom: bool,
    ) {
        let mut text = String::from(if bom { "\u{feff}" } else { "" });
        text += "url,category_code,category_description,date_added,source,notes\n";
        for row in rows {
            text += &row.join(",");
            text.push('\n');
        }
        fuzzing::test_list(text.as_bytes());
    }

    #[test]
    fn test_list_round_trips(rows in prop::collection::vec((url(), "[A-Za-z]{1,6}"), 1..10)) {
        let mut text = String::from("url,category_code,category_description\n");
        for (url, category) in &rows {
            text += &format!("{url},{category},\"Some, description\"\n");
        }
        let services = testlist::parse(text.as_bytes(), Path::new("list.csv"), &[], &AddressPolicy::new(Vec::new()))
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        // Each URL once, under its first row's category, in file order.
        let mut want: Vec<(String, url::Url)> = Vec::new();
        for (url, category) in &rows {
            let url: url::Url = url.parse().unwrap();
            if !want.iter().any(|(_, u)| *u == url) {
                want.push((category.to_ascii_uppercase(), url));
            }
        }
        let got: Vec<(String, url::Url)> = services.into_iter().map(|s| (s.name, s.urls[0].clone())).collect();
        prop_assert_eq!(got, want);
    }
}

fn dns_message(id: u16, name: &str, addresses: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let name = Name::from_ascii(format!("{name}.")).unwrap();
    let mut message = Message::response(id, OpCode::Query);
    message.add_query(Query::query(name.clone(), RecordType::A));
    for address in addresses {
        message.add_answer(Record::from_rdata(
            name.clone(),
            ttl,
            RData::A((*address).into()),
        ));
    }
    message.to_vec().unwrap()
}

fn hop(body: &str) -> HttpHop {
    HttpHop {
        status: Some(200),
        body_length: body.len() as u64,
        title: title_of(body),
        body_prefix: body.into(),
        ..HttpHop::new("http://x.test/")
    }
}

/// Every input the fuzzers in `fuzz/` were seeded with or crashed on, through the same
/// entry points, so that a crash once found stays fixed without nightly.
#[test]
fn seeds_never_panic() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (target, check) in fuzzing::TARGETS {
        let Ok(entries) = std::fs::read_dir(seeds.join(target)) else {
            panic!("no seeds for {target} in {}", seeds.display());
        };
        let mut replayed = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&input));
            assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
            replayed += 1;
        }
        assert!(replayed > 0, "no seeds for {target}");
    }
}
