//! Datasets and pre-processing: Fashion-MNIST IDX files, image folders (JPEG/PNG), and the
//! torchvision-exact geometry step shared with the daemon's frames.

pub mod fmnist;
pub mod folder;
pub mod idx;
pub mod image;
pub mod preprocess;

pub use fmnist::{Dataset, Split};
pub use folder::{DataError, Opened, Source};
pub use idx::IdxError;
