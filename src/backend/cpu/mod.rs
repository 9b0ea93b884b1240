//! The embedded default: runs each stage's ONNX file on the CPU.
//!
//! Two runtimes sit behind one backend. tract is pure Rust and always built in, so the cascade
//! runs on any machine with nothing installed. ONNX Runtime (feature `ort`, on by default) is
//! loaded at run time from `libonnxruntime.so`; on this project's models it is 3-4x faster than
//! tract (BENCHMARKS.md), so [`CpuRuntime::Auto`] takes it whenever the library loads and falls
//! back to tract when it does not. Both runtimes keep tensors as tract `TValue`s in host memory,
//! so the cascade, `select_rows` and the tests above the backend do not care which one ran.

#[cfg(feature = "ort")]
mod ort_runtime;
mod tract_runtime;

use super::{Backend, BackendError, HostTensor};
use crate::bundle::Bundle;
use ndarray::Axis;
use tract_onnx::prelude::*;

/// Which runtime the CPU backend runs the ONNX files on (`--cpu-runtime` on the command line,
/// `cpu_runtime` in dvtd.toml; `--engine` / `engine`, the old names, still work).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum CpuRuntime {
    /// ONNX Runtime if its library loads, else tract.
    #[default]
    Auto,
    /// tract (pure Rust, built in).
    Tract,
    /// ONNX Runtime, loaded from `$ORT_DYLIB_PATH` or `libonnxruntime.so` on the library path.
    Ort,
}

impl std::fmt::Display for CpuRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CpuRuntime::Auto => "auto",
            CpuRuntime::Tract => "tract",
            CpuRuntime::Ort => "ort",
        })
    }
}

/// The runtime a backend ended up with.
#[derive(Debug, Clone)]
enum Runtime {
    Tract,
    #[cfg(feature = "ort")]
    Ort(ort_runtime::OrtRuntime),
}

/// CPU backend. Stages run at whatever batch size the input has (dynamic batch axis).
#[derive(Debug, Clone)]
pub struct CpuBackend {
    threads: usize,
    runtime: Runtime,
    /// Why `Auto` did not get ONNX Runtime (shown next to the backend's name).
    fallback: Option<String>,
}

/// A loaded stage of either runtime, plus the per-item input shapes both check against.
pub struct CpuStage {
    name: String,
    /// The ONNX file it runs.
    source: std::path::PathBuf,
    input_names: Vec<String>,
    /// Expected per-item shape of each input (batch axis excluded).
    input_item_shapes: Vec<Vec<usize>>,
    runtime: StageRuntime,
}

enum StageRuntime {
    Tract(tract_runtime::TractStage),
    #[cfg(feature = "ort")]
    Ort(ort_runtime::OrtStage),
}

impl CpuBackend {
    /// The tract runtime with `threads` threads for matrix products (the first call sets tract's
    /// global executor; later calls keep it).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        tract_runtime::set_threads(threads);
        Self {
            threads,
            runtime: Runtime::Tract,
            fallback: None,
        }
    }

    /// The tract runtime with one thread per available core.
    pub fn with_available_threads() -> Self {
        Self::new(available_threads())
    }

    /// The runtime `choice` with `threads` threads (0: one per core). `Ort` fails when ONNX
    /// Runtime cannot be loaded; `Auto` then falls back to tract and says why in
    /// [`CpuBackend::fallback`].
    pub fn with_runtime(choice: CpuRuntime, threads: usize) -> Result<Self, BackendError> {
        Self::with_runtime_spin(choice, threads, true)
    }

    /// [`CpuBackend::with_runtime`], choosing whether ONNX Runtime's idle pool threads spin
    /// (lowest latency, its default) or sleep (a daemon between frames should not burn a power
    /// budget). ONNX Runtime keeps one pool per process: the first backend's `threads` and `spin`
    /// hold for later ones.
    pub fn with_runtime_spin(
        choice: CpuRuntime,
        threads: usize,
        spin: bool,
    ) -> Result<Self, BackendError> {
        let threads = if threads == 0 {
            available_threads()
        } else {
            threads
        };
        // tract's pool also serves a fallback and the GEMM roofline of `dvt bench`.
        tract_runtime::set_threads(threads);
        match choice {
            CpuRuntime::Tract => Ok(Self::new(threads)),
            CpuRuntime::Ort => Self::ort(threads, spin),
            CpuRuntime::Auto => Self::ort(threads, spin).or_else(|e| {
                let mut b = Self::new(threads);
                b.fallback = Some(e.to_string());
                Ok(b)
            }),
        }
    }

    #[cfg(feature = "ort")]
    fn ort(threads: usize, spin: bool) -> Result<Self, BackendError> {
        let rt = ort_runtime::OrtRuntime::load(threads, spin)?;
        Ok(Self {
            threads: rt.threads(),
            runtime: Runtime::Ort(rt),
            fallback: None,
        })
    }

    #[cfg(not(feature = "ort"))]
    fn ort(_threads: usize, _spin: bool) -> Result<Self, BackendError> {
        Err(BackendError::Unavailable {
            backend: "onnxruntime",
            reason: "dvt-edge was built without the `ort` feature".into(),
        })
    }

    /// Threads per stage run.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The runtime in use: "tract" or "onnxruntime".
    pub fn runtime(&self) -> &'static str {
        match self.runtime {
            Runtime::Tract => "tract",
            #[cfg(feature = "ort")]
            Runtime::Ort(_) => "onnxruntime",
        }
    }

    /// When [`CpuRuntime::Auto`] fell back to tract: why ONNX Runtime was not used.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl CpuStage {
    /// The ONNX file this stage runs.
    pub fn source(&self) -> &std::path::Path {
        &self.source
    }

    /// Refuses inputs whose count or per-item shape differ from the manifest, before any runtime
    /// sees them (runtimes answer those with panics or opaque messages).
    fn check_inputs(&self, inputs: &[TValue]) -> Result<(), BackendError> {
        if inputs.len() != self.input_names.len() {
            return Err(BackendError::Run {
                stage: self.name.clone(),
                reason: format!(
                    "{} inputs given, {} expected",
                    inputs.len(),
                    self.input_names.len()
                ),
            });
        }
        let batch = inputs
            .first()
            .map_or(1, |v| v.shape().first().copied().unwrap_or(1));
        for ((value, name), item) in inputs
            .iter()
            .zip(&self.input_names)
            .zip(&self.input_item_shapes)
        {
            let shape = value.shape();
            if shape.len() != item.len() + 1 || &shape[1..] != item.as_slice() || shape[0] != batch
            {
                let mut expected = vec![batch];
                expected.extend(item);
                return Err(BackendError::Shape {
                    stage: self.name.clone(),
                    tensor: name.clone(),
                    expected,
                    found: shape.to_vec(),
                });
            }
        }
        Ok(())
    }
}

impl Backend for CpuBackend {
    type Value = TValue;
    type Stage = CpuStage;

    fn name(&self) -> String {
        match &self.runtime {
            Runtime::Tract => format!("cpu (tract 0.23, {} threads)", self.threads),
            #[cfg(feature = "ort")]
            Runtime::Ort(rt) => format!(
                "cpu (onnxruntime {}, {} threads)",
                rt.version(),
                self.threads
            ),
        }
    }

    fn load_stage(&self, bundle: &Bundle, index: usize) -> Result<CpuStage, BackendError> {
        let spec = &bundle.manifest.stages[index];
        let path = bundle.stage_path(index);
        let runtime = match &self.runtime {
            Runtime::Tract => {
                StageRuntime::Tract(tract_runtime::TractStage::load(&spec.name, &path)?)
            }
            #[cfg(feature = "ort")]
            Runtime::Ort(rt) => StageRuntime::Ort(rt.load_stage(spec, &path)?),
        };
        Ok(CpuStage {
            name: spec.name.clone(),
            source: path.clone(),
            input_names: spec.inputs.iter().map(|t| t.name.clone()).collect(),
            input_item_shapes: spec
                .inputs
                .iter()
                .map(|t| t.concrete_shape(1)[1..].to_vec())
                .collect(),
            runtime,
        })
    }

    fn upload(&self, tensor: HostTensor) -> Result<TValue, BackendError> {
        Ok(Tensor::from(tensor).into_tvalue())
    }

    fn run(&self, stage: &mut CpuStage, inputs: &[TValue]) -> Result<Vec<TValue>, BackendError> {
        stage.check_inputs(inputs)?;
        let name = &stage.name;
        match &mut stage.runtime {
            StageRuntime::Tract(s) => s.run(name, inputs),
            #[cfg(feature = "ort")]
            StageRuntime::Ort(s) => s.run(name, inputs),
        }
    }

    fn download(&self, value: &TValue) -> Result<HostTensor, BackendError> {
        value
            .to_plain_array_view::<f32>()
            .map(|v| v.to_owned())
            .map_err(|e| BackendError::Transfer(format!("{e:#}")))
    }

    fn select_rows(&self, value: &TValue, rows: &[usize]) -> Result<TValue, BackendError> {
        let view = value
            .to_plain_array_view::<f32>()
            .map_err(|e| BackendError::Transfer(format!("{e:#}")))?;
        Ok(Tensor::from(view.select(Axis(0), rows)).into_tvalue())
    }
}
