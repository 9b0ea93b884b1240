//! The backend choice on a machine without a GPU: `--backend tensorrt` refuses in a few lines
//! naming what is missing, `auto` runs on the CPU and says why, and everything above the backend
//! (`AdaptiveCascade`, per-backend calibrations) goes through the same generic path TensorRT
//! takes. Run with and without `--features cuda,tensorrt` (tools/test.sh does both): the missing
//! piece differs (the feature, then the CUDA driver).

use crate::common;

use common::{bundle_dir, copy_dir, json_stdout};
use dvt_edge::backend::select;
use dvt_edge::bundle::Bundle;
use dvt_edge::data::{fmnist, Dataset, Split};
use dvt_edge::policy::calibrate::records_path;
use dvt_edge::{AdaptiveCascade, AdaptiveOptions, BackendKind, BackendOptions, Budget};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a GPU-less machine lacks first, for this build of the binaries.
fn missing_piece() -> &'static str {
    if cfg!(feature = "tensorrt") {
        // CUDA is opened before libnvinfer is even looked at (TensorRT crashes without a GPU).
        "CUDA driver"
    } else {
        "built without TensorRT support"
    }
}

fn dvt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dvt"))
        .args(args)
        // What a user sees: no backtrace appended to the error line.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap()
}

fn stderr_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn eval_on_tensorrt_refuses_in_at_most_three_lines_naming_the_missing_piece() {
    let bundle = bundle_dir();
    let out = dvt(&[
        "eval",
        "--bundle",
        bundle.to_str().unwrap(),
        "--backend",
        "tensorrt",
        "--thresholds",
        "0.9,0.9",
        "--limit",
        "10",
    ]);
    let lines = stderr_lines(&out);
    // 1 is anyhow's error exit; 2 would be a usage error (the flag must be accepted).
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    assert!(!lines.is_empty() && lines.len() <= 3, "{lines:?}");
    let text = lines.join("\n");
    assert!(text.contains("tensorrt"), "{text}");
    assert!(text.contains(missing_piece()), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn eval_on_auto_runs_on_the_cpu_and_says_why_in_one_line() {
    let bundle = bundle_dir();
    let out = dvt(&[
        "eval",
        "--bundle",
        bundle.to_str().unwrap(),
        "--backend",
        "auto",
        "--thresholds",
        "0.9,0.9",
        "--limit",
        "50",
        "--threads",
        "1",
        "--json",
    ]);
    let lines = stderr_lines(&out);
    let why: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("backend auto chose the CPU"))
        .collect();
    assert_eq!(why.len(), 1, "{lines:?}");
    assert!(why[0].contains(missing_piece()), "{}", why[0]);
    let r = json_stdout(&out);
    assert!(r["backend"].as_str().unwrap().starts_with("cpu"), "{r}");
    assert_eq!(r["images"], 50);
    // `--backend cpu` asked for explicitly: no excuse to print.
    let out = dvt(&[
        "eval",
        "--bundle",
        bundle.to_str().unwrap(),
        "--backend",
        "cpu",
        "--thresholds",
        "0.9,0.9",
        "--limit",
        "5",
        "--json",
    ]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("backend auto"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_command_that_runs_the_cascade_takes_the_backend_flags() {
    // Parsing only (--help exits 0): the flags exist on each subcommand.
    for cmd in ["eval", "calibrate", "check-bundle", "bench", "demo"] {
        let out = dvt(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in [
            "--backend",
            "--device",
            "--precision",
            "--batch-profile",
            "--engine",
        ] {
            assert!(help.contains(flag), "dvt {cmd} lacks {flag}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_dvtd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--backend", "--device", "--precision", "--batch-profile"] {
        assert!(help.contains(flag), "dvtd lacks {flag}");
    }
}

#[test]
fn dvtd_on_tensorrt_refuses_to_start_in_at_most_three_lines() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dvtd"))
        .args(["--bundle", bundle_dir().to_str().unwrap()])
        .args([
            "--socket",
            socket.to_str().unwrap(),
            "--backend",
            "tensorrt",
        ])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "dvtd kept running");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success());
    let lines = stderr_lines(&out);
    assert!(!lines.is_empty() && lines.len() <= 3, "{lines:?}");
    let text = lines.join("\n");
    assert!(
        text.contains("tensorrt") && text.contains(missing_piece()),
        "{text}"
    );
    assert!(
        !socket.exists(),
        "a refused daemon must not bind its socket"
    );
}

#[test]
fn the_library_choice_matches_the_binaries() {
    let bundle = Bundle::load(bundle_dir()).unwrap();
    let trt = BackendOptions {
        kind: BackendKind::Tensorrt,
        ..BackendOptions::default()
    };
    let e = select::open(&trt, &bundle).err().expect("no GPU here");
    assert!(e.to_string().contains(missing_piece()), "{e}");
    let auto = select::open(&BackendOptions::default(), &bundle).unwrap();
    assert_eq!(auto.backend.kind(), "cpu");
    assert!(auto.note.unwrap().contains(missing_piece()));
    let cpu = select::open(
        &BackendOptions {
            kind: BackendKind::Cpu,
            ..BackendOptions::default()
        },
        &bundle,
    )
    .unwrap();
    assert_eq!(cpu.backend.precision(), "fp32");
}

fn test_images(n: usize) -> Dataset {
    let mut d = Dataset::load(Path::new(fmnist::DEFAULT_DIR), Split::Test).unwrap();
    d.truncate(n);
    d
}

fn one_thread() -> AdaptiveOptions {
    AdaptiveOptions {
        backend: BackendOptions {
            threads: 1,
            ..BackendOptions::default()
        },
        ..AdaptiveOptions::default()
    }
}

#[test]
fn adaptive_cascade_meets_a_budget_and_spends_more_without_one() {
    let data = test_images(600);
    let mut dvt = AdaptiveCascade::load(bundle_dir(), &one_thread()).unwrap();
    assert_eq!(dvt.backend().kind, "cpu");
    assert_eq!(dvt.backend().calibration, "cpu-fp32");
    assert_eq!(dvt.backend().stage_files.len(), dvt.num_stages());
    assert!(dvt
        .warnings()
        .iter()
        .any(|w| w.contains("backend auto chose the CPU")));
    let mean_gflops = |dvt: &mut AdaptiveCascade| {
        let mut total = 0.0;
        for i in 0..data.len() {
            let d = dvt.classify_u8_hwc(data.pixels(i..i + 1), 1).unwrap()[0];
            assert!(d.class < dvt.labels().len());
            total += d.gflops;
        }
        total / data.len() as f64
    };
    let free = mean_gflops(&mut dvt);
    let final_cost = Bundle::load(bundle_dir())
        .unwrap()
        .manifest
        .stages
        .last()
        .unwrap()
        .cumulative_gflops;
    // A budget well inside the table's range: the controller must bring the mean cost to it.
    let budget = 0.4 * free;
    dvt.set_budget(Some(Budget::Gflops(budget)));
    let held = mean_gflops(&mut dvt);
    assert!(
        held < 0.7 * free,
        "budget {budget}: {held} vs {free} without"
    );
    assert!(
        (held - budget).abs() < 0.35 * budget,
        "budget {budget}: mean {held}"
    );
    assert!(free <= final_cost + 1e-12);
    // Back to no budget: the most accurate point again.
    dvt.set_budget(None);
    let again = mean_gflops(&mut dvt);
    assert!((again - free).abs() < 1e-9, "{again} vs {free}");
}

#[test]
fn adaptive_cascade_refuses_a_frame_of_the_wrong_size_and_keeps_working() {
    let mut dvt = AdaptiveCascade::load(bundle_dir(), &one_thread()).unwrap();
    let e = dvt.classify_u8_hwc(&[0u8; 27 * 28], 1).unwrap_err();
    assert!(e.to_string().contains("28"), "{e}");
    let data = test_images(1);
    dvt.classify_u8_hwc(data.pixels(0..1), 1).unwrap();
}

/// A copy of the bundle with a TensorRT FP16 calibration made from the CPU's records (the
/// confidences' source does not matter to the manifest code under test).
fn bundle_with_trt_calibration() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&bundle_dir(), dir.path());
    let to = dir.path().join("calibration/tensorrt-fp16");
    std::fs::create_dir_all(&to).unwrap();
    for split in ["calibration", "test"] {
        std::fs::copy(
            records_path(dir.path(), split),
            to.join(format!("{split}.rec.gz")),
        )
        .unwrap();
    }
    let out = dvt(&[
        "calibrate",
        "--bundle",
        dir.path().to_str().unwrap(),
        "--from-records",
        "--backend",
        "tensorrt",
        "--precision",
        "fp16",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn calibrate_writes_one_calibration_per_backend_and_precision() {
    let dir = bundle_with_trt_calibration();
    let b = Bundle::load(dir.path()).unwrap();
    let m = &b.manifest;
    assert_eq!(m.calibrations.len(), 1);
    let c = &m.calibrations[0];
    assert_eq!(
        (c.backend.as_str(), c.precision.as_str()),
        ("tensorrt", "fp16")
    );
    assert_eq!(c.records, "calibration/tensorrt-fp16");
    assert!(!c.operating_points.is_empty());
    assert!(dir
        .path()
        .join("calibration/tensorrt-fp16/accuracy_vs_cost.svg")
        .is_file());
    // The CPU calibration is untouched.
    let orig = Bundle::load(bundle_dir()).unwrap().manifest;
    assert_eq!(m.operating_points, orig.operating_points);
    assert_eq!(m.model.timed_on, orig.model.timed_on);

    // The matching calibration is chosen for TensorRT FP16, silently.
    let fp16 = m.calibration_for("tensorrt", "fp16", &[]);
    assert_eq!(fp16.id(), "tensorrt-fp16");
    assert!(fp16.warning.is_none());
    assert_eq!(fp16.points, &c.operating_points[..]);
    // None for FP32 engines: the CPU one, with a warning that says what to run.
    let fp32 = m.calibration_for("tensorrt", "fp32", &[]);
    assert_eq!(fp32.id(), "cpu-fp32");
    assert!(fp32
        .warning
        .as_deref()
        .unwrap()
        .contains("dvt calibrate --backend tensorrt"));
    // The CPU gets the CPU's, silently.
    let cpu = m.calibration_for("cpu", "fp32", &[]);
    assert!(cpu.warning.is_none());
    assert_eq!(cpu.points, &m.operating_points[..]);
    // Re-running replaces the entry rather than adding a second one.
    let out = dvt(&[
        "calibrate",
        "--bundle",
        dir.path().to_str().unwrap(),
        "--from-records",
        "--backend",
        "tensorrt",
        "--json",
    ]);
    assert!(out.status.success());
    assert_eq!(
        Bundle::load(dir.path())
            .unwrap()
            .manifest
            .calibrations
            .len(),
        1
    );
}

#[test]
fn calibrations_are_validated_on_load() {
    let dir = bundle_with_trt_calibration();
    let path = dir.path().join("manifest.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let entry = good.find("[[calibrations]]").unwrap();
    let (head, tail) = good.split_at(entry);
    let cases: Vec<(String, &str)> = vec![
        (
            tail.replacen("backend = \"tensorrt\"", "backend = \"cpu\"", 1),
            "top-level",
        ),
        (
            tail.replacen("backend = \"tensorrt\"", "backend = \"vulkan\"", 1),
            "unknown backend",
        ),
        (
            tail.replacen("precision = \"fp16\"", "precision = \"int8\"", 1),
            "unknown precision",
        ),
        (format!("{tail}\n{tail}"), "a second calibration"),
        (
            tail.replacen("engines = []", "engines = [\"a.plan\"]", 1),
            "engine files for 3 stages",
        ),
        (
            tail.replacen(
                "records = \"calibration/tensorrt-fp16\"",
                "records = \"../x\"",
                1,
            ),
            "inside the bundle",
        ),
        (
            tail.replacen("thresholds = [", "thresholds = [0.5, ", 1),
            "thresholds",
        ),
    ];
    for (bad_tail, why) in cases {
        assert_ne!(bad_tail, tail, "case {why} did not change the manifest");
        std::fs::write(&path, format!("{head}{bad_tail}")).unwrap();
        let e = Bundle::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(why), "{why}: {e}");
    }
    std::fs::write(&path, good).unwrap();
    Bundle::load(dir.path()).unwrap();
}

#[test]
fn the_cpu_backend_keeps_the_cpu_calibration_beside_a_tensorrt_one() {
    // Through the same code the daemon uses: the CPU backend finds its own calibration and
    // warns about nothing calibration-related.
    let dir = bundle_with_trt_calibration();
    let opts = AdaptiveOptions {
        backend: BackendOptions {
            kind: BackendKind::Cpu,
            threads: 1,
            ..BackendOptions::default()
        },
        ..AdaptiveOptions::default()
    };
    let dvt = AdaptiveCascade::load(dir.path(), &opts).unwrap();
    assert_eq!(dvt.backend().calibration, "cpu-fp32");
    assert!(
        dvt.warnings().iter().all(|w| !w.contains("calibration")),
        "{:?}",
        dvt.warnings()
    );
}
