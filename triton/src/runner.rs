//! One model instance's cascade and what it answers with: the config's operating point or
//! budget until a client sets another budget with the `budget` request parameter.
//!
//! A budget is model-wide, like `dvtctl set-budget` on dvtd: the request that carries it is
//! served under it, and so is every later request, whichever instance runs it (each instance
//! has its own cascade and controller; they all follow the [`BudgetBoard`]).

use dvt_edge::policy::Budget;
use dvt_edge::triton_repo::DefaultMode;
use dvt_edge::{AdaptiveBatch, AdaptiveCascade, AdaptiveError};
use ndarray::{ArrayD, IxDyn};
use std::sync::Mutex;

/// A value of the `budget` request parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetRequest {
    /// `default`: back to the config's `point` / `budget`.
    Default,
    /// `none`: no budget, the most accurate operating point.
    NoBudget,
    /// A budget such as `0.01gflops`, `3ms`, `300ips`.
    Budget(Budget),
}

impl BudgetRequest {
    /// Parses the parameter's value.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(Self::Default),
            "none" => Ok(Self::NoBudget),
            v => v.parse().map(Self::Budget).map_err(|e| {
                format!(
                    "request parameter budget: {e} (or \"none\" for the most accurate point, \
                     \"default\" for the model config's)"
                )
            }),
        }
    }
}

/// The budget clients last set on a model, with a generation number that instances compare
/// with the one they applied.
#[derive(Debug)]
pub struct BudgetBoard {
    inner: Mutex<(u64, BudgetRequest)>,
}

impl Default for BudgetBoard {
    fn default() -> Self {
        Self {
            inner: Mutex::new((0, BudgetRequest::Default)),
        }
    }
}

impl BudgetBoard {
    /// Posts a budget for every instance of the model.
    pub fn set(&self, request: BudgetRequest) {
        // A poisoned lock still holds a valid (u64, enum): keep serving.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        g.1 = request;
    }

    /// The latest budget and its generation.
    pub fn get(&self) -> (u64, BudgetRequest) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How the thresholds are chosen now.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// The closed-loop controller, under this budget (none: the most accurate point).
    Controller(Option<Budget>),
    /// A named operating point's thresholds, fixed.
    Pinned { name: String, thresholds: Vec<f32> },
}

/// A warm cascade and the mode it answers in.
pub struct Runner {
    dvt: AdaptiveCascade,
    default: Mode,
    mode: Mode,
    generation: u64,
}

impl Runner {
    /// Wraps a loaded cascade, starting in `default` (a point must exist in the calibration
    /// that matches the cascade's backend).
    pub fn new(mut dvt: AdaptiveCascade, default: &DefaultMode) -> Result<Self, String> {
        let default = match default {
            DefaultMode::MostAccurate => Mode::Controller(None),
            DefaultMode::Budget(b) => Mode::Controller(Some(*b)),
            DefaultMode::Point(name) => {
                let points = dvt.table().points();
                let Some(p) = points.iter().find(|p| &p.name == name) else {
                    let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
                    return Err(format!(
                        "parameter point: no operating point '{name}' in the {} calibration of \
                         bundle {} (have: {})",
                        dvt.backend().calibration,
                        dvt.dir().display(),
                        names.join(", ")
                    ));
                };
                Mode::Pinned {
                    name: name.clone(),
                    thresholds: p.thresholds.clone(),
                }
            }
        };
        if let Mode::Controller(b) = default {
            dvt.set_budget(b);
        }
        Ok(Self {
            dvt,
            mode: default.clone(),
            default,
            generation: 0,
        })
    }

    /// Applies the board's budget if it changed since the last call.
    pub fn sync(&mut self, board: &BudgetBoard) {
        let (generation, request) = board.get();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let mode = match request {
            BudgetRequest::Default => self.default.clone(),
            BudgetRequest::NoBudget => Mode::Controller(None),
            BudgetRequest::Budget(b) => Mode::Controller(Some(b)),
        };
        if let Mode::Controller(b) = mode {
            // Same budget again: the controller keeps its state (set_budget ignores repeats).
            // Coming back from a pinned point or changing budget: it starts from the table.
            if self.mode != mode {
                self.dvt.set_budget(b);
            }
        }
        self.mode = mode;
    }

    /// Runs `n` normalised images (`n * C * H * W` floats) as one cascade batch.
    pub fn run(&mut self, images: Vec<f32>, n: usize) -> Result<AdaptiveBatch, String> {
        let i = self.dvt.input();
        let shape = [n, i.channels, i.height, i.width];
        let tensor = ArrayD::from_shape_vec(IxDyn(&shape), images)
            .map_err(|e| format!("cascade batch of shape {shape:?}: {e}"))?;
        let result = match &self.mode {
            Mode::Pinned { thresholds, .. } => {
                let t = thresholds.clone();
                self.dvt.classify_batch_with(tensor, &t)
            }
            Mode::Controller(_) => self.dvt.classify_batch(tensor, None),
        };
        result.map_err(|e: AdaptiveError| format!("the cascade failed: {e}"))
    }

    /// What the answers run under, for the `budget` response parameter: a budget
    /// (`0.01gflops`), `none`, or `point NAME`.
    pub fn describe(&self) -> String {
        match &self.mode {
            Mode::Controller(Some(b)) => b.to_string(),
            Mode::Controller(None) => "none".into(),
            Mode::Pinned { name, .. } => format!("point {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvt_edge::backend::select;
    use dvt_edge::bundle::Bundle;
    use dvt_edge::cascade::Cascade;
    use dvt_edge::data::preprocess::normalize_u8_hwc;
    use dvt_edge::data::{fmnist, Dataset, Split};
    use dvt_edge::{AdaptiveOptions, BackendKind, BackendOptions};
    use std::path::Path;

    const BUNDLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../engines/fmnist-dvt");

    fn options() -> AdaptiveOptions {
        AdaptiveOptions {
            backend: BackendOptions {
                kind: BackendKind::Cpu,
                threads: 1,
                spin: false,
                ..BackendOptions::default()
            },
            max_batch: 8,
            ..AdaptiveOptions::default()
        }
    }

    #[test]
    fn budget_values_parse_or_say_what_is_accepted() {
        assert_eq!(BudgetRequest::parse(" None "), Ok(BudgetRequest::NoBudget));
        assert_eq!(BudgetRequest::parse("default"), Ok(BudgetRequest::Default));
        assert_eq!(
            BudgetRequest::parse("0.01gflops"),
            Ok(BudgetRequest::Budget(Budget::Gflops(0.01)))
        );
        let e = BudgetRequest::parse("fast").unwrap_err();
        assert!(e.contains("\"none\""), "{e}");
        assert!(BudgetRequest::parse("-3ms").is_err());
    }

    /// A pinned point answers like `dvt eval --point` (Cascade with the manifest's thresholds,
    /// one image per call) whatever the batch composition, and budgets switch the mode.
    #[test]
    fn pinned_point_equals_the_plain_cascade_and_budgets_switch_modes() {
        let Ok(data) = Dataset::load(Path::new(fmnist::DEFAULT_DIR), Split::Test) else {
            eprintln!("skipped: Fashion-MNIST not installed (tools/setup.sh installs it)");
            return;
        };
        let dvt = AdaptiveCascade::load(BUNDLE, &options()).unwrap();
        let mut r = Runner::new(dvt, &DefaultMode::Point("frontier-05".into())).unwrap();
        assert_eq!(r.describe(), "point frontier-05");
        let bundle = Bundle::load(BUNDLE).unwrap();
        let point = bundle
            .manifest
            .operating_points
            .iter()
            .find(|p| p.name == "frontier-05")
            .unwrap();
        let selected = select::open(&options().backend, &bundle).unwrap();
        let mut plain = Cascade::load(selected.backend, &bundle).unwrap();
        let spec = &bundle.manifest.model.input;
        let mut lo = 0;
        for size in [1usize, 5, 8, 3, 7, 2, 8, 6].iter().cycle().take(24) {
            let imgs = normalize_u8_hwc(data.pixels(lo..lo + size), *size, spec).unwrap();
            let got = r.run(imgs.iter().copied().collect(), *size).unwrap();
            for (k, d) in got.result.decisions.iter().enumerate() {
                let one = normalize_u8_hwc(data.pixels(lo + k..lo + k + 1), 1, spec).unwrap();
                let want = plain.classify(one, &point.thresholds).unwrap().decisions[0];
                // ONNX Runtime's kernels differ by batch size in the last bits of a logit.
                assert_eq!(
                    (d.class, d.exit_stage, d.gflops),
                    (want.class, want.exit_stage, want.gflops),
                    "image {}",
                    lo + k
                );
                assert!(
                    (d.confidence - want.confidence).abs() < 1e-5,
                    "image {}",
                    lo + k
                );
            }
            lo += size;
        }
        let board = BudgetBoard::default();
        board.set(BudgetRequest::Budget(Budget::Gflops(0.002)));
        r.sync(&board);
        assert_eq!(r.describe(), "0.002gflops");
        let imgs = normalize_u8_hwc(data.pixels(0..8), 8, spec).unwrap();
        let cheap = r.run(imgs.iter().copied().collect(), 8).unwrap();
        // 0.002 GFLOPs is about stage 1 alone: the controller runs the cheapest points, whose
        // stage-1 thresholds are far below frontier-05's.
        assert!(
            cheap.thresholds[0] < point.thresholds[0] - 0.2,
            "{:?}",
            cheap.thresholds
        );
        board.set(BudgetRequest::NoBudget);
        r.sync(&board);
        assert_eq!(r.describe(), "none");
        board.set(BudgetRequest::Default);
        r.sync(&board);
        assert_eq!(r.describe(), "point frontier-05");
    }

    #[test]
    fn an_unknown_point_lists_the_known_ones() {
        let dvt = AdaptiveCascade::load(BUNDLE, &options()).unwrap();
        let e = Runner::new(dvt, &DefaultMode::Point("fastest".into()))
            .err()
            .unwrap();
        assert!(e.contains("'fastest'") && e.contains("frontier-05"), "{e}");
    }
}
