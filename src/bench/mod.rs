//! `dvt bench`: side-by-side performance of the CPU backend, measured in one run and reported
//! as ratios (the machines are shared and noisy, so absolute numbers drift between runs).
//!
//! - per stage and per static baseline, batch 1 (robot latency) and batch 32 (throughput):
//!   our backend against ONNX Runtime's CPU execution provider ([`peer`]) on the same ONNX
//!   file, the same inputs and the same thread count, timed alternately;
//! - the roofline: this machine's f32 GEMM peak ([`gemm`]) and each stage's fraction of it;
//! - the cascade at its operating points against the static models, image by image, and the
//!   executor's overhead ([`cascade`]);
//! - tables and JSON ([`report`]) and a latency-vs-accuracy SVG (`plot`, feature `cli`);
//!   the `dvt bench` command line is [`crate::cli::bench`].
//!
//! The files besides those: `run` (the whole bench in order), `timing` (one model against the
//! peer), `versus` (the cascade against the static models).

pub mod cascade;
pub mod gemm;
pub mod peer;
#[cfg(feature = "cli")]
pub mod plot;
pub mod report;
mod run;
pub mod stage;
pub mod stats;
mod timing;
mod versus;

pub use run::run;

use crate::backend::{BackendError, BackendOptions};
use crate::cascade::CascadeError;
use crate::data::preprocess::PreprocessError;
use std::path::PathBuf;

/// Why the bench stopped. A missing or failing ONNX Runtime peer is not an error: the report
/// says so and carries our numbers alone.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Our backend failed on a stage.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The cascade failed.
    #[error(transparent)]
    Cascade(#[from] CascadeError),
    /// The images do not fit the bundle.
    #[error(transparent)]
    Input(#[from] PreprocessError),
    /// The GEMM peak could not be measured.
    #[error("GEMM peak: {0}")]
    Gemm(String),
    /// The bundle has no stages.
    #[error("the bundle has no stages")]
    NoStages,
    /// The plot could not be written.
    #[cfg(feature = "cli")]
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Threads for our backend and for ONNX Runtime.
    pub threads: usize,
    /// Our backend (CPU engine, or TensorRT; the ONNX Runtime peer runs only beside the CPU).
    pub backend: BackendOptions,
    /// Timed calls per model at batch 1 (larger batches get fewer, at least 3).
    pub iters: usize,
    /// Batch sizes of the per-stage table.
    pub batches: Vec<usize>,
    /// Images classified one by one for the cascade-vs-static comparison.
    pub images: usize,
    /// Operating points measured for the plot (spread over the cost range), besides the one
    /// matched against the largest static model.
    pub points: usize,
    /// Folder with the Fashion-MNIST IDX files (synthetic images when absent).
    pub data_dir: PathBuf,
    /// Python interpreter for the ONNX Runtime peer; `None` skips the peer.
    pub python: Option<PathBuf>,
    /// Where to write the latency-vs-accuracy SVG, if anywhere.
    pub plot: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backend: BackendOptions::default(),
            iters: 200,
            batches: vec![1, 32],
            images: 300,
            points: 8,
            data_dir: PathBuf::from(crate::data::fmnist::DEFAULT_DIR),
            python: Some(peer::default_python()),
            plot: None,
        }
    }
}

/// The CPU model name from /proc/cpuinfo (Linux), else "unknown CPU".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
