//! Arbitrary bytes as a reply header (what a client parses): never panics, never asks for more
//! text than the protocol allows.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../src/protocol/mod.rs"]
mod protocol;

use libfuzzer_sys::fuzz_target;
use protocol::{Reply, MAX_TEXT, REPLY_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() < REPLY_LEN {
        return;
    }
    let b: [u8; REPLY_LEN] = data[..REPLY_LEN].try_into().unwrap();
    if let Ok((r, n)) = Reply::decode_header(&b) {
        assert!(n <= MAX_TEXT);
        let again = Reply { text: String::new(), ..r };
        let _ = again.encode();
    }
});
