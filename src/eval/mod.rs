//! Accuracy and cost of a cascade on a labelled dataset (`dvt eval`).

mod latency;

pub use latency::LatencyStats;

use crate::backend::Backend;
use crate::bundle::Manifest;
use crate::cascade::{Cascade, CascadeError};
use crate::data::preprocess::{normalize_u8_hwc, PreprocessError};
use crate::data::Dataset;
use crate::progress::Progress;
use serde::Serialize;
use std::time::Instant;

/// Why an evaluation stopped.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The cascade failed.
    #[error(transparent)]
    Cascade(#[from] CascadeError),
    /// The dataset's images do not fit the bundle's input.
    #[error(transparent)]
    Input(#[from] PreprocessError),
}

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Exit thresholds, one per non-final stage.
    pub thresholds: Vec<f32>,
    /// Images per cascade call (1 = per-frame latency, as on a robot).
    pub batch: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Result of [`evaluate`].
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Backend description.
    pub backend: String,
    /// Images evaluated.
    pub images: usize,
    /// Images per cascade call.
    pub batch: usize,
    /// Thresholds used.
    pub thresholds: Vec<f32>,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Mean GFLOPs per image (cumulative cost of each image's exit stage).
    pub mean_gflops: f64,
    /// Fraction of images answered by each stage.
    pub exit_fractions: Vec<f64>,
    /// Throughput over the whole run (pre-processing included).
    pub images_per_s: f64,
    /// Wall time of each stage's calls, in milliseconds per call.
    pub stage_latency_ms: Vec<LatencyStats>,
    /// Cascade wall time per call, in milliseconds.
    pub cascade_latency_ms: LatencyStats,
}

/// One stage's accuracy with the exit forced there.
#[derive(Debug, Clone, Serialize)]
pub struct StageAccuracy {
    /// Stage or baseline name.
    pub name: String,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// GFLOPs of this model (stage alone).
    pub gflops: f64,
    /// GFLOPs to reach this exit (this stage and all before it).
    pub cumulative_gflops: f64,
}

/// Result of [`evaluate_all_stages`].
#[derive(Debug, Clone, Serialize)]
pub struct AllStagesReport {
    /// Backend description.
    pub backend: String,
    /// Images evaluated.
    pub images: usize,
    /// Every stage's own accuracy.
    pub stages: Vec<StageAccuracy>,
    /// The static baselines as the manifest records them (measured at export time).
    pub baselines: Vec<StageAccuracy>,
}

/// Runs every image of `data` through the cascade with `opts.thresholds`.
pub fn evaluate<B: Backend>(
    cascade: &mut Cascade<B>,
    manifest: &Manifest,
    data: &Dataset,
    opts: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    let n = data.len();
    let batch = opts.batch.max(1);
    let stages = cascade.num_stages();
    let pb = Progress::new(n, "eval", opts.progress);
    let mut correct = 0usize;
    let mut gflops = 0f64;
    let mut exits = vec![0usize; stages];
    let mut stage_ms: Vec<Vec<f64>> = vec![Vec::new(); stages];
    let mut cascade_ms = Vec::new();
    let start = Instant::now();
    for lo in (0..n).step_by(batch) {
        let hi = (lo + batch).min(n);
        let images = normalize_u8_hwc(data.pixels(lo..hi), hi - lo, &manifest.model.input)?;
        let t = Instant::now();
        let result = cascade.classify(images, &opts.thresholds)?;
        cascade_ms.push(t.elapsed().as_secs_f64() * 1e3);
        for (d, &label) in result.decisions.iter().zip(&data.labels[lo..hi]) {
            correct += usize::from(d.class == label as usize);
            gflops += d.gflops;
            exits[d.exit_stage] += 1;
        }
        for t in &result.timings {
            stage_ms[t.stage].push(t.elapsed.as_secs_f64() * 1e3);
        }
        pb.inc(hi - lo);
    }
    let wall = start.elapsed().as_secs_f64();
    pb.finish();
    let nf = n.max(1) as f64;
    Ok(EvalReport {
        backend: cascade.backend().name(),
        images: n,
        batch,
        thresholds: opts.thresholds.clone(),
        accuracy: correct as f64 / nf,
        mean_gflops: gflops / nf,
        exit_fractions: exits.iter().map(|&e| e as f64 / nf).collect(),
        images_per_s: n as f64 / wall.max(1e-12),
        stage_latency_ms: stage_ms
            .iter_mut()
            .map(|v| LatencyStats::from_samples(v))
            .collect(),
        cascade_latency_ms: LatencyStats::from_samples(&mut cascade_ms),
    })
}

/// Runs every stage on every image and reports each stage's own accuracy.
pub fn evaluate_all_stages<B: Backend>(
    cascade: &mut Cascade<B>,
    manifest: &Manifest,
    data: &Dataset,
    batch: usize,
    progress: bool,
) -> Result<AllStagesReport, EvalError> {
    let n = data.len();
    let batch = batch.max(1);
    let stages = cascade.num_stages();
    let never_exit = vec![f32::INFINITY; stages - 1];
    let mut correct = vec![0usize; stages];
    let pb = Progress::new(n, "all stages", progress);
    for lo in (0..n).step_by(batch) {
        let hi = (lo + batch).min(n);
        let images = normalize_u8_hwc(data.pixels(lo..hi), hi - lo, &manifest.model.input)?;
        let labels = &data.labels[lo..hi];
        cascade.run(images, &never_exit, &mut |o| {
            correct[o.stage] += usize::from(o.top1.class == labels[o.image] as usize);
        })?;
        pb.inc(hi - lo);
    }
    pb.finish();
    let nf = n.max(1) as f64;
    Ok(AllStagesReport {
        backend: cascade.backend().name(),
        images: n,
        stages: cascade
            .specs()
            .iter()
            .zip(&correct)
            .map(|(s, &c)| StageAccuracy {
                name: s.name.clone(),
                accuracy: c as f64 / nf,
                gflops: s.gflops,
                cumulative_gflops: s.cumulative_gflops,
            })
            .collect(),
        baselines: manifest
            .baselines
            .iter()
            .map(|b| StageAccuracy {
                name: b.name.clone(),
                accuracy: b.accuracy,
                gflops: b.gflops,
                cumulative_gflops: b.gflops,
            })
            .collect(),
    })
}

/// A static model a user would deploy instead of the cascade, measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Alternative {
    /// Why it is listed: "cheapest static model at the cascade's accuracy or better" or "the
    /// final grid's static model".
    pub role: String,
    /// Baseline name.
    pub name: String,
    /// Top-1 accuracy on the same images.
    pub accuracy: f64,
    /// GFLOPs per image.
    pub gflops: f64,
    /// Images per second on the same backend, images and batch.
    pub images_per_s: f64,
}

/// Runs every static baseline of `bundle` that ships an ONNX file over `data` (same backend,
/// batch and pre-processing as the cascade) and returns the ones a user would pick instead of a
/// cascade reaching `cascade_accuracy`: the cheapest at that accuracy or better (if any), and
/// the final grid's. A baseline the backend cannot load (TensorRT builds only the cascade's
/// engines) is left out and named in the second list.
pub fn static_alternatives<B: Backend + Clone>(
    backend: &B,
    bundle: &crate::bundle::Bundle,
    data: &Dataset,
    batch: usize,
    cascade_accuracy: f64,
) -> Result<(Vec<Alternative>, Vec<String>), EvalError> {
    let m = &bundle.manifest;
    let final_grid = m.stages.last().map(|s| s.grid);
    let mut measured = Vec::new();
    let mut skipped = Vec::new();
    for b in &m.baselines {
        let Some(one) = crate::bench::stage::baseline_bundle(bundle, b) else {
            continue;
        };
        let mut c = match Cascade::load(backend.clone(), &one) {
            Ok(c) => c,
            Err(e) => {
                skipped.push(format!("{}: {e}", b.name));
                continue;
            }
        };
        let opts = EvalOptions {
            thresholds: Vec::new(),
            batch,
            progress: false,
        };
        let r = evaluate(&mut c, &one.manifest, data, &opts)?;
        measured.push((b.clone(), r));
    }
    let alt = |role: &str, b: &crate::bundle::Baseline, r: &EvalReport| Alternative {
        role: role.into(),
        name: b.name.clone(),
        accuracy: r.accuracy,
        gflops: b.gflops,
        images_per_s: r.images_per_s,
    };
    let mut out = Vec::new();
    if let Some((b, r)) = measured
        .iter()
        .filter(|(_, r)| r.accuracy >= cascade_accuracy)
        .min_by(|a, b| a.0.gflops.total_cmp(&b.0.gflops))
    {
        out.push(alt(
            "cheapest static model at the cascade's accuracy or better",
            b,
            r,
        ));
    }
    if let Some((b, r)) = measured.iter().find(|(b, _)| Some(b.grid) == final_grid) {
        out.push(alt("the final grid's static model", b, r));
    }
    Ok((out, skipped))
}
