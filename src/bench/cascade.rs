//! The cascade at its operating points against the static models: per-image wall time at
//! batch 1 (a robot's frame), the exit mix actually realised on the bench images, and the
//! executor's overhead (cascade wall time / the sum of its stage times).

use super::stats::Stats;
use crate::backend::{Backend, HostTensor};
use crate::cascade::{Cascade, CascadeError};
use serde::Serialize;
use std::time::Instant;

/// One measured configuration (a cascade operating point or a static model).
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// Images classified (timed).
    pub images: usize,
    /// Wall time of each `classify` call (one image), milliseconds.
    pub wall_ms: Stats,
    /// Mean wall time per image, milliseconds (the exit mix makes the distribution
    /// multi-modal, so ratios use the mean).
    pub mean_ms: f64,
    /// Mean over images of the summed stage times (each stage's run + logits copy), ms.
    pub stage_sum_ms: f64,
    /// Executor overhead: total wall time / total stage time (1.0 = free).
    pub overhead_ratio: f64,
    /// Images per second, from the mean.
    pub images_per_s: f64,
    /// Accuracy on the bench images, when they have labels.
    pub accuracy: Option<f64>,
    /// Mean GFLOPs per image actually spent (exit mix realised on these images).
    pub mean_gflops: f64,
    /// Fraction of the bench images answered by each stage.
    pub exit_fractions: Vec<f64>,
}

#[derive(Default)]
struct Acc {
    wall: Vec<f64>,
    stage_sum: f64,
    correct: usize,
    gflops: f64,
    exits: Vec<usize>,
}

/// A cascade and the thresholds to run it with.
pub struct Runner<'a, B: Backend> {
    /// The loaded cascade (a static model is a one-stage cascade).
    pub cascade: &'a mut Cascade<B>,
    /// Its thresholds (empty for one stage).
    pub thresholds: Vec<f32>,
}

/// Classifies every image (each `[1, C, H, W]`) with every runner, alternating runners image
/// by image so that they share the machine's load, after `warmup` untimed images each.
pub fn measure_interleaved<B: Backend>(
    runners: &mut [Runner<'_, B>],
    images: &[HostTensor],
    labels: Option<&[u32]>,
    warmup: usize,
) -> Result<Vec<Measured>, CascadeError> {
    for r in runners.iter_mut() {
        for img in images.iter().cycle().take(warmup) {
            r.cascade.classify(img.clone(), &r.thresholds)?;
        }
    }
    let mut acc: Vec<Acc> = runners
        .iter()
        .map(|r| Acc {
            exits: vec![0; r.cascade.num_stages()],
            ..Acc::default()
        })
        .collect();
    for (i, img) in images.iter().enumerate() {
        for (r, a) in runners.iter_mut().zip(&mut acc) {
            let input = img.clone();
            let t = Instant::now();
            let res = r.cascade.classify(input, &r.thresholds)?;
            a.wall.push(t.elapsed().as_secs_f64() * 1e3);
            a.stage_sum += res
                .timings
                .iter()
                .map(|s| s.elapsed.as_secs_f64() * 1e3)
                .sum::<f64>();
            for d in &res.decisions {
                a.gflops += d.gflops;
                a.exits[d.exit_stage] += 1;
                if let Some(l) = labels {
                    a.correct += usize::from(d.class == l[i] as usize);
                }
            }
        }
    }
    let n = images.len();
    let nf = n.max(1) as f64;
    Ok(acc
        .into_iter()
        .map(|a| {
            let total: f64 = a.wall.iter().sum();
            Measured {
                images: n,
                wall_ms: Stats::from_samples(&a.wall),
                mean_ms: total / nf,
                stage_sum_ms: a.stage_sum / nf,
                overhead_ratio: if a.stage_sum > 0.0 {
                    total / a.stage_sum
                } else {
                    f64::NAN
                },
                images_per_s: if total > 0.0 {
                    n as f64 * 1e3 / total
                } else {
                    0.0
                },
                accuracy: labels.map(|_| a.correct as f64 / nf),
                mean_gflops: a.gflops / nf,
                exit_fractions: a.exits.iter().map(|&e| e as f64 / nf).collect(),
            }
        })
        .collect())
}

/// Index of the operating point that matches `target` accuracy: the cheapest point (by
/// expected GFLOPs) whose accuracy reaches it, else the most accurate point. The bool says
/// whether the target was reached.
pub fn matching_point(points: &[(f64, Option<f64>)], target: f64) -> Option<(usize, bool)> {
    let reaching = points
        .iter()
        .enumerate()
        .filter(|(_, (_, a))| a.is_some_and(|a| a >= target))
        .min_by(|x, y| x.1 .0.total_cmp(&y.1 .0))
        .map(|(i, _)| (i, true));
    reaching.or_else(|| {
        points
            .iter()
            .enumerate()
            .filter_map(|(i, (_, a))| a.map(|a| (i, a)))
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .map(|(i, _)| (i, false))
    })
}

/// Up to `k` indices spread evenly over `points` sorted by cost (always including the
/// cheapest and the dearest), plus `must` — the points drawn on the latency/accuracy plot.
pub fn spread(costs: &[f64], k: usize, must: Option<usize>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[a].total_cmp(&costs[b]));
    let mut pick: Vec<usize> = if k == 0 || order.is_empty() {
        Vec::new()
    } else if k == 1 {
        vec![order[0]]
    } else {
        (0..k.min(order.len()))
            .map(|j| order[j * (order.len() - 1) / (k.min(order.len()) - 1).max(1)])
            .collect()
    };
    pick.extend(must);
    pick.sort_by(|&a, &b| costs[a].total_cmp(&costs[b]));
    pick.dedup();
    pick
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_prefers_cheapest_reaching_point() {
        let pts = [
            (3.0, Some(0.80)),
            (1.0, Some(0.70)),
            (2.0, Some(0.79)),
            (4.0, None),
        ];
        assert_eq!(matching_point(&pts, 0.75), Some((2, true)));
        assert_eq!(matching_point(&pts, 0.90), Some((0, false)));
        assert_eq!(matching_point(&[], 0.5), None);
    }

    #[test]
    fn spread_covers_ends_and_keeps_must() {
        let costs = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(spread(&costs, 2, None), vec![1, 0]);
        assert_eq!(spread(&costs, 3, Some(3)), vec![1, 3, 2, 0]);
        assert_eq!(spread(&costs, 10, None).len(), 5);
        assert_eq!(spread(&costs, 0, Some(4)), vec![4]);
    }
}
