//! The schema of a `dvt` model's `config.pbtxt` `parameters`: read (by the backend) and
//! written (by `dvt triton-repo`) by the same code.

use super::{TritonRepoError, DEFAULT_BUNDLE};
use crate::backend::cpu::CpuRuntime;
use crate::backend::select::{batch_profile, BackendKind};
use crate::engine_build::{BatchProfile, Precision};
use crate::policy::Budget;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the cascade answers with when no client has set a budget.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultMode {
    /// The most accurate operating point (no budget).
    MostAccurate,
    /// This operating point's thresholds, fixed (answers equal `dvt eval --point NAME`).
    Point(String),
    /// This budget, through the closed-loop controller.
    Budget(Budget),
}

/// The `parameters` of a `dvt` model's `config.pbtxt`, every value a string.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParams {
    /// `bundle`: the bundle folder, relative to the model's version folder or absolute.
    pub bundle: PathBuf,
    /// `backend`: `cpu`, `tensorrt` (KIND_GPU instances) or `auto` (TensorRT on a GPU
    /// instance whose engines are built, else the CPU).
    pub backend: BackendKind,
    /// `cpu_runtime`: the CPU backend's runtime, `auto` (ONNX Runtime if it loads, else
    /// tract), `ort`, `tract` (`engine`, its old name, is read too).
    pub cpu_runtime: CpuRuntime,
    /// `threads`: CPU threads, 0 for one per core (ONNX Runtime keeps one pool per process:
    /// the first model loaded sets it).
    pub threads: usize,
    /// `precision`: the TensorRT engines' precision, `fp16` or `fp32`.
    pub precision: Precision,
    /// `batch_profile`: `min,opt,max` the TensorRT engines were built with.
    pub batch_profile: BatchProfile,
    /// `point` or `budget` (at most one of them; neither: the most accurate point).
    pub default: DefaultMode,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            bundle: PathBuf::from(DEFAULT_BUNDLE),
            backend: BackendKind::Cpu,
            cpu_runtime: CpuRuntime::Auto,
            threads: 0,
            precision: Precision::Fp16,
            batch_profile: BatchProfile::DEFAULT,
            default: DefaultMode::MostAccurate,
        }
    }
}

/// Every parameter key the backend reads (others are refused, so a typo cannot go unnoticed).
pub const PARAMETER_KEYS: [&str; 9] = [
    "bundle",
    "backend",
    "cpu_runtime",
    "engine",
    "threads",
    "precision",
    "batch_profile",
    "point",
    "budget",
];

/// A setting with a few named values, written as `Display` writes them (the names the
/// command line takes too; the library parses them without clap, which only the `cli` feature
/// brings).
trait Choice: Copy + std::fmt::Display + 'static {
    /// Every value.
    const ALL: &'static [Self];
}

impl Choice for BackendKind {
    const ALL: &'static [Self] = &[BackendKind::Auto, BackendKind::Cpu, BackendKind::Tensorrt];
}

impl Choice for CpuRuntime {
    const ALL: &'static [Self] = &[CpuRuntime::Auto, CpuRuntime::Tract, CpuRuntime::Ort];
}

impl Choice for Precision {
    const ALL: &'static [Self] = &[Precision::Fp16, Precision::Fp32];
}

/// Parses `v` as one of `T`'s names (case-insensitive), or says which ones there are.
fn value_enum<T: Choice>(key: &str, v: &str) -> Result<T, TritonRepoError> {
    T::ALL
        .iter()
        .find(|x| x.to_string().eq_ignore_ascii_case(v.trim()))
        .copied()
        .ok_or_else(|| {
            let names: Vec<String> = T::ALL.iter().map(|x| x.to_string()).collect();
            TritonRepoError::Invalid(format!(
                "parameter {key}: '{v}' is not one of {}",
                names.join(", ")
            ))
        })
}

/// The name [`value_enum`] reads back as `v`.
fn name_of<T: Choice>(v: &T) -> String {
    v.to_string()
}

impl ModelParams {
    /// Reads the parameters from `key -> string_value` (the model config's `parameters`).
    /// Missing keys take their defaults; unknown keys, bad values, and `point` with `budget`
    /// are errors that name the key.
    pub fn parse(map: &BTreeMap<String, String>) -> Result<Self, TritonRepoError> {
        if let Some(k) = map.keys().find(|k| !PARAMETER_KEYS.contains(&k.as_str())) {
            return Err(TritonRepoError::Invalid(format!(
                "unknown parameter '{k}' (the dvt backend reads: {})",
                PARAMETER_KEYS.join(", ")
            )));
        }
        let get = |k: &str| map.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut p = ModelParams::default();
        if let Some(v) = get("bundle") {
            p.bundle = PathBuf::from(v);
        }
        if let Some(v) = get("backend") {
            p.backend = value_enum("backend", v)?;
        }
        if get("cpu_runtime").is_some() && get("engine").is_some() {
            return Err(TritonRepoError::Invalid(
                "parameters cpu_runtime and engine are one setting (engine is its old name): \
                 give one"
                    .into(),
            ));
        }
        for key in ["cpu_runtime", "engine"] {
            if let Some(v) = get(key) {
                p.cpu_runtime = value_enum(key, v)?;
            }
        }
        if let Some(v) = get("threads") {
            p.threads = v.parse().map_err(|_| {
                TritonRepoError::Invalid(format!(
                    "parameter threads: '{v}' is not a whole number (0: one per core)"
                ))
            })?;
        }
        if let Some(v) = get("precision") {
            p.precision = value_enum("precision", v)?;
        }
        if let Some(v) = get("batch_profile") {
            let nums: Result<Vec<usize>, _> = v.split(',').map(|s| s.trim().parse()).collect();
            p.batch_profile = nums
                .ok()
                .and_then(|n| batch_profile(&n).ok())
                .ok_or_else(|| {
                    TritonRepoError::Invalid(format!(
                        "parameter batch_profile: '{v}' is not min,opt,max with 1 <= min <= \
                         opt <= max"
                    ))
                })?;
        }
        p.default = match (get("point"), get("budget")) {
            (Some(_), Some(_)) => {
                return Err(TritonRepoError::Invalid(
                    "parameters point and budget are both set: give one (or neither, for the \
                     most accurate point)"
                        .into(),
                ))
            }
            (Some(point), None) => DefaultMode::Point(point.to_string()),
            (None, Some(b)) => DefaultMode::Budget(
                b.parse()
                    .map_err(|e| TritonRepoError::Invalid(format!("parameter budget: {e}")))?,
            ),
            (None, None) => DefaultMode::MostAccurate,
        };
        Ok(p)
    }

    /// The parameters as `key -> string_value`, every key present ([`ModelParams::parse`]
    /// reads them back unchanged).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| m.insert(k.to_string(), v);
        put("bundle", self.bundle.display().to_string());
        put("backend", name_of(&self.backend));
        put("cpu_runtime", name_of(&self.cpu_runtime));
        put("threads", self.threads.to_string());
        put("precision", name_of(&self.precision));
        let b = self.batch_profile;
        put("batch_profile", format!("{},{},{}", b.min, b.opt, b.max));
        let (point, budget) = match &self.default {
            DefaultMode::MostAccurate => (String::new(), String::new()),
            DefaultMode::Point(p) => (p.clone(), String::new()),
            DefaultMode::Budget(b) => (String::new(), b.to_string()),
        };
        put("point", point);
        put("budget", budget);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_read_back_what_was_written() {
        let p = ModelParams {
            bundle: PathBuf::from("/srv/b"),
            backend: BackendKind::Tensorrt,
            cpu_runtime: CpuRuntime::Ort,
            threads: 3,
            precision: Precision::Fp32,
            batch_profile: BatchProfile::new(1, 4, 16).unwrap(),
            default: DefaultMode::Budget("0.01gflops".parse().unwrap()),
        };
        assert_eq!(ModelParams::parse(&p.to_map()).unwrap(), p);
        let q = ModelParams {
            default: DefaultMode::Point("frontier-05".into()),
            ..ModelParams::default()
        };
        assert_eq!(ModelParams::parse(&q.to_map()).unwrap(), q);
        assert_eq!(
            ModelParams::parse(&BTreeMap::new()).unwrap(),
            ModelParams::default()
        );
    }

    #[test]
    fn bad_parameters_name_the_key() {
        let e = |kv: &[(&str, &str)]| ModelParams::parse(&map(kv)).unwrap_err().to_string();
        assert!(e(&[("backend", "gpu")]).contains("parameter backend: 'gpu'"));
        assert!(e(&[("threads", "-1")]).contains("parameter threads"));
        assert!(e(&[("budget", "fast")]).contains("parameter budget"));
        assert!(e(&[("point", "a"), ("budget", "1ms")]).contains("both set"));
        assert!(e(&[("thread", "2")]).contains("unknown parameter 'thread'"));
        assert!(e(&[("batch_profile", "4,2,8")]).contains("batch_profile"));
    }
}
