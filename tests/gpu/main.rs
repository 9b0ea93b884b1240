//! What needs a GPU (`tools/gpu-check.sh` runs it on a Jetson or RTX): host-device bandwidth
//! and the TensorRT cascade against the CPU. Compiled only with the `cuda`/`tensorrt` features.

#[path = "../common/mod.rs"]
mod common;

mod bandwidth;
mod tensorrt_vs_cpu;
