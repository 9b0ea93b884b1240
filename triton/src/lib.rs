//! `libtriton_dvt.so`: an NVIDIA Triton Inference Server custom backend that serves a dvt-edge
//! bundle's early-exit cascade.
//!
//! Triton loads it from `<backend-directory>/dvt/libtriton_dvt.so` for models whose
//! `config.pbtxt` says `backend: "dvt"` (`dvt triton-repo` writes one). Each model instance
//! holds a warm [`dvt_edge::AdaptiveCascade`] on the backend the config asks for (the CPU, or
//! TensorRT on a `KIND_GPU` instance). The dynamic batcher hands `TRITONBACKEND_ModelInstanceExecute`
//! a list of requests; their `IMAGE`s (UINT8 `[batch, H, W, C]`, any size, converted like
//! dvtd's frames) run as one cascade batch, and each request gets its own response, or its own
//! error, so one bad request never fails the others. The request parameter `budget` sets the
//! model's budget at run time; per-stage exit counts and GFLOPs are Triton custom metrics.
//!
//! Modules without Triton calls (`config`, `frames`, `outputs`, `runner`, `api`) are unit
//! tested on their own; the ones that call into the server (`ffi`, `triton`, `exports`) are
//! left out of the test build, whose executable could not resolve the `TRITON*` symbols that
//! only the server defines. The Python test `triton/tests/test_triton.py` runs the real thing.

mod api;
mod config;
#[cfg(not(test))]
mod exports;
#[cfg(not(test))]
mod ffi;
mod frames;
mod outputs;
mod runner;
#[cfg(not(test))]
mod triton;
