//! ONNX Runtime through the `ort` crate, loaded at run time (`load-dynamic`: nothing is
//! downloaded or linked at build time; `libonnxruntime.so` >= 1.31 must be present when run).

use crate::backend::BackendError;
use crate::bundle::StageSpec;
use ort::environment::GlobalThreadPoolOptions;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tract_onnx::prelude::*;

/// Where the library is looked for: `$ORT_DYLIB_PATH`, else the loader's search path.
fn library_path() -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("libonnxruntime.so"),
    }
}

/// The process's one ONNX Runtime environment (ONNX Runtime allows one per process), with its
/// global intra-op thread pool, shared by every session of every backend in the process.
struct Shared {
    env: ort::environment::Environment,
    version: String,
    threads: usize,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// A handle on the loaded ONNX Runtime.
#[derive(Clone, Copy)]
pub(super) struct OrtRuntime {
    shared: &'static Shared,
}

impl std::fmt::Debug for OrtRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtRuntime")
            .field("version", &self.shared.version)
            .field("threads", &self.shared.threads)
            .finish()
    }
}

impl OrtRuntime {
    /// Loads the library and makes the environment, once per process: the first call's
    /// `threads` and `spin` hold for the process (like tract's executor). One pool for all
    /// stages, because a pool per session leaves one spinning thread per stage behind each run
    /// (measured: stage 3 went from 1.7 to 5.9 ms median on 2 cores with three pools).
    pub(super) fn load(threads: usize, spin: bool) -> Result<Self, BackendError> {
        match SHARED.get_or_init(|| init(threads.max(1), spin)) {
            Ok(shared) => Ok(Self { shared }),
            Err(reason) => Err(BackendError::Unavailable {
                backend: "onnxruntime",
                reason: reason.clone(),
            }),
        }
    }

    /// ONNX Runtime's version, e.g. "1.31.1".
    pub(super) fn version(&self) -> &str {
        &self.shared.version
    }

    /// Intra-op threads of the shared pool.
    pub(super) fn threads(&self) -> usize {
        self.shared.threads
    }

    /// One session for stage `spec` from `path`: all graph optimisations, sequential execution,
    /// the shared intra-op pool (the same settings as the Python peer in `dvt bench`).
    pub(super) fn load_stage(
        &self,
        spec: &StageSpec,
        path: &Path,
    ) -> Result<OrtStage, BackendError> {
        let load_err = |e: String| BackendError::Load {
            stage: spec.name.clone(),
            what: path.display().to_string(),
            reason: e,
        };
        let session = Session::builder(&self.shared.env)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
            .and_then(|b| Ok(b.with_parallel_execution(false)?))
            .and_then(|mut b| b.commit_from_file(path))
            .map_err(|e| load_err(e.to_string()))?;
        let session_inputs: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        let session_outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        for t in &spec.inputs {
            if !session_inputs.contains(&t.name.as_str()) {
                return Err(load_err(format!(
                    "the manifest's input '{}' is not in the model (inputs: {session_inputs:?})",
                    t.name
                )));
            }
        }
        for t in &spec.outputs {
            if !session_outputs.contains(&t.name.as_str()) {
                return Err(load_err(format!(
                    "the manifest's output '{}' is not in the model (outputs: {session_outputs:?})",
                    t.name
                )));
            }
        }
        Ok(OrtStage {
            session,
            inputs: spec.inputs.iter().map(|t| t.name.clone()).collect(),
            outputs: spec.outputs.iter().map(|t| t.name.clone()).collect(),
        })
    }
}

fn init(threads: usize, spin: bool) -> Result<Shared, String> {
    let path = library_path();
    let builder = ort::init_from(&path).map_err(|e| {
        format!(
            "{e} (set ORT_DYLIB_PATH to libonnxruntime.so >= 1.31, e.g. from the PyPI onnxruntime \
             wheel; tools/setup.sh links one at .venv/lib/libonnxruntime.so)"
        )
    })?;
    let pool = GlobalThreadPoolOptions::default()
        .with_intra_threads(threads)
        .and_then(|p| p.with_inter_threads(1))
        .and_then(|p| p.with_spin_control(spin))
        .map_err(|e| format!("thread pool options: {e}"))?;
    let env = builder
        .with_name("dvt-edge")
        .with_global_thread_pool(pool)
        .build()
        .map_err(|e| format!("creating the environment: {e}"))?;
    Ok(Shared {
        env,
        version: runtime_version(&path).unwrap_or_else(|| "1.x".into()),
        threads,
    })
}

/// The library's own version string (`OrtGetApiBase()->GetVersionString()`, e.g. "1.31.1"):
/// `ort` checks it but does not expose it. The library is already loaded, so this only takes
/// another reference on it.
fn runtime_version(path: &Path) -> Option<String> {
    type GetVersionString = unsafe extern "C" fn() -> *const std::ffi::c_char;
    #[repr(C)]
    struct ApiBase {
        get_api: *const std::ffi::c_void,
        get_version_string: GetVersionString,
    }
    // SAFETY: the library ort just loaded and version-checked; OrtGetApiBase returns a pointer
    // to a static struct whose second field is GetVersionString (ONNX Runtime C API).
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ApiBase> =
            lib.get(b"OrtGetApiBase").ok()?;
        let base = get_base();
        if base.is_null() {
            return None;
        }
        let s = ((*base).get_version_string)();
        (!s.is_null()).then(|| std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned())
    }
}

/// One stage's session, with the manifest's input and output names in manifest order.
pub(super) struct OrtStage {
    session: Session,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl OrtStage {
    /// Runs checked inputs (see `CpuStage::check_inputs`); outputs in manifest order.
    pub(super) fn run(
        &mut self,
        stage: &str,
        inputs: &[TValue],
    ) -> Result<Vec<TValue>, BackendError> {
        let run_err = |reason: String| BackendError::Run {
            stage: stage.to_string(),
            reason,
        };
        // Borrowed views: the host tensors go to ONNX Runtime without a copy.
        let mut feed: Vec<(Cow<str>, SessionInputValue)> = Vec::with_capacity(inputs.len());
        for (name, value) in self.inputs.iter().zip(inputs) {
            let data = value
                .to_plain_array_view::<f32>()
                .map_err(|e| run_err(format!("input '{name}': {e:#}")))?;
            let view = TensorRef::from_array_view(data)
                .map_err(|e| run_err(format!("input '{name}': {e}")))?;
            feed.push((Cow::Borrowed(name.as_str()), view.into()));
        }
        let outputs = self.session.run(feed).map_err(|e| run_err(e.to_string()))?;
        self.outputs
            .iter()
            .map(|name| {
                let value = outputs
                    .get(name)
                    .ok_or_else(|| run_err(format!("no output '{name}'")))?;
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| run_err(format!("output '{name}': {e}")))?;
                let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
                Tensor::from_shape(&dims, data)
                    .map(|t| t.into_tvalue())
                    .map_err(|e| run_err(format!("output '{name}': {e:#}")))
            })
            .collect()
    }
}
