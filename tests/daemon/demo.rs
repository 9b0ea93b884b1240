//! `dvt demo` end to end: starts the real dvtd, steps the budget, prints per-step rows whose
//! accuracy matches an in-process cascade and whose cost falls with the budget.

use crate::daemon_support;

use daemon_support::{bundle_dir, in_process, test_images};

#[test]
fn demo_steps_the_budget_and_reports_per_step_rows() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dvt"))
        .args([
            "demo", "--frames", "200", "--steps", "3", "--json", "--bench",
        ])
        .arg("--bundle")
        .arg(bundle_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0]["budget"], "none (best)");
    let mut last = f64::INFINITY;
    for s in steps {
        assert_eq!(s["frames"], 200);
        let exits: f64 = s["exits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_f64().unwrap())
            .sum();
        assert!((exits - 1.0).abs() < 1e-6, "{s}");
        let g = s["mean_gflops"].as_f64().unwrap();
        assert!(g <= last * 1.05, "cost rose as the budget fell: {steps:?}");
        last = g;
        assert!(s["fps"].as_f64().unwrap() > 0.0);
    }
    // The first step (no budget) streamed test images 0..200: same accuracy as in-process.
    let data = test_images(200);
    let local = in_process(&bundle_dir(), &data);
    let correct = local
        .iter()
        .zip(&data.labels)
        .filter(|(d, l)| d.class == **l as usize)
        .count();
    let acc = steps[0]["accuracy"].as_f64().unwrap();
    assert!(
        (acc - correct as f64 / 200.0).abs() <= 0.02,
        "daemon {acc} vs in-process {correct}/200"
    );
    let b = &v["bench"];
    assert!(b["added_p50_us"].as_f64().unwrap().is_finite(), "{b}");
    assert!(b["pipelined_fps"].as_f64().unwrap() > 0.0);
    // What the latency settings cost, measured on the daemon process: idle, it sleeps.
    let cpu = &b["cpu"];
    assert_eq!(cpu["paced_frames"], 60, "{b}");
    let idle = cpu["daemon_idle_pct"].as_f64().unwrap();
    assert!(
        (0.0..20.0).contains(&idle),
        "idle dvtd used {idle}% of a core: {cpu}"
    );
    assert!(
        cpu["paced_daemon_cpu_per_frame_us"].as_f64().unwrap() > 0.0,
        "{cpu}"
    );
}
