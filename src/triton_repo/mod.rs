//! `dvt triton-repo`: a ready NVIDIA Triton model repository for the `dvt` backend
//! (`triton/`, `libtriton_dvt.so`), and the schema of that backend's `config.pbtxt` parameters.
//!
//! The layout written (README.md, "Serving at scale with Triton"):
//!
//! ```text
//! REPO/
//!   <model>/
//!     config.pbtxt      backend "dvt", IMAGE in, CLASS/LABEL/CONFIDENCE/EXIT_STAGE/GFLOPS out,
//!                       dynamic batcher, instance group, parameters (see [`ModelParams`])
//!     1/bundle/         a copy of the bundle (manifest, stages, calibration, engines if built)
//! ```
//!
//! [`ModelParams`] is both what this command writes and what the backend reads back, so the
//! two cannot disagree on a key or a value's spelling.
//!
//! The files: `params` (that schema), `pbtxt` (the config text), `args` (the command line),
//! `write` (checking a request and laying the repository out), `copy` (the bundle's copy).

#[cfg(feature = "cli")]
mod args;
#[cfg(feature = "cli")]
mod copy;
mod params;
mod pbtxt;
#[cfg(feature = "cli")]
mod write;

#[cfg(feature = "cli")]
pub use args::TritonRepoArgs;
pub use params::{DefaultMode, ModelParams, PARAMETER_KEYS};
pub use pbtxt::RepoConfig;
#[cfg(feature = "cli")]
pub use write::write_repo;

use std::path::PathBuf;

/// Name of the image input (UINT8, `[batch, H, W, C]`, any H/W, C of 1, 3 or 4).
pub const INPUT_IMAGE: &str = "IMAGE";
/// The outputs, each `[batch, 1]`: name and Triton config data type.
pub const OUTPUTS: [(&str, &str); 5] = [
    ("CLASS", "TYPE_INT32"),
    ("LABEL", "TYPE_STRING"),
    ("CONFIDENCE", "TYPE_FP32"),
    ("EXIT_STAGE", "TYPE_INT32"),
    ("GFLOPS", "TYPE_FP32"),
];
/// The request parameter that sets the model's budget at run time (see the backend's docs).
pub const BUDGET_PARAMETER: &str = "budget";
/// The model version folder `dvt triton-repo` writes.
pub const VERSION: &str = "1";
/// The default `bundle` parameter: the bundle's folder inside the version folder.
pub const DEFAULT_BUNDLE: &str = "bundle";

/// Why a repository could not be written or a model's parameters are unusable.
#[derive(Debug, thiserror::Error)]
pub enum TritonRepoError {
    /// The bundle did not load.
    #[error("bundle {dir}: {source}")]
    Bundle {
        /// Bundle folder.
        dir: PathBuf,
        /// Why.
        source: Box<crate::bundle::BundleError>,
    },
    /// A parameter or option that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File or folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Maps an I/O error on `path` to [`TritonRepoError::Io`].
#[cfg(feature = "cli")]
fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TritonRepoError + '_ {
    move |source| TritonRepoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs `dvt triton-repo` and says what it wrote.
#[cfg(feature = "cli")]
pub fn run(args: &TritonRepoArgs) -> Result<(), TritonRepoError> {
    let dir = write_repo(args)?;
    println!(
        "dvt: wrote Triton model {} (config.pbtxt + {}/{}); serve it with \
         tritonserver --model-repository={} --backend-directory=DIR, where DIR/dvt/ holds \
         libtriton_dvt.so",
        dir.display(),
        VERSION,
        DEFAULT_BUNDLE,
        args.out.display()
    );
    Ok(())
}
