//! The cascade against the static models, image by image at batch 1: the operating point
//! matched to the largest static model's accuracy, a spread of others for the plot, and the
//! executor's overhead.

use super::cascade::{matching_point, measure_interleaved, spread, Runner};
use super::report::{CascadeVsStatic, PointRow, StaticRow};
use super::{BenchError, BenchOptions};
use crate::backend::AnyBackend;
use crate::bundle::{Baseline, Bundle};
use crate::cascade::{Cascade, CascadeError};
use crate::data::preprocess::normalize_u8_hwc;

/// What [`cascade_vs_static`] measured.
pub(super) struct Versus {
    /// The operating points timed.
    pub(super) points: Vec<PointRow>,
    /// The static models timed.
    pub(super) statics: Vec<StaticRow>,
    /// The matched point against the largest static model, when there is one.
    pub(super) versus: Option<CascadeVsStatic>,
    /// What the report should warn about.
    pub(super) warnings: Vec<String>,
}

/// Times the cascade of `bundle` and the `statics` (each a one-stage bundle) on the first
/// `opts.images` of `images` (pixels, labels if known), interleaved image by image.
pub(super) fn cascade_vs_static(
    bundle: &Bundle,
    backend: &AnyBackend,
    statics: &[(Baseline, Bundle)],
    (pixels, labels): (&[u8], Option<&[u32]>),
    opts: &BenchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Versus, BenchError> {
    let manifest = &bundle.manifest;
    let input = &manifest.model.input;
    let per = input.height * input.width * input.channels;
    let mut warnings = Vec::new();
    let n_img = opts.images;
    let singles = (0..n_img)
        .map(|i| normalize_u8_hwc(&pixels[i * per..(i + 1) * per], 1, input))
        .collect::<Result<Vec<_>, _>>()?;
    let labels = labels.map(|l| &l[..n_img]);
    let points = &manifest.operating_points;
    let largest = manifest
        .baselines
        .iter()
        .position(|b| Some(&b.grid) == manifest.stages.last().map(|s| &s.grid))
        .or_else(|| {
            (0..manifest.baselines.len()).max_by(|&a, &b| {
                manifest.baselines[a]
                    .gflops
                    .total_cmp(&manifest.baselines[b].gflops)
            })
        });
    let matched = largest.and_then(|b| {
        let target = manifest.baselines[b].accuracy;
        let costs: Vec<(f64, Option<f64>)> = points
            .iter()
            .map(|p| (p.expected_gflops, p.accuracy))
            .collect();
        matching_point(&costs, target).map(|(p, ok)| (b, p, ok))
    });
    let mut point_rows = Vec::new();
    let mut static_rows = Vec::new();
    let mut versus = None;
    if n_img > 0 {
        let mut main = Cascade::load(backend.clone(), bundle)?;
        let mut static_cascades = statics
            .iter()
            .map(|(b, one)| Ok((b.clone(), Cascade::load(backend.clone(), one)?)))
            .collect::<Result<Vec<_>, CascadeError>>()?;
        log("timing the cascade against the static models");
        let warmup = (n_img / 10).clamp(2, 20);
        // The matched point and every static model, interleaved image by image.
        let mut runners: Vec<Runner<'_, AnyBackend>> = Vec::new();
        if let Some((_, p, _)) = matched {
            runners.push(Runner {
                cascade: &mut main,
                thresholds: points[p].thresholds.clone(),
            });
        }
        for (_, c) in static_cascades.iter_mut() {
            runners.push(Runner {
                cascade: c,
                thresholds: Vec::new(),
            });
        }
        let mut measured = measure_interleaved(&mut runners, &singles, labels, warmup)?;
        drop(runners);
        let matched_measure = matched.map(|_| measured.remove(0));
        for ((b, _), m) in static_cascades.iter().zip(measured) {
            static_rows.push(StaticRow {
                name: b.name.clone(),
                manifest_accuracy: b.accuracy,
                gflops: b.gflops,
                measured: m,
            });
        }
        let costs: Vec<f64> = points.iter().map(|p| p.expected_gflops).collect();
        for i in spread(&costs, opts.points, matched.map(|m| m.1)) {
            let p = &points[i];
            let m = match (matched, &matched_measure) {
                (Some((_, mp, _)), Some(m)) if mp == i => m.clone(),
                _ => {
                    log(&format!("timing operating point {}", p.name));
                    let mut r = [Runner {
                        cascade: &mut main,
                        thresholds: p.thresholds.clone(),
                    }];
                    measure_interleaved(&mut r, &singles, labels, warmup)?.remove(0)
                }
            };
            point_rows.push(PointRow {
                name: p.name.clone(),
                source: p.source.clone(),
                thresholds: p.thresholds.clone(),
                manifest_accuracy: p.accuracy,
                expected_gflops: p.expected_gflops,
                measured: m,
            });
        }
        if let (Some((b, p, ok)), Some(m)) = (matched, &matched_measure) {
            let base = &manifest.baselines[b];
            if let Some(s) = static_rows.iter().find(|s| s.name == base.name) {
                if !ok {
                    warnings.push(format!(
                        "no operating point reaches {}'s accuracy ({:.2}%): compared with the \
                         most accurate point, {}",
                        base.name,
                        100.0 * base.accuracy,
                        points[p].name
                    ));
                }
                if m.overhead_ratio > 1.03 {
                    warnings.push(format!(
                        "executor overhead {:.3} exceeds the 1.03 goal",
                        m.overhead_ratio
                    ));
                }
                versus = Some(CascadeVsStatic {
                    point: points[p].name.clone(),
                    static_model: base.name.clone(),
                    accuracy_matched: ok,
                    point_accuracy: points[p].accuracy,
                    static_accuracy: base.accuracy,
                    cascade_ms: m.mean_ms,
                    static_ms: s.measured.mean_ms,
                    wall_ratio: m.mean_ms / s.measured.mean_ms,
                    gflops_ratio: m.mean_gflops / s.measured.mean_gflops.max(1e-12),
                    overhead_ratio: m.overhead_ratio,
                });
            }
        }
    }

    Ok(Versus {
        points: point_rows,
        statics: static_rows,
        versus,
        warnings,
    })
}
