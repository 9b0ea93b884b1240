//! Raw pixels to the normalised `image` tensor the stages take.

use crate::backend::HostTensor;
use crate::bundle::InputSpec;
use ndarray::Array4;

/// Pixels that cannot become the model's input tensor.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PreprocessError {
    /// The pixel count is not `n * H * W * C` of the model's input.
    #[error(
        "{got} pixel values for {n} image(s), but the model takes {height}x{width}x{channels} \
         images ({expected} values); the data does not fit this bundle"
    )]
    Geometry {
        /// Images in the batch.
        n: usize,
        /// Pixel values given.
        got: usize,
        /// Pixel values expected.
        expected: usize,
        /// Model input height.
        height: usize,
        /// Model input width.
        width: usize,
        /// Model input channels.
        channels: usize,
    },
    /// The manifest's normalisation does not have one mean and one std per channel.
    #[error("input spec has {channels} channel(s) but {means} mean and {stds} std value(s)")]
    Normalisation {
        /// Channels.
        channels: usize,
        /// Mean values.
        means: usize,
        /// Std values.
        stds: usize,
    },
}

/// Checks that `n` images of `pixels` fit `spec` (see [`normalize_u8_hwc`]).
pub fn check_geometry(pixels: usize, n: usize, spec: &InputSpec) -> Result<(), PreprocessError> {
    let (h, w, c) = (spec.height, spec.width, spec.channels);
    if spec.mean.len() != c || spec.std.len() != c {
        return Err(PreprocessError::Normalisation {
            channels: c,
            means: spec.mean.len(),
            stds: spec.std.len(),
        });
    }
    let expected = n * h * w * c;
    if pixels != expected {
        return Err(PreprocessError::Geometry {
            n,
            got: pixels,
            expected,
            height: h,
            width: w,
            channels: c,
        });
    }
    Ok(())
}

/// Normalises `n` images of u8 pixels, each `height * width * channels` values in HWC order
/// (for one channel, HW), into an `[n, C, H, W]` tensor: `(p / scale - mean[c]) / std[c]`.
pub fn normalize_u8_hwc(
    pixels: &[u8],
    n: usize,
    spec: &InputSpec,
) -> Result<HostTensor, PreprocessError> {
    check_geometry(pixels.len(), n, spec)?;
    let (h, w, c) = (spec.height, spec.width, spec.channels);
    let mut out = Array4::<f32>::zeros((n, c, h, w));
    let flat = out.as_slice_mut().expect("a new array is contiguous");
    for (src, dst) in pixels
        .chunks_exact(h * w * c)
        .zip(flat.chunks_exact_mut(h * w * c))
    {
        normalize_hwc_into(src, |p| f32::from(p) / spec.scale, spec, dst);
    }
    Ok(out.into_dyn())
}

/// The normalisation every input path ends with (`dvt eval`, calibration, dvtd's frames,
/// Triton's requests): one HWC image of the model's geometry into `out` as `[C, H, W]`,
/// `(to_unit(v) - mean[c]) / std[c]`, where `to_unit` brings a stored value to [0, 1]
/// (`p / scale` for u8 pixels).
pub fn normalize_hwc_into<T: Copy>(
    src: &[T],
    to_unit: impl Fn(T) -> f32,
    spec: &InputSpec,
    out: &mut [f32],
) {
    let (hw, c) = (spec.height * spec.width, spec.channels);
    debug_assert_eq!(src.len(), hw * c);
    debug_assert_eq!(out.len(), hw * c);
    for ch in 0..c {
        let (mean, std) = (spec.mean[ch], spec.std[ch]);
        for i in 0..hw {
            out[ch * hw + i] = (to_unit(src[i * c + ch]) - mean) / std;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_per_channel_into_nchw() {
        let spec = InputSpec {
            height: 1,
            width: 2,
            channels: 2,
            layout: "NCHW".into(),
            scale: 255.0,
            mean: vec![0.0, 0.5],
            std: vec![1.0, 0.5],
            resize: None,
            interpolation: None,
        };
        // HWC: pixel0 = (255, 0), pixel1 = (0, 255)
        let t = normalize_u8_hwc(&[255, 0, 0, 255], 1, &spec).unwrap();
        assert_eq!(t.shape(), &[1, 2, 1, 2]);
        assert_eq!(t[[0, 0, 0, 0]], 1.0);
        assert_eq!(t[[0, 0, 0, 1]], 0.0);
        assert_eq!(t[[0, 1, 0, 0]], -1.0);
        assert_eq!(t[[0, 1, 0, 1]], 1.0);
    }

    #[test]
    fn wrong_geometry_is_an_error_not_a_panic() {
        let spec = InputSpec {
            height: 28,
            width: 28,
            channels: 1,
            layout: "NCHW".into(),
            scale: 255.0,
            mean: vec![0.5],
            std: vec![0.5],
            resize: None,
            interpolation: None,
        };
        let err = normalize_u8_hwc(&[0u8; 224 * 224 * 3], 1, &spec).unwrap_err();
        assert!(matches!(
            err,
            PreprocessError::Geometry { expected: 784, .. }
        ));
        assert!(err.to_string().contains("28x28x1"), "{err}");
    }
}
