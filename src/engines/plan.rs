//! The GPU buffer plan: one device buffer per stage output, sized for the largest batch, and for
//! each stage input the buffer that feeds it. Stage k's `feat_out`/`attn_out` buffers are bound
//! directly as stage k+1's `feat_in`/`attn_in`, so reuse tensors never leave the device.

use crate::bundle::{DType, Dim, Manifest, StageSpec};

/// Where a stage input's data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSource {
    /// The uploaded frame batch.
    Image,
    /// Output `output` of stage `stage`.
    StageOutput {
        /// Producing stage.
        stage: usize,
        /// Index in that stage's outputs.
        output: usize,
    },
}

/// One stage's buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// Stage name.
    pub name: String,
    /// Source of each input, in manifest order.
    pub inputs: Vec<InputSource>,
    /// Elements of each output buffer at the maximum batch, in manifest order.
    pub output_elements: Vec<usize>,
    /// Index of the `logits` output (the only one copied back to the host).
    pub logits: usize,
}

/// The plan of the whole cascade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferPlan {
    /// Largest batch the buffers hold.
    pub max_batch: usize,
    /// Elements of the image buffer at the maximum batch.
    pub image_elements: usize,
    /// Per stage.
    pub stages: Vec<StagePlan>,
}

/// Why a bundle or an engine does not fit the GPU path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The manifest cannot be planned.
    #[error("stage {stage}: {reason}")]
    Manifest {
        /// Stage name.
        stage: String,
        /// Why.
        reason: String,
    },
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

impl BufferPlan {
    /// Plans `manifest` for batches up to `max_batch`.
    pub fn new(manifest: &Manifest, max_batch: usize) -> Result<Self, PlanError> {
        let err = |stage: &StageSpec, reason: String| PlanError::Manifest {
            stage: stage.name.clone(),
            reason,
        };
        if max_batch == 0 {
            return Err(PlanError::Manifest {
                stage: "-".into(),
                reason: "maximum batch must be at least 1".into(),
            });
        }
        let mut image_elements = None;
        let mut stages: Vec<StagePlan> = Vec::with_capacity(manifest.stages.len());
        for (k, stage) in manifest.stages.iter().enumerate() {
            let mut inputs = Vec::with_capacity(stage.inputs.len());
            for t in &stage.inputs {
                if t.dtype != DType::F32 {
                    return Err(err(
                        stage,
                        format!("input '{}' is {}, the GPU I/O is f32", t.name, t.dtype),
                    ));
                }
                let elements = t.elements_per_item() * max_batch;
                if let Some(reused) = t.name.strip_suffix("_in") {
                    let out_name = format!("{reused}_out");
                    let prev = k
                        .checked_sub(1)
                        .map(|p| &manifest.stages[p])
                        .ok_or_else(|| {
                            err(
                                stage,
                                format!("first stage cannot take reuse input '{}'", t.name),
                            )
                        })?;
                    let output = prev
                        .outputs
                        .iter()
                        .position(|o| o.name == out_name)
                        .ok_or_else(|| {
                            err(
                                stage,
                                format!(
                                    "'{}' needs '{}' from {}, which has none",
                                    t.name, out_name, prev.name
                                ),
                            )
                        })?;
                    let produced = prev.outputs[output].elements_per_item() * max_batch;
                    if produced != elements {
                        return Err(err(
                            stage,
                            format!(
                                "'{}' holds {elements} values but {}'s '{}' gives {produced}",
                                t.name, prev.name, out_name
                            ),
                        ));
                    }
                    inputs.push(InputSource::StageOutput {
                        stage: k - 1,
                        output,
                    });
                } else {
                    match image_elements {
                        None => image_elements = Some(elements),
                        Some(n) if n != elements => {
                            return Err(err(
                                stage,
                                format!(
                                    "image input '{}' has {elements} values, stage 1's has {n}",
                                    t.name
                                ),
                            ))
                        }
                        Some(_) => {}
                    }
                    inputs.push(InputSource::Image);
                }
            }
            let logits = stage
                .outputs
                .iter()
                .position(|o| o.name == "logits")
                .ok_or_else(|| err(stage, "no 'logits' output".into()))?;
            stages.push(StagePlan {
                name: stage.name.clone(),
                inputs,
                output_elements: stage
                    .outputs
                    .iter()
                    .map(|o| o.elements_per_item() * max_batch)
                    .collect(),
                logits,
            });
        }
        Ok(Self {
            max_batch,
            image_elements: image_elements.ok_or(PlanError::Manifest {
                stage: "-".into(),
                reason: "no stage takes the image".into(),
            })?,
            stages,
        })
    }

    /// Total device memory of the plan, in bytes (f32 buffers).
    pub fn device_bytes(&self) -> usize {
        let outs: usize = self.stages.iter().flat_map(|s| &s.output_elements).sum();
        (self.image_elements + outs) * std::mem::size_of::<f32>()
    }
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
