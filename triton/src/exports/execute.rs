//! `TRITONBACKEND_ModelInstanceExecute`: a batch of requests read into one cascade batch,
//! run once, answered one response each, counted and released, even after a panic.

use super::instance::{instance_model, instance_state, InstanceState};
use super::model::{model_state, ModelState};
use super::panic_text;
use super::request::read_request;
use super::response::{release, respond, send_error, Shared};
use crate::ffi::*;
use crate::triton::{check, log, now_ns, Error, Level};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// One request of the batch and how far it got. Kept outside the `catch_unwind` so that after
/// a panic every request still gets exactly one response and one release.
pub(super) struct Pending {
    /// Triton's request.
    pub(super) request: *mut TRITONBACKEND_Request,
    /// Its images' place in the cascade batch and the outputs it asked for, or why it failed.
    work: Result<Work, Error>,
    /// It has had its one response.
    pub(super) responded: bool,
    /// It is back with Triton.
    released: bool,
}

/// A readable request's share of the batch.
pub(super) struct Work {
    /// Index of its first image in the batch.
    first: usize,
    /// How many images it sent.
    pub(super) count: usize,
    /// The outputs it asked for.
    pub(super) outputs: Vec<String>,
}

/// # Safety
/// Called by Triton with `request_count` valid requests for this instance.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceExecute(
    instance: *mut TRITONBACKEND_ModelInstance,
    requests: *mut *mut TRITONBACKEND_Request,
    request_count: u32,
) -> *mut TRITONSERVER_Error {
    let exec_start = now_ns();
    // Until the requests are copied out, an error leaves them with Triton (it answers them).
    let setup = catch_unwind(AssertUnwindSafe(|| -> Result<_, Error> {
        let inst = instance_state(instance)?;
        let model = model_state(instance_model(instance)?)?;
        Ok((inst, model))
    }));
    let (inst, model) = match setup {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return e.into_raw(),
        Err(p) => return Error::internal(format!("execute: panic: {}", panic_text(&p))).into_raw(),
    };
    let mut pending: Vec<Pending> = (0..request_count as usize)
        .map(|i| Pending {
            request: *requests.add(i),
            work: Err(Error::internal("not read")),
            responded: false,
            released: false,
        })
        .collect();
    // From here the requests are ours: each gets one response and one release, even on panic.
    let run = catch_unwind(AssertUnwindSafe(|| {
        execute(instance, inst, model, &mut pending, exec_start)
    }));
    if let Err(p) = run {
        let msg = format!(
            "internal error in the dvt backend (panic: {})",
            panic_text(&p)
        );
        log(Level::Error, &msg);
        for p in pending.iter_mut() {
            if !p.responded {
                p.responded = true;
                send_error(p.request, Error::internal(msg.clone()));
            }
            if !p.released {
                p.released = true;
                let now = now_ns();
                let _ = check(
                    TRITONBACKEND_ModelInstanceReportStatistics(
                        instance, p.request, false, exec_start, now, now, now,
                    ),
                    "statistics",
                );
                release(p.request);
            }
        }
    }
    ptr::null_mut()
}

/// Reads, runs and answers `pending` (after setup; panics are the caller's to catch).
unsafe fn execute(
    instance: *mut TRITONBACKEND_ModelInstance,
    inst: &InstanceState,
    model: &ModelState,
    pending: &mut [Pending],
    exec_start: u64,
) {
    // 1. Every request's images into one batch; a bad one fails alone.
    let mut images = Vec::new();
    let mut total = 0usize;
    for p in pending.iter_mut() {
        p.work = read_request(p.request, model, &mut images).map(|(count, outputs, budget)| {
            if let Some(b) = budget {
                model.board.set(b);
            }
            let w = Work {
                first: total,
                count,
                outputs,
            };
            total += count;
            w
        });
    }
    // 2. One cascade batch: rows that exit leave it, the rest go on together.
    // A poisoned lock means a panic mid-batch: the cascade's state is unknown, so refuse.
    let mut runner = inst.runner.lock().ok();
    let compute_start = now_ns();
    let (batch, in_effect) = match runner.as_mut() {
        None => (
            Err("this instance failed on an earlier panic: reload the model".to_string()),
            String::new(),
        ),
        Some(r) => {
            r.sync(&model.board);
            let in_effect = r.describe();
            let batch = if total > 0 {
                r.run(images, total)
            } else {
                Err(String::new())
            };
            (batch, in_effect)
        }
    };
    drop(runner);
    let compute_end = now_ns();
    let (decisions, thresholds) = match &batch {
        Ok(b) => (
            b.result.decisions.as_slice(),
            b.thresholds
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        Err(_) => (&[][..], String::new()),
    };
    // 3. Answers.
    let shared = Shared {
        labels: &model.labels,
        in_effect: &in_effect,
        thresholds: &thresholds,
    };
    let mut rejected = 0u64;
    let mut served = 0u64;
    for p in pending.iter_mut() {
        let work = std::mem::replace(&mut p.work, Err(Error::internal("answered")));
        let outcome = match (&work, &batch) {
            (Ok(w), Ok(_)) => respond(p, w, &decisions[w.first..w.first + w.count], &shared),
            (Ok(_), Err(msg)) => Err(Error::internal(msg.clone())),
            (Err(e), _) => Err(e.clone()),
        };
        let ok = outcome.is_ok();
        if let Err(e) = outcome {
            if !p.responded {
                p.responded = true;
                send_error(p.request, e);
            }
            rejected += 1;
        } else if let Ok(w) = &work {
            served += w.count as u64;
        }
        let exec_end = now_ns();
        if let Err(e) = check(
            TRITONBACKEND_ModelInstanceReportStatistics(
                instance,
                p.request,
                ok,
                exec_start,
                compute_start,
                compute_end,
                exec_end,
            ),
            "reporting request statistics",
        ) {
            log(Level::Warn, &e.message);
        }
    }
    if served > 0 {
        if let Err(e) = check(
            TRITONBACKEND_ModelInstanceReportBatchStatistics(
                instance,
                total as u64,
                exec_start,
                compute_start,
                compute_end,
                now_ns(),
            ),
            "reporting batch statistics",
        ) {
            log(Level::Warn, &e.message);
        }
    }
    if let Some(m) = &model.metrics {
        let mut exits = vec![0u64; m.exits.len()];
        let mut gflops = 0.0;
        for d in decisions {
            if let Some(e) = exits.get_mut(d.exit_stage) {
                *e += 1;
            }
            gflops += d.gflops;
        }
        for (c, n) in m.exits.iter().zip(exits) {
            if n > 0 {
                c.add(n as f64);
            }
        }
        if gflops > 0.0 {
            m.gflops.add(gflops);
        }
        if rejected > 0 {
            m.rejected.add(rejected as f64);
        }
    }
    // 4. Release.
    for p in pending.iter_mut() {
        p.released = true;
        release(p.request);
    }
}
