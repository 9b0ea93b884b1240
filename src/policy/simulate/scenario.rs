//! What a replay runs: budget traces (parsed from files or built in), scenarios and the
//! simulator's settings.

use crate::policy::controller::{ControllerConfig, PowerModel};
use crate::policy::operating_table::Budget;
use crate::policy::PolicyError;
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
