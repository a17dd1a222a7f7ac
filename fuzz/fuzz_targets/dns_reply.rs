//! A DNS reply as the probe reads every datagram (see `censorprobe::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| censorprobe::fuzzing::dns_reply(bytes));
