//! The engine cache of a bundle: `<bundle>/trt/<stage>.<precision>.<key digest>.plan`, each with a
//! JSON sidecar (`.plan.json`) holding the full [`EngineKey`]. Lookups compare the whole key, so
//! an engine from another TensorRT, GPU, ONNX, precision or batch profile is never loaded.

use super::key::{EngineKey, KeyMismatch};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Why no usable engine is cached.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No engine was built for this key.
    #[error("no engine {0}: run `dvt build` for this GPU")]
    Missing(PathBuf),
    /// The engine's sidecar records another key.
    #[error("engine {path} is stale: {mismatch}; run `dvt build`")]
    Stale {
        /// Engine path.
        path: PathBuf,
        /// First differing field.
        mismatch: KeyMismatch,
    },
    /// The sidecar cannot be read.
    #[error("engine key {path}: {reason}")]
    Sidecar {
        /// Sidecar path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The engine directory of a bundle.
pub fn engine_dir(bundle_dir: &Path) -> PathBuf {
    bundle_dir.join("trt")
}

/// Where the engine of `stage` under `key` lives.
pub fn engine_path(bundle_dir: &Path, stage: &str, key: &EngineKey) -> PathBuf {
    engine_dir(bundle_dir).join(key.engine_file(stage))
}

/// The sidecar of an engine file.
pub fn sidecar(engine: &Path) -> PathBuf {
    let mut name = engine.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// sha256 (hex) of a file.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Returns the engine path for `key` if it exists and its sidecar records exactly `key`.
///
/// When no engine has the wanted key but engines of this stage and precision exist for another
/// key (another GPU, TensorRT, ONNX or batch profile), the answer is [`CacheError::Stale`] naming
/// the first differing field, so the user learns *why* the engine there is not used.
pub fn lookup(bundle_dir: &Path, stage: &str, key: &EngineKey) -> Result<PathBuf, CacheError> {
    let path = engine_path(bundle_dir, stage, key);
    if !path.is_file() {
        return Err(stale_sibling(bundle_dir, stage, key).unwrap_or(CacheError::Missing(path)));
    }
    let stored = read_key(&path)?;
    stored
        .check_matches(key)
        .map_err(|mismatch| CacheError::Stale {
            path: path.clone(),
            mismatch,
        })?;
    Ok(path)
}

fn read_key(engine: &Path) -> Result<EngineKey, CacheError> {
    let side = sidecar(engine);
    let text = std::fs::read_to_string(&side).map_err(|e| CacheError::Sidecar {
        path: side.clone(),
        reason: e.to_string(),
    })?;
    EngineKey::from_json(&text).map_err(|e| CacheError::Sidecar {
        path: side,
        reason: e.to_string(),
    })
}

/// An engine of `stage` at the wanted precision built for another key, as a `Stale` error.
fn stale_sibling(bundle_dir: &Path, stage: &str, key: &EngineKey) -> Option<CacheError> {
    let prefix = format!("{stage}.{}.", key.precision);
    let mut found: Vec<PathBuf> = std::fs::read_dir(engine_dir(bundle_dir))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".plan"))
        })
        .collect();
    found.sort();
    found.into_iter().find_map(|path| {
        let stored = read_key(&path).ok()?;
        let mismatch = stored.check_matches(key).err()?;
        Some(CacheError::Stale { path, mismatch })
    })
}

/// Records `key` next to a freshly built engine.
pub fn store_key(engine: &Path, key: &EngineKey) -> std::io::Result<()> {
    std::fs::write(sidecar(engine), key.to_json())
}
