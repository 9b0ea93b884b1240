//! A request's `IMAGE` (`[batch, H, W, C]` UINT8) to the cascade's normalised input, with
//! dvtd's frame conversion ([`dvt_edge::daemon::frame::to_input`]: resize, grey/RGB, the
//! manifest's normalisation), so Triton and dvtd answer the same pixels the same way.

use dvt_edge::bundle::InputSpec;
use dvt_edge::daemon::frame::to_input;
use dvt_edge::protocol::{FrameHeader, Layout, PixelType};

/// Converts the `shape` / `pixels` of one request's IMAGE and appends its images (each
/// `C*H*W` floats of `spec`) to `out`; returns how many. On error `out` is left as it was, so
/// one bad request never disturbs the batch being gathered.
pub fn append_images(
    shape: &[i64],
    pixels: &[u8],
    spec: &InputSpec,
    out: &mut Vec<f32>,
) -> Result<usize, String> {
    let &[n, h, w, c] = shape else {
        return Err(format!(
            "IMAGE has shape {shape:?}: send [batch, height, width, channels] (UINT8, HWC)"
        ));
    };
    if n < 1 || h < 1 || w < 1 || c < 1 {
        return Err(format!(
            "IMAGE has shape {shape:?}: every dimension must be at least 1"
        ));
    }
    // dvtd's frame header holds 16-bit sizes; no camera frame comes near that.
    let dim = |v: i64, what: &str| {
        u16::try_from(v)
            .map_err(|_| format!("IMAGE {what} {v} is too large (at most {})", u16::MAX))
    };
    let (hh, ww, cc) = (dim(h, "height")?, dim(w, "width")?, dim(c, "channels")?);
    let per_image = usize::from(hh) * usize::from(ww) * usize::from(cc);
    let n = usize::try_from(n).map_err(|_| format!("IMAGE batch {n} is too large"))?;
    if Some(pixels.len()) != per_image.checked_mul(n) {
        return Err(format!(
            "IMAGE holds {} bytes, but shape {shape:?} needs {}",
            pixels.len(),
            per_image.saturating_mul(n)
        ));
    }
    let header = FrameHeader {
        request_id: 0,
        dtype: PixelType::U8,
        layout: Layout::Hwc,
        height: hh,
        width: ww,
        channels: cc,
        payload_len: u32::try_from(per_image).unwrap_or(u32::MAX),
        timestamp_ns: 0,
    };
    let mut converted = Vec::with_capacity(n * spec.channels * spec.height * spec.width);
    for (k, image) in pixels.chunks_exact(per_image).enumerate() {
        let input = to_input(&header, image, spec).map_err(|e| {
            if n > 1 {
                format!("IMAGE {k}: {e}")
            } else {
                format!("IMAGE: {e}")
            }
        })?;
        converted.extend_from_slice(&input);
    }
    out.extend_from_slice(&converted);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvt_edge::bundle::Manifest;
    use dvt_edge::data::preprocess::normalize_u8_hwc;

    /// The shipped bundle's input (scale, mean, std, no resize), at a 4x4 size small enough
    /// to write frames out by hand.
    fn spec() -> InputSpec {
        let text = include_str!("../../engines/fmnist-dvt/manifest.toml");
        let input = Manifest::parse(text)
            .expect("the shipped manifest")
            .model
            .input;
        InputSpec {
            height: 4,
            width: 4,
            resize: None,
            ..input
        }
    }

    #[test]
    fn native_frames_equal_the_dataset_preprocessing() {
        let px: Vec<u8> = (0..32).map(|i| (i * 8) as u8).collect();
        let mut out = vec![];
        assert_eq!(append_images(&[2, 4, 4, 1], &px, &spec(), &mut out), Ok(2));
        let want = normalize_u8_hwc(&px, 2, &spec()).unwrap();
        assert_eq!(out, want.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn a_2x_replicated_frame_resizes_back_close_to_the_original() {
        // The antialiased (PIL) resize blends neighbours when it halves a frame, so a 2x
        // replicated frame comes back within one step of this ramp, not bit for bit.
        let small: Vec<u8> = (0..16).map(|i| (i * 13) as u8).collect();
        let mut big = vec![0u8; 64];
        for y in 0..8 {
            for x in 0..8 {
                big[y * 8 + x] = small[(y / 2) * 4 + x / 2];
            }
        }
        let (mut a, mut b) = (vec![], vec![]);
        append_images(&[1, 4, 4, 1], &small, &spec(), &mut a).unwrap();
        append_images(&[1, 8, 8, 1], &big, &spec(), &mut b).unwrap();
        assert_eq!(a.len(), b.len());
        let step = 13.0 / 255.0 / 0.353;
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= step + 1e-6, "{x} vs {y}");
        }
    }

    #[test]
    fn bad_images_leave_the_batch_untouched() {
        let mut out = vec![1.0];
        let e = append_images(&[1, 4, 4, 2], &[0; 32], &spec(), &mut out).unwrap_err();
        assert!(e.contains("2-channel"), "{e}");
        assert!(append_images(&[1, 4, 4, 1], &[0; 15], &spec(), &mut out)
            .unwrap_err()
            .contains("15 bytes"));
        assert!(append_images(&[4, 4, 1], &[0; 16], &spec(), &mut out)
            .unwrap_err()
            .contains("[batch, height, width, channels]"));
        assert!(append_images(&[1, 0, 4, 1], &[], &spec(), &mut out)
            .unwrap_err()
            .contains("at least 1"));
        assert!(
            append_images(&[1, 70000, 1, 1], &[0; 70000], &spec(), &mut out)
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(out, vec![1.0]);
    }
}
