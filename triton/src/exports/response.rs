//! Answering one request: its outputs and parameters, or an error; and handing it back.

use super::execute::{Pending, Work};
use crate::ffi::*;
use crate::outputs::{self, Wire};
use crate::triton::{check, cstring, log, Error, Level};
use dvt_edge::cascade::Decision;
use std::ptr;

/// What every response of one batch carries besides its own decisions.
pub(super) struct Shared<'a> {
    /// Class names, for `LABEL`.
    pub(super) labels: &'a [String],
    /// The budget the batch ran under (the `budget` response parameter).
    pub(super) in_effect: &'a str,
    /// The thresholds it ran with, comma-separated (the `thresholds` parameter).
    pub(super) thresholds: &'a str,
}

/// Builds and sends one request's response; on failure the caller sends an error instead
/// (unless this already sent the response with the error attached).
///
/// # Safety
/// `p.request` is a live request that has had no response yet.
pub(super) unsafe fn respond(
    p: &mut Pending,
    w: &Work,
    decisions: &[Decision],
    shared: &Shared,
) -> Result<(), Error> {
    let mut response = ptr::null_mut();
    check(
        TRITONBACKEND_ResponseNew(&mut response, p.request),
        "ResponseNew",
    )?;
    let built = fill_response(response, w, decisions, shared);
    p.responded = true;
    let err = match &built {
        Ok(()) => ptr::null_mut(),
        Err(e) => e.clone().into_raw(),
    };
    send(response, err);
    built
}

/// Sends `response` as the final one, with `err` (null for none, else deleted here); a
/// failure is only logged: the request has no other way to be answered.
unsafe fn send(response: *mut TRITONBACKEND_Response, err: *mut TRITONSERVER_Error) {
    if let Err(e) = check(
        TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, err),
        "ResponseSend",
    ) {
        log(Level::Error, &e.message);
    }
    if !err.is_null() {
        TRITONSERVER_ErrorDelete(err);
    }
}

/// Adds the requested outputs and the `budget` / `thresholds` parameters to `response`.
unsafe fn fill_response(
    response: *mut TRITONBACKEND_Response,
    w: &Work,
    decisions: &[Decision],
    shared: &Shared,
) -> Result<(), Error> {
    let shape = [w.count as i64, 1];
    for name in &w.outputs {
        let (wire, bytes) = outputs::encode(name, decisions, shared.labels)
            .ok_or_else(|| Error::invalid(format!("unknown output '{name}'")))?;
        let dtype = match wire {
            Wire::Int32 => TRITONSERVER_TYPE_INT32,
            Wire::Fp32 => TRITONSERVER_TYPE_FP32,
            Wire::Bytes => TRITONSERVER_TYPE_BYTES,
        };
        let cname = cstring(name);
        let mut out = ptr::null_mut();
        check(
            TRITONBACKEND_ResponseOutput(
                response,
                &mut out,
                cname.as_ptr(),
                dtype,
                shape.as_ptr(),
                2,
            ),
            "ResponseOutput",
        )?;
        let (mut buf, mut mem, mut mem_id) = (ptr::null_mut(), TRITONSERVER_MEMORY_CPU, 0i64);
        check(
            TRITONBACKEND_OutputBuffer(out, &mut buf, bytes.len() as u64, &mut mem, &mut mem_id),
            "OutputBuffer",
        )?;
        if mem == TRITONSERVER_MEMORY_GPU {
            return Err(Error::unsupported(format!(
                "output {name} was given GPU memory: request outputs in system memory"
            )));
        }
        ptr::copy_nonoverlapping(bytes.as_ptr(), buf as *mut u8, bytes.len());
    }
    for (k, v) in [
        ("budget", shared.in_effect),
        ("thresholds", shared.thresholds),
    ] {
        let (k, v) = (cstring(k), cstring(v));
        check(
            TRITONBACKEND_ResponseSetStringParameter(response, k.as_ptr(), v.as_ptr()),
            "ResponseSetStringParameter",
        )?;
    }
    Ok(())
}

/// Sends `e` as the request's only response.
///
/// # Safety
/// `request` is a live request that has had no response yet.
pub(super) unsafe fn send_error(request: *mut TRITONBACKEND_Request, e: Error) {
    let mut response = ptr::null_mut();
    if let Err(x) = check(
        TRITONBACKEND_ResponseNew(&mut response, request),
        "ResponseNew",
    ) {
        log(Level::Error, &x.message);
        return;
    }
    send(response, e.into_raw());
}

/// Hands `request` back to Triton (all of it: it is answered or never will be).
///
/// # Safety
/// `request` is live and released only once.
pub(super) unsafe fn release(request: *mut TRITONBACKEND_Request) {
    if let Err(e) = check(
        TRITONBACKEND_RequestRelease(request, TRITONSERVER_REQUEST_RELEASE_ALL),
        "RequestRelease",
    ) {
        log(Level::Error, &e.message);
    }
}
