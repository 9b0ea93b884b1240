//! Our solver: the accuracy-vs-expected-cost frontier over threshold vectors.
//!
//! Exact in the last exit threshold, a quantile grid in the earlier ones: for every
//! combination of earlier thresholds (per-stage confidence quantiles, plus any vectors the
//! caller wants covered, e.g. the official table), the images that reach the last non-final
//! stage are sorted by its confidence and every distinct threshold there is tried (one walk,
//! prefix sums). The table is the upper concave hull of all candidates: with per-frame
//! randomised mixing of two neighbouring points (see [`super::operating_table`]) any point on a hull
//! edge is reachable, and a point under the hull is never worth using. So on the solving
//! data the frontier is at least as accurate as every candidate (the official points
//! included) at every budget.

use super::official::NEVER;
use super::operating_table::Metric;
use super::records::{Records, StageCosts};

/// Solver settings.
#[derive(Debug, Clone)]
pub struct FrontierOptions {
    /// Confidence quantiles tried per earlier stage (the last threshold is exact).
    pub grid: usize,
    /// Most combinations of earlier thresholds (limits the grid for deep cascades).
    pub max_combinations: usize,
    /// Most points kept in the table (hull vertices whose removal loses least go first).
    pub max_points: usize,
    /// Cost the frontier is built on.
    pub metric: Metric,
    /// Threshold vectors whose earlier thresholds must be among the candidates.
    pub extra: Vec<Vec<f32>>,
}

impl Default for FrontierOptions {
    fn default() -> Self {
        Self {
            grid: 200,
            max_combinations: 2000,
            max_points: 40,
            metric: Metric::Gflops,
            extra: Vec::new(),
        }
    }
}

/// One vertex of the frontier.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierPoint {
    /// One threshold per non-final stage.
    pub thresholds: Vec<f32>,
    /// Expected cost on the solving data (in the options' metric).
    pub cost: f64,
    /// Accuracy on the solving data.
    pub accuracy: f64,
}

#[derive(Debug, Clone, Copy)]
struct Cand {
    cost: f64,
    acc: f64,
    combo: usize,
    last: f32,
}

/// Solves the frontier on `records`, sorted by increasing cost (and accuracy); empty without
/// images or without the metric's costs.
pub fn solve(records: &Records, costs: &StageCosts, opts: &FrontierOptions) -> Vec<FrontierPoint> {
    let k_stages = records.stages();
    let n = records.len();
    // No frontier without the metric's costs (ms not measured) or without images.
    let Some(cost) = opts.metric.cumulative(costs) else {
        return Vec::new();
    };
    if n == 0 || k_stages < 2 {
        return Vec::new();
    }
    let last = k_stages - 2; // index of the last non-final stage (exact walk)
    let combos = combinations(records, opts, last);
    let nf = n as f64;
    let mut cands: Vec<Cand> = Vec::new();
    let mut reach: Vec<usize> = Vec::with_capacity(n);
    for (ci, prefix) in combos.iter().enumerate() {
        reach.clear();
        let (mut base_cost, mut base_acc) = (0.0, 0usize);
        for i in 0..n {
            match (0..last).find(|&k| records.conf(i, k) >= prefix[k]) {
                Some(k) => {
                    base_cost += cost[k];
                    base_acc += usize::from(records.correct(i, k));
                }
                None => reach.push(i),
            }
        }
        reach.sort_by(|&a, &b| records.conf(b, last).total_cmp(&records.conf(a, last)));
        // Start with nobody exiting at `last`, then let the most confident go, one distinct
        // confidence value at a time.
        let mut c = base_cost + reach.len() as f64 * cost[last + 1];
        let mut a = base_acc
            + reach
                .iter()
                .filter(|&&i| records.correct(i, last + 1))
                .count();
        let mut walk = vec![Cand {
            cost: c / nf,
            acc: a as f64 / nf,
            combo: ci,
            last: NEVER,
        }];
        let mut j = 0;
        while j < reach.len() {
            let v = records.conf(reach[j], last);
            while j < reach.len() && records.conf(reach[j], last) == v {
                let i = reach[j];
                c += cost[last] - cost[last + 1];
                a = a + usize::from(records.correct(i, last))
                    - usize::from(records.correct(i, last + 1));
                j += 1;
            }
            if v.is_nan() {
                continue; // NaN never passes a threshold
            }
            walk.push(Cand {
                cost: c / nf,
                acc: a as f64 / nf,
                combo: ci,
                last: v,
            });
        }
        cands.extend(upper_hull(walk));
    }
    let mut hull = upper_hull(cands);
    thin(&mut hull, opts.max_points.max(2));
    hull.into_iter()
        .map(|c| {
            let mut t = combos[c.combo].clone();
            t.push(c.last);
            FrontierPoint {
                thresholds: t,
                cost: c.cost,
                accuracy: c.acc,
            }
        })
        .collect()
}

/// Every combination of candidate thresholds for stages `0..last`.
fn combinations(records: &Records, opts: &FrontierOptions, last: usize) -> Vec<Vec<f32>> {
    let n = records.len();
    let per_stage = if last == 0 {
        1
    } else {
        let cap = (opts.max_combinations as f64)
            .powf(1.0 / last as f64)
            .floor() as usize;
        opts.grid.min(cap).max(2)
    };
    let mut lists: Vec<Vec<f32>> = Vec::with_capacity(last);
    for k in 0..last {
        let mut v: Vec<f32> = (0..n)
            .map(|i| records.conf(i, k))
            .filter(|c| !c.is_nan())
            .collect();
        v.sort_by(f32::total_cmp);
        let mut list: Vec<f32> = (0..per_stage)
            .filter_map(|g| v.get(g * v.len() / per_stage).copied())
            .collect();
        list.push(NEVER);
        list.extend(opts.extra.iter().filter_map(|t| t.get(k).copied()));
        list.sort_by(f32::total_cmp);
        list.dedup();
        lists.push(list);
    }
    let mut combos: Vec<Vec<f32>> = vec![Vec::new()];
    for list in &lists {
        combos = combos
            .iter()
            .flat_map(|c| {
                list.iter().map(move |&t| {
                    let mut c = c.clone();
                    c.push(t);
                    c
                })
            })
            .collect();
    }
    // The official vectors' exact prefixes too (the grid above crosses them with each other).
    for t in &opts.extra {
        if t.len() > last && last > 0 {
            combos.push(t[..last].to_vec());
        }
    }
    combos.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    combos.dedup();
    combos
}

/// Upper concave hull from the cheapest point to the most accurate one.
fn upper_hull(mut pts: Vec<Cand>) -> Vec<Cand> {
    pts.sort_by(|a, b| a.cost.total_cmp(&b.cost).then(b.acc.total_cmp(&a.acc)));
    pts.dedup_by(|b, a| a.cost == b.cost); // keeps the most accurate of equal costs
    let mut h: Vec<Cand> = Vec::with_capacity(pts.len());
    for p in pts {
        while h.len() >= 2 && cross(&h[h.len() - 2], &h[h.len() - 1], &p) >= 0.0 {
            h.pop();
        }
        h.push(p);
    }
    // Past the most accurate point, more cost buys less accuracy.
    if let Some(best) = h
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.acc.total_cmp(&b.1.acc).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
    {
        h.truncate(best + 1);
    }
    h
}

fn cross(o: &Cand, a: &Cand, b: &Cand) -> f64 {
    (a.cost - o.cost) * (b.acc - o.acc) - (a.acc - o.acc) * (b.cost - o.cost)
}

/// Drops interior vertices whose removal loses the least area until `max` remain; the hull
/// stays concave, so it stays a valid mixing table.
fn thin(h: &mut Vec<Cand>, max: usize) {
    while h.len() > max {
        let i = (1..h.len() - 1)
            .min_by(|&i, &j| {
                let a = cross(&h[i - 1], &h[i], &h[i + 1]).abs();
                let b = cross(&h[j - 1], &h[j], &h[j + 1]).abs();
                a.total_cmp(&b)
            })
            .expect("more than two vertices");
        h.remove(i);
    }
}

/// Accuracy of the piecewise-linear curve through `(cost, accuracy)` points (sorted by cost)
/// at `cost`; `None` outside the curve's cost range.
pub fn interpolate(curve: &[(f64, f64)], cost: f64) -> Option<f64> {
    let first = curve.first()?;
    let last = curve.last()?;
    if cost < first.0 - 1e-12 || cost > last.0 + 1e-12 {
        return None;
    }
    let j = curve.partition_point(|p| p.0 < cost);
    if j == 0 {
        return Some(first.1);
    }
    if j >= curve.len() {
        return Some(last.1);
    }
    let (a, b) = (curve[j - 1], curve[j]);
    let w = if b.0 > a.0 {
        (cost - a.0) / (b.0 - a.0)
    } else {
        1.0
    };
    Some(a.1 + w * (b.1 - a.1))
}

/// The best accuracy reachable at `cost` by mixing two of `points` (sorted or not): the
/// upper concave hull of the points, evaluated at `cost`; `None` below the cheapest point.
/// Above the costliest point the most accurate point's accuracy.
pub fn best_mix_accuracy(points: &[(f64, f64)], cost: f64) -> Option<f64> {
    let cands = points
        .iter()
        .map(|&(c, a)| Cand {
            cost: c,
            acc: a,
            combo: 0,
            last: 0.0,
        })
        .collect();
    let hull: Vec<(f64, f64)> = upper_hull(cands).iter().map(|c| (c.cost, c.acc)).collect();
    let top = *hull.last()?;
    if cost >= top.0 {
        return Some(top.1);
    }
    interpolate(&hull, cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_is_concave_and_ends_at_the_best_point() {
        let pts = [
            (1.0, 0.5),
            (2.0, 0.55),
            (2.0, 0.7),
            (3.0, 0.72),
            (4.0, 0.8),
            (5.0, 0.79),
        ];
        assert_eq!(best_mix_accuracy(&pts, 2.0), Some(0.7));
        assert_eq!(best_mix_accuracy(&pts, 9.0), Some(0.8));
        assert_eq!(best_mix_accuracy(&pts, 0.5), None);
        // (3, 0.72) lies under the segment (2, 0.7)-(4, 0.8).
        assert!((best_mix_accuracy(&pts, 3.0).unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(interpolate(&[(0.0, 0.0), (2.0, 1.0)], 1.0), Some(0.5));
    }
}
