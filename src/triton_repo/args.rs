//! `dvt triton-repo`'s command line.

use crate::backend::cpu::CpuRuntime;
use crate::backend::select::BackendKind;
use crate::engine_build::Precision;
use std::path::PathBuf;

/// `dvt triton-repo`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TritonRepoArgs {
    /// Bundle directory (copied into the repository).
    #[arg(long, default_value = "engines/fmnist-dvt")]
    pub bundle: PathBuf,
    /// Model repository to write (created if missing; other models in it are left alone).
    #[arg(long)]
    pub out: PathBuf,
    /// Model name (default: the bundle's model name).
    #[arg(long)]
    pub name: Option<String>,
    /// Backend: cpu, tensorrt (KIND_GPU instances), auto (KIND_AUTO: TensorRT on GPU
    /// instances whose engines are built, else the CPU).
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// CPU runtime: auto, ort, tract (`--engine`, its old name, still works).
    #[arg(long = "cpu-runtime", alias = "engine", value_enum, default_value_t = CpuRuntime::Auto)]
    pub cpu_runtime: CpuRuntime,
    /// CPU threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// TensorRT engine precision.
    #[arg(long, value_enum, default_value_t = Precision::Fp16)]
    pub precision: Precision,
    /// TensorRT batch profile min,opt,max the engines were built with.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 1, 32])]
    pub batch_profile: Vec<usize>,
    /// Answer at this operating point of the manifest until a client sets a budget.
    #[arg(long, conflicts_with = "budget")]
    pub point: Option<String>,
    /// Start with this budget (e.g. 0.01gflops, 3ms, 300ips).
    #[arg(long)]
    pub budget: Option<String>,
    /// max_batch_size: most images per cascade batch.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// The dynamic batcher's max_queue_delay_microseconds. 0: no window; requests that queue
    /// while the instance is busy still share the next batch, and a lone request does not wait
    /// (a window pays off only for many open-loop streams).
    #[arg(long, default_value_t = 0)]
    pub queue_delay_us: u64,
    /// Model instances (each its own cascade).
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// Replace the model's folder if it exists.
    #[arg(long)]
    pub force: bool,
}
