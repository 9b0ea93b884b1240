use std::path::PathBuf;

/// Why a bundle could not be loaded. Every variant names the file, stage or tensor at fault.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or misses required fields.
    #[error("invalid manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A stage's ONNX file is missing.
    #[error("stage {stage}: ONNX file {path} not found")]
    MissingFile {
        /// Stage name.
        stage: String,
        /// The missing file.
        path: PathBuf,
    },
    /// A stage's ONNX file cannot be decoded.
    #[error("stage {stage}: {path} is not a valid ONNX model: {reason}")]
    CorruptOnnx {
        /// Stage name.
        stage: String,
        /// The file.
        path: PathBuf,
        /// Decoder message.
        reason: String,
    },
    /// The file's sha256 differs from the manifest's.
    #[error("stage {stage}: {path} has sha256 {found}, manifest says {declared}")]
    Checksum {
        /// Stage name.
        stage: String,
        /// The file.
        path: PathBuf,
        /// Manifest value.
        declared: String,
        /// Actual value.
        found: String,
    },
    /// A declared tensor is absent from the ONNX graph.
    #[error("stage {stage}: tensor '{tensor}' declared as {kind} in the manifest is not a {kind} of {path}")]
    MissingTensor {
        /// Stage name.
        stage: String,
        /// Tensor name.
        tensor: String,
        /// "input" or "output".
        kind: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A tensor's shape or dtype differs between manifest and ONNX file.
    #[error(
        "stage {stage}: tensor '{tensor}' is {declared} in the manifest but {found} in {path}"
    )]
    TensorMismatch {
        /// Stage name.
        stage: String,
        /// Tensor name.
        tensor: String,
        /// Manifest shape/dtype.
        declared: String,
        /// ONNX shape/dtype.
        found: String,
        /// The file.
        path: PathBuf,
    },
    /// The stages do not chain (a reuse input has no matching upstream output).
    #[error("stage {stage}: {reason}")]
    Chain {
        /// Stage name.
        stage: String,
        /// What does not match.
        reason: String,
    },
}
