//! `dvt bench` end to end on the embedded bundle: the documented JSON schema with positive
//! numbers, ONNX Runtime computing the same logits as we do when it is installed, a run that
//! still completes (and says so) when it is not, and clear errors on bad input.

use crate::common;

use serde_json::Value;
use std::process::Command;

fn dvt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dvt"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

#[test]
fn json_report_has_the_documented_schema() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("plot/latency_vs_accuracy.svg");
    let bundle = common::bundle_dir();
    let out = dvt()
        .args([
            "bench", "--json", "--iters", "3", "--images", "6", "--points", "2",
        ])
        .args(["--batch", "1,4", "--bundle"])
        .arg(&bundle)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let r = common::json_stdout(&out);
    let manifest = dvt_edge::bundle::Bundle::load(&bundle).unwrap().manifest;

    let stages = r["stages"].as_array().expect("stages array");
    assert_eq!(stages.len(), manifest.stages.len());
    let ort = r["ort"]["available"].as_bool().expect("ort.available");
    for (k, s) in stages.iter().enumerate() {
        assert_eq!(s["stage"].as_u64(), Some(k as u64 + 1));
        let ours = num(&s["ours_ms"], "ours_ms");
        assert!(ours > 0.0);
        let batches = s["batches"].as_array().unwrap();
        assert_eq!(
            batches
                .iter()
                .map(|b| b["batch"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            vec![1, 4]
        );
        for b in batches {
            let st = &b["ours"];
            let (min, med, p90, p99, max) = (
                num(&st["min"], "min"),
                num(&st["median"], "median"),
                num(&st["p90"], "p90"),
                num(&st["p99"], "p99"),
                num(&st["max"], "max"),
            );
            assert!(0.0 < min && min <= med && med <= p90 && p90 <= p99 && p99 <= max);
            assert!(num(&b["ours_roofline_fraction"], "roofline") > 0.0);
        }
        if ort {
            let theirs = num(&s["ort_ms"], "ort_ms");
            let ratio = num(&s["ratio"], "ratio");
            assert!(theirs > 0.0);
            assert!((ratio - ours / theirs).abs() < 1e-9 * ratio.max(1.0));
            // Same inputs, same model: both engines must agree on the logits.
            for b in batches {
                let d = num(&b["logits_rel_diff"], "logits_rel_diff");
                assert!(
                    d < 1e-3,
                    "stage {} batch {}: rel diff {d}",
                    k + 1,
                    b["batch"]
                );
            }
        } else {
            assert!(s["ort_ms"].is_null() && s["ratio"].is_null());
        }
    }
    assert!(num(&r["gemm_peak_gflops"], "gemm_peak_gflops") > 0.0);
    // Wall time of a classify call contains its stage times.
    let overhead = num(&r["cascade_overhead_ratio"], "cascade_overhead_ratio");
    assert!((0.999..10.0).contains(&overhead), "overhead {overhead}");
    let vs = &r["cascade_vs_static"];
    assert!(num(&vs["wall_ratio"], "wall_ratio") > 0.0);
    assert!(manifest
        .baselines
        .iter()
        .any(|b| vs["static_model"].as_str() == Some(b.name.as_str())));
    let points = r["points"].as_array().unwrap();
    assert!(!points.is_empty() && points.len() <= 3);
    for p in points {
        let m = &p["measured"];
        assert_eq!(m["images"].as_u64(), Some(6));
        let exits: f64 = m["exit_fractions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| num(f, "exit fraction"))
            .sum();
        assert!((exits - 1.0).abs() < 1e-9);
    }
    assert_eq!(
        r["baselines"].as_array().unwrap().len(),
        manifest
            .baselines
            .iter()
            .filter(|b| b.onnx.is_some())
            .count()
    );
    let text = std::fs::read_to_string(&svg).expect("plot written");
    assert!(text.contains("<svg") && text.contains("static"));
}

#[test]
fn runs_without_onnx_runtime_and_says_so() {
    // Neither the Python peer nor the library for our own ONNX Runtime engine.
    let out = dvt()
        .args(["bench", "--iters", "2", "--images", "2", "--points", "1"])
        .args(["--batch", "1", "--python", "/nonexistent/python3"])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ORT: unavailable"), "{text}");
    assert!(
        text.contains("warning: ONNX Runtime peer unavailable"),
        "{text}"
    );
    assert!(text.contains("stage1"), "{text}");
    assert!(text.contains("ours: cpu (tract"), "{text}");
    assert!(
        text.contains("warning: ours runs on tract: ONNX Runtime not loaded"),
        "{text}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = dvt()
        .args(["bench", "--bundle", "/nonexistent/bundle"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading bundle /nonexistent/bundle"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = dvt().args(["bench", "--batch", "0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--batch needs sizes >= 1"), "{err}");
}
