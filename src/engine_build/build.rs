//! `dvt build`: builds every stage engine of a bundle for the local GPU by driving `trtexec`,
//! skipping stages whose cached engine already has the wanted key.

use super::cache::{engine_dir, engine_path, file_sha256, lookup, store_key, CacheError};
use super::key::{BatchProfile, EngineKey, Precision, TrtVersion};
use super::trtexec::{default_fp32_layers, trtexec_command, TrtexecJob};
use crate::bundle::Bundle;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The ONNX to build from is missing or unreadable.
    #[error("stage {stage}: {reason}")]
    Source {
        /// Stage name.
        stage: String,
        /// Why.
        reason: String,
    },
    /// trtexec could not be run or failed.
    #[error("stage {stage}: trtexec failed: {reason}")]
    Trtexec {
        /// Stage name.
        stage: String,
        /// Exit status and the tail of its output.
        reason: String,
    },
    /// Writing the engine cache failed.
    #[error("engine cache: {0}")]
    Io(#[from] std::io::Error),
}

/// The machine a build targets (from the driver and trtexec).
#[derive(Debug, Clone)]
pub struct Target {
    /// TensorRT version of `trtexec`.
    pub tensorrt: TrtVersion,
    /// GPU name.
    pub gpu_name: String,
    /// Compute capability.
    pub compute_capability: (u32, u32),
    /// Engines for TensorRT's lean runtime (`libnvinfer_lean`), which deserializes only
    /// version-compatible plans: `dvt build --version-compatible`.
    pub version_compatible: bool,
}

/// The ONNX an engine of stage file `stage_onnx` is built from. TRT 11 has no `--fp16`: FP16
/// engines come from the exporter's strongly typed FP16 bundle in `<bundle>/fp16/`.
pub fn source_onnx(
    bundle_dir: &Path,
    stage_onnx: &str,
    precision: Precision,
    version: TrtVersion,
) -> PathBuf {
    if precision == Precision::Fp16 && version.major >= 11 {
        bundle_dir.join("fp16").join(stage_onnx)
    } else {
        bundle_dir.join(stage_onnx)
    }
}

/// The wanted key of stage `index` on `target`.
pub fn stage_key(
    bundle: &Bundle,
    index: usize,
    target: &Target,
    precision: Precision,
    batch: BatchProfile,
) -> Result<(PathBuf, EngineKey), BuildError> {
    let spec = &bundle.manifest.stages[index];
    let onnx = source_onnx(bundle.dir(), &spec.onnx, precision, target.tensorrt);
    let sha = file_sha256(&onnx).map_err(|e| BuildError::Source {
        stage: spec.name.clone(),
        reason: format!(
            "{}: {e}{}",
            onnx.display(),
            if target.tensorrt.major >= 11 && precision == Precision::Fp16 {
                " (TensorRT 11 builds FP16 only from the FP16 ONNX: export with --fp16)"
            } else {
                ""
            }
        ),
    })?;
    Ok((
        onnx,
        EngineKey {
            tensorrt: target.tensorrt,
            gpu_name: target.gpu_name.clone(),
            compute_capability: target.compute_capability,
            onnx_sha256: sha,
            precision,
            batch,
            version_compatible: target.version_compatible,
        },
    ))
}

/// One planned build step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Stage name.
    pub stage: String,
    /// Engine path.
    pub engine: PathBuf,
    /// Its key.
    pub key: EngineKey,
    /// `trtexec` arguments; None when the cached engine is current.
    pub args: Option<Vec<String>>,
}

/// Plans the build of every stage: which engines are current and the trtexec arguments of the rest.
pub fn plan(
    bundle: &Bundle,
    target: &Target,
    precision: Precision,
    batch: BatchProfile,
    force: bool,
) -> Result<Vec<Step>, BuildError> {
    let timing_cache = engine_dir(bundle.dir()).join("timing.cache");
    (0..bundle.num_stages())
        .map(|i| {
            let spec = &bundle.manifest.stages[i];
            let (onnx, key) = stage_key(bundle, i, target, precision, batch)?;
            let engine = engine_path(bundle.dir(), &spec.name, &key);
            let current = !force && lookup(bundle.dir(), &spec.name, &key).is_ok();
            let args = (!current).then(|| {
                let job = TrtexecJob {
                    stage: spec,
                    onnx,
                    engine: engine.clone(),
                    timing_cache: timing_cache.clone(),
                    precision,
                    batch,
                    fp32_layers: default_fp32_layers(),
                    version_compatible: target.version_compatible,
                };
                trtexec_command(&job, target.tensorrt)
            });
            Ok(Step {
                stage: spec.name.clone(),
                engine,
                key,
                args,
            })
        })
        .collect()
}

/// Runs one planned step with `trtexec` and records its key; a step without arguments is skipped.
pub fn run_step(trtexec: &Path, step: &Step) -> Result<(), BuildError> {
    let Some(args) = &step.args else {
        return Ok(());
    };
    if let Some(dir) = step.engine.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = Command::new(trtexec)
        .args(args)
        .output()
        .map_err(|e| BuildError::Trtexec {
            stage: step.stage.clone(),
            reason: format!("cannot run {}: {e}", trtexec.display()),
        })?;
    if !out.status.success() || !step.engine.is_file() {
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        return Err(BuildError::Trtexec {
            stage: step.stage.clone(),
            reason: format!(
                "{}\n{}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        });
    }
    store_key(&step.engine, &step.key)?;
    // The fresh engine must now be found by the same lookup the backend uses.
    match lookup_path(&step.engine, &step.key) {
        Ok(()) => Ok(()),
        Err(e) => Err(BuildError::Trtexec {
            stage: step.stage.clone(),
            reason: e.to_string(),
        }),
    }
}

fn lookup_path(engine: &Path, key: &EngineKey) -> Result<(), CacheError> {
    let text = std::fs::read_to_string(super::cache::sidecar(engine)).map_err(|e| {
        CacheError::Sidecar {
            path: engine.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    let stored = EngineKey::from_json(&text).map_err(|e| CacheError::Sidecar {
        path: engine.to_path_buf(),
        reason: e.to_string(),
    })?;
    stored
        .check_matches(key)
        .map_err(|mismatch| CacheError::Stale {
            path: engine.to_path_buf(),
            mismatch,
        })
}

/// Parses TensorRT's version from trtexec's banner (`[TensorRT v100300]`).
pub fn parse_trtexec_version(output: &str) -> Option<TrtVersion> {
    let rest = &output[output.find("[TensorRT v")? + "[TensorRT v".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    TrtVersion::from_code(digits.parse().ok()?)
}

/// Parses `nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader` (first GPU).
pub fn parse_nvidia_smi(output: &str) -> Option<(String, (u32, u32))> {
    let line = output.lines().find(|l| !l.trim().is_empty())?;
    let (name, cap) = line.rsplit_once(',')?;
    let (major, minor) = cap.trim().split_once('.')?;
    Some((
        name.trim().to_string(),
        (major.parse().ok()?, minor.parse().ok()?),
    ))
}

/// Where trtexec is looked for: `TRTEXEC`, then `PATH`, then JetPack's and the tarball's places.
pub fn find_trtexec() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRTEXEC") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("trtexec"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut fixed = vec![PathBuf::from("/usr/src/tensorrt/bin/trtexec")];
        if let Some(root) = std::env::var_os("TENSORRT_ROOT") {
            fixed.insert(0, PathBuf::from(root).join("bin/trtexec"));
        }
        fixed.into_iter().find(|p| p.is_file())
    })
}

/// Asks `trtexec` for its TensorRT version and `nvidia-smi` for the first GPU's name and compute
/// capability. Each part can be given instead (`given`), e.g. on Jetson where `nvidia-smi` lacks
/// `compute_cap`.
pub fn detect_target(
    trtexec: &Path,
    tensorrt: Option<TrtVersion>,
    gpu: Option<(String, (u32, u32))>,
) -> Result<Target, String> {
    let tensorrt = match tensorrt {
        Some(v) => v,
        None => {
            let out = Command::new(trtexec)
                .arg("--help")
                .output()
                .map_err(|e| format!("cannot run {}: {e}", trtexec.display()))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            parse_trtexec_version(&text)
                .ok_or("cannot read the TensorRT version from trtexec; pass --trt-version")?
        }
    };
    let (gpu_name, compute_capability) = match gpu {
        Some(g) => g,
        None => {
            let out = Command::new("nvidia-smi")
                .args(["--query-gpu=name,compute_cap", "--format=csv,noheader"])
                .output()
                .map_err(|e| {
                    format!("cannot run nvidia-smi: {e}; pass --gpu-name and --compute-capability")
                })?;
            parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)).ok_or(
                "cannot read the GPU from nvidia-smi; pass --gpu-name and --compute-capability",
            )?
        }
    };
    Ok(Target {
        tensorrt,
        gpu_name,
        compute_capability,
        version_compatible: false,
    })
}
