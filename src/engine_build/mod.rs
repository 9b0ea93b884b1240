//! Device-independent logic of the GPU path: engine cache keys, the `trtexec` command lines that
//! `dvt build` runs, and the check of a loaded engine's I/O against its stage. None of it needs CUDA or
//! TensorRT, so it is compiled and tested everywhere.

pub mod build;
pub mod cache;
pub mod io_check;
pub mod key;
pub mod trtexec;

pub use io_check::{check_engine_io, IoMode, IoTensor, PlanError};
pub use key::{BatchProfile, EngineKey, KeyMismatch, Precision, TrtVersion};
pub use trtexec::{trtexec_command, TrtexecJob};
