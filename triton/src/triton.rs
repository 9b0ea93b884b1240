//! Thin safe-ish wrappers over [`crate::ffi`]: errors both ways, strings, logging, the
//! monotonic clock Triton's statistics use, and custom metrics.

use crate::ffi::*;
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;

/// An error to hand back to Triton (as a `TRITONSERVER_Error`).
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// `TRITONSERVER_Error_Code`.
    pub code: TRITONSERVER_Error_Code,
    /// What happened and what to do.
    pub message: String,
}

impl Error {
    /// The request or config is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: TRITONSERVER_ERROR_INVALID_ARG,
            message: message.into(),
        }
    }

    /// Something failed inside the backend or the server.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: TRITONSERVER_ERROR_INTERNAL,
            message: message.into(),
        }
    }

    /// The server or machine cannot do what is asked.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self {
            code: TRITONSERVER_ERROR_UNSUPPORTED,
            message: message.into(),
        }
    }

    /// A new `TRITONSERVER_Error` (owned by whoever Triton's API says takes it).
    pub fn into_raw(self) -> *mut TRITONSERVER_Error {
        let msg = cstring(&self.message);
        // SAFETY: ErrorNew copies the message.
        unsafe { TRITONSERVER_ErrorNew(self.code, msg.as_ptr()) }
    }
}

/// A Rust string as a C string (an interior NUL would cut a message short: replaced).
pub fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// Copies a C string Triton owns (`None` for a null pointer).
///
/// # Safety
/// `p` is null or a NUL-terminated string valid for the call.
pub unsafe fn string(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
}

/// Turns the result of a Triton call into ours, taking (and deleting) its error.
///
/// # Safety
/// `err` is null or an error Triton just returned to us.
pub unsafe fn check(err: *mut TRITONSERVER_Error, what: &str) -> Result<(), Error> {
    if err.is_null() {
        return Ok(());
    }
    let msg = string(TRITONSERVER_ErrorMessage(err)).unwrap_or_default();
    TRITONSERVER_ErrorDelete(err);
    Err(Error::internal(format!("{what}: {msg}")))
}

/// Log levels of Triton's log.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    /// `I` lines.
    Info,
    /// `W` lines.
    Warn,
    /// `E` lines.
    Error,
}

/// Writes one line to Triton's log (where its own lines go: stderr, `--log-file`).
pub fn log(level: Level, msg: &str) {
    let level = match level {
        Level::Info => TRITONSERVER_LOG_INFO,
        Level::Warn => TRITONSERVER_LOG_WARN,
        Level::Error => TRITONSERVER_LOG_ERROR,
    };
    let msg = cstring(&format!("dvt: {msg}"));
    // SAFETY: both strings live across the call; a logging failure has nowhere to go.
    unsafe {
        let err = TRITONSERVER_LogMessage(level, c"libtriton_dvt.so".as_ptr(), 0, msg.as_ptr());
        if !err.is_null() {
            TRITONSERVER_ErrorDelete(err);
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock Triton's statistics timestamps use
/// (`std::chrono::steady_clock`).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A counter family registered with Triton's metrics (shown at `/metrics`).
pub struct Family(*mut TRITONSERVER_MetricFamily);

// SAFETY: Triton's metric objects are prometheus-cpp families, safe to use from any thread.
unsafe impl Send for Family {}
unsafe impl Sync for Family {}

impl Family {
    /// Registers a counter family.
    pub fn counter(name: &str, description: &str) -> Result<Self, Error> {
        let (n, d) = (cstring(name), cstring(description));
        let mut f = ptr::null_mut();
        // SAFETY: out-pointer and strings valid across the call (Triton copies them).
        unsafe {
            check(
                TRITONSERVER_MetricFamilyNew(
                    &mut f,
                    TRITONSERVER_METRIC_KIND_COUNTER,
                    n.as_ptr(),
                    d.as_ptr(),
                ),
                &format!("creating metric family {name}"),
            )?;
        }
        Ok(Self(f))
    }

    /// A counter of this family with these labels.
    pub fn metric(&self, labels: &[(&str, &str)]) -> Result<Counter, Error> {
        let owned: Vec<(CString, CString)> = labels
            .iter()
            .map(|(k, v)| (cstring(k), cstring(v)))
            .collect();
        // SAFETY: ParameterNew copies name and value; the parameters are deleted after
        // MetricNew, which copies the labels (the header says so).
        unsafe {
            let params: Vec<*const TRITONSERVER_Parameter> = owned
                .iter()
                .map(|(k, v)| {
                    TRITONSERVER_ParameterNew(
                        k.as_ptr(),
                        TRITONSERVER_PARAMETER_STRING,
                        v.as_ptr() as *const c_void,
                    ) as *const _
                })
                .collect();
            let mut m = ptr::null_mut();
            let res = if params.iter().any(|p| p.is_null()) {
                Err(Error::internal("creating metric labels failed"))
            } else {
                check(
                    TRITONSERVER_MetricNew(&mut m, self.0, params.as_ptr(), params.len() as u64),
                    "creating a metric",
                )
            };
            for p in params.into_iter().filter(|p| !p.is_null()) {
                TRITONSERVER_ParameterDelete(p as *mut _);
            }
            res.map(|()| Counter(m))
        }
    }
}

impl Drop for Family {
    fn drop(&mut self) {
        // SAFETY: every Counter of the family is dropped first (models finalize before the
        // backend), as Triton requires.
        unsafe {
            if let Err(e) = check(
                TRITONSERVER_MetricFamilyDelete(self.0),
                "deleting a metric family",
            ) {
                log(Level::Warn, &e.message);
            }
        }
    }
}

/// One counter.
pub struct Counter(*mut TRITONSERVER_Metric);

// SAFETY: as for Family: prometheus-cpp counters are atomic.
unsafe impl Send for Counter {}
unsafe impl Sync for Counter {}

impl Counter {
    /// Adds `v` (>= 0); a failure is logged, never fatal to a request.
    pub fn add(&self, v: f64) {
        // SAFETY: a live metric.
        if let Err(e) = unsafe { check(TRITONSERVER_MetricIncrement(self.0, v), "metric") } {
            log(Level::Warn, &e.message);
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        // SAFETY: a live metric, deleted once.
        unsafe {
            if let Err(e) = check(TRITONSERVER_MetricDelete(self.0), "deleting a metric") {
                log(Level::Warn, &e.message);
            }
        }
    }
}
