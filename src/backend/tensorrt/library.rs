//! Finds and dlopens the TensorRT runtime library, and checks its major version against the
//! headers the shim was compiled with before anything else is called (a mismatch segfaults inside
//! TensorRT instead of failing).

use super::ffi;
use crate::backend::BackendError;
use crate::engine_build::TrtVersion;
use libloading::Library;
use std::ffi::c_void;

fn unavailable(reason: impl Into<String>) -> BackendError {
    BackendError::Unavailable {
        backend: "tensorrt",
        reason: reason.into(),
    }
}

/// The TensorRT header directory the shim was compiled against (set by build.rs).
pub const HEADER_DIR: &str = env!("DVT_TRT_INCLUDE");

/// TensorRT major version of the shim's headers.
pub fn header_major() -> u32 {
    // SAFETY: returns a compile-time constant.
    unsafe { ffi::dvt_trt_header_major() as u32 }
}

/// TensorRT version of the shim's headers (major*10000 + minor*100 + patch).
pub fn header_version() -> i32 {
    // SAFETY: returns a compile-time constant.
    unsafe { ffi::dvt_trt_header_version() }
}

/// Library file names tried, in order: `DVT_NVINFER` (a path), the full runtime, the lean runtime.
pub fn candidates(major: u32) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(path) = std::env::var("DVT_NVINFER") {
        names.push(path);
    }
    names.push(format!("libnvinfer.so.{major}"));
    names.push(format!("libnvinfer_lean.so.{major}"));
    names
}

/// A loaded TensorRT runtime library whose version matches the shim.
pub struct TrtLibrary {
    lib: Library,
    /// Which file was loaded.
    pub path: String,
    /// The library's version.
    pub version: TrtVersion,
    /// Whether it is the lean runtime, which runs only version-compatible engines.
    pub lean: bool,
}

/// Whether the library file `path` names is TensorRT's lean runtime (`libnvinfer_lean.so.N`).
pub fn is_lean_runtime(path: &str) -> bool {
    std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("libnvinfer_lean"))
}

impl TrtLibrary {
    /// Loads the first candidate that opens and checks its version. Calls only the version getters
    /// (safe without a GPU).
    pub fn load() -> Result<Self, BackendError> {
        let major = header_major();
        let mut tried = Vec::new();
        for name in candidates(major) {
            // SAFETY: loading TensorRT runs its static initialisers, which need no GPU.
            match unsafe { Library::new(&name) } {
                Ok(lib) => return Self::check(lib, name, major),
                Err(e) => tried.push(format!("{name}: {e}")),
            }
        }
        Err(unavailable(format!(
            "no TensorRT {major} runtime library found ({})",
            tried.join("; ")
        )))
    }

    fn check(lib: Library, path: String, major: u32) -> Result<Self, BackendError> {
        // SAFETY: both symbols are `extern "C" int32_t f() noexcept` in every TensorRT 10/11.
        let code = unsafe {
            let version = lib
                .get::<unsafe extern "C" fn() -> i32>(b"getInferLibVersion\0")
                .map_err(|e| unavailable(format!("{path}: not a TensorRT library: {e}")))?;
            version()
        };
        let version = TrtVersion::from_code(code)
            .ok_or_else(|| unavailable(format!("{path}: bad version {code}")))?;
        if version.major != major {
            return Err(unavailable(format!(
                "{path} is TensorRT {version}, but this binary was built with TensorRT {major} headers"
            )));
        }
        let lean = is_lean_runtime(&path);
        Ok(Self {
            lib,
            path,
            version,
            lean,
        })
    }

    /// The `createInferRuntime_INTERNAL` factory for the shim.
    pub fn runtime_factory(&self) -> Result<*mut c_void, BackendError> {
        // SAFETY: only the symbol's address is taken; the shim calls it with the right signature.
        unsafe {
            self.lib
                .get::<*mut c_void>(b"createInferRuntime_INTERNAL\0")
                .map(|s| *s)
                .map_err(|e| unavailable(format!("{}: {e}", self.path)))
        }
    }
}
