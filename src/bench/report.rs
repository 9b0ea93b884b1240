//! The bench report: the JSON schema (`dvt bench --json`) and the text tables.

use super::cascade::Measured;
use super::gemm::GemmPeak;
use super::stats::Stats;
use serde::Serialize;
use std::fmt::Write as _;

/// Where the numbers came from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model (from /proc/cpuinfo).
    pub cpu: String,
    /// Logical cores the OS reports.
    pub cores: usize,
    /// Threads both engines were given.
    pub threads: usize,
    /// Our build: "release" or "debug" (the dev profile optimises dependencies, tract included,
    /// but not this crate).
    pub build: String,
}

/// The ONNX Runtime peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    /// Whether ORT ran.
    pub available: bool,
    /// ORT version, when it ran.
    pub version: Option<String>,
    /// How it was driven, or why it did not run.
    pub note: String,
}

/// One model at one batch size, ours and ORT's.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    /// Images per call.
    pub batch: usize,
    /// Our backend, ms per call.
    pub ours: Stats,
    /// ONNX Runtime, ms per call.
    pub ort: Option<Stats>,
    /// Our median / ORT's median (below 1: we are faster).
    pub ratio: Option<f64>,
    /// Our fastest call / ORT's fastest call: the least disturbed estimate on a busy machine.
    pub ratio_min: Option<f64>,
    /// Our images per second (median).
    pub ours_images_per_s: f64,
    /// ORT's images per second (median).
    pub ort_images_per_s: Option<f64>,
    /// Our achieved GFLOP/s (2 FLOPs per multiply-add, median).
    pub ours_gflops_per_s: f64,
    /// Our GFLOP/s as a fraction of the GEMM peak.
    pub ours_roofline_fraction: f64,
    /// ORT's GFLOP/s as a fraction of the GEMM peak.
    pub ort_roofline_fraction: Option<f64>,
    /// Max relative difference of the logits (ours vs ORT on the same inputs).
    pub logits_rel_diff: Option<f64>,
    /// A series' coefficient of variation exceeded 5%.
    pub noisy: bool,
}

/// One model (cascade stage or static baseline) with both batch sizes.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRow {
    /// 1-based stage number (absent for baselines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
    /// Stage or baseline name.
    pub name: String,
    /// GFLOPs (multiply-adds) per image of this model alone.
    pub gflops: f64,
    /// Our median at batch 1, ms.
    pub ours_ms: f64,
    /// ORT's median at batch 1, ms.
    pub ort_ms: Option<f64>,
    /// `ours_ms / ort_ms`.
    pub ratio: Option<f64>,
    /// Every batch size measured.
    pub batches: Vec<BatchRow>,
}

/// A cascade operating point as measured.
#[derive(Debug, Clone, Serialize)]
pub struct PointRow {
    /// Operating point name.
    pub name: String,
    /// Who produced it ("frontier", "official", ...).
    pub source: String,
    /// Its thresholds.
    pub thresholds: Vec<f32>,
    /// Accuracy the manifest records for it (calibration split).
    pub manifest_accuracy: Option<f64>,
    /// Expected GFLOPs per image (manifest).
    pub expected_gflops: f64,
    /// What the run measured.
    pub measured: Measured,
}

/// A static baseline run through the same executor, image by image.
#[derive(Debug, Clone, Serialize)]
pub struct StaticRow {
    /// Baseline name.
    pub name: String,
    /// Accuracy the manifest records (test split).
    pub manifest_accuracy: f64,
    /// GFLOPs per image.
    pub gflops: f64,
    /// What the run measured.
    pub measured: Measured,
}

/// The headline comparison: the cascade at the point matching the largest static model.
#[derive(Debug, Clone, Serialize)]
pub struct CascadeVsStatic {
    /// Operating point used.
    pub point: String,
    /// Static model compared with.
    pub static_model: String,
    /// Whether the point's recorded accuracy reaches the static model's (else: the most
    /// accurate point was used).
    pub accuracy_matched: bool,
    /// Point accuracy (manifest, calibration split).
    pub point_accuracy: Option<f64>,
    /// Static accuracy (manifest, test split).
    pub static_accuracy: f64,
    /// Cascade mean ms per image.
    pub cascade_ms: f64,
    /// Static mean ms per image.
    pub static_ms: f64,
    /// cascade_ms / static_ms (measured, interleaved image by image).
    pub wall_ratio: f64,
    /// Realised cascade GFLOPs / static GFLOPs on the same images.
    pub gflops_ratio: f64,
    /// Cascade wall time / sum of its stage times.
    pub overhead_ratio: f64,
}

/// Everything `dvt bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Bundle name.
    pub bundle: String,
    /// Our backend.
    pub backend: String,
    /// The machine.
    pub machine: Machine,
    /// The peer.
    pub ort: PeerInfo,
    /// Where the input images came from.
    pub images_source: String,
    /// Timed calls per stage at batch 1.
    pub iters: usize,
    /// The per-stage table, ours vs ORT.
    pub stages: Vec<ModelRow>,
    /// The static baselines, same table.
    pub baselines: Vec<ModelRow>,
    /// This machine's GEMM peak (GFLOP/s).
    pub gemm_peak_gflops: f64,
    /// How it was measured.
    pub gemm: GemmPeak,
    /// Cascade operating points, batch 1, image by image.
    pub points: Vec<PointRow>,
    /// Static baselines, batch 1, image by image.
    pub statics: Vec<StaticRow>,
    /// The cascade at the point matching the largest static model.
    pub cascade_vs_static: Option<CascadeVsStatic>,
    /// Executor overhead at that point (`cascade_vs_static.overhead_ratio`).
    pub cascade_overhead_ratio: Option<f64>,
    /// The SVG written, if any.
    pub plot: Option<String>,
    /// Noisy series, parity problems, missing peer.
    pub warnings: Vec<String>,
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

fn model_table(out: &mut String, title: &str, rows: &[ModelRow]) {
    let _ = writeln!(out, "{title}");
    let _ = writeln!(
        out,
        "model          batch    ours min   median     p90     p99     max   img/s | ORT min   median   img/s | ours/ORT median  min | %peak ours  ORT"
    );
    for r in rows {
        for b in &r.batches {
            let _ = writeln!(
                out,
                "{:<14} {:>5} {:>10.3} {:>8.3} {:>7.3} {:>7.3} {:>7.3} {:>7.0} | {:>7} {:>8} {:>7} | {:>15} {:>6} | {:>9.1}% {:>5}{}",
                r.name,
                b.batch,
                b.ours.min,
                b.ours.median,
                b.ours.p90,
                b.ours.p99,
                b.ours.max,
                b.ours_images_per_s,
                opt(b.ort.map(|s| s.min), 3),
                opt(b.ort.map(|s| s.median), 3),
                opt(b.ort_images_per_s, 0),
                opt(b.ratio, 2) + if b.ratio.is_some() { "x" } else { "" },
                opt(b.ratio_min, 2) + if b.ratio_min.is_some() { "x" } else { "" },
                100.0 * b.ours_roofline_fraction,
                b.ort_roofline_fraction
                    .map_or("-".into(), |f| format!("{:.1}%", 100.0 * f)),
                if b.noisy { "  (CV>5%)" } else { "" }
            );
        }
    }
}

/// The report as text tables.
pub fn render(r: &BenchReport) -> String {
    let mut out = String::new();
    let m = &r.machine;
    let _ = writeln!(
        out,
        "bundle {} | ours: {} | ORT: {} | {} ({} cores), {} threads, {} build",
        r.bundle,
        r.backend,
        r.ort
            .version
            .as_deref()
            .unwrap_or(if r.ort.note.contains("--no-ort") {
                "not run"
            } else {
                "unavailable"
            }),
        m.cpu,
        m.cores,
        m.threads,
        m.build
    );
    let _ = writeln!(
        out,
        "inputs: {}; {} timed calls at batch 1",
        r.images_source, r.iters
    );
    let _ = writeln!(
        out,
        "GEMM peak {:.1} GFLOP/s ({} {}^3 f32; tract-linalg {:.1}, matrixmultiply x{} {:.1})\n",
        r.gemm_peak_gflops,
        r.gemm.peak_kernel,
        r.gemm.size,
        r.gemm.tract_gflops,
        r.gemm.threads,
        r.gemm.matrixmultiply_gflops
    );
    model_table(
        &mut out,
        "Per stage, ours vs ONNX Runtime (ms per call)",
        &r.stages,
    );
    if !r.baselines.is_empty() {
        out.push('\n');
        model_table(
            &mut out,
            "Static baselines, ours vs ONNX Runtime",
            &r.baselines,
        );
    }
    if !r.points.is_empty() || !r.statics.is_empty() {
        let _ = writeln!(
            out,
            "\nCascade vs static, batch 1, image by image ({} images)",
            r.points.first().map_or(0, |p| p.measured.images)
        );
        let _ = writeln!(
            out,
            "model              acc(manifest) acc(bench)  GFLOPs/img  mean ms  median    p99   img/s  overhead  exits"
        );
        let row = |out: &mut String, name: &str, acc: Option<f64>, m: &Measured| {
            let exits: Vec<String> = m
                .exit_fractions
                .iter()
                .map(|f| format!("{:.0}%", 100.0 * f))
                .collect();
            let _ = writeln!(
                out,
                "{:<18} {:>12} {:>10} {:>11.5} {:>8.3} {:>7.3} {:>6.3} {:>7.0} {:>8.3}x  {}",
                name,
                acc.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a)),
                m.accuracy
                    .map_or("-".into(), |a| format!("{:.2}%", 100.0 * a)),
                m.mean_gflops,
                m.mean_ms,
                m.wall_ms.median,
                m.wall_ms.p99,
                m.images_per_s,
                m.overhead_ratio,
                exits.join("/")
            );
        };
        for s in &r.statics {
            row(&mut out, &s.name, Some(s.manifest_accuracy), &s.measured);
        }
        for p in &r.points {
            row(&mut out, &p.name, p.manifest_accuracy, &p.measured);
        }
    }
    if let Some(c) = &r.cascade_vs_static {
        let _ = writeln!(
            out,
            "\n{} ({}) vs {} ({:.2}%){}: wall-time ratio {:.3} ({:.3} / {:.3} ms per image), \
             GFLOPs ratio {:.3}, executor overhead {:.3} (goal <= 1.03)",
            c.point,
            opt(c.point_accuracy.map(|a| 100.0 * a), 2) + "%",
            c.static_model,
            100.0 * c.static_accuracy,
            if c.accuracy_matched {
                ""
            } else {
                " [no point reaches it: most accurate point used]"
            },
            c.wall_ratio,
            c.cascade_ms,
            c.static_ms,
            c.gflops_ratio,
            c.overhead_ratio
        );
    }
    if let Some(p) = &r.plot {
        let _ = writeln!(out, "plot: {p}");
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
