//! H2D/D2H bandwidth measurement for `tools/gpu-check.sh`: pinned (write-combined for H2D,
//! plain for D2H) vs pageable host memory, timed with CUDA events on the GPU's stream.

use super::Gpu;
use crate::backend::BackendError;

/// One measured copy direction.
#[derive(Debug, Clone, Copy)]
pub struct Bandwidth {
    /// Host to device, GB/s.
    pub h2d_gbps: f64,
    /// Device to host, GB/s.
    pub d2h_gbps: f64,
}

fn gbps(bytes: usize, reps: usize, ms: f32) -> f64 {
    (bytes * reps) as f64 / (f64::from(ms.max(1e-6)) * 1e-3) / 1e9
}

/// Copies `bytes` each way `reps` times with pinned buffers and with pageable `Vec`s.
/// Returns (pinned, pageable).
pub fn measure(
    gpu: &Gpu,
    bytes: usize,
    reps: usize,
) -> Result<(Bandwidth, Bandwidth), BackendError> {
    let n = bytes / 4;
    let err = |e: cudarc::driver::DriverError| BackendError::Transfer(e.to_string());
    let mut dev = gpu.alloc(n)?;
    let mut up = gpu.pinned_upload(n)?;
    let mut down = gpu.pinned_download(n)?;
    up.as_mut_slice().map_err(err)?.fill(1.0);
    let mut pageable_src = vec![1.0f32; n];
    let mut pageable_dst = vec![0.0f32; n];
    let start = gpu.timing_event()?;
    let end = gpu.timing_event()?;
    let s = gpu.stream();
    let time = |f: &mut dyn FnMut() -> Result<(), BackendError>| -> Result<f32, BackendError> {
        start.record(s).map_err(err)?;
        for _ in 0..reps {
            f()?;
        }
        end.record(s).map_err(err)?;
        end.synchronize().map_err(err)?;
        start.elapsed_ms(&end).map_err(err)
    };
    let pinned_h2d = time(&mut || s.memcpy_htod(&up, &mut dev).map_err(err))?;
    let pinned_d2h = time(&mut || s.memcpy_dtoh(&dev, &mut down).map_err(err))?;
    let page_h2d = time(&mut || s.memcpy_htod(&pageable_src, &mut dev).map_err(err))?;
    let page_d2h = time(&mut || s.memcpy_dtoh(&dev, &mut pageable_dst).map_err(err))?;
    pageable_src[0] = pageable_dst[0];
    Ok((
        Bandwidth {
            h2d_gbps: gbps(n * 4, reps, pinned_h2d),
            d2h_gbps: gbps(n * 4, reps, pinned_d2h),
        },
        Bandwidth {
            h2d_gbps: gbps(n * 4, reps, page_h2d),
            d2h_gbps: gbps(n * 4, reps, page_d2h),
        },
    ))
}
