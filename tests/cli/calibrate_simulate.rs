//! `dvt calibrate` and `dvt simulate` end to end: the real bundled cascade on real
//! Fashion-MNIST images (a few hundred, to keep CI quick), in a copy of the bundle.

use crate::common;

use common::{bundle_dir, copy_dir, json_stdout as json};
use dvt_edge::bundle::Bundle;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn dvt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dvt"))
        .args(args)
        .output()
        .unwrap()
}

/// One calibrated copy of the bundle (300 calibration + 300 test images), shared by the
/// tests of this file: calibrating is the slow part.
fn calibrated_copy() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("policy_cli_bundle");
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&bundle_dir(), &dir);
        // Records and points from the committed calibration must not leak into this one.
        let _ = std::fs::remove_dir_all(dir.join("calibration"));
        let r = json(&dvt(&[
            "calibrate",
            "--bundle",
            dir.to_str().unwrap(),
            "--limit",
            "300",
            "--timing-images",
            "10",
            "--threads",
            "1",
            "--json",
        ]));
        assert_eq!(r["calibration_images"], 300);
        assert_eq!(r["heldout_images"], 300);
        assert_eq!(r["official_points"], 59);
        assert!(r["frontier_points"].as_u64().unwrap() >= 2, "{r}");
        assert_eq!(r["comparisons"].as_array().unwrap().len(), 3);
        let ms: Vec<f64> = r["stage_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(ms.len() == 3 && ms.iter().all(|&m| m > 0.0), "{ms:?}");
        dir
    })
}

#[test]
fn calibrate_writes_points_records_and_plot_and_keeps_the_onnx() {
    let dir = calibrated_copy();
    let onnx_before = std::fs::read(bundle_dir().join("stage2.onnx")).unwrap();
    // The manifest still validates against the untouched ONNX files, now with points.
    let bundle = Bundle::load(dir).unwrap();
    assert_eq!(std::fs::read(dir.join("stage2.onnx")).unwrap(), onnx_before);
    let points = &bundle.manifest.operating_points;
    let official = points.iter().filter(|p| p.source == "official").count();
    let frontier: Vec<_> = points.iter().filter(|p| p.source == "frontier").collect();
    assert_eq!(official, 59);
    for w in frontier.windows(2) {
        assert!(w[1].expected_gflops > w[0].expected_gflops);
        assert!(w[1].accuracy.unwrap() >= w[0].accuracy.unwrap());
    }
    for p in points {
        assert_eq!(p.thresholds.len(), 2);
        assert!((p.exit_fractions.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(p.expected_ms.unwrap() > 0.0);
    }
    for split in ["calibration", "test"] {
        let r = dvt_edge::policy::Records::load(&dir.join(format!("calibration/{split}.rec.gz")))
            .unwrap();
        assert_eq!(r.len(), 300);
    }
    let svg = std::fs::read_to_string(dir.join("accuracy_vs_cost.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("frontier (ours)") && svg.contains("static-4x4")
    );

    // Re-solving from the saved records needs no model run and gives the same points.
    let b = dir.to_str().unwrap();
    json(&dvt(&[
        "calibrate",
        "--bundle",
        b,
        "--from-records",
        "--json",
    ]));
    let again = Bundle::load(dir).unwrap();
    for (a, b) in again.manifest.operating_points.iter().zip(points) {
        assert_eq!(a, b);
    }
    assert_eq!(again.manifest.operating_points.len(), points.len());
}

#[test]
fn simulate_reports_tracking_settling_and_accuracy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = calibrated_copy();
    let b = dir.to_str().unwrap();
    let r = json(&dvt(&["simulate", "--bundle", b, "--json"]));
    let names: Vec<&str> = r["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["step", "ramp", "harder", "watts-step"]);
    for k in [
        "mean_abs_tracking_error",
        "settling_frames",
        "accuracy",
        "optimal_accuracy",
    ] {
        assert!(r[k].as_f64().is_some(), "{k} missing: {r}");
    }
    assert!(r["accuracy"].as_f64().unwrap() > 0.5);

    // A trace file: one object for it.
    let full = Bundle::load_unchecked(dir).unwrap().manifest.stages[2].cumulative_gflops;
    let trace = tmp.path().join("t.csv");
    std::fs::write(
        &trace,
        format!(
            "frame,budget_gflops\n0,{}\n1000,{}\n",
            0.5 * full,
            0.25 * full
        ),
    )
    .unwrap();
    let r = json(&dvt(&[
        "simulate",
        "--bundle",
        b,
        "--trace",
        trace.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(r["frames"], 1501);
    assert_eq!(r["steps"].as_array().unwrap().len(), 2);
    assert!(r["mean_abs_tracking_error"].as_f64().unwrap() < 0.2, "{r}");

    // A bad trace is one clear error, not a panic.
    std::fs::write(&trace, "frame,budget_parsecs\n0,1\n").unwrap();
    let out = dvt(&[
        "simulate",
        "--bundle",
        b,
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("budget_gflops") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn simulate_states_the_noise_band_its_settling_is_measured_in() {
    // On the committed bundle's recorded test images.
    let bundle = bundle_dir();
    let r = json(&dvt(&[
        "simulate",
        "--bundle",
        bundle.to_str().unwrap(),
        "--scenario",
        "step",
        "--json",
    ]));
    let s = &r["scenarios"][0];
    let cv = s["cost_cv"].as_f64().unwrap();
    // Images exit at different stages: the per-frame cost varies by about its own mean.
    assert!(cv > 0.3, "{s}");
    let noise = s["noise_band"].as_f64().unwrap();
    assert!((noise - 2.0 * cv / 2000f64.sqrt()).abs() < 1e-9, "{s}");
    assert!((s["honest_band"].as_f64().unwrap() - noise.max(0.05)).abs() < 1e-12);
    let honest = s["settling_frames_honest"].as_u64().unwrap();
    assert!(
        honest <= s["settling_frames"].as_u64().unwrap(),
        "a wider band settles sooner: {s}"
    );
    assert!(s["steps"].as_array().unwrap().len() >= 4);
}
