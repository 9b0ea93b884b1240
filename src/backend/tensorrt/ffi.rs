//! The C ABI of csrc/trt_shim.cpp. Every function returns 0 on success; on failure the reason is
//! in `dvt_trt_last_error()` (per thread).

use std::ffi::{c_char, c_int, c_void};

extern "C" {
    pub fn dvt_trt_header_major() -> i32;
    pub fn dvt_trt_header_version() -> i32;
    pub fn dvt_trt_last_error() -> *const c_char;
    pub fn dvt_trt_runtime_create(factory: *mut c_void, out: *mut *mut c_void) -> c_int;
    pub fn dvt_trt_runtime_destroy(runtime: *mut c_void);
    pub fn dvt_trt_engine_create(
        runtime: *mut c_void,
        plan: *const c_void,
        size: usize,
        out: *mut *mut c_void,
    ) -> c_int;
    pub fn dvt_trt_engine_destroy(engine: *mut c_void);
    pub fn dvt_trt_engine_num_io(engine: *mut c_void, out: *mut i32) -> c_int;
    pub fn dvt_trt_engine_io(
        engine: *mut c_void,
        index: i32,
        name: *mut *const c_char,
        mode: *mut i32,
        dtype: *mut i32,
        rank: *mut i32,
        dims: *mut i64,
    ) -> c_int;
    pub fn dvt_trt_context_create(engine: *mut c_void, out: *mut *mut c_void) -> c_int;
    pub fn dvt_trt_context_destroy(context: *mut c_void);
    pub fn dvt_trt_set_input_shape(
        context: *mut c_void,
        name: *const c_char,
        rank: i32,
        dims: *const i64,
    ) -> c_int;
    pub fn dvt_trt_set_tensor_address(
        context: *mut c_void,
        name: *const c_char,
        address: *mut c_void,
    ) -> c_int;
    pub fn dvt_trt_enqueue(context: *mut c_void, stream: *mut c_void) -> c_int;
}

/// The shim's last error message on this thread.
pub fn last_error() -> String {
    // SAFETY: the shim returns a NUL-terminated string it owns, valid until its next call here.
    unsafe {
        let p = dvt_trt_last_error();
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}
