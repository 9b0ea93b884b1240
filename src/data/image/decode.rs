//! Image files (JPEG, PNG) to pictures, as PIL opens them.

use super::{fit, to_channels_u8, Picture};
use crate::bundle::InputSpec;

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
