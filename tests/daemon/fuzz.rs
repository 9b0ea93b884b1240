//! Property-based fuzzing of the frame-header, reply and control-line parsers (cargo-fuzz is
//! not installable offline here; proptest runs the same idea in `cargo test`): arbitrary bytes
//! never panic, valid messages round-trip, and the payload length is always bounded.

use dvt_edge::bundle::InputSpec;
use dvt_edge::daemon::frame::to_input;
use dvt_edge::protocol::control::parse_command;
use dvt_edge::protocol::{FrameHeader, Layout, PixelType, Reply, Status, HEADER_LEN, REPLY_LEN};
use proptest::prelude::*;

const MAX: u32 = 1 << 20;

fn spec() -> InputSpec {
    InputSpec {
        height: 28,
        width: 28,
        channels: 1,
        layout: "NCHW".into(),
        scale: 255.0,
        mean: vec![0.286],
        std: vec![0.353],
        resize: None,
        interpolation: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn any_header_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), HEADER_LEN)) {
        let b: [u8; HEADER_LEN] = bytes.try_into().unwrap();
        match FrameHeader::decode(&b, MAX) {
            Ok(h) => {
                prop_assert!(h.payload_len <= MAX);
                prop_assert_eq!(u64::from(h.payload_len), h.expected_payload());
                prop_assert_eq!(h.encode(), b);
            }
            Err((e, raw)) => {
                prop_assert!(!e.to_string().is_empty());
                if let Some(r) = raw {
                    // A recoverable error never asks to skip more than the limit.
                    prop_assert!(e.is_fatal() || r.payload_len <= MAX);
                }
            }
        }
    }

    #[test]
    fn valid_headers_round_trip(id in any::<u64>(), h in 1u16..512, w in 1u16..512, c in 1u16..5, f32px in any::<bool>(), nchw in any::<bool>(), ts in any::<u64>()) {
        let dtype = if f32px { PixelType::F32 } else { PixelType::U8 };
        let hdr = FrameHeader {
            request_id: id, dtype, layout: if nchw { Layout::Nchw } else { Layout::Hwc },
            height: h, width: w, channels: c,
            payload_len: u32::from(h) * u32::from(w) * u32::from(c) * dtype.size() as u32,
            timestamp_ns: ts,
        };
        prop_assert_eq!(FrameHeader::decode(&hdr.encode(), u32::MAX), Ok(hdr));
    }

    #[test]
    fn any_reply_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), REPLY_LEN)) {
        let b: [u8; REPLY_LEN] = bytes.try_into().unwrap();
        if let Ok((_, n)) = Reply::decode_header(&b) {
            prop_assert!(n <= 1024);
        }
    }

    #[test]
    fn replies_round_trip(id in any::<u64>(), class in any::<u32>(), text in ".{0,300}", conf in any::<f32>()) {
        let r = Reply { request_id: id, status: Status::Ok, class, exit_stage: 2, confidence: conf, gflops: 0.5, latency_us: 3, compute_us: 2, timestamp_ns: 9, text };
        let b = r.encode();
        let (d, n) = Reply::decode_header(b[..REPLY_LEN].try_into().unwrap()).unwrap();
        prop_assert_eq!(n, b.len() - REPLY_LEN);
        prop_assert_eq!(d.request_id, id);
        prop_assert_eq!(d.class, class);
        prop_assert_eq!(d.confidence.to_bits(), conf.to_bits());
    }

    #[test]
    fn any_control_line_parses_or_errors(line in ".{0,200}") {
        let _ = parse_command(&line);
    }

    #[test]
    fn json_like_control_lines_parse_or_error(cmd in "[a-z-]{0,12}", kind in "[a-z]{0,8}", value in any::<f64>()) {
        let line = serde_json::json!({"cmd": cmd, "kind": kind, "value": value}).to_string();
        if let Ok(dvt_edge::protocol::control::Command::SetBudget(Some(b))) = parse_command(&line) {
            prop_assert!(b.value().is_finite() && b.value() > 0.0);
        }
    }

    #[test]
    fn any_pixels_of_any_geometry_become_input_or_a_clear_error(h in 1u16..40, w in 1u16..40, c in 1u16..5, f32px in any::<bool>(), seed in proptest::collection::vec(any::<u8>(), 1..64)) {
        let dtype = if f32px { PixelType::F32 } else { PixelType::U8 };
        let hdr = FrameHeader { request_id: 0, dtype, layout: Layout::Hwc, height: h, width: w, channels: c,
            payload_len: u32::from(h) * u32::from(w) * u32::from(c) * dtype.size() as u32, timestamp_ns: 0 };
        let payload: Vec<u8> = (0..hdr.payload_len as usize).map(|i| seed[i % seed.len()]).collect();
        match to_input(&hdr, &payload, &spec()) {
            Ok(v) => {
                prop_assert_eq!(v.len(), 784);
                prop_assert!(v.iter().all(|x| x.is_finite()));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
