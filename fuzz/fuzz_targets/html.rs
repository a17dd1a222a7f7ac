//! A page as the probe reads it: its title, and the blockpage fingerprints of its body
//! and of a Location header.
#![no_main]

use censorprobe::analyse::fingerprints::http_blockpage;
use censorprobe::facts::HttpHop;
use censorprobe::measure::http::title_of;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    let title = title_of(body);
    if let Some(title) = &title {
        assert!(title.chars().count() <= 256);
    }
    let hop = HttpHop {
        url: "http://x.test/".into(),
        address: None,
        tls: None,
        status: Some(302),
        headers: vec![("location".into(), body.into())],
        body_length: body.len() as u64,
        body_truncated: false,
        title,
        body_prefix: body.into(),
        transfer_ms: 0.0,
        error: None,
    };
    let _ = http_blockpage(&hop);
});
