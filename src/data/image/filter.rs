//! PIL's resampling filter kernels, written as PIL computes them.

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
    /// Half-width of the kernel at scale 1, in input pixels.
    pub(super) fn support(self) -> f64 {
        match self {
            Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    /// The filter kernel, written with PIL's operation order (the coefficients must be the
    /// same doubles for the fixed-point rounding to agree).
    pub(super) fn weight(self, x: f64) -> f64 {
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

/// `sin(pi x) / (pi x)`, 1 at 0.
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}
