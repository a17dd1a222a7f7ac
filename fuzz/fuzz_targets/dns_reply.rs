//! A DNS reply as the probe reads every datagram. The question's ID is the message's
//! own first two bytes, so that the fuzzer reaches the matching checks, not only the
//! decoder.
#![no_main]

use censorprobe::facts::QueryType;
use censorprobe::measure::dns::{Question, parse_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let id = u16::from_be_bytes([
        bytes.first().copied().unwrap_or(0),
        bytes.get(1).copied().unwrap_or(0),
    ]);
    for qtype in [QueryType::A, QueryType::Aaaa] {
        let question = Question::new(id, "example.com", qtype).expect("a valid name");
        let reply = parse_reply(bytes, &question);
        assert!(reply.rcode != "malformed" || !reply.matches_query);
    }
});
