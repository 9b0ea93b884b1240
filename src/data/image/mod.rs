//! Pictures of any size to the model's input geometry, exactly as torchvision's evaluation
//! transform does it on PIL images: `Resize(shorter side)` + `CenterCrop(height, width)`, after
//! PIL's `convert("RGB")` / `convert("L")`.
//!
//! - Resize: the shorter side becomes `resize`, the longer one `int(resize * long / short)`
//!   (truncated, as torchvision computes it), resampled with PIL's `ImagingResample`: separable,
//!   horizontal pass first, the filter's support widened by the downscale factor (antialiasing),
//!   coefficients normalised per output pixel and, for 8-bit pictures, rounded to 22-bit fixed
//!   point with the intermediate row pass rounded back to 8 bits. f32 pictures take PIL's mode
//!   "F" path (double accumulation, f32 intermediate). Same filters as PIL (bicubic a = -0.5).
//! - CenterCrop: offsets `int(round((size - crop) / 2))` with Python's round (half to even);
//!   a crop larger than the picture pads with zeros like torchvision.
//! - Grey from colour: PIL's ITU-R 601-2 fixed-point luma `(19595 R + 38470 G + 7471 B + 2^15) >> 16`.
//!
//! The daemon's frames (`crate::daemon::frame`) and the image folders of `dvt eval` go through
//! these same functions, so both see what the trainer (`tools/train.py`, torchvision) saw.
//!
//! The files: `filter` (the kernels), `resample` (the resize), `crop` (resize size and centre
//! crop), `channels` (grey / RGB), `decode` (files); [`fit`] chains the geometry steps.

mod channels;
mod crop;
mod decode;
mod filter;
mod resample;

pub use channels::{channels_usable, luma_u8, to_channels_f32, to_channels_u8, ChannelError};
pub use crop::{center_crop, resized_size};
pub use decode::{decode_file, load_for_model, DecodeError};
pub use filter::Interpolation;
pub use resample::{resize, Sample};

use crate::bundle::InputSpec;

/// A picture: `height * width * channels` samples, row-major HWC.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture<T> {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Samples per pixel.
    pub channels: usize,
    /// The samples.
    pub data: Vec<T>,
}

impl<T> Picture<T> {
    /// Wraps `data` (HWC); `None` when its length is not `height * width * channels`.
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<T>) -> Option<Self> {
        (data.len() == width * height * channels).then_some(Self {
            width,
            height,
            channels,
            data,
        })
    }
}

/// The manifest's geometry step: resize the shorter side to `spec.resize` (default: the larger
/// of the model's height and width) with `spec.interpolation`, then centre-crop to the model's
/// `height x width`. Channels are not touched (see [`to_channels_u8`]).
pub fn fit<T: Sample>(src: &Picture<T>, spec: &InputSpec) -> Picture<T> {
    let shorter = spec.resize_shorter();
    let (w, h) = resized_size(src.width, src.height, shorter);
    let resized = if (w, h) == (src.width, src.height) {
        // torchvision returns the picture itself when the size is already right.
        src.clone()
    } else {
        resize(src, w, h, spec.interpolation.unwrap_or_default())
    };
    center_crop(&resized, spec.width, spec.height)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(h: usize, w: usize, c: usize, resize: Option<usize>) -> InputSpec {
        InputSpec {
            height: h,
            width: w,
            channels: c,
            layout: "NCHW".into(),
            scale: 255.0,
            mean: vec![0.5; c],
            std: vec![0.5; c],
            resize,
            interpolation: Some(Interpolation::Bicubic),
        }
    }

    #[test]
    fn fit_resizes_then_crops_to_the_model() {
        let p = Picture::new(64, 48, 1, (0..64 * 48).map(|i| (i % 256) as u8).collect()).unwrap();
        let out = fit(&p, &spec(28, 28, 1, Some(32)));
        assert_eq!((out.width, out.height, out.data.len()), (28, 28, 784));
        // Native geometry with the default resize is the identity.
        let n = Picture::new(28, 28, 1, (0..784).map(|i| (i % 256) as u8).collect()).unwrap();
        assert_eq!(fit(&n, &spec(28, 28, 1, None)), n);
    }
}
