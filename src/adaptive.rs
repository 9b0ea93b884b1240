//! [`AdaptiveCascade`]: the one type that classifies frames under a budget. It owns a bundle's
//! cascade on the selected backend, the operating table of the calibration that matches that
//! backend, the closed-loop controller that turns the budget into thresholds, the labels, and the
//! warm-up. `dvtd`'s worker, `dvt demo` and embedders all use it.
//!
//! ```no_run
//! use dvt_edge::{AdaptiveCascade, AdaptiveOptions, Budget};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut dvt = AdaptiveCascade::load("engines/fmnist-dvt", &AdaptiveOptions::default())?;
//! dvt.set_budget(Some("0.01gflops".parse::<Budget>()?));
//! let image = vec![0u8; 28 * 28]; // one 28x28 grey frame, HWC
//! let answer = &dvt.classify_u8_hwc(&image, 1)?[0];
//! println!("{} ({:.2}) after stage {}", dvt.label(answer.class), answer.confidence,
//!          answer.exit_stage + 1);
//! # Ok(()) }
//! ```

use crate::backend::select::{self, BackendOptions};
use crate::backend::{AnyBackend, Backend, BackendError, HostTensor};
use crate::bundle::{Bundle, BundleError, InputSpec};
use crate::cascade::{BatchResult, Cascade, CascadeError, Decision};
use crate::data::preprocess::{normalize_u8_hwc, PreprocessError};
use crate::policy::{
    Budget, Controller, ControllerConfig, ControllerState, OperatingTable, PolicyError,
};
use ndarray::Array4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How an [`AdaptiveCascade`] is set up.
#[derive(Debug, Clone)]
pub struct AdaptiveOptions {
    /// Which backend, and its settings.
    pub backend: BackendOptions,
    /// Largest batch warmed up (and run by the daemon).
    pub max_batch: usize,
    /// Controller gains and power model.
    pub controller: ControllerConfig,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        Self {
            backend: BackendOptions::default(),
            max_batch: 1,
            controller: ControllerConfig::default(),
        }
    }
}

/// Why an [`AdaptiveCascade`] could not be made or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AdaptiveError {
    /// The bundle did not load.
    #[error("bundle {dir}: {source}")]
    Bundle {
        /// Bundle folder.
        dir: PathBuf,
        /// Why.
        source: Box<BundleError>,
    },
    /// The backend could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The bundle's operating points are unusable.
    #[error("bundle {dir}: {source}")]
    Policy {
        /// Bundle folder.
        dir: PathBuf,
        /// Why.
        source: PolicyError,
    },
    /// Loading the stages, warm-up or a run failed.
    #[error(transparent)]
    Cascade(#[from] CascadeError),
    /// A frame did not fit the bundle's input.
    #[error(transparent)]
    Frame(#[from] PreprocessError),
}

/// What the cascade runs on, for logs, `status` and metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BackendInfo {
    /// Full name, e.g. "cpu (onnxruntime 1.31.1, 2 threads)".
    pub name: String,
    /// "cpu" or "tensorrt".
    pub kind: String,
    /// "fp32" (CPU) or the engines' precision.
    pub precision: String,
    /// The file each stage runs (ONNX on the CPU, engine plans on TensorRT).
    pub stage_files: Vec<String>,
    /// Why the backend is not the one asked for (`auto` fell back), if so.
    pub note: Option<String>,
    /// Why the CPU backend runs on tract, if it does (ONNX Runtime did not load).
    pub cpu_fallback: Option<String>,
    /// `"<backend>-<precision>"` of the calibration in use.
    pub calibration: String,
}

/// One batch's answers with what the controller chose for it.
#[derive(Debug, Clone)]
pub struct AdaptiveBatch {
    /// Decisions (input order) and per-stage timings.
    pub result: BatchResult,
    /// The thresholds the batch ran with.
    pub thresholds: Vec<f32>,
    /// Wall time of the cascade call.
    pub compute: Duration,
}

/// A warm cascade that meets a budget (see the module docs).
pub struct AdaptiveCascade {
    cascade: Cascade<AnyBackend>,
    table: OperatingTable,
    controller_config: ControllerConfig,
    controller: Controller,
    labels: Vec<String>,
    input: InputSpec,
    name: String,
    dir: PathBuf,
    info: BackendInfo,
    warnings: Vec<String>,
}

impl AdaptiveCascade {
    /// Loads and validates the bundle in `dir`, opens the backend, picks the calibration that
    /// matches it, loads every stage and runs warm-up frames (every stage, every batch size up to
    /// `max_batch`), so the first frame is served warm and a broken bundle fails here.
    pub fn load(dir: impl AsRef<Path>, options: &AdaptiveOptions) -> Result<Self, AdaptiveError> {
        let dir = dir.as_ref().to_path_buf();
        let bundle = Bundle::load(&dir).map_err(|e| AdaptiveError::Bundle {
            dir: dir.clone(),
            source: Box::new(e),
        })?;
        let selected = select::open(&options.backend, &bundle)?;
        let notes = selected.notes();
        let cpu_fallback = selected
            .backend
            .as_cpu()
            .and_then(|c| c.fallback())
            .map(str::to_string);
        let backend_name = selected.backend.name();
        let kind = selected.backend.kind().to_string();
        let precision = selected.backend.precision();
        let mut cascade = Cascade::load(selected.backend, &bundle)?;
        let stage_files: Vec<String> = cascade
            .stages()
            .iter()
            .map(|s| s.source().display().to_string())
            .collect();
        let engine_names = cascade.backend().engine_names(cascade.stages());
        let m = &bundle.manifest;
        let choice = m.calibration_for(&kind, &precision, &engine_names);
        let mut warnings = notes;
        warnings.extend(choice.warning.clone());
        if let Some(timed_on) = choice.timed_on {
            if timed_on != backend_name && choice.points.iter().any(|p| p.expected_ms.is_some()) {
                warnings.push(format!(
                    "the bundle's stage times were measured on {timed_on}, this daemon runs \
                     {backend_name}: ms and images/s budgets start off by their speed ratio \
                     until the controller's drift estimate corrects it (re-run dvt calibrate \
                     here)"
                ));
            }
        }
        let table =
            OperatingTable::from_calibration(choice.points, m.stages.len()).map_err(|source| {
                AdaptiveError::Policy {
                    dir: dir.clone(),
                    source,
                }
            })?;
        let input = m.model.input.clone();
        let never_exit = vec![2.0f32; cascade.num_stages().saturating_sub(1)];
        for n in 1..=options.max_batch.max(1) {
            let zeros = Array4::<f32>::zeros((n, input.channels, input.height, input.width));
            cascade.classify(zeros.into_dyn(), &never_exit)?;
        }
        let info = BackendInfo {
            name: backend_name,
            kind,
            precision,
            stage_files,
            note: selected.note,
            cpu_fallback,
            calibration: choice.id(),
        };
        Ok(Self {
            controller: Controller::new(table.clone(), options.controller.clone()),
            controller_config: options.controller.clone(),
            table,
            cascade,
            labels: m.model.classes.clone(),
            input,
            name: m.model.name.clone(),
            dir,
            info,
            warnings,
        })
    }

    /// Classifies a normalised batch `[N, C, H, W]` with the controller's current thresholds and
    /// feeds the realised cost (and `power_watts`, when a power source reads it) back to it.
    pub fn classify_batch(
        &mut self,
        images: HostTensor,
        power_watts: Option<f64>,
    ) -> Result<AdaptiveBatch, AdaptiveError> {
        let thresholds = self.controller.thresholds();
        let n = images.shape().first().copied().unwrap_or(0).max(1);
        let start = Instant::now();
        let result = self.cascade.classify(images, &thresholds)?;
        let compute = start.elapsed();
        let ms_each = compute.as_secs_f64() * 1e3 / n as f64;
        for d in &result.decisions {
            self.controller.observe(d.gflops, ms_each, power_watts);
        }
        Ok(AdaptiveBatch {
            result,
            thresholds,
            compute,
        })
    }

    /// Classifies a normalised batch `[N, C, H, W]` with fixed `thresholds` (one per stage but
    /// the last, e.g. those of an operating point from [`AdaptiveCascade::table`]), bypassing
    /// the controller: it neither chooses them nor observes the cost, so a server pinned to one
    /// point answers exactly like `dvt eval --point` and a later budget starts from a clean
    /// controller state.
    pub fn classify_batch_with(
        &mut self,
        images: HostTensor,
        thresholds: &[f32],
    ) -> Result<AdaptiveBatch, AdaptiveError> {
        let start = Instant::now();
        let result = self.cascade.classify(images, thresholds)?;
        Ok(AdaptiveBatch {
            result,
            thresholds: thresholds.to_vec(),
            compute: start.elapsed(),
        })
    }

    /// Classifies `n` raw 8-bit HWC frames of the bundle's input size (normalised as the
    /// manifest says).
    pub fn classify_u8_hwc(
        &mut self,
        pixels: &[u8],
        n: usize,
    ) -> Result<Vec<Decision>, AdaptiveError> {
        let images = normalize_u8_hwc(pixels, n, &self.input)?;
        Ok(self.classify_batch(images, None)?.result.decisions)
    }

    /// Sets the budget (`None`: no budget, the most accurate point).
    pub fn set_budget(&mut self, budget: Option<Budget>) {
        match budget {
            Some(b) => self.controller.set_budget(b),
            // The controller has no "no budget": start over on the most accurate point.
            None => {
                self.controller =
                    Controller::new(self.table.clone(), self.controller_config.clone())
            }
        }
    }

    /// The controller's state (budget, mix of points, drift).
    pub fn state(&self) -> ControllerState {
        self.controller.state()
    }

    /// The label of class `class` (empty when the bundle names none).
    pub fn label(&self, class: usize) -> &str {
        self.labels.get(class).map_or("", String::as_str)
    }

    /// Every label, by class id.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The input the bundle takes.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// Model name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bundle folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of stages.
    pub fn num_stages(&self) -> usize {
        self.cascade.num_stages()
    }

    /// What the stages run on.
    pub fn backend(&self) -> &BackendInfo {
        &self.info
    }

    /// What the caller should tell the user: a backend fallback, a calibration made elsewhere.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The operating table in use.
    pub fn table(&self) -> &OperatingTable {
        &self.table
    }
}
