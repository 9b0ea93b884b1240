//! What a replay reports: the per-frame log, and the settling times, tracking errors and
//! accuracies summarised from it.

use super::{Scenario, SimConfig};
use crate::policy::operating_table::Budget;
use serde::Serialize;

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

/// The report of one scenario's run from its per-frame `log`.
pub(super) fn summarise(
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

/// Standard deviation over mean of the finite values of `v` (0 for fewer than two).
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
