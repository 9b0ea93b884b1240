//! Reading one request: its `IMAGE` (converted into the batch), the outputs it asks for, and
//! its `budget` parameter.

use super::model::ModelState;
use crate::ffi::*;
use crate::frames;
use crate::runner::BudgetRequest;
use crate::triton::{check, cstring, string, Error};
use dvt_edge::triton_repo::{BUDGET_PARAMETER, INPUT_IMAGE};
use std::ptr;

/// Reads one request: its images appended to `images`, the outputs it wants, its budget.
///
/// # Safety
/// `request` is a live request Triton handed us.
pub(super) unsafe fn read_request(
    request: *mut TRITONBACKEND_Request,
    model: &ModelState,
    images: &mut Vec<f32>,
) -> Result<(usize, Vec<String>, Option<BudgetRequest>), Error> {
    let budget = budget_parameter(request)?;
    let mut input = ptr::null_mut();
    let iname = cstring(INPUT_IMAGE);
    check(
        TRITONBACKEND_RequestInput(request, iname.as_ptr(), &mut input),
        "input IMAGE",
    )
    .map_err(|e| Error::invalid(e.message))?;
    let (mut name, mut dtype, mut shape, mut dims, mut size, mut buffers) =
        (ptr::null(), 0, ptr::null(), 0u32, 0u64, 0u32);
    check(
        TRITONBACKEND_InputProperties(
            input,
            &mut name,
            &mut dtype,
            &mut shape,
            &mut dims,
            &mut size,
            &mut buffers,
        ),
        "input IMAGE properties",
    )?;
    if dtype != TRITONSERVER_TYPE_UINT8 {
        return Err(Error::invalid("IMAGE must be UINT8 (8-bit pixels, HWC)"));
    }
    let shape: Vec<i64> = if dims == 0 {
        vec![]
    } else {
        std::slice::from_raw_parts(shape, dims as usize).to_vec()
    };
    // The tensor may arrive in pieces (several buffers): contiguous bytes first.
    let mut pixels: Vec<u8> = Vec::with_capacity(size as usize);
    for i in 0..buffers {
        let (mut buf, mut len, mut mem, mut mem_id) =
            (ptr::null(), 0u64, TRITONSERVER_MEMORY_CPU, 0i64);
        check(
            TRITONBACKEND_InputBuffer(input, i, &mut buf, &mut len, &mut mem, &mut mem_id),
            "input IMAGE buffer",
        )?;
        if mem == TRITONSERVER_MEMORY_GPU {
            return Err(Error::unsupported(
                "IMAGE is in GPU memory (CUDA shared memory): send it in system memory",
            ));
        }
        if len > 0 {
            pixels.extend_from_slice(std::slice::from_raw_parts(buf as *const u8, len as usize));
        }
    }
    let count =
        frames::append_images(&shape, &pixels, &model.input, images).map_err(Error::invalid)?;
    let mut n = 0u32;
    check(
        TRITONBACKEND_RequestOutputCount(request, &mut n),
        "RequestOutputCount",
    )?;
    let mut outputs = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut o = ptr::null();
        check(
            TRITONBACKEND_RequestOutputName(request, i, &mut o),
            "RequestOutputName",
        )?;
        outputs.push(string(o).unwrap_or_default());
    }
    Ok((count, outputs, budget))
}

/// The request's `budget` parameter, if it has one.
unsafe fn budget_parameter(
    request: *mut TRITONBACKEND_Request,
) -> Result<Option<BudgetRequest>, Error> {
    let mut n = 0u32;
    check(
        TRITONBACKEND_RequestParameterCount(request, &mut n),
        "RequestParameterCount",
    )?;
    let mut found = None;
    for i in 0..n {
        let (mut key, mut kind, mut value) = (ptr::null(), 0, ptr::null());
        check(
            TRITONBACKEND_RequestParameter(request, i, &mut key, &mut kind, &mut value),
            "RequestParameter",
        )?;
        if string(key).as_deref() != Some(BUDGET_PARAMETER) {
            continue;
        }
        if kind != TRITONSERVER_PARAMETER_STRING {
            return Err(Error::invalid(
                "request parameter budget must be a string such as \"0.01gflops\", \"3ms\", \
                 \"300ips\", \"none\" or \"default\"",
            ));
        }
        let v = string(value as *const _).unwrap_or_default();
        found = Some(BudgetRequest::parse(&v).map_err(Error::invalid)?);
    }
    Ok(found)
}
