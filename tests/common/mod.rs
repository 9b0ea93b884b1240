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

/// Runs every stage of the bundled cascade on `backend` with the exporter's reference inputs
/// (the image, and the *reference* upstream outputs, so a mismatch is pinned to its stage) and
/// asserts each output is within `limit` relative error of PyTorch's.
pub fn assert_every_stage_matches_pytorch(
    backend: &dvt_edge::backend::cpu::CpuBackend,
    limit: f32,
) {
    use dvt_edge::backend::Backend;
    use dvt_edge::bundle::{reference, Bundle};
    let bundle = Bundle::load(bundle_dir()).expect("bundled cascade loads");
    let refs = reference::load(bundle.dir()).expect("reference tensors load");
    for k in 0..bundle.num_stages() {
        let spec = &bundle.manifest.stages[k];
        let mut stage = backend.load_stage(&bundle, k).unwrap();
        let inputs: Vec<_> = spec
            .inputs
            .iter()
            .map(|t| {
                let key = match t.name.as_str() {
                    "image" => "image".to_string(),
                    other => format!("stage{}.{}_out", k, other.trim_end_matches("_in")),
                };
                backend.upload(refs[&key].clone()).unwrap()
            })
            .collect();
        let outputs = backend.run(&mut stage, &inputs).unwrap();
        assert_eq!(outputs.len(), spec.outputs.len());
        for (t, v) in spec.outputs.iter().zip(&outputs) {
            let got = backend.download(v).unwrap();
            let want = &refs[&format!("stage{}.{}", k + 1, t.name)];
            let err = rel_err(&got, want);
            assert!(
                err < limit,
                "stage {} {}: relative error {err:e}",
                k + 1,
                t.name
            );
        }
    }
}
