//! `dvt calibrate`: run every stage on every image of a labelled split, record the
//! confidences, time the stages, solve the operating points (official and frontier), and
//! compare them on held-out images.

use super::claims::CascadeClaims;
use super::frontier::{self, interpolate, FrontierOptions};
use super::official;
use super::records::{Records, RecordsMeta, StageCosts};
use super::PolicyError;
use crate::backend::Backend;
use crate::bundle::{Manifest, OperatingPoint};
use crate::cascade::Cascade;
use crate::data::preprocess::normalize_u8_hwc;
use crate::data::Dataset;
use crate::progress::Progress;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Folder (inside the bundle) holding the records.
pub const RECORDS_DIR: &str = "calibration";
/// The plot's file name (inside the bundle).
pub const PLOT: &str = "accuracy_vs_cost.svg";

/// Path of `split`'s records of the CPU calibration inside `bundle_dir`.
pub fn records_path(bundle_dir: &Path, split: &str) -> PathBuf {
    bundle_dir.join(RECORDS_DIR).join(format!("{split}.rec.gz"))
}

/// Where a calibration is written: the manifest's top level (the CPU, FP32) or a
/// `[[calibrations]]` entry for another backend and precision.
#[derive(Debug, Clone, PartialEq)]
pub enum CalibrationSlot {
    /// The top-level `operating_points` (records in `calibration/`, plot in the bundle root).
    Cpu,
    /// A `[[calibrations]]` entry (records and plot in `calibration/<backend>-<precision>/`).
    Other {
        /// Backend name ("tensorrt").
        backend: String,
        /// Precision ("fp16", "fp32").
        precision: String,
        /// Engine file of each stage.
        engines: Vec<String>,
    },
}

impl CalibrationSlot {
    /// The slot for a backend `kind` ("cpu", "tensorrt") at `precision` with stage `engines`.
    pub fn for_backend(kind: &str, precision: &str, engines: Vec<String>) -> Self {
        if kind == crate::bundle::calibration::CPU {
            Self::Cpu
        } else {
            Self::Other {
                backend: kind.into(),
                precision: precision.into(),
                engines,
            }
        }
    }

    /// The records folder, relative to the bundle.
    pub fn records_dir(&self) -> PathBuf {
        match self {
            Self::Cpu => PathBuf::from(RECORDS_DIR),
            Self::Other {
                backend, precision, ..
            } => Path::new(RECORDS_DIR).join(crate::bundle::calibration::id(backend, precision)),
        }
    }

    /// Path of `split`'s records inside `bundle_dir`.
    pub fn records_path(&self, bundle_dir: &Path, split: &str) -> PathBuf {
        bundle_dir
            .join(self.records_dir())
            .join(format!("{split}.rec.gz"))
    }

    fn plot_path(&self, bundle_dir: &Path) -> PathBuf {
        match self {
            Self::Cpu => bundle_dir.join(PLOT),
            Self::Other { .. } => bundle_dir.join(self.records_dir()).join(PLOT),
        }
    }
}

/// Runs every stage on every image of `data` (no early exit) and records each stage's top-1.
pub fn record<B: Backend>(
    cascade: &mut Cascade<B>,
    manifest: &Manifest,
    data: &Dataset,
    split: &str,
    batch: usize,
    progress: bool,
) -> Result<Records, PolicyError> {
    let k = cascade.num_stages();
    let meta = RecordsMeta {
        split: split.to_string(),
        backend: cascade.backend().name(),
        stage_sha256: manifest.stages.iter().map(|s| s.sha256.clone()).collect(),
        stage_ms: None,
    };
    let mut records = Records::new(meta, k);
    let never = vec![official::NEVER; k - 1];
    let pb = Progress::new(data.len(), format!("record {split}"), progress);
    let batch = batch.max(1);
    let mut top: Vec<(usize, f32)> = Vec::new();
    for lo in (0..data.len()).step_by(batch) {
        let hi = (lo + batch).min(data.len());
        let images = normalize_u8_hwc(data.pixels(lo..hi), hi - lo, &manifest.model.input)?;
        top.clear();
        top.resize((hi - lo) * k, (0, f32::NAN));
        cascade.run(images, &never, &mut |o| {
            top[o.image * k + o.stage] = (o.top1.class, o.top1.confidence);
        })?;
        for (i, label) in data.labels[lo..hi].iter().enumerate() {
            records.push(&top[i * k..(i + 1) * k], *label)?;
        }
        pb.inc(hi - lo);
    }
    pb.finish();
    Ok(records)
}

/// Median wall time of each stage alone, ms per image at batch 1 (the per-frame case), over
/// the first `images` images (after a short warm-up).
pub fn measure_stage_ms<B: Backend>(
    cascade: &mut Cascade<B>,
    manifest: &Manifest,
    data: &Dataset,
    images: usize,
) -> Result<Vec<f64>, PolicyError> {
    let k = cascade.num_stages();
    let never = vec![official::NEVER; k - 1];
    let n = images.min(data.len());
    let warmup = 5.min(n);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(n); k];
    for i in 0..n + warmup {
        let j = i % n.max(1);
        let img = normalize_u8_hwc(data.pixels(j..j + 1), 1, &manifest.model.input)?;
        let r = cascade.classify(img, &never)?;
        if i >= warmup {
            for t in &r.timings {
                samples[t.stage].push(t.elapsed.as_secs_f64() * 1e3);
            }
        }
    }
    Ok(samples
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            // 0.1 us resolution: short decimals survive the JSON header exactly, so solving
            // from saved records reproduces the same points.
            let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
            (median * 1e4).round() / 1e4
        })
        .collect())
}

/// The solved operating points.
#[derive(Debug, Clone)]
pub struct Solution {
    /// DVT's geometric schedule, p = 1..59.
    pub official: Vec<OperatingPoint>,
    /// Our frontier, cheapest first.
    pub frontier: Vec<OperatingPoint>,
}

fn point(
    name: String,
    source: &str,
    t: Vec<f32>,
    records: &Records,
    costs: &StageCosts,
) -> OperatingPoint {
    let s = records.evaluate(&t, costs);
    OperatingPoint {
        name,
        source: source.into(),
        thresholds: t,
        exit_fractions: s.exit_fractions,
        expected_gflops: s.gflops,
        expected_ms: s.ms,
        accuracy: Some(s.accuracy),
    }
}

/// Solves both tables on `records` (costs from the manifest and the records' stage times).
pub fn solve(
    manifest: &Manifest,
    records: &Records,
    opts: &FrontierOptions,
) -> Result<Solution, PolicyError> {
    records.check_matches(manifest)?;
    if records.is_empty() {
        return Err(PolicyError::Records("no calibration images".into()));
    }
    let costs = StageCosts::new(manifest, records.meta.stage_ms.as_deref());
    let official: Vec<OperatingPoint> = official::official_thresholds(records)
        .into_iter()
        .map(|(p, t)| point(format!("official-p{p:02}"), "official", t, records, &costs))
        .collect();
    let mut opts = opts.clone();
    opts.extra = official.iter().map(|p| p.thresholds.clone()).collect();
    let frontier = frontier::solve(records, &costs, &opts)
        .into_iter()
        .enumerate()
        .map(|(j, f)| {
            point(
                format!("frontier-{j:02}"),
                "frontier",
                f.thresholds,
                records,
                &costs,
            )
        })
        .collect();
    Ok(Solution { official, frontier })
}

/// Writes the solution into the manifest (frontier first, then official) at the top level (the
/// CPU calibration); names the calibration split unless the manifest already describes it.
pub fn apply(manifest: &mut Manifest, solution: &Solution, split: &str) {
    apply_to(manifest, solution, split, &CalibrationSlot::Cpu, None);
}

/// [`apply`] into `slot`, recording `timed_on` (the backend the stage times were measured on).
pub fn apply_to(
    manifest: &mut Manifest,
    solution: &Solution,
    split: &str,
    slot: &CalibrationSlot,
    timed_on: Option<String>,
) {
    let points: Vec<OperatingPoint> = solution
        .frontier
        .iter()
        .chain(&solution.official)
        .cloned()
        .collect();
    match slot {
        CalibrationSlot::Cpu => {
            manifest.operating_points = points;
            if timed_on.is_some() {
                manifest.model.timed_on = timed_on;
            }
        }
        CalibrationSlot::Other {
            backend,
            precision,
            engines,
        } => {
            let entry = crate::bundle::Calibration {
                backend: backend.clone(),
                precision: precision.clone(),
                timed_on,
                engines: engines.clone(),
                records: slot.records_dir().to_string_lossy().into_owned(),
                operating_points: points,
            };
            let list = &mut manifest.calibrations;
            match list
                .iter_mut()
                .find(|c| &c.backend == backend && &c.precision == precision)
            {
                Some(old) => *old = entry,
                None => list.push(entry),
            }
        }
    }
    if manifest.model.calibration_split.is_none() {
        manifest.model.calibration_split = Some(split.to_string());
    }
}

/// `(cost, accuracy)` of each point evaluated on `records`, sorted by that cost: the
/// piecewise-linear curve the runtime's mixing reaches with these points.
pub fn curve(points: &[OperatingPoint], records: &Records, costs: &StageCosts) -> Vec<(f64, f64)> {
    let mut c: Vec<(f64, f64)> = points
        .iter()
        .map(|p| {
            let s = records.evaluate(&p.thresholds, costs);
            (s.gflops, s.accuracy)
        })
        .collect();
    c.sort_by(|a, b| a.0.total_cmp(&b.0));
    c
}

/// Accuracy of a curve at `budget`: interpolated between points, the most accurate point's
/// accuracy above the curve's top, `None` below its cheapest point.
pub fn accuracy_at(curve: &[(f64, f64)], budget: f64) -> Option<f64> {
    let top = curve.last()?;
    if budget >= top.0 {
        return curve.iter().map(|p| p.1).reduce(f64::max);
    }
    interpolate(curve, budget)
}

/// Our accuracy vs the official procedure's at one budget, on held-out images.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Budget as a fraction of the final stage's cumulative cost.
    pub fraction: f64,
    /// Budget, GFLOPs per image.
    pub gflops: f64,
    /// Frontier accuracy (`None`: budget below its cheapest point).
    pub frontier: Option<f64>,
    /// Official accuracy (`None`: budget below its cheapest point).
    pub official: Option<f64>,
}

/// Compares both tables on `heldout` at budgets given as fractions of the final stage's
/// cumulative cost.
pub fn compare(
    manifest: &Manifest,
    solution: &Solution,
    heldout: &Records,
    fractions: &[f64],
) -> Vec<Comparison> {
    let costs = StageCosts::new(manifest, None);
    let ours = curve(&solution.frontier, heldout, &costs);
    let theirs = curve(&solution.official, heldout, &costs);
    let full = manifest.stages.last().map_or(0.0, |s| s.cumulative_gflops);
    fractions
        .iter()
        .map(|&f| Comparison {
            fraction: f,
            gflops: f * full,
            frontier: accuracy_at(&ours, f * full),
            official: accuracy_at(&theirs, f * full),
        })
        .collect()
}

/// Summary of a calibration, for the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrateReport {
    /// Backend the confidences came from.
    pub backend: String,
    /// Images the points were solved on.
    pub calibration_images: usize,
    /// Held-out split used for the comparison, if any.
    pub heldout_split: Option<String>,
    /// Held-out images.
    pub heldout_images: usize,
    /// Measured ms per image of each stage alone (batch 1), if measured.
    pub stage_ms: Option<Vec<f64>>,
    /// Official points written.
    pub official_points: usize,
    /// Frontier points written.
    pub frontier_points: usize,
    /// Ours vs official at 25%, 50%, 75% of the final stage's cost, on the held-out images
    /// (on the calibration images when there are none).
    pub comparisons: Vec<Comparison>,
    /// Largest accuracy deficit of the frontier below any official point, at that point's
    /// cost, on the held-out images (<= 0: the frontier dominates).
    pub worst_deficit: f64,
    /// Where the plot was written (`None`: built without the `cli` feature, which draws it).
    pub plot: Option<PathBuf>,
    /// What the cascade buys over one static model, on the held-out images (`None`: no
    /// held-out split).
    pub claims: Option<CascadeClaims>,
}

/// Largest `official - frontier` accuracy at the official points' costs on `records`.
pub fn worst_deficit(solution: &Solution, records: &Records, costs: &StageCosts) -> f64 {
    let ours = curve(&solution.frontier, records, costs);
    curve(&solution.official, records, costs)
        .iter()
        .filter_map(|&(c, a)| accuracy_at(&ours, c).map(|o| a - o))
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Solves on `calib`, writes the points into `bundle_dir/manifest.toml` (top level: the CPU
/// calibration) and draws the plot (curves measured on `heldout` when given).
pub fn finish(
    bundle_dir: &Path,
    manifest: &mut Manifest,
    calib: &Records,
    heldout: Option<&Records>,
    opts: &FrontierOptions,
) -> Result<CalibrateReport, PolicyError> {
    finish_in(
        bundle_dir,
        manifest,
        calib,
        heldout,
        opts,
        &CalibrationSlot::Cpu,
    )
}

/// [`finish`] into `slot`: the CPU's top level or another backend's `[[calibrations]]` entry.
pub fn finish_in(
    bundle_dir: &Path,
    manifest: &mut Manifest,
    calib: &Records,
    heldout: Option<&Records>,
    opts: &FrontierOptions,
    slot: &CalibrationSlot,
) -> Result<CalibrateReport, PolicyError> {
    let solution = solve(manifest, calib, opts)?;
    if let Some(h) = heldout {
        h.check_matches(manifest)?;
    }
    let eval_on = heldout.unwrap_or(calib);
    let costs = StageCosts::new(manifest, None);
    let comparisons = compare(manifest, &solution, eval_on, &[0.25, 0.5, 0.75]);
    let deficit = worst_deficit(&solution, eval_on, &costs);
    apply_to(
        manifest,
        &solution,
        &format!("{} ({} images)", calib.meta.split, calib.len()),
        slot,
        calib
            .meta
            .stage_ms
            .is_some()
            .then(|| calib.meta.backend.clone()),
    );
    let path = bundle_dir.join(crate::bundle::MANIFEST);
    let tmp = bundle_dir.join(".manifest.toml.tmp");
    std::fs::write(&tmp, manifest.to_toml())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| PolicyError::Io {
            path: path.clone(),
            source,
        })?;

    let plot_path = slot.plot_path(bundle_dir);
    // The plot needs plotters, which only the `cli` feature brings.
    #[cfg(feature = "cli")]
    {
        let ours = curve(&solution.frontier, eval_on, &costs);
        let chosen = comparisons
            .iter()
            .filter_map(|c| {
                accuracy_at(&ours, c.gflops)
                    .map(|a| (format!("{:.0}% budget", 100.0 * c.fraction), c.gflops, a))
            })
            .collect();
        super::plot::draw(
            &plot_path,
            &super::plot::PlotData {
                title: format!(
                    "{}: accuracy vs cost on {} images ({}), solved on {}",
                    manifest.model.name,
                    eval_on.len(),
                    eval_on.meta.split,
                    calib.meta.split
                ),
                official: curve(&solution.official, eval_on, &costs),
                frontier: ours,
                baselines: manifest
                    .baselines
                    .iter()
                    .map(|b| (b.name.clone(), b.gflops, b.accuracy))
                    .collect(),
                chosen,
            },
        )?;
    }
    Ok(CalibrateReport {
        backend: calib.meta.backend.clone(),
        calibration_images: calib.len(),
        heldout_split: heldout.map(|h| h.meta.split.clone()),
        heldout_images: heldout.map_or(0, Records::len),
        stage_ms: calib.meta.stage_ms.clone(),
        official_points: solution.official.len(),
        frontier_points: solution.frontier.len(),
        comparisons,
        worst_deficit: deficit,
        plot: cfg!(feature = "cli").then_some(plot_path),
        claims: heldout.map(|h| CascadeClaims::measure(manifest, &solution.frontier, h)),
    })
}
