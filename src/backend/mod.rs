//! Backends run one cascade stage. The cascade above them only moves opaque values between
//! stages, so a GPU backend keeps reuse tensors on the device and only logits come back.

pub mod any;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod select;
#[cfg(feature = "tensorrt")]
pub mod tensorrt;

pub use any::{AnyBackend, AnyStage, AnyValue};
#[cfg(feature = "cli")]
pub use select::BackendArgs;
pub use select::{BackendKind, BackendOptions, Selected};

use crate::bundle::Bundle;

/// A host tensor: f32, row-major, dynamic rank.
pub type HostTensor = ndarray::ArrayD<f32>;

/// Why a backend could not load or run a stage.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The stage's model could not be loaded or prepared.
    #[error("stage {stage}: cannot load {what}: {reason}")]
    Load {
        /// Stage name.
        stage: String,
        /// The file or object.
        what: String,
        /// Engine message.
        reason: String,
    },
    /// A run failed (bad shapes, engine error).
    #[error("stage {stage}: run failed: {reason}")]
    Run {
        /// Stage name.
        stage: String,
        /// Engine message.
        reason: String,
    },
    /// An input has the wrong shape.
    #[error("stage {stage}: input '{tensor}' has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Stage name.
        stage: String,
        /// Tensor name.
        tensor: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Given shape.
        found: Vec<usize>,
    },
    /// This backend cannot run on this machine (no GPU, no library).
    #[error("{backend} backend unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// Moving data to or from the backend failed.
    #[error("transfer failed: {0}")]
    Transfer(String),
}

/// Runs cascade stages on one kind of hardware.
pub trait Backend {
    /// A tensor where this backend keeps it between stages (host memory for the CPU backend,
    /// device memory for a GPU backend). Cloning must be cheap (a handle, not the data).
    type Value: Clone;
    /// A loaded stage, ready to run, with whatever per-stage state the engine keeps.
    type Stage;

    /// Human-readable name, e.g. "cpu (tract, 2 threads)".
    fn name(&self) -> String;

    /// Loads stage `index` of `bundle`.
    fn load_stage(&self, bundle: &Bundle, index: usize) -> Result<Self::Stage, BackendError>;

    /// Moves a host tensor (the normalised image batch) to where the stages read it.
    fn upload(&self, tensor: HostTensor) -> Result<Self::Value, BackendError>;

    /// Runs a stage. `inputs` and the returned outputs follow the stage's manifest order.
    fn run(
        &self,
        stage: &mut Self::Stage,
        inputs: &[Self::Value],
    ) -> Result<Vec<Self::Value>, BackendError>;

    /// Copies a value back to the host.
    fn download(&self, value: &Self::Value) -> Result<HostTensor, BackendError>;

    /// Keeps batch rows `rows` (in that order) of a value: the samples that go on to the next
    /// stage.
    fn select_rows(&self, value: &Self::Value, rows: &[usize])
        -> Result<Self::Value, BackendError>;
}
