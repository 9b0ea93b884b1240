//! The TensorRT loader's gates. Without CUDA the backend must refuse before touching TensorRT;
//! the shim reports the header version it was compiled against; a library whose major version
//! differs from the headers is refused (set `DVT_NVINFER` to a real libnvinfer_lean to test the
//! version check against a real TensorRT library, e.g. from the PyPI `tensorrt-lean-cu12-libs`
//! wheel).
#![cfg(feature = "tensorrt")]

use dvt_edge::backend::tensorrt::library::{
    candidates, header_major, header_version, is_lean_runtime, TrtLibrary, HEADER_DIR,
};
use dvt_edge::backend::tensorrt::{TrtBackend, TrtOptions};
use dvt_edge::backend::BackendError;
use dvt_edge::engine_build::{BatchProfile, Precision};

#[test]
fn the_lean_runtime_is_told_by_its_file_name() {
    assert!(is_lean_runtime("libnvinfer_lean.so.10"));
    assert!(is_lean_runtime(
        "/opt/trt/tensorrt_lean_libs/libnvinfer_lean.so.10"
    ));
    assert!(!is_lean_runtime("libnvinfer.so.10"));
    assert!(!is_lean_runtime("/opt/libnvinfer_lean/libnvinfer.so.10"));
}

#[test]
fn shim_reports_its_header_version() {
    let major = header_major();
    assert!(major == 10 || major == 11, "{major}");
    // build.rs picks the header set from DVT_TRT_MAJOR (default 10).
    let wanted = std::env::var("DVT_TRT_MAJOR").unwrap_or_else(|_| "10".into());
    if HEADER_DIR.contains("trtx-sys") {
        assert_eq!(major.to_string(), wanted);
    }
    assert_eq!(header_version() as u32 / 10000, major);
    let names = candidates(major);
    assert!(names.contains(&format!("libnvinfer.so.{major}")));
    assert!(names.contains(&format!("libnvinfer_lean.so.{major}")));
}

#[test]
fn backend_refuses_cleanly_without_cuda() {
    // SAFETY: only probes for the driver library.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        eprintln!("SKIPPED: a CUDA driver is present (gpu-check.sh covers this machine)");
        return;
    }
    let options = TrtOptions {
        device: 0,
        precision: Precision::Fp16,
        batch: BatchProfile::new(1, 1, 8).unwrap(),
    };
    match TrtBackend::new(options) {
        // CUDA is checked first: TensorRT is never reached without it.
        Err(BackendError::Unavailable { backend, .. }) => assert_eq!(backend, "cuda"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("TensorRT backend opened without a CUDA driver"),
    }
}

#[test]
fn loader_finds_or_refuses_a_library() {
    match TrtLibrary::load() {
        Ok(lib) => assert_eq!(lib.version.major, header_major(), "{}", lib.path),
        Err(BackendError::Unavailable { backend, reason }) => {
            assert_eq!(backend, "tensorrt");
            assert!(reason.contains("TensorRT"), "{reason}");
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// With `DVT_NVINFER` pointing at a real TensorRT runtime (e.g. `libnvinfer_lean.so.10` from the
/// PyPI wheel `tensorrt-lean-cu12-libs==10.16.1.11`), that exact file is loaded and its version
/// checked: accepted when its major matches the shim's headers, refused in one line otherwise.
#[test]
fn real_library_is_version_checked() {
    let Ok(path) = std::env::var("DVT_NVINFER") else {
        eprintln!("SKIPPED: set DVT_NVINFER to a real libnvinfer(_lean).so");
        return;
    };
    match TrtLibrary::load() {
        Ok(lib) => {
            println!("loaded {} = TensorRT {}", lib.path, lib.version);
            assert_eq!(lib.path, path);
            assert_eq!(lib.version.major, header_major());
            // The lean runtime wants version-compatible engines (`dvt build --version-compatible`).
            assert_eq!(lib.lean, path.contains("libnvinfer_lean"), "{path}");
            assert!(
                lib.runtime_factory().is_ok(),
                "createInferRuntime_INTERNAL missing"
            );
        }
        Err(BackendError::Unavailable { reason, .. }) => {
            println!("refused: {reason}");
            let expected = format!("built with TensorRT {} headers", header_major());
            assert!(
                reason.contains(&expected) && reason.contains(&path),
                "{reason}"
            );
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}
