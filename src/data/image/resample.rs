//! PIL's `ImagingResample`: separable, horizontal pass first, antialiased, in 8-bit fixed
//! point or in doubles for f32 pictures (see the module above for the details matched).

use super::{Interpolation, Picture};

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
    /// First input index of each output's taps.
    first: Vec<usize>,
    /// Each output's coefficients.
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

/// [`precompute`] in `T`'s coefficient type.
fn axis<T: Sample>(in_size: usize, out_size: usize, filter: Interpolation) -> AxisCoefs<T::Coef> {
    let (first, k) = precompute(in_size, out_size, filter);
    AxisCoefs {
        first,
        k: k.iter().map(|k| T::coefs(k)).collect(),
    }
}

/// Which way a separable pass resamples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    /// Along each row (columns change).
    Horizontal,
    /// Along each column (rows change).
    Vertical,
}

/// One separable pass: `src` (`width x height x c`, HWC) resampled along `along` with
/// `coefs`. Tap bounds count from `origin`, the index in the original picture of `src`'s
/// first row or column along that axis (the horizontal pass may keep only the rows the
/// vertical one reads).
fn pass<T: Sample>(
    src: &[T],
    (width, height, c): (usize, usize, usize),
    along: Axis,
    coefs: &AxisCoefs<T::Coef>,
    origin: usize,
) -> Picture<T> {
    let size = coefs.first.len();
    let (out_w, out_h) = match along {
        Axis::Horizontal => (size, height),
        Axis::Vertical => (width, size),
    };
    let mut out = vec![T::default(); out_w * out_h * c];
    for y in 0..out_h {
        for x in 0..out_w {
            // `i`: the output index along the axis; the taps start at pixel (row, col).
            let (i, row, col, stride) = match along {
                Axis::Horizontal => (x, y, coefs.first[x] - origin, c),
                Axis::Vertical => (y, coefs.first[y] - origin, x, width * c),
            };
            let start = (row * width + col) * c;
            for ch in 0..c {
                out[(y * out_w + x) * c + ch] = T::convolve(src, start + ch, stride, &coefs.k[i]);
            }
        }
    }
    Picture {
        width: out_w,
        height: out_h,
        channels: c,
        data: out,
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
    let horizontal = need_h.then(|| {
        let hz = axis::<T>(src.width, width, filter);
        let (first, rows) = if need_v {
            (row0, row1 - row0)
        } else {
            (0, src.height)
        };
        let line = src.width * c;
        let kept = &src.data[first * line..(first + rows) * line];
        pass(kept, (src.width, rows, c), Axis::Horizontal, &hz, 0)
    });
    if !need_v {
        return horizontal.unwrap_or_else(|| src.clone());
    }
    // Bounds are relative to the first row the horizontal pass kept.
    let (cur, origin) = match &horizontal {
        Some(h) => (h, row0),
        None => (src, 0),
    };
    pass(
        &cur.data,
        (cur.width, cur.height, c),
        Axis::Vertical,
        &vert,
        origin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
