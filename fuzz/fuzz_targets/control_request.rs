//! A request body as the control server reads it: JSON, then each target.
#![no_main]

use censorprobe::control::protocol::ControlRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<ControlRequest>(bytes) {
        for target in &request.targets {
            let _ = target.to_target();
        }
    }
});
