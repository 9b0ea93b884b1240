//! `dvt triton-repo`: a ready NVIDIA Triton model repository for the `dvt` backend
//! (`triton/`, `libtriton_dvt.so`), and the schema of that backend's `config.pbtxt` parameters.
//!
//! The layout written (README.md, "Serving at scale with Triton"):
//!
//! ```text
//! REPO/
//!   <model>/
//!     config.pbtxt      backend "dvt", IMAGE in, CLASS/LABEL/CONFIDENCE/EXIT_STAGE/GFLOPS out,
//!                       dynamic batcher, instance group, parameters (see [`ModelParams`])
//!     1/bundle/         a copy of the bundle (manifest, stages, calibration, engines if built)
//! ```
//!
//! [`ModelParams`] is both what this command writes and what the backend reads back, so the
//! two cannot disagree on a key or a value's spelling.

use crate::backend::cpu::EngineChoice;
use crate::backend::select::{batch_profile, BackendKind};
use crate::bundle::Bundle;
use crate::engines::{BatchProfile, Precision};
use crate::policy::Budget;
use clap::ValueEnum;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Name of the image input (UINT8, `[batch, H, W, C]`, any H/W, C of 1, 3 or 4).
pub const INPUT_IMAGE: &str = "IMAGE";
/// The outputs, each `[batch, 1]`: name and Triton config data type.
pub const OUTPUTS: [(&str, &str); 5] = [
    ("CLASS", "TYPE_INT32"),
    ("LABEL", "TYPE_STRING"),
    ("CONFIDENCE", "TYPE_FP32"),
    ("EXIT_STAGE", "TYPE_INT32"),
    ("GFLOPS", "TYPE_FP32"),
];
/// The request parameter that sets the model's budget at run time (see the backend's docs).
pub const BUDGET_PARAMETER: &str = "budget";
/// The model version folder `dvt triton-repo` writes.
pub const VERSION: &str = "1";
/// The default `bundle` parameter: the bundle's folder inside the version folder.
pub const DEFAULT_BUNDLE: &str = "bundle";

/// Why a repository could not be written or a model's parameters are unusable.
#[derive(Debug, thiserror::Error)]
pub enum TritonRepoError {
    /// The bundle did not load.
    #[error("bundle {dir}: {source}")]
    Bundle {
        /// Bundle folder.
        dir: PathBuf,
        /// Why.
        source: Box<crate::bundle::BundleError>,
    },
    /// A parameter or option that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File or folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TritonRepoError + '_ {
    move |source| TritonRepoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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
    /// `engine`: the CPU engine, `auto` (ONNX Runtime if it loads, else tract), `ort`, `tract`.
    pub engine: EngineChoice,
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
            engine: EngineChoice::Auto,
            threads: 0,
            precision: Precision::Fp16,
            batch_profile: BatchProfile::DEFAULT,
            default: DefaultMode::MostAccurate,
        }
    }
}

/// Every parameter key the backend reads (others are refused, so a typo cannot go unnoticed).
pub const PARAMETER_KEYS: [&str; 8] = [
    "bundle",
    "backend",
    "engine",
    "threads",
    "precision",
    "batch_profile",
    "point",
    "budget",
];

fn value_enum<T: ValueEnum>(key: &str, v: &str) -> Result<T, TritonRepoError> {
    T::from_str(v.trim(), true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|x| x.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        TritonRepoError::Invalid(format!(
            "parameter {key}: '{v}' is not one of {}",
            names.join(", ")
        ))
    })
}

fn name_of<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
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
        if let Some(v) = get("engine") {
            p.engine = value_enum("engine", v)?;
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
        put("engine", name_of(&self.engine));
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

/// The model-level settings of a config beyond [`ModelParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct RepoConfig {
    /// Model name (the repository folder and `name:`).
    pub name: String,
    /// `max_batch_size`: most images in one cascade batch (one request may carry several).
    pub max_batch: usize,
    /// `dynamic_batching.max_queue_delay_microseconds`.
    pub queue_delay_us: u64,
    /// Instances (`instance_group.count`); each has its own cascade and controller.
    pub instances: usize,
    /// The backend's parameters.
    pub params: ModelParams,
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

impl RepoConfig {
    /// The `config.pbtxt` text (protobuf text format), commented.
    pub fn to_pbtxt(&self, bundle: &Bundle) -> String {
        let m = &bundle.manifest;
        let i = &m.model.input;
        // KIND_GPU for TensorRT (its device comes from the instance), KIND_AUTO for `auto`
        // (GPU instances where Triton sees a GPU, CPU ones elsewhere).
        let kind = match self.params.backend {
            BackendKind::Cpu => "KIND_CPU",
            BackendKind::Tensorrt => "KIND_GPU",
            BackendKind::Auto => "KIND_AUTO",
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Written by `dvt triton-repo` for bundle {} ({} stages, takes {}x{}x{}, {} classes).\n\
             # Served by the dvt backend (backends/dvt/libtriton_dvt.so); see README.md, \"Serving at\n\
             # scale with Triton\". IMAGE: UINT8 [batch, H, W, C], any H and W, C = 1, 3 or 4 (resized\n\
             # and normalised like dvtd's frames). EXIT_STAGE is 1-based. A request parameter\n\
             # \"{BUDGET_PARAMETER}\" (e.g. \"0.01gflops\", \"3ms\", \"300ips\", \"none\", \"default\") sets the model's budget.",
            m.model.name,
            m.stages.len(),
            i.height,
            i.width,
            i.channels,
            m.model.classes.len()
        );
        let _ = writeln!(s, "name: {}", quote(&self.name));
        let _ = writeln!(s, "backend: \"dvt\"");
        let _ = writeln!(s, "max_batch_size: {}", self.max_batch);
        let _ = writeln!(s, "input [");
        let _ = writeln!(s, "  {{");
        let _ = writeln!(s, "    name: \"{INPUT_IMAGE}\"");
        let _ = writeln!(s, "    data_type: TYPE_UINT8");
        let _ = writeln!(s, "    dims: [ -1, -1, -1 ]");
        let _ = writeln!(
            s,
            "    # Requests of different image sizes share a batch: the backend converts each."
        );
        let _ = writeln!(s, "    allow_ragged_batch: true");
        let _ = writeln!(s, "  }}");
        let _ = writeln!(s, "]");
        let _ = writeln!(s, "output [");
        for (k, (name, ty)) in OUTPUTS.iter().enumerate() {
            let comma = if k + 1 < OUTPUTS.len() { "," } else { "" };
            let _ = writeln!(
                s,
                "  {{ name: \"{name}\" data_type: {ty} dims: [ 1 ] }}{comma}"
            );
        }
        let _ = writeln!(s, "]");
        let _ = writeln!(s, "# The requests of one batch run as one cascade batch.");
        let _ = writeln!(
            s,
            "dynamic_batching {{ max_queue_delay_microseconds: {} }}",
            self.queue_delay_us
        );
        let _ = writeln!(
            s,
            "instance_group [ {{ count: {} kind: {kind} }} ]",
            self.instances
        );
        let _ = writeln!(s, "parameters [");
        let map = self.params.to_map();
        for (k, (key, value)) in map.iter().enumerate() {
            let comma = if k + 1 < map.len() { "," } else { "" };
            let _ = writeln!(
                s,
                "  {{ key: {} value: {{ string_value: {} }} }}{comma}",
                quote(key),
                quote(value)
            );
        }
        let _ = writeln!(s, "]");
        s
    }
}

/// `dvt triton-repo`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TritonRepoArgs {
    /// Bundle directory (copied into the repository).
    #[arg(long, default_value = "engines/fmnist-dvt")]
    pub bundle: PathBuf,
    /// Model repository to write (created if missing; other models in it are left alone).
    #[arg(long)]
    pub out: PathBuf,
    /// Model name (default: the bundle's model name).
    #[arg(long)]
    pub name: Option<String>,
    /// Backend: cpu, tensorrt (KIND_GPU instances), auto (KIND_AUTO: TensorRT on GPU
    /// instances whose engines are built, else the CPU).
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// CPU engine: auto, ort, tract.
    #[arg(long, value_enum, default_value_t = EngineChoice::Auto)]
    pub engine: EngineChoice,
    /// CPU threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// TensorRT engine precision.
    #[arg(long, value_enum, default_value_t = Precision::Fp16)]
    pub precision: Precision,
    /// TensorRT batch profile min,opt,max the engines were built with.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 1, 32])]
    pub batch_profile: Vec<usize>,
    /// Answer at this operating point of the manifest until a client sets a budget.
    #[arg(long, conflicts_with = "budget")]
    pub point: Option<String>,
    /// Start with this budget (e.g. 0.01gflops, 3ms, 300ips).
    #[arg(long)]
    pub budget: Option<String>,
    /// max_batch_size: most images per cascade batch.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// The dynamic batcher's max_queue_delay_microseconds. 0: no window; requests that queue
    /// while the instance is busy still share the next batch, and a lone request does not wait
    /// (a window pays off only for many open-loop streams).
    #[arg(long, default_value_t = 0)]
    pub queue_delay_us: u64,
    /// Model instances (each its own cascade).
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// Replace the model's folder if it exists.
    #[arg(long)]
    pub force: bool,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Writes the repository `args` ask for; returns the model folder.
pub fn write_repo(args: &TritonRepoArgs) -> Result<PathBuf, TritonRepoError> {
    let bundle = Bundle::load(&args.bundle).map_err(|e| TritonRepoError::Bundle {
        dir: args.bundle.clone(),
        source: Box::new(e),
    })?;
    let m = &bundle.manifest;
    let name = args.name.clone().unwrap_or_else(|| m.model.name.clone());
    if !valid_name(&name) {
        return Err(TritonRepoError::Invalid(format!(
            "model name '{name}': use letters, digits, '-', '_' and '.' (it is a folder name)"
        )));
    }
    if args.max_batch == 0 || args.instances == 0 {
        return Err(TritonRepoError::Invalid(
            "--max-batch and --instances must be at least 1 (the dynamic batcher needs \
             max_batch_size > 0)"
                .into(),
        ));
    }
    let profile =
        batch_profile(&args.batch_profile).map_err(|e| TritonRepoError::Invalid(e.to_string()))?;
    if args.backend != BackendKind::Cpu && args.max_batch > profile.max {
        return Err(TritonRepoError::Invalid(format!(
            "--max-batch {} is above the TensorRT batch profile's max {} (build the engines \
             with `dvt build --batch 1,1,{}` and pass the same --batch-profile)",
            args.max_batch, profile.max, args.max_batch
        )));
    }
    let default = match (&args.point, &args.budget) {
        (Some(p), _) => {
            let known = m
                .operating_points
                .iter()
                .chain(m.calibrations.iter().flat_map(|c| &c.operating_points))
                .any(|op| &op.name == p);
            if !known {
                let names: Vec<&str> = m.operating_points.iter().map(|p| p.name.as_str()).collect();
                return Err(TritonRepoError::Invalid(format!(
                    "no operating point '{p}' in bundle {} (have: {})",
                    args.bundle.display(),
                    names.join(", ")
                )));
            }
            DefaultMode::Point(p.clone())
        }
        (None, Some(b)) => DefaultMode::Budget(
            b.parse()
                .map_err(|e| TritonRepoError::Invalid(format!("--budget: {e}")))?,
        ),
        (None, None) => DefaultMode::MostAccurate,
    };
    let config = RepoConfig {
        name: name.clone(),
        max_batch: args.max_batch,
        queue_delay_us: args.queue_delay_us,
        instances: args.instances,
        params: ModelParams {
            bundle: PathBuf::from(DEFAULT_BUNDLE),
            backend: args.backend,
            engine: args.engine,
            threads: args.threads,
            precision: args.precision,
            batch_profile: profile,
            default,
        },
    };
    let model_dir = args.out.join(&name);
    let src = args.bundle.canonicalize().map_err(io(&args.bundle))?;
    // Checked before anything is created: copying a bundle into itself never ends.
    if resolved(&args.out).starts_with(&src) {
        return Err(TritonRepoError::Invalid(format!(
            "--out {} is inside the bundle {}: choose a folder outside it",
            args.out.display(),
            args.bundle.display()
        )));
    }
    std::fs::create_dir_all(&args.out).map_err(io(&args.out))?;
    if model_dir.exists() {
        if !args.force {
            return Err(TritonRepoError::Invalid(format!(
                "{} exists: pass --force to replace it",
                model_dir.display()
            )));
        }
        std::fs::remove_dir_all(&model_dir).map_err(io(&model_dir))?;
    }
    let bundle_dir = model_dir.join(VERSION).join(DEFAULT_BUNDLE);
    copy_dir(&src, &bundle_dir)?;
    let path = model_dir.join("config.pbtxt");
    std::fs::write(&path, config.to_pbtxt(&bundle)).map_err(io(&path))?;
    Ok(model_dir)
}

/// `p` with its deepest existing ancestor canonicalized (`p` itself may not exist yet).
fn resolved(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = cur.canonicalize() {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (cur.file_name().map(|f| f.to_os_string()), cur.parent()) {
            (Some(f), Some(parent)) => {
                rest.push(f);
                cur = if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_path_buf()
                };
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// Copies `src` into `dst` recursively (symbolic links followed: the repository must stand
/// on its own on the server).
fn copy_dir(src: &Path, dst: &Path) -> Result<(), TritonRepoError> {
    std::fs::create_dir_all(dst).map_err(io(dst))?;
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(io(src))?
        .collect::<Result<_, _>>()
        .map_err(io(src))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dst.join(e.file_name());
        if std::fs::metadata(&from).map_err(io(&from))?.is_dir() {
            copy_dir(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(())
}

/// Runs `dvt triton-repo` and says what it wrote.
pub fn run(args: &TritonRepoArgs) -> Result<(), TritonRepoError> {
    let dir = write_repo(args)?;
    println!(
        "dvt: wrote Triton model {} (config.pbtxt + {}/{}); serve it with \
         tritonserver --model-repository={} --backend-directory=DIR, where DIR/dvt/ holds \
         libtriton_dvt.so",
        dir.display(),
        VERSION,
        DEFAULT_BUNDLE,
        args.out.display()
    );
    Ok(())
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
            engine: EngineChoice::Ort,
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

    fn args(out: &Path) -> TritonRepoArgs {
        TritonRepoArgs {
            bundle: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/engines/fmnist-dvt")),
            out: out.to_path_buf(),
            name: None,
            backend: BackendKind::Cpu,
            engine: EngineChoice::Auto,
            threads: 2,
            precision: Precision::Fp16,
            batch_profile: vec![1, 1, 32],
            point: Some("frontier-05".into()),
            budget: None,
            max_batch: 32,
            queue_delay_us: 0,
            instances: 1,
            force: false,
        }
    }

    #[test]
    fn writes_a_model_folder_that_stands_on_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_repo(&args(tmp.path())).unwrap();
        assert_eq!(dir, tmp.path().join("fmnist-dvt"));
        let copy = Bundle::load(dir.join("1/bundle")).unwrap();
        assert_eq!(copy.manifest.model.name, "fmnist-dvt");
        let config = std::fs::read_to_string(dir.join("config.pbtxt")).unwrap();
        for want in [
            "backend: \"dvt\"",
            "max_batch_size: 32",
            "allow_ragged_batch: true",
            "{ name: \"LABEL\" data_type: TYPE_STRING dims: [ 1 ] }",
            "kind: KIND_CPU",
            "{ key: \"point\" value: { string_value: \"frontier-05\" } }",
            "{ key: \"threads\" value: { string_value: \"2\" } }",
        ] {
            assert!(config.contains(want), "{want} not in\n{config}");
        }
        // Again: refused without --force, replaced with it.
        let e = write_repo(&args(tmp.path())).unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        let mut a = args(tmp.path());
        a.force = true;
        a.backend = BackendKind::Tensorrt;
        write_repo(&a).unwrap();
        let config = std::fs::read_to_string(dir.join("config.pbtxt")).unwrap();
        assert!(config.contains("kind: KIND_GPU"), "{config}");
    }

    #[test]
    fn bad_requests_are_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = args(tmp.path());
        a.point = Some("fastest".into());
        let e = write_repo(&a).unwrap_err().to_string();
        assert!(
            e.contains("no operating point 'fastest'") && e.contains("frontier-05"),
            "{e}"
        );
        let mut a = args(tmp.path());
        a.name = Some("../x".into());
        assert!(write_repo(&a)
            .unwrap_err()
            .to_string()
            .contains("model name"));
        let mut a = args(tmp.path());
        a.backend = BackendKind::Tensorrt;
        a.max_batch = 64;
        assert!(write_repo(&a)
            .unwrap_err()
            .to_string()
            .contains("batch profile"));
        assert!(!tmp.path().join("fmnist-dvt").exists());
        let mut a = args(&PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/engines/fmnist-dvt/triton"
        )));
        a.point = None;
        let e = write_repo(&a).unwrap_err().to_string();
        assert!(e.contains("inside the bundle"), "{e}");
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
