//! Our frontier against DVT's official procedure, on images the solver never saw: synthetic
//! records, and the committed records of the bundled, trained cascade.

use crate::policy_support;

use dvt_edge::bundle::{Bundle, OperatingPoint};
use dvt_edge::policy::calibrate::{self, accuracy_at, curve, records_path, Solution};
use dvt_edge::policy::frontier::FrontierOptions;
use dvt_edge::policy::{Records, StageCosts};
use std::path::Path;

/// For every official point: (official accuracy - frontier accuracy at the same cost) on
/// `heldout`, and twice the standard error of that paired difference (images on which the
/// official point and the nearest frontier point disagree about correctness).
fn deficits(sol: &Solution, heldout: &Records, costs: &StageCosts) -> Vec<(String, f64, f64)> {
    let ours = curve(&sol.frontier, heldout, costs);
    let n = heldout.len() as f64;
    let correct =
        |p: &OperatingPoint, i: usize| heldout.correct(i, heldout.exit_stage(i, &p.thresholds));
    sol.official
        .iter()
        .map(|o| {
            let s = heldout.evaluate(&o.thresholds, costs);
            let f =
                accuracy_at(&ours, s.gflops).expect("frontier reaches down to the official costs");
            let near = sol
                .frontier
                .iter()
                .min_by(|a, b| {
                    let ca = heldout.evaluate(&a.thresholds, costs).gflops;
                    let cb = heldout.evaluate(&b.thresholds, costs).gflops;
                    (ca - s.gflops).abs().total_cmp(&(cb - s.gflops).abs())
                })
                .unwrap();
            let discordant = (0..heldout.len())
                .filter(|&i| correct(o, i) != correct(near, i))
                .count();
            (
                o.name.clone(),
                s.accuracy - f,
                2.0 * (discordant as f64).sqrt() / n,
            )
        })
        .collect()
}

#[test]
fn frontier_dominates_official_on_synthetic_heldout_images() {
    let costs = policy_support::costs();
    let calib = policy_support::records(5000, 21, 0.0);
    let heldout = policy_support::records(20_000, 22, 0.0);
    let manifest = {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt/manifest.toml"),
        )
        .unwrap();
        let mut m = dvt_edge::bundle::Manifest::parse(&text).unwrap();
        for (s, g) in m.stages.iter_mut().zip(&costs.gflops) {
            s.cumulative_gflops = *g;
            s.sha256 = None;
        }
        m
    };
    let sol = calibrate::solve(&manifest, &calib, &FrontierOptions::default()).unwrap();
    assert_eq!(sol.official.len(), 59);
    // On the solving images the frontier is never below an official point (they are among
    // its candidates).
    assert!(calibrate::worst_deficit(&sol, &calib, &costs) <= 1e-12);
    for (name, deficit, noise) in deficits(&sol, &heldout, &costs) {
        assert!(
            deficit <= noise,
            "{name}: official better by {deficit:.4} (noise {noise:.4})"
        );
    }
    // And it is genuinely better somewhere: at a quarter of the full cost.
    let cmp = calibrate::compare(&manifest, &sol, &heldout, &[0.25]);
    assert!(
        cmp[0].frontier.unwrap() > cmp[0].official.unwrap(),
        "{cmp:?}"
    );
}

#[test]
fn frontier_dominates_official_on_heldout_images_of_the_bundled_model() {
    let bundle =
        Bundle::load_unchecked(Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt"))
            .unwrap();
    let load = |split| {
        let path = records_path(bundle.dir(), split);
        let r = Records::load(&path)
            .unwrap_or_else(|e| panic!("{e}: run `dvt calibrate --bundle engines/fmnist-dvt`"));
        r.check_matches(&bundle.manifest).unwrap();
        r
    };
    // Solved on the 5,000 calibration images, judged on the 10,000 test images.
    let (calib, test) = (load("calibration"), load("test"));
    assert_eq!((calib.len(), test.len()), (5000, 10_000));
    let sol = calibrate::solve(&bundle.manifest, &calib, &FrontierOptions::default()).unwrap();
    let costs = StageCosts::new(&bundle.manifest, None);
    assert!(calibrate::worst_deficit(&sol, &calib, &costs) <= 1e-12);
    for (name, deficit, noise) in deficits(&sol, &test, &costs) {
        assert!(
            deficit <= noise,
            "{name}: official better by {deficit:.4} (noise {noise:.4})"
        );
    }
    // The manifest carries exactly this solution (calibrate wrote it from these records).
    let written: Vec<&str> = bundle
        .manifest
        .operating_points
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(written.len(), sol.frontier.len() + sol.official.len());
    for (a, b) in sol
        .frontier
        .iter()
        .chain(&sol.official)
        .zip(&bundle.manifest.operating_points)
    {
        assert_eq!(a.thresholds, b.thresholds, "{}", b.name);
    }
}
