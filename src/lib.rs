//! dvt-edge: a runtime for Dynamic Vision Transformer (DVT) early-exit cascades.
//!
//! An embedder needs one type, [`AdaptiveCascade`]: it loads a bundle on the backend
//! [`BackendOptions`] choose ([`BackendKind::Auto`]: TensorRT when its engines are built for this
//! GPU, else the CPU), picks the calibration that matches that backend, and classifies frames
//! under a [`Budget`] (GFLOPs, ms, images/s or watts per frame), returning a [`Decision`] per
//! frame. See `examples/classify.rs`.
//!
//! Layers (see `docs/ARCHITECTURE.md`): [`bundle`] (the manifest contract and the reuse
//! wiring), [`backend`] (runs one stage: CPU by default, TensorRT behind a feature; its engines
//! are built and found by [`engine_build`]), [`cascade`] (stage after stage with the exit rule),
//! [`policy`] (operating points, controller, calibration), [`adaptive`] (the type above),
//! [`protocol`] and [`client`] (dvtd's wire format and a client), [`daemon`] (`dvtd`), [`data`]
//! (datasets and pre-processing) and [`eval`] (accuracy / cost reports). The command-line
//! programs (`cli`, with clap, indicatif and plotters) are behind the default `cli` feature:
//! `default-features = false` leaves them out.

pub mod adaptive;
pub mod backend;
pub mod bench;
pub mod budget_source;
pub mod bundle;
pub mod cascade;
#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
pub mod daemon;
pub mod data;
pub mod engine_build;
pub mod eval;
pub mod policy;
pub mod progress;
pub mod protocol;
mod socket_poll;
pub mod triton_repo;

pub use adaptive::{AdaptiveBatch, AdaptiveCascade, AdaptiveError, AdaptiveOptions, BackendInfo};
pub use backend::{BackendKind, BackendOptions};
pub use bundle::Bundle;
pub use cascade::Decision;
pub use engine_build::{BatchProfile, Precision};
pub use policy::{Budget, ControllerConfig};
