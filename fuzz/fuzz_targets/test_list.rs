//! A Citizen Lab test list: accepted whole, with only fetchable URLs, or refused.
#![no_main]

use std::path::Path;

use censorprobe::bogon::AddressPolicy;
use censorprobe::testlist;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let policy = AddressPolicy::new(Vec::new());
    if let Ok(services) = testlist::parse(bytes, Path::new("list.csv"), &[], &policy) {
        for service in services {
            assert!(matches!(service.urls[0].scheme(), "http" | "https"));
            assert_eq!(service.name, service.name.to_ascii_uppercase());
        }
    }
});
