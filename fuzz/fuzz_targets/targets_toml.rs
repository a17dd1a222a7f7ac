//! targets.toml as the probe reads it: any text is a file or an error naming a line.
#![no_main]

use std::path::Path;

use censorprobe::targets::TargetsFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = TargetsFile::parse(text, Path::new("targets.toml"));
});
