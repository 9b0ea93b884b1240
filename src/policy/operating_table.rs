//! Budget -> thresholds, open loop: the most accurate operating point that fits, or a
//! per-frame random mix of two neighbouring points whose expected cost equals the budget.

use super::records::StageCosts;
use super::PolicyError;
use crate::bundle::{Manifest, OperatingPoint};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A budget for the cascade.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Budget {
    /// Expected GFLOPs per image.
    Gflops(f64),
    /// Images per second (= 1000 / milliseconds per frame).
    ImagesPerSecond(f64),
    /// Milliseconds per frame.
    MsPerFrame(f64),
    /// Watts drawn by the accelerator (closed loop only: the table has no power cost).
    Watts(f64),
}

impl Budget {
    /// The number, in the budget's own unit.
    pub fn value(&self) -> f64 {
        match *self {
            Budget::Gflops(v)
            | Budget::ImagesPerSecond(v)
            | Budget::MsPerFrame(v)
            | Budget::Watts(v) => v,
        }
    }

    /// The unit's short name.
    pub fn unit(&self) -> &'static str {
        match self {
            Budget::Gflops(_) => "gflops",
            Budget::ImagesPerSecond(_) => "ips",
            Budget::MsPerFrame(_) => "ms",
            Budget::Watts(_) => "w",
        }
    }

    /// Errors unless the value is positive and finite.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let v = self.value();
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(PolicyError::BadBudget(self.to_string()))
        }
    }

    /// The table cost that predicts this budget's measured quantity, and the target in that
    /// cost's unit (`None` for watts).
    pub fn table_target(&self) -> Option<(Metric, f64)> {
        match *self {
            Budget::Gflops(v) => Some((Metric::Gflops, v)),
            Budget::MsPerFrame(v) => Some((Metric::Ms, v)),
            Budget::ImagesPerSecond(v) => Some((Metric::Ms, 1000.0 / v)),
            Budget::Watts(_) => None,
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.value(), self.unit())
    }
}

impl FromStr for Budget {
    type Err = PolicyError;

    /// `0.02gflops`, `30ips` (or `fps`), `25ms`, `10w` (or `watts`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s
            .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| PolicyError::BadBudget(s.to_string()))?;
        let b = match unit.trim().to_ascii_lowercase().as_str() {
            "gflops" | "gflop" => Budget::Gflops(v),
            "ips" | "fps" | "img/s" => Budget::ImagesPerSecond(v),
            "ms" => Budget::MsPerFrame(v),
            "w" | "watt" | "watts" => Budget::Watts(v),
            _ => {
                return Err(PolicyError::BadBudget(format!(
                    "{s} (units: gflops, ips, ms, w)"
                )))
            }
        };
        b.validate()?;
        Ok(b)
    }
}

/// Which cost of an operating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Expected GFLOPs per image.
    Gflops,
    /// Expected milliseconds per image on the calibrating backend.
    Ms,
}

impl Metric {
    /// Cumulative cost of exiting at each stage in this metric, if known.
    pub fn cumulative<'a>(&self, costs: &'a StageCosts) -> Option<&'a [f64]> {
        match self {
            Metric::Gflops => Some(&costs.gflops),
            Metric::Ms => costs.ms.as_deref(),
        }
    }

    /// A point's expected cost in this metric, if known.
    pub fn of(&self, p: &OperatingPoint) -> Option<f64> {
        match self {
            Metric::Gflops => Some(p.expected_gflops),
            Metric::Ms => p.expected_ms,
        }
    }
}

/// A randomised mix of two neighbouring table points: each frame uses `hi` with
/// probability `p_hi`, else `lo`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mix {
    /// Index (in the table) of the cheaper point.
    pub lo: usize,
    /// Index of the costlier point (equal to `lo` at the table's ends).
    pub hi: usize,
    /// Probability of `hi` per frame.
    pub p_hi: f64,
    /// Expected cost of the mix (in the metric asked for).
    pub expected_cost: f64,
    /// Expected accuracy of the mix, when the table has accuracies.
    pub expected_accuracy: Option<f64>,
    /// False when even the cheapest point costs more than the budget.
    pub feasible: bool,
}

impl Mix {
    /// The point to use for a frame, given a uniform draw `u` in [0, 1).
    pub fn pick(&self, u: f64) -> usize {
        if u < self.p_hi {
            self.hi
        } else {
            self.lo
        }
    }
}

/// The runtime's table of operating points, sorted by expected GFLOPs.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatingTable {
    points: Vec<OperatingPoint>,
}

impl OperatingTable {
    /// The manifest's frontier points ("frontier" source) if it has any, else all of its
    /// points; checks each has one threshold per non-final stage.
    pub fn from_manifest(m: &Manifest) -> Result<Self, PolicyError> {
        Self::from_calibration(&m.operating_points, m.stages.len())
    }

    /// The table of one calibration's points (its frontier points when it has any, else all
    /// of them), e.g. [`Manifest::calibration_for`]'s choice.
    pub fn from_calibration(points: &[OperatingPoint], stages: usize) -> Result<Self, PolicyError> {
        let frontier: Vec<OperatingPoint> = points
            .iter()
            .filter(|p| p.source == "frontier")
            .cloned()
            .collect();
        let points = if frontier.is_empty() {
            points.to_vec()
        } else {
            frontier
        };
        Self::new(points, stages)
    }

    /// A table from explicit points for a `stages`-stage cascade.
    pub fn new(mut points: Vec<OperatingPoint>, stages: usize) -> Result<Self, PolicyError> {
        if points.is_empty() {
            return Err(PolicyError::NoOperatingPoints);
        }
        for p in &points {
            let bad = |reason: String| PolicyError::BadPoint {
                name: p.name.clone(),
                reason,
            };
            crate::cascade::validate_thresholds(&p.thresholds, stages)
                .map_err(|e| bad(e.to_string()))?;
            if !(p.expected_gflops.is_finite() && p.expected_gflops >= 0.0) {
                return Err(bad(format!(
                    "expected_gflops {} is not valid",
                    p.expected_gflops
                )));
            }
        }
        points.sort_by(|a, b| a.expected_gflops.total_cmp(&b.expected_gflops));
        Ok(Self { points })
    }

    /// The points, cheapest first.
    pub fn points(&self) -> &[OperatingPoint] {
        &self.points
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the table is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Whether every point has a cost in `metric`.
    pub fn has(&self, metric: Metric) -> bool {
        self.points.iter().all(|p| metric.of(p).is_some())
    }

    /// The points to mix along for `metric`: indices sorted by that cost, reduced to the
    /// upper concave hull of (cost, accuracy) when every point has an accuracy (a point under
    /// the hull is never worth using), and to strictly increasing costs.
    pub fn chain(&self, metric: Metric) -> Vec<(usize, f64)> {
        let mut idx: Vec<(usize, f64)> = self
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| metric.of(p).map(|c| (i, c)))
            .collect();
        idx.sort_by(|a, b| a.1.total_cmp(&b.1));
        let accs: Option<Vec<f64>> = idx.iter().map(|&(i, _)| self.points[i].accuracy).collect();
        let Some(accs) = accs else {
            idx.dedup_by(|b, a| a.1 == b.1);
            return idx;
        };
        let mut hull: Vec<(usize, f64, f64)> = Vec::new();
        for (&(i, c), &a) in idx.iter().zip(&accs) {
            if hull.last().is_some_and(|h| h.1 == c) {
                if hull.last().is_some_and(|h| h.2 >= a) {
                    continue;
                }
                hull.pop();
            }
            while hull.len() >= 2 {
                let (o, m) = (hull[hull.len() - 2], hull[hull.len() - 1]);
                if (m.1 - o.1) * (a - o.2) - (m.2 - o.2) * (c - o.1) >= 0.0 {
                    hull.pop();
                } else {
                    break;
                }
            }
            hull.push((i, c, a));
        }
        let best = hull
            .iter()
            .enumerate()
            .max_by(|x, y| x.1 .2.total_cmp(&y.1 .2).then(y.0.cmp(&x.0)))
            .map_or(0, |(j, _)| j);
        hull.truncate(best + 1);
        hull.into_iter().map(|(i, c, _)| (i, c)).collect()
    }

    /// The mix along `metric`'s chain whose expected cost is `cost` (clamped to the chain).
    pub fn mix_for_cost(&self, metric: Metric, cost: f64) -> Option<Mix> {
        let chain = self.chain(metric);
        mix_on_chain(&chain, cost).map(|(lo, hi, p, feasible)| {
            let (li, hi_i) = (chain[lo].0, chain[hi].0);
            let acc = self.points[li]
                .accuracy
                .zip(self.points[hi_i].accuracy)
                .map(|(a, b)| (1.0 - p) * a + p * b);
            Mix {
                lo: li,
                hi: hi_i,
                p_hi: p,
                expected_cost: (1.0 - p) * chain[lo].1 + p * chain[hi].1,
                expected_accuracy: acc,
                feasible,
            }
        })
    }

    /// The most accurate mix whose expected cost fits `budget` (GFLOPs, ms or images/s).
    pub fn choose(&self, budget: Budget) -> Result<Mix, PolicyError> {
        budget.validate()?;
        let (metric, target) = budget
            .table_target()
            .ok_or(PolicyError::NeedsFeedback("watts"))?;
        if !self.has(metric) {
            return Err(PolicyError::BadPoint {
                name: self.points[0].name.clone(),
                reason: "no expected_ms: run `dvt calibrate` to measure stage times".into(),
            });
        }
        self.mix_for_cost(metric, target)
            .ok_or(PolicyError::NoOperatingPoints)
    }
}

/// Segment `(lo, hi, p_hi, feasible)` of a chain (sorted by cost) whose mix costs `cost`.
pub(crate) fn mix_on_chain(chain: &[(usize, f64)], cost: f64) -> Option<(usize, usize, f64, bool)> {
    let last = chain.len().checked_sub(1)?;
    if cost < chain[0].1 || cost.is_nan() {
        return Some((0, 0, 0.0, false));
    }
    if cost >= chain[last].1 {
        return Some((last, last, 0.0, true));
    }
    let j = chain.partition_point(|c| c.1 <= cost); // chain[j-1] <= cost < chain[j]
    let (a, b) = (chain[j - 1].1, chain[j].1);
    Some((j - 1, j, (cost - a) / (b - a), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_with_units() {
        assert_eq!(
            "0.02gflops".parse::<Budget>().unwrap(),
            Budget::Gflops(0.02)
        );
        assert_eq!(
            "30 fps".parse::<Budget>().unwrap(),
            Budget::ImagesPerSecond(30.0)
        );
        assert_eq!("2.5ms".parse::<Budget>().unwrap(), Budget::MsPerFrame(2.5));
        assert_eq!("1e1W".parse::<Budget>().unwrap(), Budget::Watts(10.0));
        assert!("-3ms".parse::<Budget>().is_err());
        assert!("3 parsecs".parse::<Budget>().is_err());
        assert_eq!(
            Budget::ImagesPerSecond(50.0).table_target(),
            Some((Metric::Ms, 20.0))
        );
    }
}
