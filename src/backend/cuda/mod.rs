//! CUDA layer (feature `cuda`): the device, one stream, device tensors and pinned host staging
//! buffers, through cudarc with the driver loaded at run time. Opening the GPU never panics: the
//! driver library's presence is checked before cudarc's first call, and every failure becomes
//! [`BackendError::Unavailable`].

use crate::backend::{BackendError, HostTensor};
use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, PinnedHostSlice};
use std::sync::Arc;

pub mod bandwidth;

fn unavailable(reason: impl Into<String>) -> BackendError {
    BackendError::Unavailable {
        backend: "cuda",
        reason: reason.into(),
    }
}

fn transfer(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Transfer(format!("{what}: {e}"))
}

/// An opened GPU: its context and the single stream every copy and kernel is queued on.
#[derive(Clone)]
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
}

impl Gpu {
    /// Opens device `ordinal`. Fails cleanly (no panic) without a driver or a GPU.
    pub fn open(ordinal: usize) -> Result<Self, BackendError> {
        // SAFETY: only dlopens the driver library to see whether it exists.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(unavailable(
                "no CUDA driver library (libcuda.so) on this machine",
            ));
        }
        // cudarc panics when a driver symbol is missing (too old a driver): keep that a clean error.
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| unavailable("the CUDA driver is too old for CUDA 12.6 symbols"))?
            .map_err(|e| unavailable(format!("cannot open GPU {ordinal}: {e}")))?;
        let stream = ctx
            .new_stream()
            .map_err(|e| unavailable(format!("cannot create a CUDA stream: {e}")))?;
        Ok(Self { ctx, stream })
    }

    /// The context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream all work goes on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Makes the context current on the calling thread (TensorRT needs it on every thread).
    pub fn bind(&self) -> Result<(), BackendError> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| unavailable(format!("cannot bind the CUDA context: {e}")))
    }

    /// GPU name as the driver reports it.
    pub fn name(&self) -> Result<String, BackendError> {
        self.ctx.name().map_err(|e| unavailable(e.to_string()))
    }

    /// Compute capability (major, minor).
    pub fn compute_capability(&self) -> Result<(u32, u32), BackendError> {
        let (major, minor) = self
            .ctx
            .compute_capability()
            .map_err(|e| unavailable(e.to_string()))?;
        Ok((major.max(0) as u32, minor.max(0) as u32))
    }

    /// Whether the GPU shares memory with the CPU (Jetson): there mapped, zero-copy host memory
    /// avoids the copies altogether.
    pub fn is_integrated(&self) -> bool {
        self.ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_INTEGRATED)
            .is_ok_and(|v| v != 0)
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<(), BackendError> {
        self.stream
            .synchronize()
            .map_err(|e| transfer("synchronize", e))
    }

    /// Allocates a zeroed device buffer of `len` f32.
    pub fn alloc(&self, len: usize) -> Result<CudaSlice<f32>, BackendError> {
        self.stream
            .alloc_zeros::<f32>(len.max(1))
            .map_err(|e| transfer("device allocation", e))
    }

    /// Pinned, write-combined host memory: fast for the CPU to write and for H2D copies.
    pub fn pinned_upload(&self, len: usize) -> Result<PinnedHostSlice<f32>, BackendError> {
        // SAFETY: the contents are unset; callers write before any copy reads them.
        unsafe { self.ctx.alloc_pinned::<f32>(len.max(1)) }
            .map_err(|e| transfer("pinned allocation", e))
    }

    /// Pinned host memory without write-combining (flags 0): write-combined memory is very slow
    /// for the CPU to read, so D2H results land here.
    pub fn pinned_download(&self, len: usize) -> Result<PinnedHostSlice<f32>, BackendError> {
        // SAFETY: the contents are unset; a D2H copy fills them before they are read.
        unsafe { self.ctx.alloc_pinned_with_flags::<f32>(len.max(1), 0) }
            .map_err(|e| transfer("pinned allocation", e))
    }

    /// Mapped (zero-copy) pinned memory for integrated GPUs.
    pub fn pinned_mapped(&self, len: usize) -> Result<PinnedHostSlice<f32>, BackendError> {
        // SAFETY: as above.
        unsafe {
            self.ctx.alloc_pinned_with_flags::<f32>(
                len.max(1),
                cudarc::driver::sys::CU_MEMHOSTALLOC_DEVICEMAP,
            )
        }
        .map_err(|e| transfer("mapped allocation", e))
    }

    /// A timing event.
    pub fn timing_event(&self) -> Result<CudaEvent, BackendError> {
        self.ctx
            .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| transfer("event", e))
    }

    /// Copies `host` into a fresh device buffer through `staging` (pinned, at least as long).
    pub fn upload_via(
        &self,
        host: &[f32],
        staging: &mut PinnedHostSlice<f32>,
        device: &mut CudaSlice<f32>,
    ) -> Result<(), BackendError> {
        let n = host.len();
        if staging.len() < n || device.len() < n {
            return Err(BackendError::Transfer(format!(
                "upload of {n} values exceeds the {}-value staging or {}-value device buffer",
                staging.len(),
                device.len()
            )));
        }
        // The previous copy from `staging` must be done before it is overwritten.
        self.synchronize()?;
        staging
            .as_mut_slice()
            .map_err(|e| transfer("pinned buffer", e))?[..n]
            .copy_from_slice(host);
        self.stream
            .memcpy_htod(
                &staging
                    .as_slice()
                    .map_err(|e| transfer("pinned buffer", e))?[..n],
                &mut device.slice_mut(..n),
            )
            .map_err(|e| transfer("H2D copy", e))
    }

    /// Copies the first `out.len()` values of `device` to `out` through `staging` (pinned, flags 0).
    pub fn download_via(
        &self,
        device: &CudaSlice<f32>,
        staging: &mut PinnedHostSlice<f32>,
        out: &mut [f32],
    ) -> Result<(), BackendError> {
        let n = out.len();
        if staging.len() < n || device.len() < n {
            return Err(BackendError::Transfer(format!(
                "download of {n} values exceeds its buffers"
            )));
        }
        let dst = &mut staging
            .as_mut_slice()
            .map_err(|e| transfer("pinned buffer", e))?[..n];
        self.stream
            .memcpy_dtoh(&device.slice(..n), dst)
            .map_err(|e| transfer("D2H copy", e))?;
        self.synchronize()?;
        out.copy_from_slice(
            &staging
                .as_slice()
                .map_err(|e| transfer("pinned buffer", e))?[..n],
        );
        Ok(())
    }

    /// Raw device address of a buffer, for TensorRT's `setTensorAddress`.
    pub fn address(&self, buf: &CudaSlice<f32>) -> u64 {
        let (ptr, _sync) = buf.device_ptr(&self.stream);
        ptr
    }
}

/// A tensor on the device: a shared buffer (possibly larger than needed) and its shape.
/// Cloning copies the handle only. A stage's output buffers are reused by its next run, so a value
/// is valid until the stage that produced it runs again (the cascade consumes it before that).
#[derive(Clone)]
pub struct DeviceTensor {
    /// The buffer (at least `shape.product()` values).
    pub buf: Arc<CudaSlice<f32>>,
    /// Row-major shape; axis 0 is the batch.
    pub shape: Vec<usize>,
}

impl DeviceTensor {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per batch row.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Gathers batch rows `rows` into a new device tensor (device-to-device copies only).
    pub fn select_rows(&self, gpu: &Gpu, rows: &[usize]) -> Result<DeviceTensor, BackendError> {
        let batch = self.shape.first().copied().unwrap_or(0);
        if let Some(bad) = rows.iter().find(|&&r| r >= batch) {
            return Err(BackendError::Transfer(format!(
                "row {bad} out of a batch of {batch}"
            )));
        }
        let row = self.row_len();
        let mut out = gpu.alloc(rows.len() * row)?;
        for (i, &r) in rows.iter().enumerate() {
            gpu.stream()
                .memcpy_dtod(
                    &self.buf.slice(r * row..(r + 1) * row),
                    &mut out.slice_mut(i * row..(i + 1) * row),
                )
                .map_err(|e| transfer("D2D copy", e))?;
        }
        let mut shape = self.shape.clone();
        shape[0] = rows.len();
        Ok(DeviceTensor {
            buf: Arc::new(out),
            shape,
        })
    }

    /// Copies the tensor to the host (through a fresh non-write-combined pinned buffer).
    pub fn to_host(&self, gpu: &Gpu) -> Result<HostTensor, BackendError> {
        let mut staging = gpu.pinned_download(self.len())?;
        let mut out = vec![0.0f32; self.len()];
        gpu.download_via(&self.buf, &mut staging, &mut out)?;
        HostTensor::from_shape_vec(self.shape.clone(), out).map_err(|e| transfer("shape", e))
    }
}
