//! targets.toml as the probe reads it (see `censorprobe::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| censorprobe::fuzzing::targets_toml(bytes));
