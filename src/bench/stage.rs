//! Per-stage timing: the inputs each stage sees in the cascade (real images, reuse tensors
//! from the stages before it), and timed runs of one loaded stage on our backend.

use crate::backend::{Backend, BackendError, HostTensor};
use crate::bundle::wiring::{self, Feed};
use crate::bundle::{Baseline, Bundle, StageSpec};
use std::time::Instant;

/// Inputs of every stage of `bundle` for one image batch: the images, plus each earlier stage's
/// `*_out` tensors fed to the next stage's `*_in` (computed by `backend`), in manifest order.
pub fn cascade_inputs<B: Backend>(
    backend: &B,
    stages: &mut [B::Stage],
    specs: &[StageSpec],
    images: &HostTensor,
) -> Result<Vec<Vec<(String, HostTensor)>>, BackendError> {
    let mut all = Vec::with_capacity(specs.len());
    let mut prev: Vec<(String, HostTensor)> = Vec::new();
    for (spec, stage) in specs.iter().zip(stages.iter_mut()) {
        let upstream = all.len().checked_sub(1).map(|p| &specs[p]);
        let feeds = wiring::feeds(spec, upstream).map_err(|e| BackendError::Run {
            stage: e.stage.clone(),
            reason: e.to_string(),
        })?;
        let inputs = spec
            .inputs
            .iter()
            .zip(feeds)
            .map(|(t, feed)| match feed {
                Feed::Image => (t.name.clone(), images.clone()),
                Feed::Upstream(o) => (t.name.clone(), prev[o].1.clone()),
            })
            .collect::<Vec<_>>();
        let values = upload_all(backend, &inputs)?;
        let outputs = backend.run(stage, &values)?;
        prev = spec
            .outputs
            .iter()
            .zip(&outputs)
            .map(|(t, v)| Ok((t.name.clone(), backend.download(v)?)))
            .collect::<Result<_, BackendError>>()?;
        all.push(inputs);
    }
    Ok(all)
}

/// Moves named host tensors to the backend, in order.
pub fn upload_all<B: Backend>(
    backend: &B,
    inputs: &[(String, HostTensor)],
) -> Result<Vec<B::Value>, BackendError> {
    inputs
        .iter()
        .map(|(_, t)| backend.upload(t.clone()))
        .collect()
}

/// Wall time of `iters` runs of `stage` on `inputs` (milliseconds each), after `warmup`
/// untimed runs. The timed span is the backend's `run` call: for the CPU backend its outputs
/// are already host tensors, as ONNX Runtime's are.
pub fn time_runs<B: Backend>(
    backend: &B,
    stage: &mut B::Stage,
    inputs: &[B::Value],
    warmup: usize,
    iters: usize,
) -> Result<Vec<f64>, BackendError> {
    for _ in 0..warmup {
        backend.run(stage, inputs)?;
    }
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let out = backend.run(stage, inputs)?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        drop(out);
    }
    Ok(samples)
}

/// The first output (logits) of one run, flattened, for the parity check against the peer.
pub fn logits<B: Backend>(
    backend: &B,
    stage: &mut B::Stage,
    inputs: &[B::Value],
) -> Result<Vec<f32>, BackendError> {
    let out = backend.run(stage, inputs)?;
    let first = out.first().ok_or_else(|| BackendError::Run {
        stage: "?".into(),
        reason: "stage has no outputs".into(),
    })?;
    Ok(backend.download(first)?.iter().copied().collect())
}

/// A one-stage bundle running static baseline `b` (image in, logits out), so that baselines go
/// through the same backend and executor as the cascade. `None` when the baseline ships no
/// ONNX file.
pub fn baseline_bundle(bundle: &Bundle, b: &Baseline) -> Option<Bundle> {
    let onnx = b.onnx.clone()?;
    let first = bundle.manifest.stages.first()?;
    let last = bundle.manifest.stages.last()?;
    let spec = StageSpec {
        name: b.name.clone(),
        grid: b.grid,
        onnx,
        sha256: b.sha256.clone(),
        gflops: b.gflops,
        cumulative_gflops: b.gflops,
        test_accuracy: Some(b.accuracy),
        inputs: vec![first.input("image")?.clone()],
        outputs: vec![last.output("logits")?.clone()],
    };
    let mut one = bundle.clone();
    one.manifest.stages = vec![spec];
    one.manifest.operating_points.clear();
    Some(one)
}

/// Max |ours - theirs| / max |theirs| (NaN when the lengths differ).
pub fn rel_diff(ours: &[f32], theirs: &[f32]) -> f64 {
    if ours.len() != theirs.len() || ours.is_empty() {
        return f64::NAN;
    }
    let diff = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = theirs
        .iter()
        .map(|v| v.abs())
        .fold(0f32, f32::max)
        .max(1e-12);
    f64::from(diff / scale)
}
