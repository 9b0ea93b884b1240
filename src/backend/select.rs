//! Choosing the backend, once, for every command and the daemon: `--backend auto|cpu|tensorrt`
//! (`backend = ...` in dvtd.toml) with its settings.
//!
//! `auto` takes TensorRT only when all of it is there: the binary has the feature, a CUDA driver
//! opens the device, libnvinfer loads with the shim's major version, and every stage has a built
//! engine whose cache key matches this GPU, this TensorRT and this ONNX. Otherwise it runs on the
//! CPU and says in one line why ([`Selected::note`]). `tensorrt` asked for explicitly fails with
//! that line instead. Nothing here panics or needs a GPU to decide.

use super::any::AnyBackend;
use super::cpu::{CpuBackend, CpuRuntime};
use super::BackendError;
use crate::bundle::Bundle;
use crate::engine_build::{BatchProfile, Precision};
use serde::{Deserialize, Serialize};

/// Which backend to run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// TensorRT when it and this GPU's engines are ready, else the CPU (saying why).
    #[default]
    Auto,
    /// The embedded CPU backend.
    Cpu,
    /// TensorRT engines built by `dvt build`; refuses to start without them.
    Tensorrt,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Auto => "auto",
            BackendKind::Cpu => "cpu",
            BackendKind::Tensorrt => "tensorrt",
        })
    }
}

/// Everything that decides which backend runs and how.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendOptions {
    /// Which backend.
    pub kind: BackendKind,
    /// CUDA device ordinal (TensorRT).
    pub device: usize,
    /// Engine precision (TensorRT; the CPU always runs the FP32 ONNX).
    pub precision: Precision,
    /// Batch profile the engines were built with (TensorRT).
    pub batch: BatchProfile,
    /// The CPU backend's runtime (tract or ONNX Runtime).
    pub cpu_runtime: CpuRuntime,
    /// CPU threads (0: one per core).
    pub threads: usize,
    /// Whether ONNX Runtime's idle threads spin (lowest latency) or sleep (a daemon).
    pub spin: bool,
}

impl Default for BackendOptions {
    fn default() -> Self {
        Self {
            kind: BackendKind::Auto,
            device: 0,
            precision: Precision::Fp16,
            batch: BatchProfile::DEFAULT,
            cpu_runtime: CpuRuntime::Auto,
            threads: 0,
            spin: true,
        }
    }
}

/// `--backend` and its settings, flattened into every command that runs the cascade.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Backend: auto (TensorRT when its engines for this GPU are built, else the CPU), cpu,
    /// tensorrt.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// CUDA device (TensorRT).
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// TensorRT engine precision (the CPU always runs the FP32 ONNX).
    #[arg(long, value_enum, default_value_t = Precision::Fp16)]
    pub precision: Precision,
    /// TensorRT batch profile min,opt,max the engines were built with (`dvt build --batch`).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 1, 32])]
    pub batch_profile: Vec<usize>,
    /// CPU runtime: auto (ONNX Runtime if libonnxruntime loads, else tract), tract, ort
    /// (`--engine`, its old name, still works).
    #[arg(long = "cpu-runtime", alias = "engine", value_enum, default_value_t = CpuRuntime::Auto)]
    pub cpu_runtime: CpuRuntime,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[cfg(feature = "cli")]
impl BackendArgs {
    /// The options these arguments ask for.
    pub fn options(&self) -> Result<BackendOptions, BackendError> {
        Ok(BackendOptions {
            kind: self.backend,
            device: self.device,
            precision: self.precision,
            batch: batch_profile(&self.batch_profile)?,
            cpu_runtime: self.cpu_runtime,
            threads: self.threads.unwrap_or(0),
            spin: true,
        })
    }
}

/// Parses `min,opt,max` into a profile.
pub fn batch_profile(v: &[usize]) -> Result<BatchProfile, BackendError> {
    match *v {
        [min, opt, max] => BatchProfile::new(min, opt, max),
        _ => None,
    }
    .ok_or_else(|| BackendError::Unavailable {
        backend: "tensorrt",
        reason: format!("batch profile {v:?}: give min,opt,max with 1 <= min <= opt <= max"),
    })
}

/// The backend `open` chose, and why it is not the one asked for (if so).
pub struct Selected {
    /// The backend.
    pub backend: AnyBackend,
    /// Why `auto` chose the CPU (one line), if it did.
    pub note: Option<String>,
}

impl Selected {
    /// Every fallback to tell the user, one line each: `auto` to the CPU, the CPU to tract.
    pub fn notes(&self) -> Vec<String> {
        let tract = self
            .backend
            .as_cpu()
            .and_then(|c| c.fallback())
            .map(|f| format!("running on tract; ONNX Runtime not loaded: {f}"));
        self.note.iter().cloned().chain(tract).collect()
    }
}

/// Opens the backend `options` ask for, checked against `bundle` (TensorRT: every stage has a
/// current engine). See the module doc for `auto`.
pub fn open(options: &BackendOptions, bundle: &Bundle) -> Result<Selected, BackendError> {
    match options.kind {
        BackendKind::Cpu => open_cpu(options, None),
        BackendKind::Tensorrt => open_tensorrt(options, bundle).map(|backend| Selected {
            backend,
            note: None,
        }),
        BackendKind::Auto => match open_tensorrt(options, bundle) {
            Ok(backend) => Ok(Selected {
                backend,
                note: None,
            }),
            Err(e) => open_cpu(
                options,
                Some(format!("backend auto chose the CPU: {}", reason(&e))),
            ),
        },
    }
}

fn reason(e: &BackendError) -> String {
    match e {
        BackendError::Unavailable { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

fn open_cpu(options: &BackendOptions, why: Option<String>) -> Result<Selected, BackendError> {
    let cpu = CpuBackend::with_runtime_spin(options.cpu_runtime, options.threads, options.spin)?;
    Ok(Selected {
        backend: AnyBackend::Cpu(cpu),
        note: why,
    })
}

fn unavailable(reason: impl Into<String>) -> BackendError {
    BackendError::Unavailable {
        backend: "tensorrt",
        reason: reason.into(),
    }
}

#[cfg(not(feature = "tensorrt"))]
fn open_tensorrt(_options: &BackendOptions, _bundle: &Bundle) -> Result<AnyBackend, BackendError> {
    Err(unavailable(
        "this binary was built without TensorRT support (rebuild with `--features cuda,tensorrt`)",
    ))
}

#[cfg(feature = "tensorrt")]
fn open_tensorrt(options: &BackendOptions, bundle: &Bundle) -> Result<AnyBackend, BackendError> {
    use super::tensorrt::{TrtBackend, TrtOptions};
    let trt = TrtBackend::new(TrtOptions {
        device: options.device,
        precision: options.precision,
        batch: options.batch,
    })
    // CUDA's own errors say "cuda backend unavailable"; the user asked for TensorRT.
    .map_err(|e| unavailable(reason(&e)))?;
    for k in 0..bundle.num_stages() {
        trt.engine_for(bundle, k).map_err(unavailable)?;
    }
    Ok(AnyBackend::Tensorrt(std::sync::Arc::new(trt)))
}
