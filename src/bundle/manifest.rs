//! Serde types of `manifest.toml`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Manifest format version (1).
    pub format: u32,
    /// What the model is and what it eats.
    pub model: ModelInfo,
    /// Stages in cascade order.
    pub stages: Vec<StageSpec>,
    /// Static (non-cascade) models of the same backbone, for comparison.
    #[serde(default)]
    pub baselines: Vec<Baseline>,
    /// Threshold vectors with their expected cost and accuracy (`dvt calibrate`, or a checkpoint).
    #[serde(default)]
    pub operating_points: Vec<OperatingPoint>,
    /// Calibrations made on other backends than the CPU (see [`super::calibration`]); the
    /// top-level `operating_points` are the CPU FP32 one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibrations: Vec<super::calibration::Calibration>,
}

/// Model-wide facts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// Short name.
    pub name: String,
    /// One line on what it is.
    #[serde(default)]
    pub description: String,
    /// Class labels, index = class id.
    pub classes: Vec<String>,
    /// Input geometry and normalisation.
    pub input: InputSpec,
    /// Free-form backbone facts (dims, depth, ...), kept for reports.
    #[serde(default)]
    pub backbone: Option<toml::Table>,
    /// Which data the stored accuracies were measured on.
    #[serde(default)]
    pub accuracy_split: Option<String>,
    /// Which data the operating points were calibrated on.
    #[serde(default)]
    pub calibration_split: Option<String>,
    /// How `tools/train.py` split an image folder without `train/`/`val/` sub-folders: the
    /// held-out images are that folder's calibration and test split (see [`crate::data::folder`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
    /// The backend the operating points' `expected_ms` were timed on (`dvt calibrate`), e.g.
    /// "cpu (onnxruntime 1.31.1, 1 threads)": ms and images/s budgets assume its speed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_on: Option<String>,
}

/// The seeded split of a flat image folder: in each class, the `percent`% of files that come
/// first in sha256(`"{seed}:{class}/{file}"`) order are held out from training.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holdout {
    /// Seed mixed into the hash.
    pub seed: u64,
    /// Share of each class held out, in percent.
    pub percent: u32,
}

/// Input geometry and normalisation: `x = (pixel / scale - mean[c]) / std[c]`, after the
/// torchvision-style geometry step `Resize(resize)` + `CenterCrop(height, width)` for pictures
/// of any other size (see [`crate::data::image`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputSpec {
    /// Image height the stages expect.
    pub height: usize,
    /// Image width the stages expect.
    pub width: usize,
    /// Channels (1 grey, 3 RGB).
    pub channels: usize,
    /// Tensor layout of the `image` input (only "NCHW").
    pub layout: String,
    /// Divisor that maps raw pixels to [0, 1] (255 for 8-bit images).
    pub scale: f32,
    /// Per-channel mean after scaling.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation after scaling.
    pub std: Vec<f32>,
    /// Shorter side a picture is resized to before the centre crop (torchvision
    /// `Resize(resize)`; e.g. 256 for 224 models); absent: the larger of `height` and `width`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<usize>,
    /// Resampling filter of that resize (PIL's, antialiased); absent: bilinear, torchvision's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolation: Option<crate::data::image::Interpolation>,
}

impl InputSpec {
    /// The shorter side pictures are resized to (`resize`, else `max(height, width)`).
    pub fn resize_shorter(&self) -> usize {
        self.resize.unwrap_or(self.height.max(self.width))
    }
}

/// One cascade stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageSpec {
    /// Stage name ("stage1", ...).
    pub name: String,
    /// Token grid [rows, cols].
    pub grid: [usize; 2],
    /// ONNX file, relative to the bundle directory.
    pub onnx: String,
    /// sha256 of the ONNX file (hex); checked at load when present.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Cost of this stage alone, GFLOPs (multiply-adds) per image.
    pub gflops: f64,
    /// Cost of exiting here: this stage and all before it.
    pub cumulative_gflops: f64,
    /// This stage's own accuracy on `accuracy_split`, exit forced here (informative).
    #[serde(default)]
    pub test_accuracy: Option<f64>,
    /// Inputs, in ONNX order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in ONNX order.
    pub outputs: Vec<TensorSpec>,
}

impl StageSpec {
    /// The input named `name`, if declared.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.name == name)
    }
    /// The output named `name`, if declared.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.name == name)
    }
}

/// A named tensor with a shape whose first axis is usually the symbolic batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TensorSpec {
    /// Tensor name in the ONNX graph.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<Dim>,
    /// Element type.
    pub dtype: DType,
}

impl TensorSpec {
    /// Elements per batch item (product of the fixed dimensions).
    pub fn elements_per_item(&self) -> usize {
        self.shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Symbol(_) => 1,
            })
            .product()
    }

    /// Shape with the symbolic dimensions set to `batch`.
    pub fn concrete_shape(&self, batch: usize) -> Vec<usize> {
        self.shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Symbol(_) => batch,
            })
            .collect()
    }
}

/// One dimension: a fixed size or a symbol (the batch axis).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size, e.g. "batch".
    Symbol(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => write!(f, "{s}"),
        }
    }
}

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        })
    }
}

/// A static baseline model (one grid, no reuse).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    /// Name, e.g. "static-14x14".
    pub name: String,
    /// Token grid.
    pub grid: [usize; 2],
    /// ONNX file, if shipped.
    #[serde(default)]
    pub onnx: Option<String>,
    /// sha256 of the ONNX file.
    #[serde(default)]
    pub sha256: Option<String>,
    /// GFLOPs per image.
    pub gflops: f64,
    /// Accuracy on the model's `accuracy_split`.
    pub accuracy: f64,
}

/// A threshold vector with its expected behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OperatingPoint {
    /// Name, e.g. "frontier-07" or "official-p20".
    pub name: String,
    /// Who produced it: "official" (geometric schedule), "frontier" (our solver), "checkpoint".
    pub source: String,
    /// One threshold per non-final stage (the final stage always answers).
    pub thresholds: Vec<f32>,
    /// Expected fraction of images exiting at each stage.
    #[serde(default)]
    pub exit_fractions: Vec<f64>,
    /// Expected GFLOPs per image.
    pub expected_gflops: f64,
    /// Expected milliseconds per image on the calibrating backend, if measured.
    #[serde(default)]
    pub expected_ms: Option<f64>,
    /// Accuracy on the calibration split (or as reported by the checkpoint).
    #[serde(default)]
    pub accuracy: Option<f64>,
}

impl Manifest {
    /// Parses manifest TOML text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Serialises back to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("manifest types always serialise")
    }
}
