//! Operating points and budgets: which exit thresholds to use for a compute, time or power
//! budget (docs/ARCHITECTURE.md, layer policy, and "The model's math", thresholds).
//!
//! - [`records`] - every stage's confidence and correctness per calibration image, saved with
//!   the bundle so that solving never needs the model again.
//! - [`official`] - DVT's own geometric exit schedule (MSDNet budgeted batch classification),
//!   the baseline.
//! - [`frontier`] - our solver, the accuracy-vs-expected-cost Pareto frontier (upper concave
//!   hull) over threshold vectors.
//! - [`operating_table`] - the calibrated operating points, and for a budget the most accurate
//!   mix of two neighbouring points that fits.
//! - [`controller`] - the closed loop (adaptive feedforward on a drift ratio, optional integral
//!   trim, anti-windup) for budgets the table cannot predict, above all watts.
//! - [`simulate`] - replays recorded confidences against budget traces.
//! - [`calibrate`] - runs the cascade over a labelled split and produces all of the above.
//! - [`claims`] - whether the calibrated cascade earns its place over one static model.
//! - `plot` - `accuracy_vs_cost.svg` (feature `cli`).

pub mod calibrate;
pub mod claims;
pub mod controller;
pub mod frontier;
pub mod official;
pub mod operating_table;
#[cfg(feature = "cli")]
pub mod plot;
pub mod records;
mod rng;
pub mod simulate;

pub use claims::CascadeClaims;
pub use controller::{Controller, ControllerConfig, ControllerState, PowerModel};
pub use operating_table::{Budget, Metric, Mix, OperatingTable};
pub use records::{Records, RecordsMeta, StageCosts};
pub use rng::Rng;

use std::path::PathBuf;

/// Errors of the policy layer.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The manifest has no usable operating points.
    #[error("the bundle has no operating points: run `dvt calibrate --bundle DIR` first")]
    NoOperatingPoints,
    /// Operating points disagree with the cascade.
    #[error("operating point '{name}': {reason}")]
    BadPoint {
        /// Point name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A budget that is not a positive finite number.
    #[error("budget {0} is not a positive finite number")]
    BadBudget(String),
    /// A budget kind the open-loop table cannot answer.
    #[error("a {0} budget needs the closed-loop controller (the table has no such cost)")]
    NeedsFeedback(&'static str),
    /// Records are empty or inconsistent.
    #[error("records: {0}")]
    Records(String),
    /// A records or trace file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A records or trace file is malformed.
    #[error("{path}: {reason}")]
    Format {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Running the cascade failed.
    #[error(transparent)]
    Cascade(#[from] crate::cascade::CascadeError),
    /// The dataset's images do not fit the bundle's input.
    #[error(transparent)]
    Input(#[from] crate::data::preprocess::PreprocessError),
    /// Drawing the plot failed.
    #[error("plot {path}: {reason}")]
    Plot {
        /// File.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}
