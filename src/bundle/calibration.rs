//! Calibrations per backend and precision.
//!
//! Exit thresholds read softmax confidences, and ms budgets read stage times; both depend on
//! where the stages run (an FP16 TensorRT engine shifts confidences; a Jetson's stage times are not
//! a desktop CPU's). The manifest's top-level `operating_points` (with `model.timed_on`) are the
//! CPU FP32 calibration; `[[calibrations]]` hold the others (`dvt calibrate --backend tensorrt`),
//! each with the engine files it was made with. [`Manifest::calibration_for`] picks the one that
//! matches the running backend, and the CPU one with a warning when none does.

use super::manifest::{Manifest, OperatingPoint};
use serde::{Deserialize, Serialize};

/// The backend name of the top-level (CPU, FP32) calibration.
pub const CPU: &str = "cpu";
/// The precision of the CPU calibration (the CPU runs the FP32 ONNX).
pub const CPU_PRECISION: &str = "fp32";
/// Backends a `[[calibrations]]` entry may name.
pub const BACKENDS: &[&str] = &["tensorrt"];
/// Precisions a `[[calibrations]]` entry may name.
pub const PRECISIONS: &[&str] = &["fp16", "fp32"];

/// A calibration made on another backend than the CPU.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// Backend it was made on: "tensorrt".
    pub backend: String,
    /// Precision of the engines: "fp16" or "fp32".
    pub precision: String,
    /// The backend's full name as it ran, e.g. "tensorrt 10.3.0 (Orin, sm 8.7, fp16)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_on: Option<String>,
    /// Engine file of each stage it was made with (`trt/<stage>.<precision>.<key>.plan`).
    #[serde(default)]
    pub engines: Vec<String>,
    /// Folder inside the bundle with its records, e.g. "calibration/tensorrt-fp16".
    pub records: String,
    /// Its operating points (same meaning as the top-level ones).
    #[serde(default)]
    pub operating_points: Vec<OperatingPoint>,
}

impl Calibration {
    /// `"<backend>-<precision>"`, the name of its records folder.
    pub fn id(&self) -> String {
        id(&self.backend, &self.precision)
    }
}

/// `"<backend>-<precision>"`.
pub fn id(backend: &str, precision: &str) -> String {
    format!("{backend}-{precision}")
}

/// The calibration a backend runs with, and what to warn about.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationChoice<'a> {
    /// Backend of the chosen calibration ("cpu" when falling back).
    pub backend: String,
    /// Its precision.
    pub precision: String,
    /// Its operating points.
    pub points: &'a [OperatingPoint],
    /// Where its stage times were measured.
    pub timed_on: Option<&'a str>,
    /// Set when the calibration does not match the running backend exactly.
    pub warning: Option<String>,
}

impl CalibrationChoice<'_> {
    /// `"<backend>-<precision>"` of the chosen calibration.
    pub fn id(&self) -> String {
        id(&self.backend, &self.precision)
    }
}

impl Manifest {
    /// The calibration for a backend `backend` ("cpu", "tensorrt") running at `precision` with
    /// stage files `engines` (engine file names; empty on the CPU).
    pub fn calibration_for(
        &self,
        backend: &str,
        precision: &str,
        engines: &[String],
    ) -> CalibrationChoice<'_> {
        let cpu = |warning: Option<String>| CalibrationChoice {
            backend: CPU.into(),
            precision: CPU_PRECISION.into(),
            points: &self.operating_points,
            timed_on: self.model.timed_on.as_deref(),
            warning,
        };
        if backend == CPU {
            return cpu(None);
        }
        let Some(c) = self
            .calibrations
            .iter()
            .find(|c| c.backend == backend && c.precision == precision)
        else {
            return cpu(Some(format!(
                "the bundle has no {backend} {precision} calibration: using the CPU one (its \
                 thresholds assume FP32 confidences and its ms budgets CPU stage times); run \
                 `dvt calibrate --backend {backend} --precision {precision}` on this device"
            )));
        };
        let warning = (!c.engines.is_empty() && c.engines != engines).then(|| {
            format!(
                "the {backend} {precision} calibration was made with engines {:?}, this device \
                 runs {engines:?}: its stage times may not hold here; re-run `dvt calibrate \
                 --backend {backend} --precision {precision}`",
                c.engines
            )
        });
        CalibrationChoice {
            backend: c.backend.clone(),
            precision: c.precision.clone(),
            points: &c.operating_points,
            timed_on: c.timed_on.as_deref(),
            warning,
        }
    }

    /// Checks the calibrations: known backend and precision, one per pair, an engine per stage,
    /// a threshold per non-final stage. Returns the first problem as one line.
    pub fn check_calibrations(&self) -> Result<(), String> {
        let stages = self.stages.len();
        let check_points = |what: &str, points: &[OperatingPoint]| {
            for p in points {
                if p.thresholds.len() + 1 != stages {
                    return Err(format!(
                        "{what}: operating point {} has {} thresholds, the cascade needs {}",
                        p.name,
                        p.thresholds.len(),
                        stages.saturating_sub(1)
                    ));
                }
                if p.thresholds.iter().any(|t| !t.is_finite()) {
                    return Err(format!(
                        "{what}: operating point {} has a non-finite threshold",
                        p.name
                    ));
                }
            }
            Ok(())
        };
        for (i, c) in self.calibrations.iter().enumerate() {
            let what = format!("calibrations[{i}] ({} {})", c.backend, c.precision);
            if c.backend == CPU {
                return Err(format!(
                    "{what}: the CPU calibration is the top-level operating_points, not an entry"
                ));
            }
            if !BACKENDS.contains(&c.backend.as_str()) {
                return Err(format!(
                    "{what}: unknown backend (known: {})",
                    BACKENDS.join(", ")
                ));
            }
            if !PRECISIONS.contains(&c.precision.as_str()) {
                return Err(format!(
                    "{what}: unknown precision (known: {})",
                    PRECISIONS.join(", ")
                ));
            }
            if self.calibrations[..i]
                .iter()
                .any(|o| o.backend == c.backend && o.precision == c.precision)
            {
                return Err(format!(
                    "{what}: a second calibration for the same backend and precision"
                ));
            }
            if !c.engines.is_empty() && c.engines.len() != stages {
                return Err(format!(
                    "{what}: {} engine files for {stages} stages",
                    c.engines.len()
                ));
            }
            if c.records.contains("..") || c.records.starts_with('/') {
                return Err(format!(
                    "{what}: records must be a folder inside the bundle"
                ));
            }
            check_points(&what, &c.operating_points)?;
        }
        Ok(())
    }
}
