//! Arbitrary bytes as a request header: decoding never panics, never accepts a payload over
//! the limit, and whatever it accepts re-encodes to the same bytes.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../src/protocol/mod.rs"]
mod protocol;

use libfuzzer_sys::fuzz_target;
use protocol::{FrameHeader, HEADER_LEN};

const MAX: u32 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        return;
    }
    let b: [u8; HEADER_LEN] = data[..HEADER_LEN].try_into().unwrap();
    match FrameHeader::decode(&b, MAX) {
        Ok(h) => {
            assert!(h.payload_len <= MAX);
            assert_eq!(u64::from(h.payload_len), h.expected_payload());
            assert_eq!(h.encode(), b);
        }
        Err((e, raw)) => {
            let _ = e.to_string();
            if let Some(r) = raw {
                assert!(e.is_fatal() || r.payload_len <= MAX);
            }
        }
    }
});
