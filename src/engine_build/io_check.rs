//! An engine's I/O against the manifest: a TensorRT engine loaded for a stage must have the
//! stage's tensors, directions, element types and fixed dimensions.

use crate::bundle::{DType, Dim, StageSpec};

/// Why an engine does not fit its stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An engine's I/O tensors do not match the stage in the manifest.
    #[error("engine for stage {stage} does not match the manifest: {reason}")]
    EngineMismatch {
        /// Stage name.
        stage: String,
        /// Why.
        reason: String,
    },
}

/// Direction of an engine I/O tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// Input.
    Input,
    /// Output.
    Output,
}

/// An engine I/O tensor as TensorRT reports it (-1 = dynamic dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoTensor {
    /// Tensor name.
    pub name: String,
    /// Direction.
    pub mode: IoMode,
    /// Element type (None: a type this runtime does not handle, e.g. int8).
    pub dtype: Option<DType>,
    /// Dimensions.
    pub dims: Vec<i64>,
}

/// Checks an engine's I/O tensors against the manifest's stage: same names, directions, element
/// types and fixed dimensions; the batch axis must be dynamic or equal to `max_batch`.
pub fn check_engine_io(
    stage: &StageSpec,
    io: &[IoTensor],
    max_batch: usize,
) -> Result<(), PlanError> {
    let err = |reason: String| PlanError::EngineMismatch {
        stage: stage.name.clone(),
        reason,
    };
    let declared = stage
        .inputs
        .iter()
        .map(|t| (t, IoMode::Input))
        .chain(stage.outputs.iter().map(|t| (t, IoMode::Output)));
    let mut expected_count = 0;
    for (spec, mode) in declared {
        expected_count += 1;
        let found = io
            .iter()
            .find(|t| t.name == spec.name)
            .ok_or_else(|| err(format!("no tensor '{}'", spec.name)))?;
        if found.mode != mode {
            return Err(err(format!(
                "'{}' is an {:?} in the engine, an {mode:?} in the manifest",
                spec.name, found.mode
            )));
        }
        if found.dtype != Some(spec.dtype) {
            let got = found
                .dtype
                .map_or("unsupported".to_string(), |d| d.to_string());
            return Err(err(format!(
                "'{}' is {got} in the engine, {} in the manifest",
                spec.name, spec.dtype
            )));
        }
        if found.dims.len() != spec.shape.len() {
            return Err(err(format!(
                "'{}' has rank {} in the engine, {} in the manifest",
                spec.name,
                found.dims.len(),
                spec.shape.len()
            )));
        }
        for (axis, (dim, want)) in found.dims.iter().zip(&spec.shape).enumerate() {
            let ok = match want {
                Dim::Fixed(n) => *dim == *n as i64,
                Dim::Symbol(_) => *dim == -1 || *dim == max_batch as i64,
            };
            if !ok {
                return Err(err(format!(
                    "'{}' axis {axis} is {dim} in the engine, {want} in the manifest",
                    spec.name
                )));
            }
        }
    }
    if io.len() != expected_count {
        let extra: Vec<&str> = io
            .iter()
            .filter(|t| stage.input(&t.name).is_none() && stage.output(&t.name).is_none())
            .map(|t| t.name.as_str())
            .collect();
        return Err(err(format!(
            "engine has tensors the manifest does not declare: {extra:?}"
        )));
    }
    Ok(())
}
