//! Safe owners of TensorRT objects (runtime, engine, execution context). Each checks the shim's
//! status and frees its object on drop, in dependency order (contexts hold their engine, engines
//! hold the runtime, the runtime holds the library).

use super::ffi;
use super::library::TrtLibrary;
use crate::backend::cuda::Gpu;
use crate::backend::BackendError;
use crate::bundle::DType;
use crate::engine_build::{IoMode, IoTensor};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Arc;

fn status(stage: &str, rc: i32) -> Result<(), BackendError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(BackendError::Run {
            stage: stage.to_string(),
            reason: ffi::last_error(),
        })
    }
}

/// An `IRuntime`. Creating one requires a working CUDA device (TensorRT does not fail cleanly
/// without one), hence the `Gpu` argument.
pub struct Runtime {
    ptr: *mut c_void,
    gpu: Gpu,
    /// The library (kept loaded while any TensorRT object lives).
    pub library: Arc<TrtLibrary>,
}

// SAFETY: IRuntime may be used from any thread as long as the CUDA context is bound, which every
// method here does first.
unsafe impl Send for Runtime {}
unsafe impl Sync for Runtime {}

impl Runtime {
    /// Creates the runtime on `gpu`.
    pub fn new(gpu: Gpu, library: Arc<TrtLibrary>) -> Result<Arc<Self>, BackendError> {
        gpu.bind()?;
        let factory = library.runtime_factory()?;
        let mut ptr = std::ptr::null_mut();
        // SAFETY: the factory comes from a library whose major version matches the headers.
        let rc = unsafe { ffi::dvt_trt_runtime_create(factory, &mut ptr) };
        status("runtime", rc).map_err(|e| BackendError::Unavailable {
            backend: "tensorrt",
            reason: e.to_string(),
        })?;
        Ok(Arc::new(Self { ptr, gpu, library }))
    }

    /// Deserializes an engine plan.
    pub fn deserialize(self: &Arc<Self>, stage: &str, plan: &[u8]) -> Result<Engine, BackendError> {
        self.gpu.bind()?;
        let mut ptr = std::ptr::null_mut();
        // SAFETY: `plan` outlives the call; the runtime pointer is live.
        let rc = unsafe {
            ffi::dvt_trt_engine_create(self.ptr, plan.as_ptr().cast(), plan.len(), &mut ptr)
        };
        status(stage, rc).map_err(|e| BackendError::Load {
            stage: stage.to_string(),
            what: "TensorRT engine".into(),
            reason: e.to_string(),
        })?;
        Ok(Engine {
            ptr,
            runtime: self.clone(),
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.gpu.bind();
        // SAFETY: created by the shim, freed once.
        unsafe { ffi::dvt_trt_runtime_destroy(self.ptr) }
    }
}

/// An `ICudaEngine`.
pub struct Engine {
    ptr: *mut c_void,
    runtime: Arc<Runtime>,
}

// SAFETY: as Runtime; ICudaEngine's queries are const and thread-safe.
unsafe impl Send for Engine {}
unsafe impl Sync for Engine {}

/// nvinfer1::DataType values (stable across TRT 10 and 11).
fn dtype(code: i32) -> Option<DType> {
    match code {
        0 => Some(DType::F32),
        1 => Some(DType::F16),
        _ => None,
    }
}

impl Engine {
    /// The engine's I/O tensors.
    pub fn io(&self, stage: &str) -> Result<Vec<IoTensor>, BackendError> {
        let mut n = 0;
        // SAFETY: live engine pointer; out-pointers are valid.
        status(stage, unsafe {
            ffi::dvt_trt_engine_num_io(self.ptr, &mut n)
        })?;
        (0..n)
            .map(|i| {
                let mut name: *const c_char = std::ptr::null();
                let (mut mode, mut dt, mut rank) = (0, 0, 0);
                let mut dims = [0i64; 8];
                // SAFETY: as above; `dims` has the 8 slots the shim may write.
                let rc = unsafe {
                    ffi::dvt_trt_engine_io(
                        self.ptr,
                        i,
                        &mut name,
                        &mut mode,
                        &mut dt,
                        &mut rank,
                        dims.as_mut_ptr(),
                    )
                };
                status(stage, rc)?;
                // SAFETY: the name is owned by the engine and NUL-terminated.
                let name = unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned();
                Ok(IoTensor {
                    name,
                    mode: if mode == 1 {
                        IoMode::Input
                    } else {
                        IoMode::Output
                    },
                    dtype: dtype(dt),
                    dims: dims[..rank.clamp(0, 8) as usize].to_vec(),
                })
            })
            .collect()
    }

    /// Creates an execution context.
    pub fn context(self: &Arc<Self>, stage: &str) -> Result<Context, BackendError> {
        self.runtime.gpu.bind()?;
        let mut ptr = std::ptr::null_mut();
        // SAFETY: live engine pointer.
        status(stage, unsafe {
            ffi::dvt_trt_context_create(self.ptr, &mut ptr)
        })?;
        Ok(Context {
            ptr,
            engine: self.clone(),
            stage: stage.to_string(),
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.runtime.gpu.bind();
        // SAFETY: created by the shim, freed once, before its runtime (held by Arc).
        unsafe { ffi::dvt_trt_engine_destroy(self.ptr) }
    }
}

/// An `IExecutionContext`.
pub struct Context {
    ptr: *mut c_void,
    engine: Arc<Engine>,
    stage: String,
}

// SAFETY: as Runtime; a context is used by one thread at a time (`&mut self`).
unsafe impl Send for Context {}

fn cname(name: &str) -> Result<CString, BackendError> {
    CString::new(name)
        .map_err(|_| BackendError::Transfer(format!("tensor name {name:?} has a NUL")))
}

impl Context {
    /// Sets an input's runtime shape.
    pub fn set_input_shape(&mut self, name: &str, shape: &[usize]) -> Result<(), BackendError> {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let n = cname(name)?;
        // SAFETY: live context; `dims` outlives the call.
        status(&self.stage, unsafe {
            ffi::dvt_trt_set_input_shape(self.ptr, n.as_ptr(), dims.len() as i32, dims.as_ptr())
        })
    }

    /// Binds a device address to a tensor.
    pub fn set_address(&mut self, name: &str, address: u64) -> Result<(), BackendError> {
        let n = cname(name)?;
        // SAFETY: live context; the caller keeps the buffer alive until the enqueued work ends.
        status(&self.stage, unsafe {
            ffi::dvt_trt_set_tensor_address(self.ptr, n.as_ptr(), address as usize as *mut c_void)
        })
    }

    /// Enqueues inference on the GPU's stream.
    pub fn enqueue(&mut self) -> Result<(), BackendError> {
        let gpu = &self.engine.runtime.gpu;
        gpu.bind()?;
        let stream = gpu.stream().cu_stream();
        // SAFETY: cudarc's CUstream is the same `CUstream_st*` as cudaStream_t.
        status(&self.stage, unsafe {
            ffi::dvt_trt_enqueue(self.ptr, stream.cast())
        })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        let _ = self.engine.runtime.gpu.bind();
        // SAFETY: created by the shim, freed once, before its engine.
        unsafe { ffi::dvt_trt_context_destroy(self.ptr) }
    }
}
