//! Trace replay: the [`Controller`] against a budget trace, with frames drawn from recorded
//! per-stage confidences, costs from the bundle's per-stage GFLOPs and measured times, and a
//! simulated power sensor. Reports how well the realised cost tracks the budget and the
//! accuracy against the offline optimum (the table's best mix when the image distribution
//! is known in advance).
//!
//! The files: `scenario` (traces, scenarios, settings), `report` (settling and tracking
//! statistics); this one replays the frames.

mod report;
mod scenario;

pub use report::{FrameLog, SimReport, SimSummary, StepReport};
pub use scenario::{builtin, Scenario, SimConfig, Trace};

use super::controller::Controller;
use super::frontier::best_mix_accuracy;
use super::operating_table::{Budget, Metric, OperatingTable};
use super::records::{Records, StageCosts};
use super::rng::Rng;
use super::PolicyError;
use report::summarise;

/// The images frames are drawn from, with each table point's cost and accuracy on them.
struct Pool {
    /// The images.
    records: Records,
    /// Per table point: (gflops, ms, accuracy) on these images.
    stats: Vec<(f64, f64, f64)>,
}

impl Pool {
    /// Evaluates every table point on `records`.
    fn new(records: Records, table: &OperatingTable, costs: &StageCosts) -> Self {
        let stats = table
            .points()
            .iter()
            .map(|p| {
                let s = records.evaluate(&p.thresholds, costs);
                (s.gflops, s.ms.unwrap_or(f64::NAN), s.accuracy)
            })
            .collect();
        Self { records, stats }
    }
}

/// The harder half of `records`: images whose first-stage confidence is below the median.
pub fn harder_half(records: &Records) -> Records {
    let mut c: Vec<f32> = (0..records.len()).map(|i| records.conf(i, 0)).collect();
    c.sort_by(f32::total_cmp);
    let median = c.get(c.len() / 2).copied().unwrap_or(0.0);
    let idx: Vec<usize> = (0..records.len())
        .filter(|&i| records.conf(i, 0) < median)
        .collect();
    records.subset(&idx)
}

/// Runs `scenario` and returns the report and the per-frame log.
pub fn run(
    table: &OperatingTable,
    records: &Records,
    costs: &StageCosts,
    scenario: &Scenario,
    config: &SimConfig,
) -> Result<(SimReport, FrameLog), PolicyError> {
    if records.is_empty() {
        return Err(PolicyError::Records("no images to replay".into()));
    }
    if scenario.trace.is_empty() {
        return Err(PolicyError::Records("empty budget trace".into()));
    }
    let ms_cost = costs.ms.clone();
    let needs_ms = scenario
        .trace
        .steps
        .iter()
        .any(|s| matches!(s.1, Budget::MsPerFrame(_) | Budget::ImagesPerSecond(_)));
    if needs_ms && ms_cost.is_none() {
        return Err(PolicyError::Records(
            "an ms or images/s trace needs measured stage times (run `dvt calibrate`)".into(),
        ));
    }
    let easy = Pool::new(records.clone(), table, costs);
    let hard = scenario
        .harder_from
        .map(|_| Pool::new(harder_half(records), table, costs));
    let mut ctl = Controller::new(table.clone(), config.controller.clone());
    let mut rng = Rng::new(config.seed);
    let mut sensor = config.true_power.idle_watts;
    let mut log = FrameLog::default();
    let tp = config.true_power;
    let mut prev_point: Option<(Vec<f32>, bool)> = None;
    let mut end_switches = 0usize;
    for f in 0..scenario.frames {
        let budget = scenario.trace.at(f);
        ctl.set_budget(budget);
        let pool = match (&hard, scenario.harder_from) {
            (Some(h), Some(from)) if f >= from => h,
            _ => &easy,
        };
        // Whether this frame's point was drawn while the command was held at an end.
        let drawn_saturated = ctl.state().saturated.is_some();
        let t = ctl.thresholds();
        let i = rng.below(pool.records.len());
        let k = pool.records.exit_stage(i, &t);
        let gflops = costs.gflops[k];
        let ms = ms_cost.as_ref().map_or(0.0, |m| m[k]) * (1.0 + config.time_noise * rng.normal());
        let watts = tp.idle_watts + tp.watts_per_gflop * gflops;
        sensor += (watts - sensor) / config.sensor_lag_frames.max(1.0);
        let reading = sensor + config.sensor_noise_watts * rng.normal();
        ctl.observe(gflops, ms, Some(reading));
        let st = ctl.state();

        // Costs of the frame's mix and of the table's ends, on the images in play, in the
        // budget's measured unit.
        let unit = |s: &(f64, f64, f64)| match budget {
            Budget::Gflops(_) => s.0,
            Budget::MsPerFrame(_) | Budget::ImagesPerSecond(_) => s.1,
            Budget::Watts(_) => tp.idle_watts + tp.watts_per_gflop * s.0,
        };
        let metric = match budget {
            Budget::MsPerFrame(_) | Budget::ImagesPerSecond(_) => Metric::Ms,
            _ => Metric::Gflops,
        };
        let chain = table.chain(metric);
        let idx_of = |name: &str| {
            table
                .points()
                .iter()
                .position(|p| p.name == name)
                .expect("state names a table point")
        };
        let (lo, hi) = (idx_of(&st.point_lo), idx_of(&st.point_hi));
        let expected = (1.0 - st.p_hi) * unit(&pool.stats[lo]) + st.p_hi * unit(&pool.stats[hi]);
        let chain_costs: Vec<f64> = chain.iter().map(|&(j, _)| unit(&pool.stats[j])).collect();
        let reach_lo = chain_costs.iter().copied().fold(f64::INFINITY, f64::min);
        let reach_hi = chain_costs
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let target = st.target;
        let reachable = target.clamp(reach_lo, reach_hi);
        let points: Vec<(f64, f64)> = pool.stats.iter().map(|s| (unit(s), s.2)).collect();
        let cheapest = points
            .iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(0.0, |p| p.1);
        let optimal = best_mix_accuracy(&points, target).unwrap_or(cheapest);
        let realised = match budget {
            Budget::Gflops(_) => gflops,
            Budget::MsPerFrame(_) | Budget::ImagesPerSecond(_) => ms,
            Budget::Watts(_) => watts,
        };
        let saturated = st.saturated.is_some();
        // Held at an end for this frame and the one before, yet the point changed.
        if drawn_saturated && prev_point.as_ref().is_some_and(|(p, sat)| *sat && *p != t) {
            end_switches += 1;
        }
        prev_point = Some((t.clone(), drawn_saturated));
        log.target.push(target);
        log.reachable.push(reachable);
        log.expected.push(expected);
        log.realised.push(realised);
        log.correct.push(pool.records.correct(i, k));
        log.optimal.push(optimal);
        log.point.push(t);
        log.saturated.push(saturated);
    }
    let report = summarise(scenario, config, &log, end_switches);
    Ok((report, log))
}
