//! The five outputs of a request, encoded as Triton expects them on the wire: `[batch, 1]`,
//! little-endian INT32 / FP32, and BYTES as a 4-byte length before each string.

use dvt_edge::cascade::Decision;

/// Element type of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `TYPE_INT32`.
    Int32,
    /// `TYPE_FP32`.
    Fp32,
    /// `TYPE_STRING` (BYTES).
    Bytes,
}

/// The encoded output `name` for `decisions` (one request's images), or `None` if the
/// backend has no output of that name.
pub fn encode(name: &str, decisions: &[Decision], labels: &[String]) -> Option<(Wire, Vec<u8>)> {
    let mut out = Vec::with_capacity(decisions.len() * 4);
    let wire = match name {
        "CLASS" => {
            for d in decisions {
                out.extend_from_slice(&(d.class as i32).to_le_bytes());
            }
            Wire::Int32
        }
        "EXIT_STAGE" => {
            // 1-based, as dvtd's replies: 0 never names a stage.
            for d in decisions {
                out.extend_from_slice(&(d.exit_stage as i32 + 1).to_le_bytes());
            }
            Wire::Int32
        }
        "CONFIDENCE" => {
            for d in decisions {
                out.extend_from_slice(&d.confidence.to_le_bytes());
            }
            Wire::Fp32
        }
        "GFLOPS" => {
            for d in decisions {
                out.extend_from_slice(&(d.gflops as f32).to_le_bytes());
            }
            Wire::Fp32
        }
        "LABEL" => {
            for d in decisions {
                let label = labels.get(d.class).map_or("", String::as_str).as_bytes();
                out.extend_from_slice(&(label.len() as u32).to_le_bytes());
                out.extend_from_slice(label);
            }
            Wire::Bytes
        }
        _ => return None,
    };
    Some((wire, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_output_is_encoded_as_the_wire_wants() {
        let d = [
            Decision {
                class: 9,
                confidence: 0.5,
                exit_stage: 0,
                gflops: 0.25,
            },
            Decision {
                class: 1,
                confidence: 1.0,
                exit_stage: 2,
                gflops: 0.5,
            },
        ];
        let labels: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let (w, b) = encode("CLASS", &d, &labels).unwrap();
        assert_eq!((w, b), (Wire::Int32, vec![9, 0, 0, 0, 1, 0, 0, 0]));
        assert_eq!(
            encode("EXIT_STAGE", &d, &labels).unwrap().1,
            vec![1, 0, 0, 0, 3, 0, 0, 0]
        );
        let conf = encode("CONFIDENCE", &d, &labels).unwrap().1;
        assert_eq!(conf[4..], 1.0f32.to_le_bytes());
        assert_eq!(
            encode("GFLOPS", &d, &labels).unwrap().1[..4],
            0.25f32.to_le_bytes()
        );
        let (w, b) = encode("LABEL", &d, &labels).unwrap();
        assert_eq!(w, Wire::Bytes);
        assert_eq!(b, b"\x02\0\0\0c9\x02\0\0\0c1".to_vec());
        assert!(encode("PROBS", &d, &labels).is_none());
    }
}
