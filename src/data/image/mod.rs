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

use crate::bundle::InputSpec;
use serde::{Deserialize, Serialize};

/// PIL's resampling filters (torchvision's `InterpolationMode`, except NEAREST, which PIL
/// implements as an affine transform rather than a resampling and is not offered here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Box filter (support 0.5).
    Box,
    /// Triangle filter (support 1); torchvision's default.
    #[default]
    Bilinear,
    /// Hamming-windowed sinc (support 1).
    Hamming,
    /// Keys cubic with a = -0.5 (support 2); the DVT / DeiT evaluation transform.
    Bicubic,
    /// Lanczos-3 (support 3).
    Lanczos,
}

impl Interpolation {
    fn support(self) -> f64 {
        match self {
            Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    /// The filter kernel, written with PIL's operation order (the coefficients must be the
    /// same doubles for the fixed-point rounding to agree).
    fn weight(self, x: f64) -> f64 {
        match self {
            Self::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // PIL's constants are C floats (0.54f, 0.46f) promoted to double.
                    x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

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

/// A sample type PIL resamples: u8 (fixed point, 8bpc) or f32 (mode "F", 32bpc).
pub trait Sample: Copy + Default {
    /// Coefficient type of the convolution.
    type Coef: Copy;
    /// Converts normalised double coefficients (PIL's `normalize_coeffs_8bpc` for u8).
    fn coefs(k: &[f64]) -> Vec<Self::Coef>;
    /// One output sample: `sum src[start + j * stride] * k[j]`, rounded and clipped as PIL does.
    fn convolve(src: &[Self], start: usize, stride: usize, k: &[Self::Coef]) -> Self;
}

/// Fractional bits of PIL's 8-bit coefficients (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

impl Sample for u8 {
    type Coef = i32;
    fn coefs(k: &[f64]) -> Vec<i32> {
        let one = f64::from(1u32 << PRECISION_BITS);
        // C's (int) truncates toward zero, as `as` does.
        k.iter()
            .map(|&v| {
                if v < 0.0 {
                    (-0.5 + v * one) as i32
                } else {
                    (0.5 + v * one) as i32
                }
            })
            .collect()
    }
    fn convolve(src: &[u8], start: usize, stride: usize, k: &[i32]) -> u8 {
        let mut ss: i32 = 1 << (PRECISION_BITS - 1);
        for (j, &kj) in k.iter().enumerate() {
            ss += i32::from(src[start + j * stride]) * kj;
        }
        // `>>` of a negative i32 floors, like PIL's clip8 table lookup.
        (ss >> PRECISION_BITS).clamp(0, 255) as u8
    }
}

impl Sample for f32 {
    type Coef = f64;
    fn coefs(k: &[f64]) -> Vec<f64> {
        k.to_vec()
    }
    fn convolve(src: &[f32], start: usize, stride: usize, k: &[f64]) -> f32 {
        let mut ss = 0.0f64;
        for (j, &kj) in k.iter().enumerate() {
            ss += f64::from(src[start + j * stride]) * kj;
        }
        ss as f32
    }
}

/// One axis' resampling: for output index i, input `first[i]..first[i] + k[i].len()`.
struct AxisCoefs<C> {
    first: Vec<usize>,
    k: Vec<Vec<C>>,
}

/// PIL's `precompute_coeffs` for a full-extent box (`in0 = 0`, `in1 = in_size`).
fn precompute(
    in_size: usize,
    out_size: usize,
    filter: Interpolation,
) -> (Vec<usize>, Vec<Vec<f64>>) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    let mut first = Vec::with_capacity(out_size);
    let mut coefs = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // (int)(v + 0.5): truncation toward zero, then clamped, as in PIL.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let mut k: Vec<f64> = (0..xmax.max(0))
            .map(|x| filter.weight((((x + xmin) as f64) - center + 0.5) * ss))
            .collect();
        let ww: f64 = k.iter().fold(0.0, |a, &w| a + w);
        if ww != 0.0 {
            for w in &mut k {
                *w /= ww;
            }
        }
        first.push(xmin as usize);
        coefs.push(k);
    }
    (first, coefs)
}

fn axis<T: Sample>(in_size: usize, out_size: usize, filter: Interpolation) -> AxisCoefs<T::Coef> {
    let (first, k) = precompute(in_size, out_size, filter);
    AxisCoefs {
        first,
        k: k.iter().map(|k| T::coefs(k)).collect(),
    }
}

/// Resizes `src` to `width x height` as PIL's `Image.resize(size, filter)` does (same size:
/// a copy).
pub fn resize<T: Sample>(
    src: &Picture<T>,
    width: usize,
    height: usize,
    filter: Interpolation,
) -> Picture<T> {
    let c = src.channels;
    let need_h = width != src.width;
    let need_v = height != src.height;
    let vert = axis::<T>(src.height, height, filter);
    // Rows the vertical pass reads: the horizontal pass only computes those (as PIL does).
    let (row0, row1) = if height == 0 {
        (0, 0)
    } else {
        (
            vert.first[0],
            vert.first[height - 1] + vert.k[height - 1].len(),
        )
    };
    let mut cur = if need_h {
        let hz = axis::<T>(src.width, width, filter);
        let rows = if need_v { row1 - row0 } else { src.height };
        let base = if need_v { row0 } else { 0 };
        let mut out = vec![T::default(); rows * width * c];
        for y in 0..rows {
            let row = (base + y) * src.width * c;
            for x in 0..width {
                let start = row + hz.first[x] * c;
                for ch in 0..c {
                    out[(y * width + x) * c + ch] = T::convolve(&src.data, start + ch, c, &hz.k[x]);
                }
            }
        }
        Picture {
            width,
            height: rows,
            channels: c,
            data: out,
        }
    } else {
        src.clone()
    };
    if need_v {
        // Bounds are relative to the first row the horizontal pass kept.
        let shift = if need_h { row0 } else { 0 };
        let w = cur.width;
        let mut out = vec![T::default(); height * w * c];
        for y in 0..height {
            let start_row = vert.first[y] - shift;
            for x in 0..w {
                for ch in 0..c {
                    out[(y * w + x) * c + ch] =
                        T::convolve(&cur.data, (start_row * w + x) * c + ch, w * c, &vert.k[y]);
                }
            }
        }
        cur = Picture {
            width: w,
            height,
            channels: c,
            data: out,
        };
    }
    cur
}

/// torchvision's `Resize(shorter)` output size for a `width x height` picture: the shorter side
/// becomes `shorter`, the longer `int(shorter * long / short)` (truncated).
pub fn resized_size(width: usize, height: usize, shorter: usize) -> (usize, usize) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    // Python's int * int / int is the correctly rounded quotient; both are exact doubles here.
    let new_long = ((shorter * long) as f64 / short.max(1) as f64) as usize;
    if width <= height {
        (shorter, new_long)
    } else {
        (new_long, shorter)
    }
}

/// torchvision's `CenterCrop` offset along one axis (negative: zero padding before).
fn crop_offset(size: usize, crop: usize) -> isize {
    if crop > size {
        -(((crop - size) / 2) as isize)
    } else {
        // int(round((size - crop) / 2.0)) with Python's round: half to even.
        ((size - crop) as f64 / 2.0).round_ties_even() as isize
    }
}

/// torchvision's `CenterCrop((height, width))` (zero padding when the picture is smaller).
pub fn center_crop<T: Sample>(src: &Picture<T>, width: usize, height: usize) -> Picture<T> {
    if (src.width, src.height) == (width, height) {
        return src.clone();
    }
    let c = src.channels;
    let (ox, oy) = (
        crop_offset(src.width, width),
        crop_offset(src.height, height),
    );
    let mut out = vec![T::default(); width * height * c];
    for y in 0..height {
        let sy = oy + y as isize;
        if sy < 0 || sy >= src.height as isize {
            continue;
        }
        for x in 0..width {
            let sx = ox + x as isize;
            if sx < 0 || sx >= src.width as isize {
                continue;
            }
            let s = (sy as usize * src.width + sx as usize) * c;
            out[(y * width + x) * c..][..c].copy_from_slice(&src.data[s..s + c]);
        }
    }
    Picture {
        width,
        height,
        channels: c,
        data: out,
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

/// PIL's `convert("L")` of one RGB pixel (ITU-R 601-2 luma, 16-bit fixed point).
pub fn luma_u8(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// Channels that cannot become the model's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot make {want}-channel model input from {got}-channel pixels")]
pub struct ChannelError {
    /// Channels given.
    pub got: usize,
    /// Channels the model takes.
    pub want: usize,
}

/// Whether `got`-channel pixels (1 grey, 3 RGB, 4 RGBA) can feed a `want`-channel model.
pub fn channels_usable(got: usize, want: usize) -> bool {
    matches!((got, want), (1 | 3 | 4, 1 | 3))
}

/// PIL's `convert("L")` / `convert("RGB")` of 8-bit pixels: grey is copied to RGB, alpha
/// dropped, colour made grey with [`luma_u8`]. (Grey + alpha never gets here: [`decode_file`]
/// drops that alpha, and the daemon refuses 2-channel frames.)
pub fn to_channels_u8(src: Picture<u8>, want: usize) -> Result<Picture<u8>, ChannelError> {
    let got = src.channels;
    if got == want {
        return Ok(src);
    }
    if !channels_usable(got, want) {
        return Err(ChannelError { got, want });
    }
    let data: Vec<u8> = match (got, want) {
        (1, 3) => src.data.chunks_exact(got).flat_map(|p| [p[0]; 3]).collect(),
        (3 | 4, 1) => src
            .data
            .chunks_exact(got)
            .map(|p| luma_u8(p[0], p[1], p[2]))
            .collect(),
        (4, 3) => src
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        _ => return Err(ChannelError { got, want }),
    };
    Ok(Picture {
        width: src.width,
        height: src.height,
        channels: want,
        data,
    })
}

/// The f32 counterpart of [`to_channels_u8`] (luma with PIL's weights as fractions).
pub fn to_channels_f32(src: Picture<f32>, want: usize) -> Result<Picture<f32>, ChannelError> {
    let got = src.channels;
    if got == want {
        return Ok(src);
    }
    if !channels_usable(got, want) {
        return Err(ChannelError { got, want });
    }
    let (wr, wg, wb) = (19595.0 / 65536.0, 38470.0 / 65536.0, 7471.0 / 65536.0);
    let data: Vec<f32> = match (got, want) {
        (1, 3) => src.data.chunks_exact(got).flat_map(|p| [p[0]; 3]).collect(),
        (3 | 4, 1) => src
            .data
            .chunks_exact(got)
            .map(|p| wr * p[0] + wg * p[1] + wb * p[2])
            .collect(),
        (4, 3) => src
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        _ => return Err(ChannelError { got, want }),
    };
    Ok(Picture {
        width: src.width,
        height: src.height,
        channels: want,
        data,
    })
}

/// An image file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DecodeError {
    /// The file.
    pub path: std::path::PathBuf,
    /// Why.
    pub reason: String,
}

/// Decodes a JPEG or PNG file into 8-bit samples the way PIL opens it for `convert()`: grey
/// stays 1 channel (its alpha dropped), colour 3 (4 with alpha); 16-bit samples keep their high byte
/// (PIL's `;16B` unpackers), except 16-bit grey, which PIL reads as 32-bit integers and clips
/// to 255 when converting.
///
/// EXIF orientation and ICC profiles are not applied: PIL's `Image.open` does not either.
pub fn decode_file(path: &std::path::Path) -> Result<Picture<u8>, DecodeError> {
    use image::DynamicImage as D;
    let bad = |reason: String| DecodeError {
        path: path.to_path_buf(),
        reason,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| bad(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    let img = reader.decode().map_err(|e| bad(e.to_string()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (channels, data): (usize, Vec<u8>) = match img {
        D::ImageLuma8(b) => (1, b.into_raw()),
        D::ImageLumaA8(b) => (1, b.into_raw().chunks_exact(2).map(|p| p[0]).collect()),
        D::ImageRgb8(b) => (3, b.into_raw()),
        D::ImageRgba8(b) => (4, b.into_raw()),
        D::ImageLuma16(b) => (1, b.into_raw().iter().map(|&v| v.min(255) as u8).collect()),
        D::ImageLumaA16(b) => (
            1,
            b.into_raw()
                .chunks_exact(2)
                .map(|p| (p[0] >> 8) as u8)
                .collect(),
        ),
        D::ImageRgb16(b) => (3, b.into_raw().iter().map(|&v| (v >> 8) as u8).collect()),
        D::ImageRgba16(b) => (4, b.into_raw().iter().map(|&v| (v >> 8) as u8).collect()),
        other => {
            let rgb = other.to_rgb8();
            (3, rgb.into_raw())
        }
    };
    Picture::new(w, h, channels, data).ok_or_else(|| bad("decoder returned a short buffer".into()))
}

/// A file as the model's u8 HWC input: decode, channels, resize, centre crop (normalisation is
/// [`crate::data::preprocess::normalize_u8_hwc`]).
pub fn load_for_model(path: &std::path::Path, spec: &InputSpec) -> Result<Vec<u8>, DecodeError> {
    let pic = decode_file(path)?;
    let pic = to_channels_u8(pic, spec.channels).map_err(|e| DecodeError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(fit(&pic, spec).data)
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
    fn resize_size_truncates_the_long_side_like_torchvision() {
        // 1024x683 photo, Resize(256): 256 * 1024 / 683 = 383.81 -> 383 (round() gives 384).
        assert_eq!(resized_size(1024, 683, 256), (383, 256));
        assert_eq!(resized_size(683, 1024, 256), (256, 383));
        assert_eq!(resized_size(500, 500, 256), (256, 256));
    }

    #[test]
    fn crop_offsets_round_half_to_even() {
        assert_eq!(crop_offset(257, 224), 16); // 16.5 -> 16
        assert_eq!(crop_offset(259, 224), 18); // 17.5 -> 18
        assert_eq!(crop_offset(383, 224), 80); // 79.5 -> 80
        assert_eq!(crop_offset(256, 224), 16);
        assert_eq!(crop_offset(200, 224), -12);
    }

    #[test]
    fn crop_larger_than_the_picture_pads_with_zeros() {
        let p = Picture::new(1, 1, 1, vec![9u8]).unwrap();
        let c = center_crop(&p, 3, 2);
        // torchvision pads left (3-1)//2 = 1, top (2-1)//2 = 0.
        assert_eq!(c.data, vec![0, 9, 0, 0, 0, 0]);
    }

    #[test]
    fn coefficients_sum_to_one_and_widen_when_downscaling() {
        let (first, k) = precompute(1024, 383, Interpolation::Bicubic);
        assert_eq!(first.len(), 383);
        for row in &k {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        // Support 2 * 1024/383 on each side: 11 taps, not 4.
        assert!(k[100].len() >= 10, "{}", k[100].len());
        let (_, up) = precompute(100, 300, Interpolation::Bicubic);
        assert!(up[150].len() <= 5);
    }

    #[test]
    fn constant_pictures_stay_constant_and_same_size_is_a_copy() {
        let p = Picture::new(37, 23, 3, vec![200u8; 37 * 23 * 3]).unwrap();
        for f in [
            Interpolation::Bilinear,
            Interpolation::Bicubic,
            Interpolation::Lanczos,
        ] {
            let r = resize(&p, 11, 64, f);
            assert!(r.data.iter().all(|&v| v == 200), "{f:?}");
        }
        let q = Picture::new(3, 1, 1, vec![1u8, 2, 3]).unwrap();
        assert_eq!(resize(&q, 3, 1, Interpolation::Bicubic), q);
    }

    #[test]
    fn bicubic_overshoot_is_clipped_in_u8_and_kept_in_f32() {
        // A step edge, 2x upscale: bicubic rings beyond [0, 255].
        let row: Vec<u8> = [0u8, 0, 0, 255, 255, 255].to_vec();
        let p = Picture::new(6, 1, 1, row.clone()).unwrap();
        let r = resize(&p, 12, 1, Interpolation::Bicubic);
        assert!(r.data.contains(&0) && r.data.contains(&255));
        let f = Picture::new(6, 1, 1, row.iter().map(|&v| v as f32).collect()).unwrap();
        let rf = resize(&f, 12, 1, Interpolation::Bicubic);
        assert!(rf.data.iter().any(|&v| v < 0.0) && rf.data.iter().any(|&v| v > 255.0));
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

    #[test]
    fn luma_matches_pil() {
        // PIL: Image.new("RGB", (1, 1), (10, 200, 30)).convert("L").getpixel((0, 0)) == 124
        assert_eq!(luma_u8(10, 200, 30), 124);
        assert_eq!(luma_u8(255, 255, 255), 255);
        let p = Picture::new(1, 1, 4, vec![10u8, 200, 30, 7]).unwrap();
        assert_eq!(to_channels_u8(p, 1).unwrap().data, vec![124]);
        let g = Picture::new(1, 1, 1, vec![9u8]).unwrap();
        assert_eq!(to_channels_u8(g, 3).unwrap().data, vec![9, 9, 9]);
    }
}
