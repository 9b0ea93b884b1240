//! Raw pixels to the normalised `image` tensor the stages take.

use crate::backend::HostTensor;
use crate::bundle::InputSpec;
use ndarray::Array4;

/// Normalises `n` images of u8 pixels, each `height * width * channels` values in HWC order
/// (for one channel, HW), into an `[n, C, H, W]` tensor: `(p / scale - mean[c]) / std[c]`.
pub fn normalize_u8_hwc(pixels: &[u8], n: usize, spec: &InputSpec) -> HostTensor {
    let (h, w, c) = (spec.height, spec.width, spec.channels);
    assert_eq!(pixels.len(), n * h * w * c, "pixel buffer does not match the input spec");
    let mut out = Array4::<f32>::zeros((n, c, h, w));
    for (i, mut img) in out.outer_iter_mut().enumerate() {
        let src = &pixels[i * h * w * c..(i + 1) * h * w * c];
        for ch in 0..c {
            let (mean, std) = (spec.mean[ch], spec.std[ch]);
            for y in 0..h {
                for x in 0..w {
                    let p = src[(y * w + x) * c + ch] as f32;
                    img[[ch, y, x]] = (p / spec.scale - mean) / std;
                }
            }
        }
    }
    out.into_dyn()
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
        };
        // HWC: pixel0 = (255, 0), pixel1 = (0, 255)
        let t = normalize_u8_hwc(&[255, 0, 0, 255], 1, &spec);
        assert_eq!(t.shape(), &[1, 2, 1, 2]);
        assert_eq!(t[[0, 0, 0, 0]], 1.0);
        assert_eq!(t[[0, 0, 0, 1]], 0.0);
        assert_eq!(t[[0, 1, 0, 0]], -1.0);
        assert_eq!(t[[0, 1, 0, 1]], 1.0);
    }
}
