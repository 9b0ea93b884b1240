//! The closed loop: picks each frame's thresholds so that the *realised* cost (GFLOPs, ms per
//! frame or watts) tracks the budget, whatever the images.
//!
//! The command is a nominal expected cost `c` along the table's chain (see
//! [`OperatingTable::chain`]); each frame uses one of the two points around `c`, drawn at
//! random with the probability that makes the mix cost `c` in expectation. The law:
//!
//! - **feedforward with drift correction**: `c = T / d`, where `T` is the budget and `d` the
//!   ratio of the realised cost to the nominal cost of the points actually used (both
//!   averaged over the same frames: a long running mean, restarted from a fast estimate when
//!   the two disagree by more than the fast one's noise, i.e. when the images change). Images
//!   harder than calibration raise `d`, and the command drops to compensate; a budget step is
//!   answered at once, without waiting for the loop. For watts, the realised power is mapped to GFLOPs-equivalents by an affine power
//!   model (`idle + k * gflops`); `d` absorbs an error in `k`.
//!   The ratio is the loop's integral action in log space: its fixed point is realised cost =
//!   budget whatever the images, the idle power or the power model's slope.
//! - **optional integral trim** `c = (T / d) * (1 + i)`, `i += ki * (T - y) / T` on every raw
//!   frame cost `y` (a stochastic-approximation step), for plants whose cost ratio differs
//!   strongly between operating points. Off by default (see [`ControllerConfig::ki`]).
//! - **anti-windup**: at the table's ends the output is clamped to one point (so it cannot
//!   oscillate there), the trim is frozen while the output is saturated in the direction it
//!   would push, and the ratio is bounded.
//! - **bumpless budget changes**: on a new budget the filters are moved to the new command's
//!   prediction (keeping `d`), so the old budget's error is not integrated into the new one.

use super::operating_table::{mix_on_chain, Budget, Metric, OperatingTable};
use super::rng::Rng;
use serde::Serialize;

/// Affine power model of the accelerator at the deployment frame rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerModel {
    /// Watts with the cascade idle.
    pub idle_watts: f64,
    /// Extra watts per GFLOP of expected cost per frame.
    pub watts_per_gflop: f64,
}

/// Gains and limits of the [`Controller`].
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerConfig {
    /// Longest memory (frames) of the drift estimate. Per-frame costs are very noisy (each
    /// image costs one of K values: the mean of N frames is known to about 0.8/sqrt(N)), so a
    /// steady drift estimate needs thousands of frames.
    pub filter_frames: f64,
    /// Memory (frames) of the fast drift estimate that detects a change of image
    /// distribution.
    pub fast_frames: f64,
    /// Relative gap between the fast and the slow drift estimates that counts as a change of
    /// distribution: the slow estimate then restarts from the fast one and re-averages.
    pub drift_jump: f64,
    /// Integral gain per frame, on the relative error of each frame's cost. Per-frame costs
    /// vary by ~90%, so the trim's own noise is about `0.9 * sqrt(ki / 2)`.
    pub ki: f64,
    /// Bounds of the relative integral trim.
    pub trim_limits: (f64, f64),
    /// Bounds of the drift ratio `d` (realised / nominal cost).
    pub drift_limits: (f64, f64),
    /// Prior power model for watt budgets (refined online through `d` and the integral).
    pub power: PowerModel,
    /// Budget used until [`Controller::set_budget`] is called; `None` runs the most accurate
    /// point.
    pub safe_budget: Option<Budget>,
    /// Seed of the per-frame draws.
    pub seed: u64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            // The slow estimate averages everything since the last change of distribution, up
            // to 2000 frames (about 1.3% noise); the fast one (300 frames, about 4% noise)
            // only watches for a change beyond ~5 of its standard deviations, so that noise
            // alone almost never restarts the slow one. Budget steps do not wait for either
            // (feedforward).
            filter_frames: 2000.0,
            fast_frames: 300.0,
            drift_jump: 0.2,
            // Off: on the simulated traces (steps, ramps, harder images, watts) the ratio alone
            // settles fastest; the trim integrated the transient after a change of images
            // and unwound it over thousands of frames. For plants whose cost ratio differs
            // strongly between operating points, ~0.0003.
            ki: 0.0,
            trim_limits: (-0.5, 1.0),
            drift_limits: (0.2, 5.0),
            power: PowerModel {
                idle_watts: 5.0,
                watts_per_gflop: 200.0,
            },
            safe_budget: None,
            seed: 0x5eed,
        }
    }
}

/// What the controller is doing, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControllerState {
    /// The active budget (`None`: running the most accurate point).
    pub budget: Option<Budget>,
    /// Cost the command is expressed in.
    pub metric: Metric,
    /// Target in the budget's measured unit (ms for images/s).
    pub target: f64,
    /// Filtered realised cost, same unit.
    pub measured: f64,
    /// `(target - measured) / target`.
    pub error: f64,
    /// Commanded nominal expected cost (in `metric`).
    pub command: f64,
    /// Name of the cheaper point of the current mix.
    pub point_lo: String,
    /// Name of the costlier point.
    pub point_hi: String,
    /// Probability of `point_hi` per frame.
    pub p_hi: f64,
    /// Drift ratio: realised / nominal cost.
    pub drift: f64,
    /// Relative integral trim of the command.
    pub integral: f64,
    /// "low" or "high" when the command is held at an end of the table.
    pub saturated: Option<&'static str>,
    /// Frames observed.
    pub frames: u64,
}

/// The closed-loop budget controller.
#[derive(Debug, Clone)]
pub struct Controller {
    table: OperatingTable,
    config: ControllerConfig,
    rng: Rng,
    budget: Option<Budget>,
    metric: Metric,
    chain: Vec<(usize, f64)>,
    /// Whether the chain's cost predicts the measured unit (false: ms budget, no ms table).
    predicted: bool,
    target: f64,
    m_hat: f64,
    n_hat: f64,
    /// Fast (m, n) pair.
    fast: (f64, f64),
    /// Frames the slow pair has averaged since its last restart.
    age: f64,
    seeded: bool,
    integral: f64,
    command: f64,
    mix: (usize, usize, f64),
    saturated: Option<&'static str>,
    last_nominal: f64,
    pending_nominal: (f64, u32),
    frames: u64,
}

impl Controller {
    /// A controller over `table`, running `config.safe_budget` (or the most accurate point).
    pub fn new(table: OperatingTable, config: ControllerConfig) -> Self {
        let chain = table.chain(Metric::Gflops);
        let top = chain.len() - 1;
        let mut c = Self {
            rng: Rng::new(config.seed),
            budget: None,
            metric: Metric::Gflops,
            predicted: true,
            target: 0.0,
            m_hat: chain[top].1,
            n_hat: chain[top].1,
            fast: (chain[top].1, chain[top].1),
            // The table (calibrated on thousands of images) is worth a fast window of frames.
            age: config.fast_frames,
            seeded: true,
            integral: 0.0,
            command: chain[top].1,
            mix: (top, top, 0.0),
            saturated: None,
            last_nominal: chain[top].1,
            pending_nominal: (0.0, 0),
            frames: 0,
            chain,
            table,
            config,
        };
        if let Some(b) = c.config.safe_budget {
            c.set_budget(b);
        }
        c
    }

    /// The table.
    pub fn table(&self) -> &OperatingTable {
        &self.table
    }

    /// Switches to `budget` (ignored unless positive and finite).
    pub fn set_budget(&mut self, budget: Budget) {
        if budget.validate().is_err() || self.budget == Some(budget) {
            return;
        }
        let same_kind = self.budget.map(|b| std::mem::discriminant(&b))
            == Some(std::mem::discriminant(&budget));
        let (metric, predicted) = match budget.table_target() {
            Some((Metric::Ms, _)) if self.table.has(Metric::Ms) => (Metric::Ms, true),
            Some((Metric::Ms, _)) => (Metric::Gflops, false),
            _ => (Metric::Gflops, true),
        };
        self.budget = Some(budget);
        self.target = match budget {
            Budget::ImagesPerSecond(v) => 1000.0 / v,
            b => b.value(),
        };
        if !same_kind || metric != self.metric {
            self.metric = metric;
            self.predicted = predicted;
            self.chain = self.table.chain(metric);
            self.integral = 0.0;
            self.seeded = predicted;
            self.n_hat = self.command.clamp(self.c_min(), self.c_max());
            self.m_hat = self.n_hat;
            self.fast = (self.m_hat, self.n_hat);
            self.age = self.config.fast_frames;
        }
        let d = self.drift();
        let d_fast = self.ratio(self.fast);
        self.update_command(0.0);
        // Bumpless: the filters restart from the new command's prediction, keeping `d`.
        self.n_hat = self.command;
        self.m_hat = d * self.command;
        self.fast = (d_fast * self.command, self.command);
    }

    /// One frame done: its realised cost and time, and the latest power reading if any.
    pub fn observe(&mut self, gflops: f64, ms: f64, power_watts: Option<f64>) {
        self.frames += 1;
        self.pending_nominal.0 += self.last_nominal;
        self.pending_nominal.1 += 1;
        let Some(budget) = self.budget else { return };
        let measured = match budget {
            Budget::Gflops(_) => Some(gflops),
            Budget::MsPerFrame(_) | Budget::ImagesPerSecond(_) => Some(ms),
            Budget::Watts(_) => power_watts,
        };
        let Some(y) = measured.filter(|y| y.is_finite()) else {
            return;
        };
        let y = self.to_nominal(y);
        let nominal = self.pending_nominal.0 / f64::from(self.pending_nominal.1);
        self.pending_nominal = (0.0, 0);
        if !self.seeded {
            // No table cost for this unit: the first frames set the scale.
            self.m_hat = y;
            self.n_hat = nominal;
            self.fast = (y, nominal);
            self.age = 1.0;
            self.seeded = true;
        }
        // Slow pair: the running mean since the last restart, then an EWMA.
        self.age += 1.0;
        let a = 1.0 / self.age.min(self.config.filter_frames).max(1.0);
        self.m_hat += a * (y - self.m_hat);
        self.n_hat += a * (nominal - self.n_hat);
        let af = 1.0 / self.config.fast_frames.max(1.0);
        self.fast.0 += af * (y - self.fast.0);
        self.fast.1 += af * (nominal - self.fast.1);
        let (d_slow, d_fast) = (self.drift(), self.ratio(self.fast));
        if (d_fast / d_slow - 1.0).abs() > self.config.drift_jump {
            // The images changed: forget the old distribution. The fast pair still remembers
            // some of it (it crossed the threshold on the way), so it restarts the average
            // with little weight and the new frames soon dominate.
            (self.m_hat, self.n_hat) = self.fast;
            self.age = self.config.fast_frames / 3.0;
        }
        let t = self.to_nominal(self.target);
        let rel_error = if t > 0.0 { (t - y) / t } else { 0.0 };
        self.update_command(rel_error);
    }

    /// Thresholds for the next frame (randomised interpolation between two neighbouring
    /// points).
    pub fn thresholds(&mut self) -> Vec<f32> {
        let (lo, hi, p) = self.mix;
        let j = if self.rng.uniform() < p { hi } else { lo };
        let (idx, nominal) = self.chain[j];
        self.last_nominal = nominal;
        self.table.points()[idx].thresholds.clone()
    }

    /// The current state.
    pub fn state(&self) -> ControllerState {
        let (lo, hi, p) = self.mix;
        let name = |j: usize| self.table.points()[self.chain[j].0].name.clone();
        let measured = self.nominal_to_measured(self.m_hat);
        ControllerState {
            budget: self.budget,
            metric: self.metric,
            target: self.target,
            measured,
            error: if self.budget.is_some() {
                (self.target - measured) / self.target
            } else {
                0.0
            },
            command: self.command,
            point_lo: name(lo),
            point_hi: name(hi),
            p_hi: p,
            drift: self.drift(),
            integral: self.integral,
            saturated: self.saturated,
            frames: self.frames,
        }
    }

    fn c_min(&self) -> f64 {
        self.chain[0].1
    }

    fn c_max(&self) -> f64 {
        self.chain[self.chain.len() - 1].1
    }

    fn drift(&self) -> f64 {
        self.ratio((self.m_hat, self.n_hat))
    }

    fn ratio(&self, (m, n): (f64, f64)) -> f64 {
        let (lo, hi) = self.config.drift_limits;
        if !(n > 0.0 && m.is_finite() && m > 0.0) {
            return 1.0;
        }
        if self.predicted {
            (m / n).clamp(lo, hi)
        } else {
            m / n // a unit conversion (e.g. ms per GFLOP), not a drift: no bounds
        }
    }

    /// Measured unit -> the chain's nominal unit (only watts differ).
    fn to_nominal(&self, y: f64) -> f64 {
        match self.budget {
            Some(Budget::Watts(_)) => {
                let p = self.config.power;
                (y - p.idle_watts) / p.watts_per_gflop
            }
            _ => y,
        }
    }

    fn nominal_to_measured(&self, x: f64) -> f64 {
        match self.budget {
            Some(Budget::Watts(_)) => {
                let p = self.config.power;
                p.idle_watts + x * p.watts_per_gflop
            }
            _ => x,
        }
    }

    /// Feedforward with the drift ratio, relative integral trim with conditional integration,
    /// clamping, then the mix for the command.
    fn update_command(&mut self, rel_error: f64) {
        let (c_min, c_max) = (self.c_min(), self.c_max());
        if self.budget.is_none() {
            return;
        }
        let d = self.drift();
        // A watt budget at or below the idle power gives t <= 0: the cheapest point.
        let ff = self.to_nominal(self.target).max(0.0) / d;
        let raw = ff * (1.0 + self.integral);
        let pushing_up = rel_error > 0.0 && raw >= c_max;
        let pushing_down = rel_error < 0.0 && raw <= c_min;
        if !pushing_up && !pushing_down && ff > 0.0 {
            let (lo, hi) = self.config.trim_limits;
            self.integral = (self.integral + self.config.ki * rel_error).clamp(lo, hi);
        }
        let raw = ff * (1.0 + self.integral);
        self.command = raw.clamp(c_min, c_max);
        self.saturated = if raw <= c_min {
            Some("low")
        } else if raw >= c_max {
            Some("high")
        } else {
            None
        };
        let (lo, hi, p, _) =
            mix_on_chain(&self.chain, self.command).expect("the table is never empty");
        self.mix = (lo, hi, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::OperatingPoint;

    fn table(with_ms: bool) -> OperatingTable {
        let pts = (0..5)
            .map(|j| {
                let g = 1.0 + j as f64;
                OperatingPoint {
                    name: format!("p{j}"),
                    source: "frontier".into(),
                    thresholds: vec![0.5 + 0.1 * j as f32],
                    exit_fractions: vec![],
                    expected_gflops: g,
                    expected_ms: with_ms.then_some(2.0 * g),
                    accuracy: Some(0.5 + 0.1 * g.sqrt()),
                }
            })
            .collect();
        OperatingTable::new(pts, 2).unwrap()
    }

    /// Runs `frames` frames of a deterministic plant: each frame costs `scale` times the
    /// GFLOPs of the point used.
    fn run(c: &mut Controller, frames: usize, scale: f64) {
        for _ in 0..frames {
            let t = c.thresholds();
            let p = c
                .table()
                .points()
                .iter()
                .find(|p| p.thresholds == t)
                .unwrap();
            let g = p.expected_gflops;
            c.observe(g, scale * g, Some(5.0 + scale * g));
        }
    }

    #[test]
    fn ms_budget_without_table_times_learns_the_scale() {
        let mut c = Controller::new(table(false), ControllerConfig::default());
        c.set_budget(Budget::MsPerFrame(600.0)); // 3 GFLOPs at 200 ms per GFLOP
        run(&mut c, 3000, 200.0);
        let st = c.state();
        assert_eq!(st.metric, Metric::Gflops);
        assert!((st.measured - 600.0).abs() / 600.0 < 0.02, "{st:?}");
        assert!((st.command - 3.0).abs() < 0.1, "{st:?}");
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["budget"]["kind"], "ms_per_frame");
    }

    #[test]
    fn images_per_second_use_the_table_times_and_no_budget_runs_the_best_point() {
        let mut c = Controller::new(table(true), ControllerConfig::default());
        assert_eq!(c.thresholds(), vec![0.9]); // most accurate point until a budget comes
        c.set_budget(Budget::ImagesPerSecond(200.0)); // 5 ms = 2.5 GFLOPs nominal
        let st = c.state();
        assert_eq!((st.metric, st.target), (Metric::Ms, 5.0));
        assert!((st.command - 5.0).abs() < 1e-9 && st.point_lo == "p1" && st.point_hi == "p2");
        // Realised time 25% above the table's: the command drops by that ratio.
        run(&mut c, 6000, 2.5);
        let st = c.state();
        assert!((st.drift - 1.25).abs() < 0.03, "{st:?}");
        assert!((st.measured - 5.0).abs() / 5.0 < 0.03, "{st:?}");
    }
}
