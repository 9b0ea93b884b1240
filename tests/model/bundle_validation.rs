//! A broken bundle fails at load time with one clear error naming the stage, tensor or file,
//! and the CLI reports it without panicking.

use crate::common;

use common::{bundle_dir, copy_dir};
use dvt_edge::bundle::{Bundle, BundleError};
use std::path::Path;
use std::process::Command;

fn broken_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundle_dir(), dir.path());
    dir
}

fn edit_manifest(dir: &Path, f: impl FnOnce(String) -> String) {
    let p = dir.join("manifest.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, f(text)).unwrap();
}

fn without_checksums(text: String) -> String {
    text.lines()
        .filter(|l| !l.starts_with("sha256"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_bundled_cascade_is_valid() {
    let b = Bundle::load(bundle_dir()).unwrap();
    assert_eq!(b.num_stages(), 3);
    assert_eq!(b.manifest.model.classes.len(), 10);
}

#[test]
fn wrong_declared_shape_names_stage_tensor_and_both_shapes() {
    let dir = broken_copy();
    let declared = {
        let b = Bundle::load_unchecked(dir.path()).unwrap();
        let t = b.manifest.stages[0].output("feat_out").unwrap().clone();
        (t.shape[1].to_string(), t.shape[2].to_string())
    };
    edit_manifest(dir.path(), |t| {
        t.replacen(
            &format!("shape = [\"batch\", {}, {}]", declared.0, declared.1),
            &format!("shape = [\"batch\", {}, 999]", declared.0),
            1,
        )
    });
    let err = Bundle::load(dir.path()).unwrap_err();
    assert!(matches!(err, BundleError::TensorMismatch { .. }), "{err}");
    let msg = err.to_string();
    for part in [
        "stage1",
        "feat_out",
        &format!("[batch, {}, 999]", declared.0),
        &format!("[batch, {}, {}]", declared.0, declared.1),
    ] {
        assert!(msg.contains(part), "'{part}' missing from: {msg}");
    }
}

#[test]
fn missing_stage_file() {
    let dir = broken_copy();
    std::fs::remove_file(dir.path().join("stage2.onnx")).unwrap();
    let err = Bundle::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, BundleError::MissingFile { ref stage, .. } if stage == "stage2"),
        "{err}"
    );
}

#[test]
fn corrupt_stage_file_fails_its_checksum() {
    let dir = broken_copy();
    let p = dir.path().join("stage3.onnx");
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let err = Bundle::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, BundleError::Checksum { ref stage, .. } if stage == "stage3"),
        "{err}"
    );
}

#[test]
fn undecodable_onnx_without_checksum_is_reported_not_panicked() {
    for garbage in [b"not an onnx file at all".to_vec(), vec![0xff; 4096]] {
        let dir = broken_copy();
        edit_manifest(dir.path(), without_checksums);
        std::fs::write(dir.path().join("stage1.onnx"), &garbage).unwrap();
        let err = Bundle::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, BundleError::CorruptOnnx { ref stage, .. } if stage == "stage1"),
            "{err}"
        );
    }
    // A truncated file.
    let dir = broken_copy();
    edit_manifest(dir.path(), without_checksums);
    let p = dir.path().join("stage2.onnx");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 3]).unwrap();
    let err = Bundle::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, BundleError::CorruptOnnx { ref stage, .. } if stage == "stage2"),
        "{err}"
    );
}

#[test]
fn stages_that_do_not_chain_are_rejected() {
    let dir = broken_copy();
    // Swap stage 1 and 2's files: shapes no longer match what the manifest declares.
    edit_manifest(dir.path(), |t| {
        without_checksums(t)
            .replacen("onnx = \"stage1.onnx\"", "onnx = \"@@\"", 1)
            .replacen("onnx = \"stage2.onnx\"", "onnx = \"stage1.onnx\"", 1)
            .replacen("onnx = \"@@\"", "onnx = \"stage2.onnx\"", 1)
    });
    let err = Bundle::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::MissingTensor { .. } | BundleError::TensorMismatch { .. }
        ),
        "{err}"
    );
}

#[test]
fn malformed_manifest() {
    let dir = broken_copy();
    std::fs::write(
        dir.path().join("manifest.toml"),
        "format = 1\n[model\nname=",
    )
    .unwrap();
    assert!(matches!(
        Bundle::load(dir.path()).unwrap_err(),
        BundleError::Manifest { .. }
    ));
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Bundle::load(empty.path()).unwrap_err(),
        BundleError::Io { .. }
    ));
}

#[test]
fn cli_reports_a_broken_bundle_in_one_line() {
    let dir = broken_copy();
    std::fs::remove_file(dir.path().join("stage3.onnx")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dvt"))
        .args(["eval", "--thresholds", "0.9,0.9", "--bundle"])
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stage3") && stderr.contains("not found"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
