//! The binary frame protocol (version 1) of `dvtd`'s Unix socket, shared by the daemon and its
//! clients (below both); see `docs/protocol.md`.
//!
//! A request is a fixed 40-byte little-endian header followed by `payload_len` pixel bytes; a
//! reply is a fixed 48-byte header followed by `text_len` bytes of UTF-8 (the class label, or
//! the error message). Decoding never allocates: the payload length is checked against the
//! daemon's limit and against the geometry before anything is read.

// The fuzz targets (`fuzz/`) compile this folder on its own, without the crate; control lines
// need the crate's budget types, and the fuzzers do not take them.
#[cfg(not(fuzzing))]
pub mod control;
mod reply;
mod request;

pub use reply::{Reply, ReplyError, Status};
pub use request::{FrameHeader, HeaderError, Layout, PixelType, RawHeader};

/// First four bytes of every request.
pub const REQUEST_MAGIC: [u8; 4] = *b"DVTQ";
/// First four bytes of every reply.
pub const REPLY_MAGIC: [u8; 4] = *b"DVTR";
/// Protocol version spoken by this build.
pub const VERSION: u16 = 1;
/// Bytes in a request header.
pub const HEADER_LEN: usize = 40;
/// Bytes in a reply header (the text follows).
pub const REPLY_LEN: usize = 48;
/// Longest reply text (label or error message) the daemon sends.
pub const MAX_TEXT: usize = 1024;

// Little-endian field readers (the caller has checked the length).
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use request::*;

    fn header() -> FrameHeader {
        FrameHeader {
            request_id: 7,
            dtype: PixelType::U8,
            layout: Layout::Hwc,
            height: 28,
            width: 28,
            channels: 1,
            payload_len: 784,
            timestamp_ns: 42,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = header();
        assert_eq!(FrameHeader::decode(&h.encode(), 1 << 20), Ok(h));
    }

    #[test]
    fn absurd_length_is_fatal_and_keeps_the_id() {
        let mut b = header().encode();
        b[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        let (e, raw) = FrameHeader::decode(&b, 1 << 20).unwrap_err();
        assert!(matches!(e, HeaderError::TooLarge { .. }) && e.is_fatal());
        assert_eq!(raw.unwrap().request_id, 7);
    }

    #[test]
    fn size_mismatch_is_recoverable() {
        let mut h = header();
        h.payload_len = 100;
        let (e, raw) = FrameHeader::decode(&h.encode(), 1 << 20).unwrap_err();
        assert!(matches!(e, HeaderError::SizeMismatch { expected: 784, .. }));
        assert!(!e.is_fatal());
        assert_eq!(raw.unwrap().payload_len, 100);
    }

    #[test]
    fn reply_round_trips() {
        let r = Reply {
            request_id: 3,
            status: Status::Ok,
            class: 9,
            exit_stage: 2,
            confidence: 0.75,
            gflops: 0.01,
            latency_us: 120,
            compute_us: 100,
            timestamp_ns: 5,
            text: "Ankle boot".into(),
        };
        let b = r.encode();
        let (mut d, n) = Reply::decode_header(b[..REPLY_LEN].try_into().unwrap()).unwrap();
        d.text = String::from_utf8(b[REPLY_LEN..REPLY_LEN + n].to_vec()).unwrap();
        assert_eq!(d, r);
    }
}
