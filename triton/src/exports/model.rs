//! A model (all its instances): its config and bundle read once at load, the budget its
//! requests share, and its custom-metric counters.

use super::backend::Families;
use super::{guard, state};
use crate::config::ModelConfig;
use crate::ffi::*;
use crate::runner::BudgetBoard;
use crate::triton::{check, log, string, Counter, Error, Level};
use dvt_edge::bundle::{Bundle, InputSpec};
use std::path::PathBuf;
use std::ptr;

/// One model (all its instances): its config, bundle facts, shared budget and counters.
pub(super) struct ModelState {
    /// Triton's model name.
    pub(super) name: String,
    /// The version folder loaded.
    pub(super) version: u64,
    /// `config.pbtxt`, checked.
    pub(super) config: ModelConfig,
    /// Where the instances load their cascade from.
    pub(super) bundle_dir: PathBuf,
    /// The manifest's input (size, channels, normalisation) requests are converted to.
    pub(super) input: InputSpec,
    /// Class names, for the `LABEL` output.
    pub(super) labels: Vec<String>,
    /// The budget last set by a request, shared by every instance.
    pub(super) board: BudgetBoard,
    /// `None` when the server runs without custom metrics.
    pub(super) metrics: Option<ModelMetrics>,
}

/// The model's counters in the backend's [`Families`].
pub(super) struct ModelMetrics {
    /// One per stage, in order.
    pub(super) exits: Vec<Counter>,
    /// GFLOPs spent.
    pub(super) gflops: Counter,
    /// Requests answered with an error.
    pub(super) rejected: Counter,
}

/// The state `TRITONBACKEND_ModelInitialize` stored for `model`.
///
/// # Safety
/// `model` is a live model Triton handed us.
pub(super) unsafe fn model_state<'a>(
    model: *mut TRITONBACKEND_Model,
) -> Result<&'a ModelState, Error> {
    state::borrow(model)?
        .ok_or_else(|| Error::internal("the model has no state (ModelInitialize failed?)"))
}

/// The model's config as Triton completed it, as JSON.
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
        let loaded = ModelState {
            input: m.model.input.clone(),
            labels: m.model.classes.clone(),
            name: name.clone(),
            version,
            config,
            bundle_dir,
            board: BudgetBoard::default(),
            metrics,
        };
        log(
            Level::Info,
            &format!(
                "model {name} version {version}: bundle {} ({} stages, {}x{}x{} input)",
                loaded.bundle_dir.display(),
                m.stages.len(),
                loaded.input.height,
                loaded.input.width,
                loaded.input.channels
            ),
        );
        state::store(model, loaded)
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
    let families = check(
        TRITONBACKEND_ModelBackend(model, &mut backend),
        "ModelBackend",
    )
    .and_then(|()| state::borrow(backend))
    .ok()??
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

/// One counter per stage and the model's GFLOPs and rejected counters.
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
        if let Some(state) = state::take(model)? {
            log(
                Level::Info,
                &format!("model {} version {} finalized", state.name, state.version),
            );
        }
        Ok(())
    })
}
