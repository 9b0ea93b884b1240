//! Runs the stages of a bundle in order for a batch of images, hands each stage's reuse
//! outputs to the next one as backend values (no host round trip), applies the exit rule and
//! times every stage.

mod exit_rule;
mod softmax;

pub use exit_rule::{exits_at, validate_thresholds, ThresholdError};
pub use softmax::{top1, Top1};

use crate::backend::{Backend, BackendError, HostTensor};
use crate::bundle::wiring::{self, Feed};
use crate::bundle::{Bundle, StageSpec};
use std::time::{Duration, Instant};

/// The answer for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Predicted class id.
    pub class: usize,
    /// Max softmax probability of the answering stage.
    pub confidence: f32,
    /// 0-based index of the stage that answered.
    pub exit_stage: usize,
    /// GFLOPs spent on this image (cumulative cost of the exit stage).
    pub gflops: f64,
}

/// Wall time of one stage call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageTiming {
    /// 0-based stage index.
    pub stage: usize,
    /// Images in the call.
    pub batch: usize,
    /// Wall time, including the logits' copy back to the host.
    pub elapsed: Duration,
}

/// Result of one batch.
#[derive(Debug, Clone, Default)]
pub struct BatchResult {
    /// One decision per input image, in input order.
    pub decisions: Vec<Decision>,
    /// One entry per stage call, in call order.
    pub timings: Vec<StageTiming>,
}

/// What a stage saw for one image (for calibration and per-stage reports).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// 0-based stage index.
    pub stage: usize,
    /// Index of the image in the batch.
    pub image: usize,
    /// The stage's top-1 class and confidence.
    pub top1: Top1,
}

/// Errors from running the cascade.
#[derive(Debug, thiserror::Error)]
pub enum CascadeError {
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The threshold vector does not fit the cascade.
    #[error(transparent)]
    Thresholds(#[from] ThresholdError),
    /// The bundle's stages cannot be wired together.
    #[error(
        "stage {stage}: input '{input}' has no source (expected 'image' or an upstream '*_out')"
    )]
    Wiring {
        /// Stage name.
        stage: String,
        /// Input name.
        input: String,
    },
    /// The image batch has the wrong shape.
    #[error("image batch has shape {found:?}, expected [N, {expected:?}]")]
    ImageShape {
        /// Expected per-image shape.
        expected: Vec<usize>,
        /// Given shape.
        found: Vec<usize>,
    },
}

/// A loaded cascade on one backend.
pub struct Cascade<B: Backend> {
    backend: B,
    stages: Vec<B::Stage>,
    specs: Vec<StageSpec>,
    wiring: Vec<Vec<Feed>>,
    logits_index: Vec<usize>,
    image_shape: Vec<usize>,
}

impl<B: Backend> Cascade<B> {
    /// Loads every stage of `bundle` on `backend`.
    pub fn load(backend: B, bundle: &Bundle) -> Result<Self, CascadeError> {
        let specs = bundle.manifest.stages.clone();
        let mut feeds = Vec::with_capacity(specs.len());
        let mut logits_index = Vec::with_capacity(specs.len());
        for (k, spec) in specs.iter().enumerate() {
            feeds.push(wire(spec, k.checked_sub(1).map(|p| &specs[p]))?);
            logits_index.push(
                spec.outputs
                    .iter()
                    .position(|t| t.name == wiring::LOGITS)
                    .ok_or_else(|| CascadeError::Wiring {
                        stage: spec.name.clone(),
                        input: "logits (output)".into(),
                    })?,
            );
        }
        let stages = (0..specs.len())
            .map(|k| backend.load_stage(bundle, k))
            .collect::<Result<Vec<_>, _>>()?;
        let input = &bundle.manifest.model.input;
        Ok(Self {
            backend,
            stages,
            specs,
            wiring: feeds,
            logits_index,
            image_shape: vec![input.channels, input.height, input.width],
        })
    }

    /// Number of stages.
    pub fn num_stages(&self) -> usize {
        self.specs.len()
    }

    /// Stage specs, in order.
    pub fn specs(&self) -> &[StageSpec] {
        &self.specs
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The loaded stages, in order.
    pub fn stages(&self) -> &[B::Stage] {
        &self.stages
    }

    /// Classifies a normalised image batch `[N, C, H, W]` with exit thresholds (one per
    /// non-final stage).
    pub fn classify(
        &mut self,
        images: HostTensor,
        thresholds: &[f32],
    ) -> Result<BatchResult, CascadeError> {
        self.run(images, thresholds, &mut |_| {})
    }

    /// Like [`Cascade::classify`], reporting every stage's top-1 for every image it ran on.
    /// With thresholds above 1 every image runs every stage.
    pub fn run(
        &mut self,
        images: HostTensor,
        thresholds: &[f32],
        observe: &mut dyn FnMut(Observation),
    ) -> Result<BatchResult, CascadeError> {
        validate_thresholds(thresholds, self.num_stages())?;
        let shape = images.shape().to_vec();
        if shape.len() != 4 || shape[1..] != self.image_shape[..] {
            return Err(CascadeError::ImageShape {
                expected: self.image_shape.clone(),
                found: shape,
            });
        }
        let n = shape[0];
        let mut decisions: Vec<Option<Decision>> = vec![None; n];
        let mut timings = Vec::with_capacity(self.num_stages());
        if n == 0 {
            return Ok(BatchResult::default());
        }
        // `active[r]` = index in the input batch of row r of the current values.
        let mut active: Vec<usize> = (0..n).collect();
        let mut image = self.backend.upload(images)?;
        let mut upstream: Vec<B::Value> = Vec::new();
        let last = self.num_stages() - 1;
        for k in 0..=last {
            let inputs: Vec<B::Value> = self.wiring[k]
                .iter()
                .map(|s| match s {
                    Feed::Image => image.clone(),
                    Feed::Upstream(i) => upstream[*i].clone(),
                })
                .collect();
            let start = Instant::now();
            let outputs = self.backend.run(&mut self.stages[k], &inputs)?;
            let logits = self.backend.download(&outputs[self.logits_index[k]])?;
            timings.push(StageTiming {
                stage: k,
                batch: active.len(),
                elapsed: start.elapsed(),
            });
            let gflops = self.specs[k].cumulative_gflops;
            let mut keep = Vec::with_capacity(active.len());
            for (row, logit_row) in logits.outer_iter().enumerate() {
                let t = top1(logit_row.iter().copied());
                observe(Observation {
                    stage: k,
                    image: active[row],
                    top1: t,
                });
                if exits_at(k, t.confidence, thresholds) {
                    decisions[active[row]] = Some(Decision {
                        class: t.class,
                        confidence: t.confidence,
                        exit_stage: k,
                        gflops,
                    });
                } else {
                    keep.push(row);
                }
            }
            if keep.is_empty() {
                break;
            }
            if keep.len() < active.len() {
                image = self.backend.select_rows(&image, &keep)?;
                upstream = outputs
                    .iter()
                    .map(|v| self.backend.select_rows(v, &keep))
                    .collect::<Result<_, _>>()?;
                active = keep.iter().map(|&r| active[r]).collect();
            } else {
                upstream = outputs;
            }
        }
        Ok(BatchResult {
            decisions: decisions
                .into_iter()
                .map(|d| d.expect("the last stage always answers"))
                .collect(),
            timings,
        })
    }
}

/// Maps each input of `spec` to the image or an output of `prev` (the bundle's wiring rule).
fn wire(spec: &StageSpec, prev: Option<&StageSpec>) -> Result<Vec<Feed>, CascadeError> {
    wiring::feeds(spec, prev).map_err(|e| CascadeError::Wiring {
        stage: e.stage,
        input: e.input,
    })
}
