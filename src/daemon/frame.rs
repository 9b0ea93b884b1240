//! A request's pixels to one normalised `[C, H, W]` image of the bundle's input: any size,
//! u8 or f32, HWC or NCHW, grey/RGB/RGBA in; resized (bilinear) and normalised per the
//! manifest out.

use super::protocol::{FrameHeader, Layout, PixelType};
use crate::bundle::InputSpec;

/// Pixels that cannot become the model's input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// A NaN, infinite or absurdly large f32 pixel (f32 pixels are scaled to [0, 1]; values
    /// beyond [`MAX_F32_PIXEL`] would overflow the resize and normalisation).
    #[error("pixel value {index} is {value}: f32 pixels must be finite and within ±{MAX_F32_PIXEL} (scaled to [0, 1])")]
    NonFinite {
        /// Position in the payload (elements).
        index: usize,
        /// The value.
        value: f32,
    },
    /// A channel count the model's input cannot be made from.
    #[error("cannot make {want}-channel model input from {got}-channel pixels")]
    Channels {
        /// Channels sent.
        got: usize,
        /// Channels the model takes.
        want: usize,
    },
    /// The payload does not hold the announced geometry (a bug in the caller).
    #[error("payload of {got} bytes does not hold the announced {expected}")]
    Length {
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
}

/// Largest magnitude accepted for an f32 pixel.
pub const MAX_F32_PIXEL: f32 = 1e4;

/// Converts a frame to the normalised `[C, H, W]` input of `spec` (row-major, C*H*W floats).
///
/// For u8 pixels of the model's own geometry this computes exactly what
/// [`crate::data::preprocess::normalize_u8_hwc`] computes, so the daemon answers like an
/// in-process cascade call.
pub fn to_input(h: &FrameHeader, payload: &[u8], spec: &InputSpec) -> Result<Vec<f32>, FrameError> {
    let (hh, ww, cc) = (
        usize::from(h.height),
        usize::from(h.width),
        usize::from(h.channels),
    );
    let expected = hh * ww * cc * h.dtype.size();
    if payload.len() != expected {
        return Err(FrameError::Length {
            got: payload.len(),
            expected,
        });
    }
    let want = spec.channels;
    let usable =
        cc == want || (want == 1 && (cc == 3 || cc == 4)) || (want == 3 && (cc == 1 || cc == 4));
    if !usable {
        return Err(FrameError::Channels { got: cc, want });
    }
    // Pixels in [0, 1] (u8 / scale, f32 as given), HWC.
    let n = hh * ww * cc;
    let mut unit = Vec::with_capacity(n);
    match h.dtype {
        PixelType::U8 => unit.extend(payload.iter().map(|&p| p as f32 / spec.scale)),
        PixelType::F32 => {
            for (index, c) in payload.chunks_exact(4).enumerate() {
                let value = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if !value.is_finite() || value.abs() > MAX_F32_PIXEL {
                    return Err(FrameError::NonFinite { index, value });
                }
                unit.push(value);
            }
        }
    }
    if h.layout == Layout::Nchw && cc > 1 {
        let planar = std::mem::take(&mut unit);
        unit = vec![0.0; n];
        for c in 0..cc {
            for i in 0..hh * ww {
                unit[i * cc + c] = planar[c * hh * ww + i];
            }
        }
    }
    // Channels.
    let unit = if cc == want {
        unit
    } else {
        unit.chunks_exact(cc)
            .flat_map(|px| {
                let rgb = if cc == 1 {
                    [px[0]; 3]
                } else {
                    [px[0], px[1], px[2]]
                };
                if want == 1 {
                    vec![0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]]
                } else {
                    rgb.to_vec()
                }
            })
            .collect()
    };
    let (oh, ow) = (spec.height, spec.width);
    let resized = if (hh, ww) == (oh, ow) {
        unit
    } else {
        resize_bilinear(&unit, hh, ww, want, oh, ow)
    };
    let mut out = vec![0.0f32; want * oh * ow];
    for c in 0..want {
        let (mean, std) = (spec.mean[c], spec.std[c]);
        for i in 0..oh * ow {
            out[c * oh * ow + i] = (resized[i * want + c] - mean) / std;
        }
    }
    Ok(out)
}

/// Bilinear resize of an HWC image (half-pixel centres, edges clamped).
fn resize_bilinear(src: &[f32], h: usize, w: usize, c: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; oh * ow * c];
    let sy = h as f32 / oh as f32;
    let sx = w as f32 / ow as f32;
    for y in 0..oh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (h - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(h - 1);
        for x in 0..ow {
            let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (w - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(w - 1);
            for ch in 0..c {
                let p = |yy: usize, xx: usize| src[(yy * w + xx) * c + ch];
                let top = p(y0, x0) * (1.0 - tx) + p(y0, x1) * tx;
                let bot = p(y1, x0) * (1.0 - tx) + p(y1, x1) * tx;
                out[(y * ow + x) * c + ch] = top * (1.0 - ty) + bot * ty;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::preprocess::normalize_u8_hwc;

    fn spec() -> InputSpec {
        InputSpec {
            height: 4,
            width: 4,
            channels: 1,
            layout: "NCHW".into(),
            scale: 255.0,
            mean: vec![0.286],
            std: vec![0.353],
        }
    }

    fn header(h: u16, w: u16, c: u16, dtype: PixelType) -> FrameHeader {
        FrameHeader {
            request_id: 0,
            dtype,
            layout: Layout::Hwc,
            height: h,
            width: w,
            channels: c,
            payload_len: (h as u32) * (w as u32) * (c as u32) * dtype.size() as u32,
            timestamp_ns: 0,
        }
    }

    #[test]
    fn native_u8_matches_the_dataset_preprocessing_bit_for_bit() {
        let px: Vec<u8> = (0..16).map(|i| (i * 16) as u8).collect();
        let ours = to_input(&header(4, 4, 1, PixelType::U8), &px, &spec()).unwrap();
        let theirs = normalize_u8_hwc(&px, 1, &spec()).unwrap();
        assert_eq!(ours, theirs.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn nan_is_rejected_with_its_position() {
        let mut px = [0.5f32; 16];
        px[5] = f32::NAN;
        let bytes: Vec<u8> = px.iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = to_input(&header(4, 4, 1, PixelType::F32), &bytes, &spec()).unwrap_err();
        assert!(matches!(e, FrameError::NonFinite { index: 5, .. }));
    }

    #[test]
    fn rgb_of_another_size_is_resized_and_made_grey() {
        let px = vec![255u8; 8 * 8 * 3];
        let out = to_input(&header(8, 8, 3, PixelType::U8), &px, &spec()).unwrap();
        assert_eq!(out.len(), 16);
        let white = (1.0 - 0.286) / 0.353;
        assert!(out.iter().all(|v| (v - white).abs() < 1e-4), "{out:?}");
        let e = to_input(&header(8, 8, 2, PixelType::U8), &[0; 128], &spec()).unwrap_err();
        assert_eq!(e, FrameError::Channels { got: 2, want: 1 });
    }
}
