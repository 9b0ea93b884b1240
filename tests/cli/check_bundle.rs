//! `check_bundle` on the shipped bundle: every stage reproduces the exporter's outputs, and a
//! corrupted reference is reported on exactly the output it belongs to.

use crate::common;

use common::{bundle_dir, copy_dir};
use dvt_edge::backend::cpu::CpuBackend;
use dvt_edge::bundle::check::{check_bundle, DEFAULT_TOLERANCE};
use dvt_edge::bundle::Bundle;
use std::process::Command;

#[test]
fn shipped_bundle_reproduces_its_references() {
    let bundle = Bundle::load(bundle_dir()).unwrap();
    let report = check_bundle(&CpuBackend::new(1), &bundle, None).unwrap();
    assert!(report.passed, "{report:?}");
    assert_eq!(report.images, 32);
    // 3 outputs for each stage that feeds the next, logits only for the last one
    assert_eq!(report.rows.len(), 3 * (bundle.num_stages() - 1) + 1);
    for row in &report.rows {
        assert!(row.rel_err < DEFAULT_TOLERANCE, "{row:?}");
        assert_eq!(row.shape[0], 32);
    }
}

#[test]
fn corrupted_reference_fails_on_that_output_only() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&bundle_dir(), tmp.path());
    // Shift stage 2's stored logits by +1 in the binary file.
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("reference.json")).unwrap())
            .unwrap();
    let entry = index["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "stage2.logits")
        .unwrap();
    let offset = entry["offset"].as_u64().unwrap() as usize;
    let count: u64 = entry["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .product();
    let path = tmp.path().join("reference.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    for i in offset..offset + count as usize {
        let b = &mut bytes[4 * i..4 * i + 4];
        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]) + 1.0;
        b.copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();

    let bundle = Bundle::load(tmp.path()).unwrap();
    let report = check_bundle(&CpuBackend::new(1), &bundle, None).unwrap();
    assert!(!report.passed);
    let failed: Vec<_> = report
        .rows
        .iter()
        .filter(|r| !r.pass)
        .map(|r| (r.stage.as_str(), r.output.as_str()))
        .collect();
    assert_eq!(failed, [("stage2", "logits")]);

    // The CLI prints the table and exits non-zero.
    let out = Command::new(env!("CARGO_BIN_EXE_dvt"))
        .args([
            "check-bundle",
            tmp.path().to_str().unwrap(),
            "--threads",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MISMATCH"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not reproduce"));
}

#[test]
fn missing_references_are_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&bundle_dir(), tmp.path());
    std::fs::remove_file(tmp.path().join("reference.bin")).unwrap();
    let bundle = Bundle::load(tmp.path()).unwrap();
    let err = check_bundle(&CpuBackend::new(1), &bundle, None).unwrap_err();
    assert!(err.to_string().contains("reference.bin"), "{err}");
}
