//! PIL's `convert("L")` / `convert("RGB")`: pixels to the model's channel count.

use super::Picture;

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
///
/// [`decode_file`]: super::decode_file
pub fn to_channels_u8(src: Picture<u8>, want: usize) -> Result<Picture<u8>, ChannelError> {
    to_channels(src, want, |p| luma_u8(p[0], p[1], p[2]))
}

/// The f32 counterpart of [`to_channels_u8`] (luma with PIL's weights as fractions).
pub fn to_channels_f32(src: Picture<f32>, want: usize) -> Result<Picture<f32>, ChannelError> {
    let (wr, wg, wb) = (19595.0 / 65536.0, 38470.0 / 65536.0, 7471.0 / 65536.0);
    to_channels(src, want, |p| wr * p[0] + wg * p[1] + wb * p[2])
}

/// Both sample types' conversion; only the grey of a colour pixel (`luma` of its R, G, B
/// first) differs between them.
fn to_channels<T: Copy>(
    src: Picture<T>,
    want: usize,
    luma: impl Fn(&[T]) -> T,
) -> Result<Picture<T>, ChannelError> {
    let got = src.channels;
    if got == want {
        return Ok(src);
    }
    if !channels_usable(got, want) {
        return Err(ChannelError { got, want });
    }
    let data: Vec<T> = match (got, want) {
        (1, 3) => src.data.chunks_exact(got).flat_map(|p| [p[0]; 3]).collect(),
        (3 | 4, 1) => src.data.chunks_exact(got).map(luma).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
