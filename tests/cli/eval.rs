//! `dvt eval` end to end on real Fashion-MNIST test images (the Debian dataset package).

use crate::common;

use common::{bundle_dir, json_stdout};
use std::process::Command;

fn dvt(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dvt"))
        .args(args)
        .arg("--bundle")
        .arg(bundle_dir())
        .args(["--limit", "300", "--threads", "1", "--json"])
        .output()
        .unwrap();
    json_stdout(&out)
}

#[test]
fn eval_json_reports_accuracy_cost_and_exits() {
    let r = dvt(&["eval", "--thresholds", "0.9,0.9"]);
    assert_eq!(r["images"], 300);
    let acc = r["accuracy"].as_f64().unwrap();
    assert!(acc > 0.6 && acc <= 1.0, "a trained model: {acc}");
    let exits: Vec<f64> = r["exit_fractions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(exits.len(), 3);
    assert!((exits.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!(r["mean_gflops"].as_f64().unwrap() > 0.0);
    assert!(r["images_per_s"].as_f64().unwrap() > 0.0);

    // Stricter thresholds cost more and send more images to the last stage.
    let strict = dvt(&["eval", "--thresholds", "0.999,0.999"]);
    assert!(strict["mean_gflops"].as_f64().unwrap() > r["mean_gflops"].as_f64().unwrap());
    assert!(strict["exit_fractions"][2].as_f64().unwrap() > exits[2]);
}

#[test]
fn all_stages_reports_each_exit_and_the_baselines() {
    let r = dvt(&["eval", "--all-stages"]);
    let stages = r["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3);
    let cum: Vec<f64> = stages
        .iter()
        .map(|s| s["cumulative_gflops"].as_f64().unwrap())
        .collect();
    assert!(cum[0] < cum[1] && cum[1] < cum[2]);
    assert_eq!(r["baselines"].as_array().unwrap().len(), 3);
    for s in stages {
        let a = s["accuracy"].as_f64().unwrap();
        assert!(a > 0.5 && a <= 1.0, "{s}");
    }
}

/// Writes an uncompressed IDX file (u8 elements).
fn write_idx(path: &std::path::Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn data_that_does_not_fit_the_bundle_is_a_clear_error() {
    // 10x10 images for a 28x28 model: must be refused with a message, never a panic.
    let dir = tempfile::tempdir().unwrap();
    write_idx(
        &dir.path().join("t10k-images-idx3-ubyte"),
        &[2, 10, 10],
        &[7u8; 200],
    );
    write_idx(&dir.path().join("t10k-labels-idx1-ubyte"), &[2], &[1, 2]);
    let out = Command::new(env!("CARGO_BIN_EXE_dvt"))
        .args(["eval", "--thresholds", "0.9,0.9", "--data"])
        .arg(dir.path())
        .arg("--bundle")
        .arg(bundle_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("28x28x1"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn eval_measures_the_static_models_a_user_would_pick_instead() {
    let r = dvt(&["eval", "--thresholds", "0.9,0.9"]);
    let alts = r["alternatives"].as_array().expect("alternatives listed");
    let acc = r["accuracy"].as_f64().unwrap();
    // The final grid's static model is always measured (the bundle ships it).
    let last = alts
        .iter()
        .find(|a| a["role"].as_str().unwrap().contains("final grid"))
        .expect("final-grid static model");
    assert_eq!(last["name"], "static-14x14");
    assert!(last["images_per_s"].as_f64().unwrap() > 0.0);
    // A "cheapest at the cascade's accuracy" entry, when present, really reaches it and is the
    // cheapest such model.
    for a in alts {
        if a["role"].as_str().unwrap().starts_with("cheapest") {
            assert!(a["accuracy"].as_f64().unwrap() >= acc, "{a}");
            let g = a["gflops"].as_f64().unwrap();
            assert!(alts.iter().all(
                |b| b["accuracy"].as_f64().unwrap() < acc || b["gflops"].as_f64().unwrap() >= g
            ));
        }
    }
    let none = dvt(&["eval", "--thresholds", "0.9,0.9", "--no-baselines"]);
    assert!(none["alternatives"].as_array().unwrap().is_empty());
}
