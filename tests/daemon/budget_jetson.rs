//! Jetson power rails from sysfs-shaped folders (JetPack 4 iio, JetPack 5/6 hwmon, AGX Orin
//! without VDD_IN, Thor's INA238 in µW), found by label; a sensor that vanishes falls back to
//! the safe budget once and recovers — in the library and in the real daemon.

use crate::daemon_support;

use daemon_support::Daemon;
use dvt_edge::budget_source::jetson::{choose, discover, JetsonSource};
use dvt_edge::budget_source::{BudgetSource, SourceError, Supervisor, Transition};
use dvt_edge::policy::Budget;
use serde_json::json;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn put(dir: &Path, name: &str, value: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), format!("{value}\n")).unwrap();
}

/// Orin Nano/NX on JetPack 6: ina3221 at 1-0040, hwmon under the device, plus the class/hwmon
/// symlink to the same folder.
fn orin_nano(root: &Path, hwmon: &str) -> std::path::PathBuf {
    let dev = root.join("bus/i2c/devices/1-0040");
    put(&dev, "name", "ina3221");
    let h = dev.join("hwmon").join(hwmon);
    put(&h, "name", "ina3221");
    for (k, label, mv, ma) in [
        (1, "VDD_IN", 5000, 1200),
        (2, "VDD_CPU_GPU_CV", 5000, 400),
        (3, "VDD_SOC", 5000, 300),
    ] {
        put(&h, &format!("in{k}_label"), label);
        put(&h, &format!("in{k}_input"), &mv.to_string());
        put(&h, &format!("curr{k}_input"), &ma.to_string());
    }
    put(&h, "in7_label", "sum of shunt voltages");
    put(&h, "in7_input", "12");
    fs::create_dir_all(root.join("class/hwmon")).unwrap();
    std::os::unix::fs::symlink(&h, root.join("class/hwmon").join(hwmon)).unwrap();
    h
}

#[test]
fn jetpack6_orin_nano_tracks_vdd_in_found_by_label() {
    let t = tempfile::tempdir().unwrap();
    orin_nano(t.path(), "hwmon3");
    let rails = discover(t.path());
    let labels: Vec<&str> = rails.iter().map(|r| r.label.as_str()).collect();
    // The class/hwmon symlink points at the same folder: each rail once; "sum of shunt" skipped.
    assert_eq!(labels, ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]);
    let total = choose(&rails, "total").unwrap();
    assert_eq!(total.name(), "VDD_IN");
    assert!((total.read_watts().unwrap() - 6.0).abs() < 1e-9); // 5000 mV x 1200 mA
    let cpu_gpu = choose(&rails, "VDD_CPU_GPU_CV").unwrap();
    assert!((cpu_gpu.read_watts().unwrap() - 2.0).abs() < 1e-9);
    let e = choose(&rails, "VDD_GPU").unwrap_err();
    assert!(
        e.to_string()
            .contains("have: VDD_IN, VDD_CPU_GPU_CV, VDD_SOC"),
        "{e}"
    );
}

#[test]
fn agx_orin_has_no_vdd_in_so_the_total_is_the_sum_without_nc() {
    let t = tempfile::tempdir().unwrap();
    for (addr, hw, rails) in [
        (
            "1-0040",
            "hwmon4",
            [
                ("VDD_GPU_SOC", 5000, 500),
                ("VDD_CPU_CV", 5000, 200),
                ("VIN_SYS_5V0", 5000, 700),
            ],
        ),
        (
            "1-0041",
            "hwmon5",
            [("NC", 0, 0), ("VDDQ_VDD2_1V8AO", 1000, 100), ("NC", 0, 0)],
        ),
    ] {
        let dev = t.path().join("bus/i2c/devices").join(addr);
        put(&dev, "name", "ina3221");
        let h = dev.join("hwmon").join(hw);
        put(&h, "name", "ina3221");
        for (k, (label, mv, ma)) in rails.iter().enumerate() {
            put(&h, &format!("in{}_label", k + 1), label);
            put(&h, &format!("in{}_input", k + 1), &mv.to_string());
            put(&h, &format!("curr{}_input", k + 1), &ma.to_string());
        }
    }
    let rails = discover(t.path());
    assert_eq!(rails.len(), 4, "{rails:?}");
    let total = choose(&rails, "total").unwrap();
    assert!(total.partial);
    assert!(
        total.name().starts_with("sum(VDD_GPU_SOC+"),
        "{}",
        total.name()
    );
    assert!((total.read_watts().unwrap() - (2.5 + 1.0 + 3.5 + 0.1)).abs() < 1e-9);
}

#[test]
fn jetpack4_iio_layout_in_milliwatts_or_volts_times_amps() {
    let t = tempfile::tempdir().unwrap();
    let iio = t.path().join("bus/i2c/drivers/ina3221x/6-0040/iio:device0");
    put(&iio, "rail_name_0", "POM_5V_IN");
    put(&iio, "in_power0_input", "3100");
    put(&iio, "rail_name_1", "POM_5V_GPU");
    put(&iio, "in_voltage1_input", "5000");
    put(&iio, "in_current1_input", "100");
    let rails = discover(t.path());
    let total = choose(&rails, "total").unwrap();
    assert_eq!(total.name(), "POM_5V_IN");
    assert!((total.read_watts().unwrap() - 3.1).abs() < 1e-9);
    let gpu = choose(&rails, "POM_5V_GPU").unwrap();
    assert!((gpu.read_watts().unwrap() - 0.5).abs() < 1e-9);
}

#[test]
fn thor_ina238_board_input_is_in_microwatts() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path().join("class/hwmon/hwmon7");
    put(&h, "name", "ina238");
    put(&h, "power1_input", "45000000");
    let dev = t.path().join("bus/i2c/devices/2-0040");
    put(&dev, "name", "ina3221");
    let h2 = dev.join("hwmon/hwmon2");
    put(&h2, "name", "ina3221");
    put(&h2, "in1_label", "VDD_GPU");
    put(&h2, "in1_input", "5000");
    put(&h2, "curr1_input", "2000");
    let total = choose(&discover(t.path()), "total").unwrap();
    assert_eq!(total.name(), "VIN");
    assert!((total.read_watts().unwrap() - 45.0).abs() < 1e-9);
}

#[test]
fn no_monitor_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let mut s = JetsonSource::new(t.path().to_path_buf(), "total".into(), 10.0);
    let e = s.read().unwrap_err();
    assert!(matches!(e, SourceError::Missing(_)));
    assert!(e.to_string().contains("no INA3221/INA238"), "{e}");
}

#[test]
fn a_vanishing_sensor_falls_back_once_and_recovers_even_under_a_new_hwmon_index() {
    let t = tempfile::tempdir().unwrap();
    let h = orin_nano(t.path(), "hwmon3");
    let safe = Budget::Gflops(0.002);
    let mut sup = Supervisor::new(
        Box::new(JetsonSource::new(
            t.path().to_path_buf(),
            "total".into(),
            8.0,
        )),
        Some(safe),
        None,
    );
    let (e, tr) = sup.poll(Instant::now());
    assert_eq!(
        (e.budget, e.power_watts, tr),
        (Some(Budget::Watts(8.0)), Some(6.0), None)
    );
    fs::remove_file(h.join("curr1_input")).unwrap();
    let (e, tr) = sup.poll(Instant::now());
    assert_eq!((e.budget, e.power_watts), (Some(safe), None));
    assert!(
        matches!(tr, Some(Transition::Degraded(ref m)) if m.contains("curr1_input")),
        "{tr:?}"
    );
    // Still missing: no second warning.
    let (_, tr) = sup.poll(Instant::now());
    assert_eq!(tr, None);
    // The driver comes back under another hwmon index.
    fs::remove_dir_all(t.path()).unwrap();
    fs::create_dir_all(t.path()).unwrap();
    orin_nano(t.path(), "hwmon9");
    let (e, tr) = sup.poll(Instant::now());
    assert_eq!(tr, Some(Transition::Recovered));
    assert_eq!(
        (e.budget, e.power_watts, e.degraded),
        (Some(Budget::Watts(8.0)), Some(6.0), None)
    );
}

#[test]
fn a_stuck_reading_is_stale() {
    let t = tempfile::tempdir().unwrap();
    let h = orin_nano(t.path(), "hwmon3");
    let mut sup = Supervisor::new(
        Box::new(JetsonSource::new(
            t.path().to_path_buf(),
            "total".into(),
            8.0,
        )),
        None,
        Some(Duration::from_millis(100)),
    );
    let t0 = Instant::now();
    assert_eq!(sup.poll(t0).1, None);
    let (e, tr) = sup.poll(t0 + Duration::from_millis(150));
    assert!(
        matches!(tr, Some(Transition::Degraded(ref m)) if m.contains("stuck")),
        "{tr:?}"
    );
    assert_eq!(e.budget, None);
    put(&h, "curr1_input", "1300");
    let (e, tr) = sup.poll(t0 + Duration::from_millis(200));
    assert_eq!(tr, Some(Transition::Recovered));
    assert!((e.power_watts.unwrap() - 6.5).abs() < 1e-9);
}

#[test]
fn the_daemon_tracks_the_rail_and_survives_it_vanishing() {
    let t = tempfile::tempdir().unwrap();
    let sys = t.path().join("sys");
    let h = orin_nano(&sys, "hwmon3");
    let root = format!("budget.sysfs_root={}", sys.display());
    let d = Daemon::start(&[
        "--budget-source",
        "jetson",
        "--safe-budget",
        "0.002gflops",
        "--set",
        &root,
        "--set",
        "budget.target_watts=8",
        "--set",
        "budget.poll_ms=20",
    ]);
    let wait_for = |what: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        let t0 = Instant::now();
        loop {
            let st = d.ctl(json!({"cmd": "status"}));
            if f(&st) {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{what}: {st}\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let st = wait_for("reading", &|s| s["power_watts"] == json!(6.0));
    assert_eq!(st["budget"], json!({"kind": "watts", "value": 8.0}));
    assert!(
        st["budget_source"].as_str().unwrap().contains("VDD_IN"),
        "{st}"
    );
    let m = d.ctl(json!({"cmd": "metrics"}))["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        m.contains("dvtd_power_watts{source=") && m.contains("} 6\n"),
        "{m}"
    );
    fs::remove_file(h.join("in1_input")).unwrap();
    let st = wait_for("fallback", &|s| !s["degraded"].is_null());
    assert_eq!(st["budget"], json!({"kind": "gflops", "value": 0.002}));
    assert!(st["power_watts"].is_null());
    std::thread::sleep(Duration::from_millis(200)); // ~10 more failed polls
    assert_eq!(
        d.log().matches("budget source failed").count(),
        1,
        "{}",
        d.log()
    );
    put(&h, "in1_input", "5000");
    wait_for("recovery", &|s| {
        s["degraded"].is_null() && s["power_watts"] == json!(6.0)
    });
    assert!(d.log().contains("is back"), "{}", d.log());
    assert_eq!(d.ctl(json!({"cmd": "stats"}))["errors"]["budget_source"], 1);
}
