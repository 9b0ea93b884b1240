//! Datasets and pre-processing.

pub mod fmnist;
pub mod idx;
pub mod preprocess;

pub use fmnist::{Dataset, Split};
pub use idx::IdxError;
