//! Device-independent logic of the GPU path: engine cache keys, the `trtexec` command lines that
//! `dvt build` runs, and the buffer plan the TensorRT backend allocates. None of it needs CUDA or
//! TensorRT, so it is compiled and tested everywhere.

pub mod build;
pub mod cache;
pub mod key;
pub mod plan;
pub mod trtexec;

pub use key::{BatchProfile, EngineKey, KeyMismatch, Precision, TrtVersion};
pub use plan::{check_engine_io, IoMode, IoTensor, PlanError};
pub use trtexec::{trtexec_command, TrtexecJob};
