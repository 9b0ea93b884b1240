//! Labelled images in memory ([`Dataset`]), and the IDX files they come from for Fashion-MNIST
//! as shipped by Debian's `dataset-fashion-mnist` (`[n, H, W]`, gzipped), or any `[n, H, W, C]`
//! u8 IDX pair in the same naming. Image folders (JPEG/PNG) are read by [`super::folder`].

use super::idx::{self, IdxError};
use std::path::{Path, PathBuf};

/// Where Debian installs the dataset.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Images at the end of the training set held out for calibration (never trained on).
pub const CALIBRATION_IMAGES: usize = 5000;

/// Which images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The 10,000 test images.
    Test,
    /// The last 5,000 training images, held out from training.
    Calibration,
}

/// Images (u8, HWC; C = 1 for grey) and labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Channels per pixel (1 for grey, 3 for RGB).
    pub channels: usize,
    /// `len * height * width * channels` pixels.
    pub pixels: Vec<u8>,
    /// One label per image: an index into the bundle's `model.classes`.
    pub labels: Vec<u32>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of images `range`.
    pub fn pixels(&self, range: std::ops::Range<usize>) -> &[u8] {
        let px = self.image_len();
        &self.pixels[range.start * px..range.end * px]
    }

    /// Values per image (`height * width * channels`).
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Keeps the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.pixels.truncate(n * self.image_len());
        }
    }

    /// Loads a split from `dir`.
    pub fn load(dir: &Path, split: Split) -> Result<Self, IdxError> {
        let prefix = match split {
            Split::Test => "t10k",
            Split::Calibration => "train",
        };
        let images = idx::read(&find(dir, &format!("{prefix}-images-idx3-ubyte")))?;
        let labels = idx::read(&find(dir, &format!("{prefix}-labels-idx1-ubyte")))?;
        let bad = |reason: String| IdxError::Format {
            path: dir.to_path_buf(),
            reason,
        };
        if !(3..=4).contains(&images.dims.len())
            || labels.dims.len() != 1
            || images.dims[0] != labels.dims[0]
        {
            return Err(bad(format!(
                "images {:?} and labels {:?} do not match",
                images.dims, labels.dims
            )));
        }
        let (n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
        let c = images.dims.get(3).copied().unwrap_or(1);
        let mut ds = Dataset {
            height: h,
            width: w,
            channels: c,
            pixels: images.data,
            labels: labels.data.into_iter().map(u32::from).collect(),
        };
        if split == Split::Calibration {
            if n < CALIBRATION_IMAGES {
                return Err(bad(format!(
                    "{n} training images, need {CALIBRATION_IMAGES}"
                )));
            }
            let start = n - CALIBRATION_IMAGES;
            ds.pixels.drain(..start * h * w * c);
            ds.labels.drain(..start);
        }
        Ok(ds)
    }
}

/// `dir/name.gz` if present, else `dir/name`.
fn find(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() {
        gz
    } else {
        dir.join(name)
    }
}
