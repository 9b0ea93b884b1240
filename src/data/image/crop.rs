//! torchvision's `Resize(shorter side)` output size and `CenterCrop`.

use super::{Picture, Sample};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
