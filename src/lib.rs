//! dvt-edge: a runtime for Dynamic Vision Transformer (DVT) early-exit cascades.
//!
//! Layers (see `DESIGN.md`): [`bundle`] (the manifest contract), [`backend`] (runs one stage:
//! CPU by default, TensorRT behind a feature), [`cascade`] (stage after stage with the exit
//! rule), [`data`] (datasets and pre-processing) and [`eval`] (accuracy / cost reports).

pub mod adaptive;
pub mod backend;
pub mod bench;
pub mod budget_source;
pub mod bundle;
pub mod cascade;
pub mod check_bundle;
pub mod client;
pub mod daemon;
pub mod data;
pub mod engines;
pub mod eval;
pub mod policy;
pub mod triton_repo;

pub use adaptive::{AdaptiveBatch, AdaptiveCascade, AdaptiveError, AdaptiveOptions, BackendInfo};
pub use backend::{BackendKind, BackendOptions};
pub use bundle::Bundle;
pub use cascade::Decision;
pub use engines::{BatchProfile, Precision};
pub use policy::{Budget, ControllerConfig};
