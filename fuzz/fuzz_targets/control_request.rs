//! A request body as the control server reads and checks it (see `censorprobe::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| censorprobe::fuzzing::control_request(bytes));
