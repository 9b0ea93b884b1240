//! A model instance: its own warm cascade, on the backend its `config.pbtxt` and instance
//! group ask for.

use super::model::model_state;
use super::{guard, state};
use crate::ffi::*;
use crate::runner::Runner;
use crate::triton::{check, log, string, Error, Level};
use dvt_edge::backend::select::BackendKind;
use dvt_edge::{AdaptiveCascade, AdaptiveOptions, BackendOptions};
use std::ptr;
use std::sync::Mutex;

/// One instance: its own warm cascade (Triton never runs one instance's execute twice at
/// once; the mutex makes that a checked fact rather than an assumption).
pub(super) struct InstanceState {
    /// Triton's instance name.
    pub(super) name: String,
    /// The cascade; poisoned after a panic mid-batch.
    pub(super) runner: Mutex<Runner>,
}

/// The state `TRITONBACKEND_ModelInstanceInitialize` stored for `instance`.
///
/// # Safety
/// `instance` is a live instance Triton handed us.
pub(super) unsafe fn instance_state<'a>(
    instance: *mut TRITONBACKEND_ModelInstance,
) -> Result<&'a InstanceState, Error> {
    state::borrow(instance)?.ok_or_else(|| Error::internal("the instance has no state"))
}

/// The model `instance` belongs to.
///
/// # Safety
/// As [`instance_state`].
pub(super) unsafe fn instance_model(
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
                cpu_runtime: p.cpu_runtime,
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
        state::store(
            instance,
            InstanceState {
                name,
                runner: Mutex::new(runner),
            },
        )
    })
}

/// # Safety
/// Called by Triton once per instance, after its last execute.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceFinalize(
    instance: *mut TRITONBACKEND_ModelInstance,
) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_ModelInstanceFinalize", || {
        if let Some(state) = state::take(instance)? {
            log(Level::Info, &format!("instance {} finalized", state.name));
        }
        Ok(())
    })
}
