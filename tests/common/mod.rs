//! Shared helpers for the integration tests.
#![allow(dead_code)]

use ndarray::ArrayD;
use std::path::{Path, PathBuf};

/// The bundled, trained cascade.
pub fn bundle_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt")
}

/// max |a - b| / max |b|.
pub fn rel_err(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let diff = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let scale = b.iter().map(|v| v.abs()).fold(0f32, f32::max).max(1e-12);
    diff / scale
}

/// Copies a directory tree (one level of subfolders is enough for bundles).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// The one JSON object a finished `dvt` run printed on stdout; panics with its stderr when the
/// run failed.
pub fn json_stdout(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "dvt failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// Runs every stage of the bundled cascade on `backend` with the reference inputs (the image,
/// and the *reference* upstream outputs, so a mismatch is pinned to its stage), through the
/// library's `check_bundle`, and asserts each output is within `limit` relative error of
/// PyTorch's.
pub fn assert_every_stage_matches_pytorch(
    backend: &dvt_edge::backend::cpu::CpuBackend,
    limit: f32,
) {
    use dvt_edge::bundle::Bundle;
    let bundle = Bundle::load(bundle_dir()).expect("bundled cascade loads");
    let report = dvt_edge::bundle::check::check_bundle(backend, &bundle, Some(limit))
        .expect("every stage runs on the reference inputs");
    let outputs: usize = bundle.manifest.stages.iter().map(|s| s.outputs.len()).sum();
    assert_eq!(report.rows.len(), outputs);
    for row in &report.rows {
        assert!(
            row.pass && row.rel_err < limit,
            "{} {}: relative error {:e} ({:?})",
            row.stage,
            row.output,
            row.rel_err,
            row.note
        );
    }
}
