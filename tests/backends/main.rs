//! The backends without a GPU: choosing one (`--backend`), the CPU runtimes, the TensorRT
//! engine build and cache logic, and (with `--features cuda,tensorrt`) the CUDA and TensorRT
//! libraries' loading and refusals.

#[path = "../common/mod.rs"]
mod common;

mod choice;
mod cpu_runtimes;
mod cuda_library;
mod engine_build;
mod tensorrt_library;
