//! The CUDA layer. Without a CUDA driver (CI) opening the GPU must fail cleanly with "cuda backend
//! unavailable"; with one (`tools/gpu-check.sh`) the buffers round-trip through pinned memory and
//! rows are gathered on the device.
#![cfg(feature = "cuda")]

use dvt_edge::backend::cuda::{DeviceTensor, Gpu};
use dvt_edge::backend::BackendError;
use std::sync::Arc;

fn driver_present() -> bool {
    // SAFETY: only probes for the driver library.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

#[test]
fn open_fails_cleanly_without_a_driver_and_works_with_one() {
    match Gpu::open(0) {
        Err(BackendError::Unavailable { backend, reason }) => {
            assert_eq!(backend, "cuda");
            assert!(!reason.is_empty());
            if !driver_present() {
                assert!(reason.contains("libcuda"), "{reason}");
            }
        }
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(gpu) => {
            assert!(driver_present());
            assert!(!gpu.name().unwrap().is_empty());
            assert!(gpu.compute_capability().unwrap().0 >= 5);
        }
    }
    // A second ordinal that cannot exist is an error, never a panic.
    assert!(Gpu::open(1_000).is_err());
}

#[test]
fn device_buffers_round_trip_and_hand_rows_on() {
    let Ok(gpu) = Gpu::open(0) else {
        eprintln!("SKIPPED: no CUDA device on this machine");
        return;
    };
    let shape = vec![4usize, 3, 5];
    let host: Vec<f32> = (0..60).map(|i| i as f32 * 0.5).collect();
    let mut up = gpu.pinned_upload(host.len()).unwrap();
    let mut dev = gpu.alloc(host.len()).unwrap();
    gpu.upload_via(&host, &mut up, &mut dev).unwrap();
    let t = DeviceTensor {
        buf: Arc::new(dev),
        shape: shape.clone(),
    };
    let back = t.to_host(&gpu).unwrap();
    assert_eq!(back.shape(), &shape[..]);
    assert_eq!(back.as_slice().unwrap(), &host[..]);
    let picked = t.select_rows(&gpu, &[3, 1]).unwrap();
    assert_eq!(picked.shape, vec![2, 3, 5]);
    let p = picked.to_host(&gpu).unwrap();
    assert_eq!(&p.as_slice().unwrap()[..15], &host[45..60]);
    assert_eq!(&p.as_slice().unwrap()[15..], &host[15..30]);
    assert!(t.select_rows(&gpu, &[4]).is_err());
}
