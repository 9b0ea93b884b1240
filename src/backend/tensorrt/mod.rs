//! TensorRT backend (feature `tensorrt`): runs each stage's prebuilt engine (see `dvt build`) on
//! one CUDA stream. Every stage's output buffers are preallocated once for the largest batch; the
//! frame is staged through pinned memory and uploaded once; reuse tensors (`feat_out`,
//! `attn_out`) are bound as the next stage's inputs where they lie on the device; only what the
//! cascade downloads (the logits) comes back. CUDA events time each stage on the GPU.
//!
//! Start-up order matters because TensorRT crashes instead of failing: CUDA is opened first
//! (driver present, context created), then libnvinfer is dlopened and its major version checked
//! against the shim's headers, and only then is a TensorRT runtime created.

mod ffi;
pub mod library;
pub mod runtime;

use crate::backend::cuda::{DeviceTensor, Gpu};
use crate::backend::{Backend, BackendError, HostTensor};
use crate::bundle::{Bundle, StageSpec};
use crate::engine_build::build::{stage_key, Target};
use crate::engine_build::cache::{lookup, CacheError};
use crate::engine_build::{check_engine_io, BatchProfile, Precision};
use cudarc::driver::{CudaEvent, CudaSlice, PinnedHostSlice};
use library::TrtLibrary;
use runtime::{Context, Engine, Runtime};
use std::sync::{Arc, Mutex};

/// How the backend is set up.
#[derive(Debug, Clone, Copy)]
pub struct TrtOptions {
    /// CUDA device ordinal.
    pub device: usize,
    /// Engine precision to load.
    pub precision: Precision,
    /// Batch profile the engines were built with; buffers are sized for `batch.max`.
    pub batch: BatchProfile,
}

/// The host side of the transfers, preallocated for the largest batch.
struct Staging {
    up: PinnedHostSlice<f32>,
    down: PinnedHostSlice<f32>,
    image: Option<Arc<CudaSlice<f32>>>,
}

/// The TensorRT backend.
pub struct TrtBackend {
    gpu: Gpu,
    runtime: Arc<Runtime>,
    options: TrtOptions,
    gpu_name: String,
    compute_capability: (u32, u32),
    staging: Mutex<Staging>,
}

/// A loaded stage: engine, execution context, preallocated output buffers and timing events.
pub struct TrtStage {
    spec: StageSpec,
    engine_path: std::path::PathBuf,
    _engine: Arc<Engine>,
    context: Context,
    outputs: Vec<Arc<CudaSlice<f32>>>,
    start: CudaEvent,
    end: CudaEvent,
    ran: bool,
}

impl TrtStage {
    /// The engine plan this stage runs.
    pub fn engine_path(&self) -> &std::path::Path {
        &self.engine_path
    }

    /// GPU time of the last run, in ms (waits for it to finish). None before the first run.
    pub fn last_gpu_ms(&self) -> Result<Option<f32>, BackendError> {
        if !self.ran {
            return Ok(None);
        }
        self.end
            .synchronize()
            .and_then(|_| self.start.elapsed_ms(&self.end))
            .map(Some)
            .map_err(|e| BackendError::Transfer(format!("event timing: {e}")))
    }
}

impl TrtBackend {
    /// Opens the GPU, then TensorRT. Any failure is [`BackendError::Unavailable`] with one line.
    pub fn new(options: TrtOptions) -> Result<Self, BackendError> {
        let gpu = Gpu::open(options.device)?;
        let library = Arc::new(TrtLibrary::load()?);
        let runtime = Runtime::new(gpu.clone(), library)?;
        let gpu_name = gpu.name()?;
        let compute_capability = gpu.compute_capability()?;
        let staging = Staging {
            up: gpu.pinned_upload(1)?,
            down: gpu.pinned_download(1)?,
            image: None,
        };
        Ok(Self {
            gpu,
            runtime,
            options,
            gpu_name,
            compute_capability,
            staging: Mutex::new(staging),
        })
    }

    /// The opened GPU.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// What `dvt build` targets on this machine: the same [`Target`] feeds the build's keys and
    /// these lookups, so what is built is what is loaded.
    pub fn target(&self) -> Target {
        Target {
            tensorrt: self.runtime.library.version,
            gpu_name: self.gpu_name.clone(),
            compute_capability: self.compute_capability,
            version_compatible: self.runtime.library.lean,
        }
    }

    /// The options the backend was opened with.
    pub fn options(&self) -> &TrtOptions {
        &self.options
    }

    /// The file the runtime loaded (`libnvinfer.so.N`, the lean runtime, or `$DVT_NVINFER`).
    pub fn library_path(&self) -> &str {
        &self.runtime.library.path
    }

    /// The cached engine of stage `index` for this GPU, TensorRT, ONNX, precision and batch
    /// profile, or one line saying what is missing or stale and the `dvt build` to run.
    pub fn engine_for(&self, bundle: &Bundle, index: usize) -> Result<std::path::PathBuf, String> {
        let spec = &bundle.manifest.stages[index];
        let o = &self.options;
        let build = format!(
            "run `dvt build --bundle {} --precision {} --batch {},{},{}{}` on this machine",
            bundle.dir().display(),
            o.precision,
            o.batch.min,
            o.batch.opt,
            o.batch.max,
            // The lean runtime deserializes only version-compatible plans.
            if self.runtime.library.lean {
                " --version-compatible"
            } else {
                ""
            }
        );
        let (_, key) = stage_key(bundle, index, &self.target(), o.precision, o.batch)
            .map_err(|e| format!("{e}"))?;
        lookup(bundle.dir(), &spec.name, &key).map_err(|e| match e {
            CacheError::Missing(p) => format!(
                "no {} engine for {} on this GPU/TensorRT/ONNX ({} missing): {build}",
                o.precision,
                spec.name,
                p.display()
            ),
            CacheError::Stale { path, mismatch } => {
                format!("{} is stale ({mismatch}): {build}", path.display())
            }
            other => format!("{other}: {build}"),
        })
    }

    fn staging(&self) -> Result<std::sync::MutexGuard<'_, Staging>, BackendError> {
        self.staging.lock().map_err(|_| {
            BackendError::Transfer("staging buffers poisoned by an earlier panic".into())
        })
    }
}

impl Backend for TrtBackend {
    type Value = DeviceTensor;
    type Stage = TrtStage;

    fn name(&self) -> String {
        format!(
            "tensorrt {} ({}, sm {}.{}, {})",
            self.runtime.library.version,
            self.gpu_name,
            self.compute_capability.0,
            self.compute_capability.1,
            self.options.precision
        )
    }

    fn load_stage(&self, bundle: &Bundle, index: usize) -> Result<TrtStage, BackendError> {
        let spec = bundle.manifest.stages[index].clone();
        let load = |what: &str, reason: String| BackendError::Load {
            stage: spec.name.clone(),
            what: what.to_string(),
            reason,
        };
        let path = self
            .engine_for(bundle, index)
            .map_err(|e| load("engine", e))?;
        let plan =
            std::fs::read(&path).map_err(|e| load(&path.display().to_string(), e.to_string()))?;
        let engine = Arc::new(self.runtime.deserialize(&spec.name, &plan)?);
        check_engine_io(&spec, &engine.io(&spec.name)?, self.options.batch.max)
            .map_err(|e| load(&path.display().to_string(), e.to_string()))?;
        let mut context = engine.context(&spec.name)?;
        let mut outputs = Vec::with_capacity(spec.outputs.len());
        for t in &spec.outputs {
            let buf = Arc::new(
                self.gpu
                    .alloc(t.elements_per_item() * self.options.batch.max)?,
            );
            // Output addresses never change: bind them once.
            context.set_address(&t.name, self.gpu.address(&buf))?;
            outputs.push(buf);
        }
        Ok(TrtStage {
            spec,
            engine_path: path,
            _engine: engine,
            context,
            outputs,
            start: self.gpu.timing_event()?,
            end: self.gpu.timing_event()?,
            ran: false,
        })
    }

    fn upload(&self, tensor: HostTensor) -> Result<DeviceTensor, BackendError> {
        let shape = tensor.shape().to_vec();
        let host = tensor.as_standard_layout();
        let host = host
            .as_slice()
            .ok_or_else(|| BackendError::Transfer("tensor is not contiguous".into()))?;
        let mut staging = self.staging()?;
        if staging.up.len() < host.len() {
            staging.up = self.gpu.pinned_upload(host.len())?;
        }
        // Reuse the image buffer unless an earlier frame's value still holds it.
        let mut image = match staging.image.take().and_then(|b| Arc::try_unwrap(b).ok()) {
            Some(buf) if buf.len() >= host.len() => buf,
            _ => self.gpu.alloc(host.len())?,
        };
        let Staging { up, .. } = &mut *staging;
        self.gpu.upload_via(host, up, &mut image)?;
        let image = Arc::new(image);
        staging.image = Some(image.clone());
        Ok(DeviceTensor { buf: image, shape })
    }

    fn run(
        &self,
        stage: &mut TrtStage,
        inputs: &[DeviceTensor],
    ) -> Result<Vec<DeviceTensor>, BackendError> {
        let spec = &stage.spec;
        if inputs.len() != spec.inputs.len() {
            return Err(BackendError::Run {
                stage: spec.name.clone(),
                reason: format!(
                    "{} inputs given, {} expected",
                    inputs.len(),
                    spec.inputs.len()
                ),
            });
        }
        let batch = inputs
            .first()
            .and_then(|v| v.shape.first().copied())
            .unwrap_or(1);
        if !self.options.batch.contains(batch) {
            return Err(BackendError::Run {
                stage: spec.name.clone(),
                reason: format!(
                    "batch {batch} outside the engine profile {:?}",
                    self.options.batch
                ),
            });
        }
        self.gpu.bind()?;
        for (value, t) in inputs.iter().zip(&spec.inputs) {
            let expected = t.concrete_shape(batch);
            if value.shape != expected {
                return Err(BackendError::Shape {
                    stage: spec.name.clone(),
                    tensor: t.name.clone(),
                    expected,
                    found: value.shape.clone(),
                });
            }
            stage.context.set_input_shape(&t.name, &value.shape)?;
            // The previous stage's device buffer is bound directly: no copy, no host round trip.
            stage
                .context
                .set_address(&t.name, self.gpu.address(&value.buf))?;
        }
        let err = |e: cudarc::driver::DriverError| BackendError::Transfer(format!("event: {e}"));
        stage.start.record(self.gpu.stream()).map_err(err)?;
        stage.context.enqueue()?;
        stage.end.record(self.gpu.stream()).map_err(err)?;
        stage.ran = true;
        Ok(spec
            .outputs
            .iter()
            .zip(&stage.outputs)
            .map(|(t, buf)| DeviceTensor {
                buf: buf.clone(),
                shape: t.concrete_shape(batch),
            })
            .collect())
    }

    fn download(&self, value: &DeviceTensor) -> Result<HostTensor, BackendError> {
        let n = value.len();
        let mut staging = self.staging()?;
        if staging.down.len() < n {
            staging.down = self.gpu.pinned_download(n)?;
        }
        let mut out = vec![0.0f32; n];
        self.gpu
            .download_via(&value.buf, &mut staging.down, &mut out)?;
        HostTensor::from_shape_vec(value.shape.clone(), out)
            .map_err(|e| BackendError::Transfer(e.to_string()))
    }

    fn select_rows(
        &self,
        value: &DeviceTensor,
        rows: &[usize],
    ) -> Result<DeviceTensor, BackendError> {
        value.select_rows(&self.gpu, rows)
    }
}

/// The TensorRT major version of the headers the shim was built with.
pub fn header_major() -> u32 {
    library::header_major()
}
