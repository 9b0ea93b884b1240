//! Checks a manifest against the files it names.

use super::manifest::{Dim, StageSpec, TensorSpec};
use super::onnx_io::{read_graph_io, IoTensor};
use super::{wiring, Bundle, BundleError};
use sha2::{Digest, Sha256};
use std::path::Path;

pub(crate) fn validate(bundle: &Bundle) -> Result<(), BundleError> {
    let m = &bundle.manifest;
    if m.stages.is_empty() {
        return Err(BundleError::Manifest {
            path: bundle.dir().join(super::MANIFEST),
            reason: "no stages".into(),
        });
    }
    for (k, stage) in m.stages.iter().enumerate() {
        let path = bundle.stage_path(k);
        check_stage_file(stage, &path)?;
        check_chain(stage, k.checked_sub(1).map(|p| &m.stages[p]))?;
    }
    m.check_calibrations()
        .map_err(|reason| BundleError::Manifest {
            path: bundle.dir().join(super::MANIFEST),
            reason,
        })
}

fn check_stage_file(stage: &StageSpec, path: &Path) -> Result<(), BundleError> {
    if !path.is_file() {
        return Err(BundleError::MissingFile {
            stage: stage.name.clone(),
            path: path.to_path_buf(),
        });
    }
    if let Some(declared) = &stage.sha256 {
        let found = sha256_file(path)?;
        if !found.eq_ignore_ascii_case(declared) {
            return Err(BundleError::Checksum {
                stage: stage.name.clone(),
                path: path.to_path_buf(),
                declared: declared.clone(),
                found,
            });
        }
    }
    let io = read_graph_io(path).map_err(|reason| BundleError::CorruptOnnx {
        stage: stage.name.clone(),
        path: path.to_path_buf(),
        reason,
    })?;
    for (declared, found, kind) in [
        (&stage.inputs, &io.inputs, "input"),
        (&stage.outputs, &io.outputs, "output"),
    ] {
        for spec in declared {
            let actual = found.iter().find(|t| t.name == spec.name).ok_or_else(|| {
                BundleError::MissingTensor {
                    stage: stage.name.clone(),
                    tensor: spec.name.clone(),
                    kind,
                    path: path.to_path_buf(),
                }
            })?;
            if !matches(spec, actual) {
                return Err(BundleError::TensorMismatch {
                    stage: stage.name.clone(),
                    tensor: spec.name.clone(),
                    declared: describe(&spec.shape, Some(spec.dtype)),
                    found: describe(&actual.shape, actual.dtype),
                    path: path.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

/// Symbolic dimensions match any symbol (exporters name the batch axis differently).
fn matches(spec: &TensorSpec, actual: &IoTensor) -> bool {
    spec.shape.len() == actual.shape.len()
        && actual.dtype == Some(spec.dtype)
        && spec
            .shape
            .iter()
            .zip(&actual.shape)
            .all(|(a, b)| match (a, b) {
                (Dim::Fixed(x), Dim::Fixed(y)) => x == y,
                (Dim::Symbol(_), Dim::Symbol(_)) => true,
                _ => false,
            })
}

fn describe(shape: &[Dim], dtype: Option<super::DType>) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let ty = dtype.map_or("unsupported dtype".to_string(), |d| d.to_string());
    format!("[{}] {ty}", dims.join(", "))
}

/// Every input of a stage must have a feed ([`super::wiring`]) of the same shape and type, and
/// the stage must take the image and end in logits.
fn check_chain(stage: &StageSpec, prev: Option<&StageSpec>) -> Result<(), BundleError> {
    let chain_err = |reason: String| BundleError::Chain {
        stage: stage.name.clone(),
        reason,
    };
    if stage.input(wiring::IMAGE).is_none() {
        return Err(chain_err(format!("has no '{}' input", wiring::IMAGE)));
    }
    if stage.output(wiring::LOGITS).is_none() {
        return Err(chain_err(format!("has no '{}' output", wiring::LOGITS)));
    }
    let feeds = wiring::feeds(stage, prev).map_err(|e| chain_err(e.reason))?;
    for (i, feed) in stage.inputs.iter().zip(feeds) {
        let (wiring::Feed::Upstream(o), Some(prev)) = (feed, prev) else {
            continue;
        };
        let o = &prev.outputs[o];
        if i.shape != o.shape || i.dtype != o.dtype {
            return Err(chain_err(format!(
                "'{}' is {} but {}'s '{}' is {}",
                i.name,
                describe(&i.shape, Some(i.dtype)),
                prev.name,
                o.name,
                describe(&o.shape, Some(o.dtype))
            )));
        }
    }
    Ok(())
}

/// Hex sha256 of a file.
pub(crate) fn sha256_file(path: &Path) -> Result<String, BundleError> {
    let bytes = std::fs::read(path).map_err(|source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
