//! Trace replay: the [`Controller`] against a budget trace, with frames drawn from recorded
//! per-stage confidences, costs from the bundle's per-stage GFLOPs and measured times, and a
//! simulated power sensor. Reports how well the realised cost tracks the budget and the
//! accuracy against the offline optimum (the table's best mix when the image distribution
//! is known in advance).

use super::budget::{Budget, Metric, OperatingTable};
use super::controller::{Controller, ControllerConfig, PowerModel};
use super::frontier::best_mix_accuracy;
use super::records::{Records, StageCosts};
use super::rng::Rng;
use super::PolicyError;
use serde::Serialize;
use std::path::Path;

/// A budget trace: the budget changes at each listed frame and holds until the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// `(frame, budget)`, frames increasing.
    pub steps: Vec<(usize, Budget)>,
}

impl Trace {
    /// Parses CSV text with header `frame,budget_gflops` (or `budget_watts`, `budget_ms`,
    /// `budget_ips`).
    pub fn parse(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let bad = |line: usize, reason: String| PolicyError::Format {
            path: path.to_path_buf(),
            reason: format!("line {line}: {reason}"),
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let (hl, header) = lines.next().ok_or_else(|| bad(1, "empty trace".into()))?;
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        let make: fn(f64) -> Budget = match cols.as_slice() {
            ["frame", "budget_gflops"] => Budget::Gflops,
            ["frame", "budget_watts"] => Budget::Watts,
            ["frame", "budget_ms"] => Budget::MsPerFrame,
            ["frame", "budget_ips"] => Budget::ImagesPerSecond,
            _ => {
                return Err(bad(
                    hl + 1,
                    format!("header '{header}', expected 'frame,budget_gflops' or 'frame,budget_watts' (or budget_ms, budget_ips)"),
                ))
            }
        };
        let mut steps: Vec<(usize, Budget)> = Vec::new();
        for (i, line) in lines {
            let mut f = line.split(',').map(str::trim);
            let (Some(fr), Some(v), None) = (f.next(), f.next(), f.next()) else {
                return Err(bad(i + 1, format!("'{line}' is not 'frame,value'")));
            };
            let frame: usize = fr
                .parse()
                .map_err(|_| bad(i + 1, format!("frame '{fr}' is not a non-negative integer")))?;
            let value: f64 = v
                .parse()
                .map_err(|_| bad(i + 1, format!("budget '{v}' is not a number")))?;
            let b = make(value);
            b.validate().map_err(|e| bad(i + 1, e.to_string()))?;
            if steps.last().is_some_and(|s| s.0 >= frame) {
                return Err(bad(i + 1, format!("frame {frame} does not increase")));
            }
            steps.push((frame, b));
        }
        if steps.is_empty() {
            return Err(bad(hl + 1, "no budget rows".into()));
        }
        Ok(Self { steps })
    }

    /// Reads and parses a CSV trace file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The budget in force at `frame` (the first row's before it starts).
    pub fn at(&self, frame: usize) -> Budget {
        let j = self.steps.partition_point(|s| s.0 <= frame);
        self.steps[j.saturating_sub(1)].1
    }

    /// Frames the trace covers (last change + 1).
    pub fn len(&self) -> usize {
        self.steps.last().map_or(0, |s| s.0 + 1)
    }

    /// Whether the trace has no rows.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A scenario: a trace, its length, and optionally a shift to harder images.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name for reports.
    pub name: String,
    /// Budget trace.
    pub trace: Trace,
    /// Frames to simulate.
    pub frames: usize,
    /// From this frame on, frames come from the harder half of the images.
    pub harder_from: Option<usize>,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of the frame draws and sensor noise.
    pub seed: u64,
    /// The accelerator's true power model (the controller gets `controller.power`).
    pub true_power: PowerModel,
    /// Time constant of the power sensor's averaging, in frames.
    pub sensor_lag_frames: f64,
    /// Standard deviation of the power sensor noise, watts.
    pub sensor_noise_watts: f64,
    /// Relative standard deviation of per-frame time noise.
    pub time_noise: f64,
    /// Relative band that counts as settled.
    pub settle_band: f64,
    /// Moving-average window (frames) of the expected cost for settling.
    pub settle_window: usize,
    /// The controller under test.
    pub controller: ControllerConfig,
}

impl SimConfig {
    /// Defaults for a bundle whose final exit costs `full_gflops`: power from 5 W idle to
    /// 15 W with every image at the last stage; the controller's prior model is off by
    /// +0.5 W idle and -13% slope, as a fitted model would be.
    pub fn for_cost(full_gflops: f64) -> Self {
        let slope = 10.0 / full_gflops.max(1e-12);
        let controller = ControllerConfig {
            power: PowerModel {
                idle_watts: 5.5,
                watts_per_gflop: slope / 1.15,
            },
            ..ControllerConfig::default()
        };
        Self {
            seed: 1,
            true_power: PowerModel {
                idle_watts: 5.0,
                watts_per_gflop: slope,
            },
            sensor_lag_frames: 5.0,
            sensor_noise_watts: 0.05,
            time_noise: 0.05,
            settle_band: 0.05,
            settle_window: 200,
            controller,
        }
    }
}

/// One budget step's settling.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Frame of the step.
    pub frame: usize,
    /// New budget.
    pub budget: Budget,
    /// Target the table can reach (budget clamped to the cost range on the current images).
    pub reachable_target: f64,
    /// Frames until the windowed expected cost stays within the band.
    pub settling_frames: usize,
    /// Whether it settled before the next step.
    pub settled: bool,
}

/// Result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Scenario name.
    pub scenario: String,
    /// Frames simulated.
    pub frames: usize,
    /// Mean |expected cost of each frame's mix - target| / budget, over settled frames (all
    /// frames if it never settles). The
    /// expected cost (on the images in play) is what the controller chooses; the realised
    /// cost adds the per-image sampling noise that no controller can remove.
    pub mean_abs_tracking_error: f64,
    /// Mean (expected cost - target) / budget over settled frames (negative = under budget).
    pub mean_tracking_bias: f64,
    /// Mean |mean realised cost of a 200-frame block - target| / budget over settled blocks.
    pub realised_block_error: f64,
    /// Worst settling time over the steps.
    pub settling_frames: usize,
    /// Worst settling time over the budget steps after the first (the first starts cold).
    pub settling_frames_after_start: usize,
    /// Coefficient of variation of the realised per-frame cost (relative to the target).
    pub cost_cv: f64,
    /// 2 * cost_cv / sqrt(filter_frames): the spread of a fully-fed drift estimate, the
    /// tightest band an online controller can hold the expected cost to.
    pub noise_band: f64,
    /// max(settle band, noise band): the band `settling_frames_honest` is measured in.
    pub honest_band: f64,
    /// Worst settling time over the steps within `honest_band`.
    pub settling_frames_honest: usize,
    /// Every step settled.
    pub settled: bool,
    /// Realised accuracy.
    pub accuracy: f64,
    /// Mean over frames of the best accuracy the table reaches at that frame's budget when
    /// the images are known in advance.
    pub optimal_accuracy: f64,
    /// Frames whose thresholds differ from the previous frame's while the controller is held
    /// at an end of the table (oscillation there; 0 expected).
    pub end_switches: usize,
    /// Per step.
    pub steps: Vec<StepReport>,
}

/// Per-frame trace of a run (for tests and plots).
#[derive(Debug, Clone, Default)]
pub struct FrameLog {
    /// Target in the budget's measured unit.
    pub target: Vec<f64>,
    /// Reachable target (clamped to the table's range on the images in play).
    pub reachable: Vec<f64>,
    /// Expected cost of the frame's mix on the images in play.
    pub expected: Vec<f64>,
    /// Realised cost.
    pub realised: Vec<f64>,
    /// Whether the answer was correct.
    pub correct: Vec<bool>,
    /// Best table accuracy at the budget.
    pub optimal: Vec<f64>,
    /// Thresholds used.
    pub point: Vec<Vec<f32>>,
    /// Whether the controller was saturated.
    pub saturated: Vec<bool>,
}

struct Pool {
    records: Records,
    /// Per table point: (gflops, ms, accuracy) on these images.
    stats: Vec<(f64, f64, f64)>,
}

impl Pool {
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

fn summarise(
    scenario: &Scenario,
    config: &SimConfig,
    log: &FrameLog,
    end_switches: usize,
) -> SimReport {
    let n = log.target.len();
    // Steps: the budget jumping by more than 10% from one frame to the next (a ramp's small
    // moves are tracked, not steps) and the shift to harder images.
    let mut starts = vec![0usize];
    for f in 1..n {
        let prev = log.target[f - 1];
        if (log.target[f] - prev).abs() > 0.1 * prev || scenario.harder_from == Some(f) {
            starts.push(f);
        }
    }
    let w = config.settle_window.max(1);
    // The realised per-frame cost is noisy (an image exits at one stage or another), and the
    // controller learns the realised/nominal cost ratio from it: after its longest memory
    // (filter_frames) that ratio still has a relative standard error of cv / sqrt(frames), so
    // no band tighter than twice that can be held, however the loop is tuned.
    let ratios: Vec<f64> = (0..n).map(|f| log.realised[f] / log.target[f]).collect();
    let cost_cv = coefficient_of_variation(&ratios);
    let noise_band = 2.0 * cost_cv / config.controller.filter_frames.max(1.0).sqrt();
    let honest_band = config.settle_band.max(noise_band);
    let mut honest_settle = Vec::new();
    let mut steps = Vec::new();
    let mut settled_mask = vec![false; n];
    for (j, &s) in starts.iter().enumerate() {
        let e = starts.get(j + 1).copied().unwrap_or(n);
        // Moving average of the relative error of the expected cost, over the last w frames.
        let rel: Vec<f64> = (s..e)
            .map(|f| (log.expected[f] - log.reachable[f]) / log.target[f])
            .collect();
        let settle = settling(&rel, w, config.settle_band);
        honest_settle.push(settling(&rel, w, honest_band));
        let settled = settle < rel.len();
        for m in settled_mask.iter_mut().take(e).skip(s + settle) {
            *m = true;
        }
        let budget = scenario.trace.at(s);
        steps.push(StepReport {
            frame: s,
            budget,
            reachable_target: log.reachable[s],
            settling_frames: settle,
            settled,
        });
    }
    // Errors are measured after settling; a run that never settles is measured on all of its
    // frames (and says `settled: false`), so the numbers stay finite.
    if !settled_mask.contains(&true) {
        settled_mask.iter_mut().for_each(|m| *m = true);
    }
    let settled_frames: Vec<usize> = (0..n).filter(|&f| settled_mask[f]).collect();
    let mean = |v: &mut dyn Iterator<Item = f64>| {
        let (s, c) = v.fold((0.0, 0usize), |(s, c), x| (s + x, c + 1));
        if c == 0 {
            f64::NAN
        } else {
            s / c as f64
        }
    };
    let rel = |f: usize| (log.expected[f] - log.reachable[f]) / log.target[f];
    let block = 200;
    let mut blocks = Vec::new();
    let mut f = 0;
    while f + block <= n {
        if (f..f + block).all(|g| settled_mask[g]) {
            let real = (f..f + block).map(|g| log.realised[g]).sum::<f64>() / block as f64;
            let reach = (f..f + block).map(|g| log.reachable[g]).sum::<f64>() / block as f64;
            let tgt = (f..f + block).map(|g| log.target[g]).sum::<f64>() / block as f64;
            blocks.push(((real - reach) / tgt).abs());
        }
        f += block;
    }
    if blocks.is_empty() && n > 0 {
        // Shorter than a block: one block of everything.
        let real = log.realised.iter().sum::<f64>() / n as f64;
        let reach = log.reachable.iter().sum::<f64>() / n as f64;
        let tgt = log.target.iter().sum::<f64>() / n as f64;
        blocks.push(((real - reach) / tgt).abs());
    }
    SimReport {
        scenario: scenario.name.clone(),
        frames: n,
        mean_abs_tracking_error: mean(&mut settled_frames.iter().map(|&f| rel(f).abs())),
        mean_tracking_bias: mean(&mut settled_frames.iter().map(|&f| rel(f))),
        realised_block_error: mean(&mut blocks.into_iter()),
        settling_frames: steps.iter().map(|s| s.settling_frames).max().unwrap_or(0),
        settling_frames_after_start: steps
            .iter()
            .skip(1)
            .map(|s| s.settling_frames)
            .max()
            .unwrap_or(0),
        cost_cv,
        noise_band,
        honest_band,
        settling_frames_honest: honest_settle.iter().copied().max().unwrap_or(0),
        settled: steps.iter().all(|s| s.settled),
        accuracy: log.correct.iter().filter(|&&c| c).count() as f64 / n.max(1) as f64,
        optimal_accuracy: log.optimal.iter().sum::<f64>() / n.max(1) as f64,
        end_switches,
        steps,
    }
}

/// Frames after which the `w`-frame moving average of `rel` (restarted at the step) stays
/// within `band`; `rel.len()` when it never does.
fn settling(rel: &[f64], w: usize, band: f64) -> usize {
    let mut acc = 0.0;
    let mut last_bad = None;
    for (i, r) in rel.iter().enumerate() {
        acc += r;
        if i >= w {
            acc -= rel[i - w];
        }
        if (acc / (i + 1).min(w) as f64).abs() > band {
            last_bad = Some(i);
        }
    }
    last_bad.map_or(0, |b| b + 1)
}

fn coefficient_of_variation(v: &[f64]) -> f64 {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    if mean.abs() > 0.0 {
        var.sqrt() / mean.abs()
    } else {
        0.0
    }
}

/// The built-in scenarios for a bundle whose final exit costs `full` GFLOPs: a step, a ramp,
/// a shift to harder images and a watt step (watts from [`SimConfig::for_cost`]'s model).
pub fn builtin(full: f64, power: PowerModel) -> Vec<Scenario> {
    let g = |x: f64| Budget::Gflops(x * full);
    let ramp: Vec<(usize, Budget)> = (0..=200)
        .map(|i| {
            let x = if i <= 100 {
                i as f64 / 100.0
            } else {
                (200 - i) as f64 / 100.0
            };
            (i * 20, g(0.2 + 0.5 * x))
        })
        .collect();
    let w = |x: f64| Budget::Watts(power.idle_watts + power.watts_per_gflop * x * full);
    vec![
        Scenario {
            name: "step".into(),
            trace: Trace {
                steps: vec![
                    (0, g(0.5)),
                    (1500, g(0.25)),
                    (3000, g(0.75)),
                    (4500, g(0.5)),
                ],
            },
            frames: 6000,
            harder_from: None,
        },
        Scenario {
            name: "ramp".into(),
            trace: Trace { steps: ramp },
            frames: 4200,
            harder_from: None,
        },
        Scenario {
            name: "harder".into(),
            trace: Trace {
                steps: vec![(0, g(0.4))],
            },
            frames: 5000,
            harder_from: Some(1500),
        },
        Scenario {
            name: "watts-step".into(),
            trace: Trace {
                steps: vec![(0, w(0.5)), (2000, w(0.25)), (4000, w(0.75))],
            },
            frames: 6000,
            harder_from: None,
        },
    ]
}

/// Summary over several scenarios (`dvt simulate` without a trace).
#[derive(Debug, Clone, Serialize)]
pub struct SimSummary {
    /// Mean of the scenarios' tracking errors.
    pub mean_abs_tracking_error: f64,
    /// Worst settling time over all steps of all scenarios.
    pub settling_frames: usize,
    /// Frame-weighted accuracy.
    pub accuracy: f64,
    /// Frame-weighted optimal accuracy.
    pub optimal_accuracy: f64,
    /// Every scenario.
    pub scenarios: Vec<SimReport>,
}

impl SimSummary {
    /// Aggregates reports.
    pub fn new(scenarios: Vec<SimReport>) -> Self {
        let frames: usize = scenarios.iter().map(|r| r.frames).sum::<usize>().max(1);
        let weighted = |f: fn(&SimReport) -> f64| {
            scenarios
                .iter()
                .map(|r| f(r) * r.frames as f64)
                .sum::<f64>()
                / frames as f64
        };
        Self {
            mean_abs_tracking_error: scenarios
                .iter()
                .map(|r| r.mean_abs_tracking_error)
                .sum::<f64>()
                / scenarios.len().max(1) as f64,
            settling_frames: scenarios
                .iter()
                .map(|r| r.settling_frames)
                .max()
                .unwrap_or(0),
            accuracy: weighted(|r| r.accuracy),
            optimal_accuracy: weighted(|r| r.optimal_accuracy),
            scenarios,
        }
    }
}
