//! The functions Triton looks up in `libtriton_dvt.so`. Each one runs its body under
//! `catch_unwind`: a panic becomes a Triton error (or, in execute, error responses), never an
//! unwind into the C++ server.

use crate::api;
use crate::config::ModelConfig;
use crate::ffi::*;
use crate::frames;
use crate::outputs::{self, Wire};
use crate::runner::{BudgetBoard, BudgetRequest, Runner};
use crate::triton::{check, cstring, log, now_ns, string, Counter, Error, Family, Level};
use dvt_edge::backend::select::BackendKind;
use dvt_edge::bundle::{Bundle, InputSpec};
use dvt_edge::cascade::Decision;
use dvt_edge::triton_repo::{BUDGET_PARAMETER, INPUT_IMAGE};
use dvt_edge::{AdaptiveCascade, AdaptiveOptions, BackendOptions};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::ptr;
use std::sync::Mutex;

/// Runs `f`, turning its error or panic into a Triton error.
fn guard(what: &str, f: impl FnOnce() -> Result<(), Error>) -> *mut TRITONSERVER_Error {
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

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into())
}

// ---------------------------------------------------------------------------------------------
// Backend

/// Process-wide state: the metric families every model's counters belong to.
struct BackendState {
    metrics: Option<Families>,
}

struct Families {
    exits: Family,
    gflops: Family,
    rejected: Family,
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

/// # Safety
/// Called by Triton once, with its backend object.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_Initialize(
    backend: *mut TRITONBACKEND_Backend,
) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_Initialize", || {
        // The server loads any libtriton_*.so without comparing API versions: we must.
        let (mut major, mut minor) = (0, 0);
        check(
            TRITONBACKEND_ApiVersion(&mut major, &mut minor),
            "TRITONBACKEND_ApiVersion",
        )?;
        api::check("TRITONBACKEND", (major, minor), api::REQUIRED_BACKEND_API)
            .map_err(Error::unsupported)?;
        let (mut smajor, mut sminor) = (0, 0);
        check(
            TRITONSERVER_ApiVersion(&mut smajor, &mut sminor),
            "TRITONSERVER_ApiVersion",
        )?;
        api::check("TRITONSERVER", (smajor, sminor), api::REQUIRED_SERVER_API)
            .map_err(Error::unsupported)?;
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
        let state = Box::into_raw(Box::new(BackendState { metrics }));
        if let Err(e) = check(
            TRITONBACKEND_BackendSetState(backend, state as *mut c_void),
            "TRITONBACKEND_BackendSetState",
        ) {
            drop(Box::from_raw(state));
            return Err(e);
        }
        Ok(())
    })
}

/// # Safety
/// Called by Triton once, after every model is finalized.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_Finalize(
    backend: *mut TRITONBACKEND_Backend,
) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_Finalize", || {
        let mut state = ptr::null_mut();
        check(
            TRITONBACKEND_BackendState(backend, &mut state),
            "TRITONBACKEND_BackendState",
        )?;
        if !state.is_null() {
            drop(Box::from_raw(state as *mut BackendState));
        }
        log(Level::Info, "backend finalized");
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Model

/// One model (all its instances): its config, bundle facts, shared budget and counters.
struct ModelState {
    name: String,
    version: u64,
    config: ModelConfig,
    bundle_dir: PathBuf,
    input: InputSpec,
    labels: Vec<String>,
    board: BudgetBoard,
    metrics: Option<ModelMetrics>,
}

struct ModelMetrics {
    exits: Vec<Counter>,
    gflops: Counter,
    rejected: Counter,
}

unsafe fn model_state<'a>(model: *mut TRITONBACKEND_Model) -> Result<&'a ModelState, Error> {
    let mut state = ptr::null_mut();
    check(
        TRITONBACKEND_ModelState(model, &mut state),
        "TRITONBACKEND_ModelState",
    )?;
    (state as *const ModelState)
        .as_ref()
        .ok_or_else(|| Error::internal("the model has no state (ModelInitialize failed?)"))
}

unsafe fn model_config(model: *mut TRITONBACKEND_Model) -> Result<serde_json::Value, Error> {
    let mut msg = ptr::null_mut();
    check(
        TRITONBACKEND_ModelConfig(model, 1, &mut msg),
        "TRITONBACKEND_ModelConfig",
    )?;
    let (mut base, mut size) = (ptr::null(), 0usize);
    let res = check(
        TRITONSERVER_MessageSerializeToJson(msg, &mut base, &mut size),
        "serializing the model config",
    )
    .and_then(|()| {
        let bytes = std::slice::from_raw_parts(base as *const u8, size);
        serde_json::from_slice(bytes)
            .map_err(|e| Error::internal(format!("the model config is not JSON: {e}")))
    });
    check(
        TRITONSERVER_MessageDelete(msg),
        "TRITONSERVER_MessageDelete",
    )?;
    res
}

/// # Safety
/// Called by Triton once per model load.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInitialize(
    model: *mut TRITONBACKEND_Model,
) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_ModelInitialize", || {
        let mut name = ptr::null();
        check(
            TRITONBACKEND_ModelName(model, &mut name),
            "TRITONBACKEND_ModelName",
        )?;
        let name = string(name).unwrap_or_default();
        let mut version = 0u64;
        check(
            TRITONBACKEND_ModelVersion(model, &mut version),
            "TRITONBACKEND_ModelVersion",
        )?;
        let (mut kind, mut location) = (0, ptr::null());
        check(
            TRITONBACKEND_ModelRepository(model, &mut kind, &mut location),
            "TRITONBACKEND_ModelRepository",
        )?;
        if kind != TRITONBACKEND_ARTIFACT_FILESYSTEM {
            return Err(Error::unsupported(format!(
                "model {name}: the dvt backend reads its bundle from the file system"
            )));
        }
        let location = PathBuf::from(string(location).unwrap_or_default());
        let config = ModelConfig::parse(&model_config(model)?)
            .map_err(|e| Error::invalid(format!("model {name} config.pbtxt: {e}")))?;
        for w in &config.warnings {
            log(Level::Warn, &format!("model {name} config.pbtxt: {w}"));
        }
        // `bundle` is relative to the version folder (`dvt triton-repo` puts it in 1/bundle).
        let bundle_dir = if config.params.bundle.is_absolute() {
            config.params.bundle.clone()
        } else {
            location
                .join(version.to_string())
                .join(&config.params.bundle)
        };
        let bundle = Bundle::load(&bundle_dir).map_err(|e| {
            Error::invalid(format!(
                "model {name}: bundle {} (parameter bundle = \"{}\"): {e}",
                bundle_dir.display(),
                config.params.bundle.display()
            ))
        })?;
        let m = &bundle.manifest;
        let metrics = model_metrics(model, &name, version, m.stages.len());
        let state = Box::new(ModelState {
            input: m.model.input.clone(),
            labels: m.model.classes.clone(),
            name: name.clone(),
            version,
            config,
            bundle_dir,
            board: BudgetBoard::default(),
            metrics,
        });
        log(
            Level::Info,
            &format!(
                "model {name} version {version}: bundle {} ({} stages, {}x{}x{} input)",
                state.bundle_dir.display(),
                m.stages.len(),
                state.input.height,
                state.input.width,
                state.input.channels
            ),
        );
        let raw = Box::into_raw(state);
        if let Err(e) = check(
            TRITONBACKEND_ModelSetState(model, raw as *mut c_void),
            "TRITONBACKEND_ModelSetState",
        ) {
            drop(Box::from_raw(raw));
            return Err(e);
        }
        Ok(())
    })
}

/// The model's counters, or `None` (logged) when the backend has no metric families.
unsafe fn model_metrics(
    model: *mut TRITONBACKEND_Model,
    name: &str,
    version: u64,
    stages: usize,
) -> Option<ModelMetrics> {
    let mut backend = ptr::null_mut();
    let mut state = ptr::null_mut();
    let ok = check(
        TRITONBACKEND_ModelBackend(model, &mut backend),
        "ModelBackend",
    )
    .and_then(|()| {
        check(
            TRITONBACKEND_BackendState(backend, &mut state),
            "BackendState",
        )
    });
    let families = (state as *const BackendState)
        .as_ref()
        .filter(|_| ok.is_ok())?
        .metrics
        .as_ref()?;
    make_metrics(families, name, &version.to_string(), stages)
        .map_err(|e| {
            log(
                Level::Warn,
                &format!("model {name}: no custom metrics: {}", e.message),
            )
        })
        .ok()
}

fn make_metrics(
    families: &Families,
    name: &str,
    version: &str,
    stages: usize,
) -> Result<ModelMetrics, Error> {
    let exits = (1..=stages)
        .map(|k| {
            let stage = k.to_string();
            families
                .exits
                .metric(&[("model", name), ("version", version), ("stage", &stage)])
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ModelMetrics {
        exits,
        gflops: families
            .gflops
            .metric(&[("model", name), ("version", version)])?,
        rejected: families
            .rejected
            .metric(&[("model", name), ("version", version)])?,
    })
}

/// # Safety
/// Called by Triton once per model unload, after its instances are finalized.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelFinalize(
    model: *mut TRITONBACKEND_Model,
) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_ModelFinalize", || {
        let mut state = ptr::null_mut();
        check(
            TRITONBACKEND_ModelState(model, &mut state),
            "TRITONBACKEND_ModelState",
        )?;
        if !state.is_null() {
            let state = Box::from_raw(state as *mut ModelState);
            log(
                Level::Info,
                &format!("model {} version {} finalized", state.name, state.version),
            );
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Instance

/// One instance: its own warm cascade (Triton never runs one instance's execute twice at
/// once; the mutex makes that a checked fact rather than an assumption).
struct InstanceState {
    name: String,
    runner: Mutex<Runner>,
}

unsafe fn instance_model(
    instance: *mut TRITONBACKEND_ModelInstance,
) -> Result<*mut TRITONBACKEND_Model, Error> {
    let mut model = ptr::null_mut();
    check(
        TRITONBACKEND_ModelInstanceModel(instance, &mut model),
        "ModelInstanceModel",
    )?;
    Ok(model)
}

/// # Safety
/// Called by Triton once per instance.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceInitialize(
    instance: *mut TRITONBACKEND_ModelInstance,
) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_ModelInstanceInitialize", || {
        let mut name = ptr::null();
        check(
            TRITONBACKEND_ModelInstanceName(instance, &mut name),
            "ModelInstanceName",
        )?;
        let name = string(name).unwrap_or_default();
        let mut kind = 0;
        check(
            TRITONBACKEND_ModelInstanceKind(instance, &mut kind),
            "ModelInstanceKind",
        )?;
        let mut device = 0i32;
        check(
            TRITONBACKEND_ModelInstanceDeviceId(instance, &mut device),
            "DeviceId",
        )?;
        let model = model_state(instance_model(instance)?)?;
        let p = &model.config.params;
        let gpu = kind == TRITONSERVER_INSTANCEGROUPKIND_GPU;
        let backend = match p.backend {
            BackendKind::Tensorrt if !gpu => {
                return Err(Error::invalid(format!(
                    "instance {name}: parameter backend = \"tensorrt\" needs instance_group \
                     kind KIND_GPU (TensorRT runs on that instance's GPU)"
                )))
            }
            BackendKind::Cpu if gpu => {
                log(
                    Level::Warn,
                    &format!(
                        "instance {name} is KIND_GPU but parameter backend = \"cpu\": it runs \
                         on the CPU"
                    ),
                );
                BackendKind::Cpu
            }
            // `auto` tries TensorRT only where Triton gave the instance a GPU.
            BackendKind::Auto if !gpu => BackendKind::Cpu,
            k => k,
        };
        if backend != BackendKind::Cpu && model.config.max_batch > p.batch_profile.max {
            return Err(Error::invalid(format!(
                "instance {name}: max_batch_size {} is above the TensorRT batch profile's max \
                 {} (parameter batch_profile)",
                model.config.max_batch, p.batch_profile.max
            )));
        }
        let options = AdaptiveOptions {
            backend: BackendOptions {
                kind: backend,
                device: usize::try_from(device).unwrap_or(0),
                precision: p.precision,
                batch: p.batch_profile,
                engine: p.engine,
                threads: p.threads,
                // Idle pool threads sleep: a server between bursts should not burn cores
                // that other instances and models share (as dvtd).
                spin: false,
            },
            // Warms every batch size the dynamic batcher can hand us.
            max_batch: model.config.max_batch,
            ..AdaptiveOptions::default()
        };
        let dvt = AdaptiveCascade::load(&model.bundle_dir, &options)
            .map_err(|e| Error::invalid(format!("instance {name}: {e}")))?;
        for w in dvt.warnings() {
            log(Level::Warn, &format!("instance {name}: {w}"));
        }
        let info = dvt.backend().clone();
        let runner = Runner::new(dvt, &p.default)
            .map_err(|e| Error::invalid(format!("instance {name}: {e}")))?;
        log(
            Level::Info,
            &format!(
                "instance {name} of model {}: {} (calibration {}), answering with {}",
                model.name,
                info.name,
                info.calibration,
                runner.describe()
            ),
        );
        let state = Box::into_raw(Box::new(InstanceState {
            name,
            runner: Mutex::new(runner),
        }));
        if let Err(e) = check(
            TRITONBACKEND_ModelInstanceSetState(instance, state as *mut c_void),
            "ModelInstanceSetState",
        ) {
            drop(Box::from_raw(state));
            return Err(e);
        }
        Ok(())
    })
}

/// # Safety
/// Called by Triton once per instance, after its last execute.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceFinalize(
    instance: *mut TRITONBACKEND_ModelInstance,
) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_ModelInstanceFinalize", || {
        let mut state = ptr::null_mut();
        check(
            TRITONBACKEND_ModelInstanceState(instance, &mut state),
            "ModelInstanceState",
        )?;
        if !state.is_null() {
            let state = Box::from_raw(state as *mut InstanceState);
            log(Level::Info, &format!("instance {} finalized", state.name));
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Execute

/// One request of the batch and how far it got. Kept outside the `catch_unwind` so that after
/// a panic every request still gets exactly one response and one release.
struct Pending {
    request: *mut TRITONBACKEND_Request,
    /// Its images' place in the cascade batch and the outputs it asked for, or why it failed.
    work: Result<Work, Error>,
    responded: bool,
    released: bool,
}

struct Work {
    first: usize,
    count: usize,
    outputs: Vec<String>,
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
        let mut state = ptr::null_mut();
        check(
            TRITONBACKEND_ModelInstanceState(instance, &mut state),
            "ModelInstanceState",
        )?;
        let inst = (state as *const InstanceState)
            .as_ref()
            .ok_or_else(|| Error::internal("the instance has no state"))?;
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
    let mut rejected = 0u64;
    let mut served = 0u64;
    for p in pending.iter_mut() {
        let work = std::mem::replace(&mut p.work, Err(Error::internal("answered")));
        let outcome = match (&work, &batch) {
            (Ok(w), Ok(_)) => respond(
                p,
                w,
                &decisions[w.first..w.first + w.count],
                model,
                &in_effect,
                &thresholds,
            ),
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

/// Reads one request: its images appended to `images`, the outputs it wants, its budget.
unsafe fn read_request(
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

/// Builds and sends one request's response; on failure the caller sends an error instead
/// (unless this already sent the response with the error attached).
unsafe fn respond(
    p: &mut Pending,
    w: &Work,
    decisions: &[Decision],
    model: &ModelState,
    in_effect: &str,
    thresholds: &str,
) -> Result<(), Error> {
    let mut response = ptr::null_mut();
    check(
        TRITONBACKEND_ResponseNew(&mut response, p.request),
        "ResponseNew",
    )?;
    let built = fill_response(response, w, decisions, model, in_effect, thresholds);
    p.responded = true;
    let err = match &built {
        Ok(()) => ptr::null_mut(),
        Err(e) => e.clone().into_raw(),
    };
    let sent = check(
        TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, err),
        "ResponseSend",
    );
    if !err.is_null() {
        TRITONSERVER_ErrorDelete(err);
    }
    if let Err(e) = &sent {
        log(Level::Error, &e.message);
    }
    built
}

/// Adds the requested outputs and the `budget` / `thresholds` parameters to `response`.
unsafe fn fill_response(
    response: *mut TRITONBACKEND_Response,
    w: &Work,
    decisions: &[Decision],
    model: &ModelState,
    in_effect: &str,
    thresholds: &str,
) -> Result<(), Error> {
    let shape = [w.count as i64, 1];
    for name in &w.outputs {
        let (wire, bytes) = outputs::encode(name, decisions, &model.labels)
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
    for (k, v) in [("budget", in_effect), ("thresholds", thresholds)] {
        let (k, v) = (cstring(k), cstring(v));
        check(
            TRITONBACKEND_ResponseSetStringParameter(response, k.as_ptr(), v.as_ptr()),
            "ResponseSetStringParameter",
        )?;
    }
    Ok(())
}

/// Sends `e` as the request's only response.
unsafe fn send_error(request: *mut TRITONBACKEND_Request, e: Error) {
    let mut response = ptr::null_mut();
    if let Err(x) = check(
        TRITONBACKEND_ResponseNew(&mut response, request),
        "ResponseNew",
    ) {
        log(Level::Error, &x.message);
        return;
    }
    let err = e.into_raw();
    if let Err(x) = check(
        TRITONBACKEND_ResponseSend(response, TRITONSERVER_RESPONSE_COMPLETE_FINAL, err),
        "ResponseSend",
    ) {
        log(Level::Error, &x.message);
    }
    TRITONSERVER_ErrorDelete(err);
}

unsafe fn release(request: *mut TRITONBACKEND_Request) {
    if let Err(e) = check(
        TRITONBACKEND_RequestRelease(request, TRITONSERVER_REQUEST_RELEASE_ALL),
        "RequestRelease",
    ) {
        log(Level::Error, &e.message);
    }
}
