//! Synthetic cascades for the policy tests: images of random difficulty whose confidence
//! rises with the stage and whose correctness follows the confidence, so that the records
//! behave like a real early-exit cascade (and a "harder" shift is easy to make).
#![allow(dead_code)]

use dvt_edge::bundle::OperatingPoint;
use dvt_edge::policy::frontier::{self, FrontierOptions};
use dvt_edge::policy::{OperatingTable, Records, RecordsMeta, Rng, StageCosts};

/// Cumulative GFLOPs and ms of the three exits (close to the bundled model's).
pub fn costs() -> StageCosts {
    StageCosts {
        gflops: vec![0.0018, 0.0096, 0.0536],
        ms: Some(vec![0.36, 1.6, 8.6]),
    }
}

/// `n` synthetic images; `difficulty` shifts every image's difficulty (0 = calibration-like).
pub fn records(n: usize, seed: u64, difficulty: f64) -> Records {
    let meta = RecordsMeta {
        split: format!("synthetic-{seed}"),
        backend: "synthetic".into(),
        stage_sha256: vec![None; 3],
        stage_ms: Some(vec![0.36, 1.24, 7.0]),
    };
    let mut r = Records::new(meta, 3);
    let mut rng = Rng::new(seed);
    let skill = [0.0, 0.9, 1.6];
    for _ in 0..n {
        let z = rng.normal() + difficulty;
        let label = rng.below(10) as u32;
        let top: Vec<(usize, f32)> = skill
            .iter()
            .map(|s| {
                let logit = 1.6 * (s - z) + 0.6 * rng.normal();
                let conf = 0.1 + 0.9 / (1.0 + (-logit).exp());
                let class = if rng.uniform() < conf {
                    label
                } else {
                    (label + 1) % 10
                };
                (class as usize, conf as f32)
            })
            .collect();
        r.push(&top, label).unwrap();
    }
    r
}

/// Operating points solved on `records` with our frontier solver.
pub fn frontier_points(records: &Records, costs: &StageCosts) -> Vec<OperatingPoint> {
    frontier::solve(records, costs, &FrontierOptions::default())
        .into_iter()
        .enumerate()
        .map(|(j, f)| {
            let s = records.evaluate(&f.thresholds, costs);
            OperatingPoint {
                name: format!("frontier-{j:02}"),
                source: "frontier".into(),
                thresholds: f.thresholds,
                exit_fractions: s.exit_fractions,
                expected_gflops: s.gflops,
                expected_ms: s.ms,
                accuracy: Some(s.accuracy),
            }
        })
        .collect()
}

/// A table solved on 5,000 synthetic calibration images.
pub fn table() -> (OperatingTable, Records, StageCosts) {
    let costs = costs();
    let calib = records(5000, 11, 0.0);
    let table = OperatingTable::new(frontier_points(&calib, &costs), 3).unwrap();
    (table, calib, costs)
}
