//! A request's pixels to one normalised `[C, H, W]` image of the bundle's input: any size,
//! u8 or f32, HWC or NCHW, grey/RGB/RGBA in; converted, resized and centre-cropped by the
//! manifest's pre-processing ([`crate::data::image`]: torchvision's `Resize` + `CenterCrop` on
//! PIL images, the same code `dvt eval` uses for image folders) and normalised out.

use crate::bundle::InputSpec;
use crate::data::image::{self, Picture};
use crate::data::preprocess::normalize_hwc_into;
use crate::protocol::{FrameHeader, Layout, PixelType};

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

/// NCHW samples to HWC.
fn to_hwc<T: Copy + Default>(planar: &[T], hw: usize, c: usize) -> Vec<T> {
    let mut out = vec![T::default(); planar.len()];
    for ch in 0..c {
        for i in 0..hw {
            out[i * c + ch] = planar[ch * hw + i];
        }
    }
    out
}

/// Converts a frame to the normalised `[C, H, W]` input of `spec` (row-major, C*H*W floats).
///
/// u8 frames take exactly the path of a decoded image file ([`image::to_channels_u8`], then
/// [`image::fit`] in 8-bit fixed point), so for u8 pixels this computes what `dvt eval` computes
/// for the same picture, and for pixels of the model's own geometry exactly what
/// [`crate::data::preprocess::normalize_u8_hwc`] computes. f32 frames use the same filters in
/// floating point (PIL's mode "F").
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
    if !image::channels_usable(cc, want) {
        return Err(FrameError::Channels { got: cc, want });
    }
    let planar = h.layout == Layout::Nchw && cc > 1;
    let channels_err = |e: image::ChannelError| FrameError::Channels {
        got: e.got,
        want: e.want,
    };
    let mut out = vec![0.0f32; want * spec.height * spec.width];
    match h.dtype {
        PixelType::U8 => {
            let data = if planar {
                to_hwc(payload, hh * ww, cc)
            } else {
                payload.to_vec()
            };
            let pic = Picture::new(ww, hh, cc, data).expect("length checked above");
            let pic = image::to_channels_u8(pic, want).map_err(channels_err)?;
            let fitted = image::fit(&pic, spec);
            normalize_hwc_into(&fitted.data, |p| f32::from(p) / spec.scale, spec, &mut out);
        }
        PixelType::F32 => {
            let mut values = Vec::with_capacity(hh * ww * cc);
            for (index, c) in payload.chunks_exact(4).enumerate() {
                let value = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if !value.is_finite() || value.abs() > MAX_F32_PIXEL {
                    return Err(FrameError::NonFinite { index, value });
                }
                values.push(value);
            }
            if planar {
                values = to_hwc(&values, hh * ww, cc);
            }
            let pic = Picture::new(ww, hh, cc, values).expect("length checked above");
            let pic = image::to_channels_f32(pic, want).map_err(channels_err)?;
            normalize_hwc_into(&image::fit(&pic, spec).data, |v| v, spec, &mut out);
        }
    }
    Ok(out)
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
            resize: None,
            interpolation: None,
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
    fn a_u8_frame_is_preprocessed_like_an_image_file() {
        // 12x9 RGB -> luma (PIL), Resize(4) bilinear (9 -> 4, 12 -> int(4 * 12 / 9) = 5),
        // CenterCrop 4x4: the same u8 pixels as the folder path, then normalised.
        let px: Vec<u8> = (0..12 * 9 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let ours = to_input(&header(9, 12, 3, PixelType::U8), &px, &spec()).unwrap();
        let pic = Picture::new(12, 9, 3, px).unwrap();
        let grey = image::to_channels_u8(pic, 1).unwrap();
        let fitted = image::fit(&grey, &spec());
        let theirs = normalize_u8_hwc(&fitted.data, 1, &spec()).unwrap();
        assert_eq!(ours, theirs.iter().copied().collect::<Vec<_>>());
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
