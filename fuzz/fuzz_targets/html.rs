//! A page: its title and blockpage fingerprints (see `censorprobe::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| censorprobe::fuzzing::html(bytes));
