//! The functions Triton looks up in `libtriton_dvt.so`, one file per Triton object: the
//! backend, a model, a model instance, and a batch of requests (read, run, answered). Each
//! entry point runs its body under `catch_unwind`: a panic becomes a Triton error (or, in
//! execute, error responses), never an unwind into the C++ server. The `#[no_mangle]`
//! functions are exported from the `cdylib` whatever their module's visibility.

mod backend;
mod execute;
mod instance;
mod model;
mod request;
mod response;
mod state;

use crate::ffi::TRITONSERVER_Error;
use crate::triton::{log, Error, Level};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// Runs `f`, turning its error or panic into a Triton error.
pub(super) fn guard(what: &str, f: impl FnOnce() -> Result<(), Error>) -> *mut TRITONSERVER_Error {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => ptr::null_mut(),
        Ok(Err(e)) => {
            log(Level::Error, &format!("{what}: {}", e.message));
            e.into_raw()
        }
        Err(panic) => {
            let msg = format!("{what}: internal error (panic: {})", panic_text(&panic));
            log(Level::Error, &msg);
            Error::internal(msg).into_raw()
        }
    }
}

/// The message of a caught panic (`unknown` when it carried no text).
pub(super) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into())
}
