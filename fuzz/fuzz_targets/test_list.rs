//! A Citizen Lab test list (see `censorprobe::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| censorprobe::fuzzing::test_list(bytes));
