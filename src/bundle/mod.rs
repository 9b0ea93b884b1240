//! The cascade bundle: `manifest.toml` plus one ONNX file per stage (docs/bundle.md).
//!
//! The manifest is the single source of truth; [`Bundle::load`] checks every declared tensor
//! against the ONNX file it names, so a mismatched bundle fails at load time with one line
//! naming the stage, the tensor and both shapes.

pub mod calibration;
pub mod check;
mod error;
mod manifest;
mod onnx_io;
pub mod reference;
mod validate;
pub mod wiring;

pub use calibration::{Calibration, CalibrationChoice};
pub use error::BundleError;
pub use manifest::{
    Baseline, DType, Dim, Holdout, InputSpec, Manifest, ModelInfo, OperatingPoint, StageSpec,
    TensorSpec,
};
pub use wiring::{Feed, WiringError};

use std::path::{Path, PathBuf};

/// The manifest's file name inside a bundle directory.
pub const MANIFEST: &str = "manifest.toml";

/// A loaded and validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    /// The parsed manifest.
    pub manifest: Manifest,
}

impl Bundle {
    /// Loads `dir/manifest.toml` and validates every stage against its ONNX file.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, BundleError> {
        let bundle = Self::load_unchecked(dir)?;
        validate::validate(&bundle)?;
        Ok(bundle)
    }

    /// Loads the manifest only (no file checks); for tools that rewrite a bundle.
    pub fn load_unchecked(dir: impl AsRef<Path>) -> Result<Self, BundleError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|source| BundleError::Io {
            path: path.clone(),
            source,
        })?;
        let manifest = Manifest::parse(&text).map_err(|e| BundleError::Manifest {
            path,
            reason: e.to_string(),
        })?;
        Ok(Self { dir, manifest })
    }

    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of stage `index`'s ONNX file.
    pub fn stage_path(&self, index: usize) -> PathBuf {
        self.dir.join(&self.manifest.stages[index].onnx)
    }

    /// Number of stages.
    pub fn num_stages(&self) -> usize {
        self.manifest.stages.len()
    }
}
