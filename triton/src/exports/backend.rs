//! The backend object: API version checks and the process-wide custom-metric families.

use super::{guard, state};
use crate::api;
use crate::ffi::*;
use crate::triton::{check, log, Error, Family, Level};

/// Process-wide state: the metric families every model's counters belong to.
pub(super) struct BackendState {
    /// `None` when the server runs without custom metrics.
    pub(super) metrics: Option<Families>,
}

/// The counter families, labelled per model (and stage) by [`super::model`].
pub(super) struct Families {
    /// Images answered per exit stage.
    pub(super) exits: Family,
    /// GFLOPs spent.
    pub(super) gflops: Family,
    /// Requests answered with an error.
    pub(super) rejected: Family,
}

impl Families {
    fn new() -> Result<Self, Error> {
        Ok(Self {
            exits: Family::counter(
                "dvt_cascade_exits_total",
                "Images answered at each stage of the dvt early-exit cascade (stage 1 is the \
                 cheapest)",
            )?,
            gflops: Family::counter(
                "dvt_cascade_gflops_total",
                "GFLOPs spent by the dvt cascade (each image costs its exit stage's cumulative \
                 GFLOPs)",
            )?,
            rejected: Family::counter(
                "dvt_rejected_requests_total",
                "Requests the dvt backend answered with an error (bad IMAGE or budget \
                 parameter, or a failed cascade run)",
            )?,
        })
    }
}

/// The server's `api` version (read with `get`), refused unless it meets `required`.
///
/// # Safety
/// `get` is one of Triton's `*_ApiVersion` functions.
unsafe fn api_version(
    api: &str,
    get: unsafe extern "C" fn(*mut u32, *mut u32) -> *mut TRITONSERVER_Error,
    required: (u32, u32),
) -> Result<(u32, u32), Error> {
    let (mut major, mut minor) = (0, 0);
    check(get(&mut major, &mut minor), &format!("{api}_ApiVersion"))?;
    api::check(api, (major, minor), required).map_err(Error::unsupported)?;
    Ok((major, minor))
}

/// # Safety
/// Called by Triton once, with its backend object.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_Initialize(
    backend: *mut TRITONBACKEND_Backend,
) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_Initialize", || {
        // The server loads any libtriton_*.so without comparing API versions: we must.
        let (major, minor) = api_version(
            "TRITONBACKEND",
            TRITONBACKEND_ApiVersion,
            api::REQUIRED_BACKEND_API,
        )?;
        let (smajor, sminor) = api_version(
            "TRITONSERVER",
            TRITONSERVER_ApiVersion,
            api::REQUIRED_SERVER_API,
        )?;
        let metrics = match Families::new() {
            Ok(f) => Some(f),
            Err(e) => {
                log(
                    Level::Warn,
                    &format!(
                        "custom metrics off ({}): is --allow-metrics=false set?",
                        e.message
                    ),
                );
                None
            }
        };
        log(
            Level::Info,
            &format!(
                "backend {} (dvt-edge), TRITONBACKEND API {major}.{minor}, TRITONSERVER API \
                 {smajor}.{sminor}",
                env!("CARGO_PKG_VERSION")
            ),
        );
        state::store(backend, BackendState { metrics })
    })
}

/// # Safety
/// Called by Triton once, after every model is finalized.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_Finalize(
    backend: *mut TRITONBACKEND_Backend,
) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_Finalize", || {
        drop(state::take(backend)?);
        log(Level::Info, "backend finalized");
        Ok(())
    })
}
