//! `dvt build --dry-run`: the trtexec command lines for a named target, with no GPU and no
//! TensorRT (the target is given, so neither trtexec nor nvidia-smi is asked).

use crate::common;
use std::process::{Command, Output};

fn dry_run(extra: &[&str]) -> Output {
    let bundle = common::bundle_dir();
    Command::new(env!("CARGO_BIN_EXE_dvt"))
        .args(["build", "--dry-run", "--bundle"])
        .arg(&bundle)
        .args([
            "--trt-version",
            "10.3.0",
            "--gpu-name",
            "Orin",
            "--compute-capability",
            "8.7",
        ])
        .args(extra)
        .output()
        .expect("dvt runs")
}

#[test]
fn version_compatible_engines_for_the_lean_runtime_are_their_own_build() {
    let plain = dry_run(&[]);
    let lean = dry_run(&["--version-compatible"]);
    for out in [&plain, &lean] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (plain_lines, lean_lines) = (
        String::from_utf8_lossy(&plain.stdout).into_owned(),
        String::from_utf8_lossy(&lean.stdout).into_owned(),
    );
    // One trtexec line per stage either way; only the lean runtime's carry the flag, and they
    // write other files (the key differs), so neither build overwrites the other's engines.
    assert_eq!(plain_lines.lines().count(), 3, "{plain_lines}");
    assert_eq!(lean_lines.lines().count(), 3, "{lean_lines}");
    assert!(
        !plain_lines.contains("--versionCompatible"),
        "{plain_lines}"
    );
    assert!(
        lean_lines
            .lines()
            .all(|l| l.contains("--versionCompatible")),
        "{lean_lines}"
    );
    let engine = |l: &str| {
        l.split_whitespace()
            .find_map(|a| a.strip_prefix("--saveEngine=").map(str::to_string))
    };
    for (p, l) in plain_lines.lines().zip(lean_lines.lines()) {
        assert!(engine(p).is_some() && engine(p) != engine(l), "{p}\n{l}");
    }
    assert!(String::from_utf8_lossy(&lean.stderr).contains("version-compatible (lean runtime)"));
}
