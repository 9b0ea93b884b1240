//! The CPU backend's two engines: ONNX Runtime (loaded at run time) reproduces the exporter's
//! PyTorch outputs and agrees with tract image by image; a missing or wrong library is a clear
//! error (`--engine ort`) or a fallback to tract that says why (`--engine auto`).
//!
//! ONNX Runtime comes from `ORT_DYLIB_PATH` (.cargo/config.toml points it at the library
//! tools/setup.sh links). Where it is absent these tests say so and pass, unless
//! `DVT_REQUIRE_ORT=1` (tools/test.sh, hence CI) makes its absence a failure.

use crate::common;

use common::bundle_dir;
use dvt_edge::backend::cpu::{CpuBackend, CpuRuntime};
use dvt_edge::backend::{Backend, BackendError};
use dvt_edge::bundle::Bundle;
use dvt_edge::cascade::Cascade;
use dvt_edge::data::preprocess::normalize_u8_hwc;
use dvt_edge::data::{Dataset, Split};
use std::process::Command;

/// The ONNX Runtime engine with one thread, or `None` (test skipped) when the library is not
/// there and `DVT_REQUIRE_ORT` is unset.
fn ort() -> Option<CpuBackend> {
    match CpuBackend::with_runtime(CpuRuntime::Ort, 1) {
        Ok(b) => Some(b),
        Err(e) if std::env::var_os("DVT_REQUIRE_ORT").is_none() => {
            eprintln!("skipped: ONNX Runtime not available: {e}");
            None
        }
        Err(e) => panic!("DVT_REQUIRE_ORT is set but ONNX Runtime did not load: {e}"),
    }
}

#[test]
fn ort_engine_reproduces_pytorch_on_every_stage() {
    let Some(backend) = ort() else { return };
    assert_eq!(backend.runtime(), "onnxruntime");
    assert!(
        backend.name().contains("onnxruntime 1."),
        "{}",
        backend.name()
    );
    common::assert_every_stage_matches_pytorch(&backend, 1e-4);
}

#[test]
fn engines_agree_image_by_image_through_the_cascade() {
    let Some(ort_backend) = ort() else { return };
    let bundle = Bundle::load(bundle_dir()).unwrap();
    let mut data = Dataset::load(
        std::path::Path::new(dvt_edge::data::fmnist::DEFAULT_DIR),
        Split::Test,
    )
    .unwrap();
    data.truncate(64);
    let input = &bundle.manifest.model.input;
    let mut by_ort = Cascade::load(ort_backend, &bundle).unwrap();
    let mut by_tract = Cascade::load(CpuBackend::new(1), &bundle).unwrap();
    let thresholds = [0.9f32, 0.9];
    // Batches of 16 too: ONNX Runtime takes the batch axis as it comes.
    for batch in [1usize, 16] {
        let mut same = 0;
        let mut worst_conf = 0f32;
        for start in (0..data.len()).step_by(batch) {
            let x = normalize_u8_hwc(data.pixels(start..start + batch), batch, input).unwrap();
            let a = by_ort.classify(x.clone(), &thresholds).unwrap();
            let b = by_tract.classify(x, &thresholds).unwrap();
            for (da, db) in a.decisions.iter().zip(&b.decisions) {
                same += usize::from(da.class == db.class && da.exit_stage == db.exit_stage);
                if da.exit_stage == db.exit_stage {
                    worst_conf = worst_conf.max((da.confidence - db.confidence).abs());
                }
            }
        }
        // Confidences are the same to float rounding; an image exactly at a threshold could
        // still take another exit, so allow one.
        assert!(
            same + 1 >= data.len(),
            "batch {batch}: {same}/{} agree",
            data.len()
        );
        assert!(
            worst_conf < 1e-4,
            "batch {batch}: confidence differs by {worst_conf}"
        );
    }
}

#[test]
fn ort_engine_refuses_wrong_inputs_without_panicking() {
    let Some(backend) = ort() else { return };
    let bundle = Bundle::load(bundle_dir()).unwrap();
    let mut stage = backend.load_stage(&bundle, 1).unwrap();
    let spec = &bundle.manifest.stages[1];
    let good: Vec<_> = spec
        .inputs
        .iter()
        .map(|t| ndarray::ArrayD::<f32>::zeros(t.concrete_shape(2)))
        .collect();
    // Too few inputs.
    let one = backend.upload(good[0].clone()).unwrap();
    let err = backend.run(&mut stage, &[one]).unwrap_err();
    assert!(matches!(err, BackendError::Run { .. }), "{err}");
    // One input with the wrong item shape, then one with another batch size.
    for bad in [vec![2usize, 3, 5, 5], vec![3, 1, 28, 28]] {
        let mut values: Vec<_> = good
            .iter()
            .map(|a| backend.upload(a.clone()).unwrap())
            .collect();
        values[0] = backend
            .upload(ndarray::ArrayD::<f32>::zeros(bad.clone()))
            .unwrap();
        let err = backend.run(&mut stage, &values).unwrap_err();
        assert!(matches!(err, BackendError::Shape { .. }), "{bad:?}: {err}");
    }
    // The stage still runs afterwards.
    let values: Vec<_> = good
        .iter()
        .map(|a| backend.upload(a.clone()).unwrap())
        .collect();
    assert_eq!(
        backend.run(&mut stage, &values).unwrap().len(),
        spec.outputs.len()
    );
}

/// `dvt eval` on 20 images with `engine` and ORT_DYLIB_PATH=`lib`: (success, stdout, stderr).
fn eval_with_library(engine: &str, lib: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dvt"))
        .args([
            "eval",
            "--limit",
            "20",
            "--threads",
            "1",
            "--json",
            "--thresholds",
            "0.9,0.9",
            "--engine",
            engine,
        ])
        .arg("--bundle")
        .arg(bundle_dir())
        .env("ORT_DYLIB_PATH", lib)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_or_wrong_library_is_a_clear_error_or_a_stated_fallback() {
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    let mut cases = vec![("/nonexistent/libonnxruntime.so", "failed to load")];
    if std::path::Path::new(libc).exists() {
        // A real shared library that is not ONNX Runtime.
        cases.push((libc, "OrtGetApiBase"));
    }
    for (lib, why) in cases {
        let (ok, _, err) = eval_with_library("ort", lib);
        assert!(!ok, "--engine ort with {lib} must fail");
        assert!(err.contains("onnxruntime backend unavailable"), "{err}");
        assert!(err.contains(why) && err.contains("ORT_DYLIB_PATH"), "{err}");
        assert!(!err.contains("panicked"), "{err}");

        let (ok, out, err) = eval_with_library("auto", lib);
        assert!(ok, "--engine auto falls back to tract: {err}");
        assert!(
            err.contains("running on tract") && err.contains(why),
            "{err}"
        );
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            report["backend"].as_str().unwrap().contains("tract"),
            "{report}"
        );
    }
}

#[test]
fn engine_tract_ignores_onnx_runtime() {
    let (ok, out, err) = eval_with_library("tract", "/nonexistent/libonnxruntime.so");
    assert!(ok, "{err}");
    assert!(
        !err.contains("running on tract"),
        "no fallback note when asked for tract: {err}"
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["backend"]
            .as_str()
            .unwrap()
            .starts_with("cpu (tract"),
        "{report}"
    );
}
