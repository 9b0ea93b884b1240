//! The closed-loop controller on simulated traces (frames replayed from synthetic records).

use crate::policy_support;

use dvt_edge::policy::simulate::{self, Scenario, SimConfig, Trace};
use dvt_edge::policy::{Budget, Controller, ControllerConfig};

fn config() -> SimConfig {
    SimConfig::for_cost(policy_support::costs().gflops[2])
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn tracks_a_step_changed_budget_within_5_percent_after_200_frames() {
    let (table, _, costs) = policy_support::table();
    let test = policy_support::records(10_000, 12, 0.0); // held-out draws
    let full = costs.gflops[2];
    let steps = vec![
        (0, Budget::Gflops(0.5 * full)),
        (2000, Budget::Gflops(0.2 * full)),
        (4000, Budget::Gflops(0.7 * full)),
        (6000, Budget::Gflops(0.35 * full)),
    ];
    let s = Scenario {
        name: "steps".into(),
        trace: Trace {
            steps: steps.clone(),
        },
        frames: 8000,
        harder_from: None,
    };
    let (report, log) = simulate::run(&table, &test, &costs, &s, &config()).unwrap();
    for (j, &(start, b)) in steps.iter().enumerate() {
        let end = steps.get(j + 1).map_or(8000, |s| s.0);
        let from = start + 200;
        let realised = mean(&log.realised[from..end]);
        let expected = mean(&log.expected[from..end]);
        let target = b.value();
        assert!(
            (realised - target).abs() / target < 0.05,
            "step {j}: realised {realised} vs budget {target}"
        );
        assert!(
            (expected - target).abs() / target < 0.05,
            "step {j}: {expected}"
        );
    }
    assert!(report.settled, "{report:?}");
    assert!(report.settling_frames <= 200, "{report:?}");
    assert!(report.mean_abs_tracking_error < 0.05, "{report:?}");
    // Tracking the budget does not cost accuracy against the offline optimum.
    assert!(
        report.accuracy > report.optimal_accuracy - 0.02,
        "{report:?}"
    );
}

#[test]
fn holds_still_at_the_ends_of_the_table() {
    let (table, calib, costs) = policy_support::table();
    let pts = table.points().to_vec();
    let (lo, hi) = (pts[0].expected_gflops, pts[pts.len() - 1].expected_gflops);
    let mut rng = dvt_edge::policy::Rng::new(4);
    for (budget, end, sat) in [(hi * 3.0, pts.len() - 1, "high"), (lo * 0.3, 0, "low")] {
        let config = ControllerConfig {
            ki: 0.001,
            ..ControllerConfig::default()
        };
        let mut c = Controller::new(table.clone(), config);
        c.set_budget(Budget::Gflops(budget));
        let mut used = Vec::new();
        for _ in 0..2000 {
            let t = c.thresholds();
            let k = calib.exit_stage(rng.below(calib.len()), &t);
            c.observe(costs.gflops[k], 1.0, None);
            used.push(t);
        }
        assert!(
            used.iter().all(|t| *t == pts[end].thresholds),
            "budget {budget}: switched points"
        );
        let st = c.state();
        assert_eq!(st.saturated, Some(sat));
        // Anti-windup: pushing against an end never integrates, even with a trim enabled.
        assert_eq!(st.integral, 0.0, "integral wound up: {st:?}");
        // Leaving the end: a feasible budget is answered at once, with no wind-up to undo.
        let mid = 0.5 * (lo + hi);
        c.set_budget(Budget::Gflops(mid));
        let st = c.state();
        assert!(st.saturated.is_none(), "{st:?}");
        assert!((st.command * st.drift - mid).abs() < 0.1 * mid, "{st:?}");
    }
}

#[test]
fn holds_the_budget_when_images_get_harder() {
    let (table, _, costs) = policy_support::table();
    let test = policy_support::records(10_000, 13, 0.0);
    let full = costs.gflops[2];
    let budget = 0.35 * full;
    let s = Scenario {
        name: "harder".into(),
        trace: Trace {
            steps: vec![(0, Budget::Gflops(budget))],
        },
        frames: 8000,
        harder_from: Some(1000),
    };
    let (report, log) = simulate::run(&table, &test, &costs, &s, &config()).unwrap();
    let after = mean(&log.realised[2500..]);
    assert!(
        (after - budget).abs() / budget < 0.05,
        "after the shift: {after} vs {budget}"
    );
    // The shift is real: the point the open-loop table picks overspends on the harder images.
    let hard = simulate::harder_half(&test);
    let mix = table.choose(Budget::Gflops(budget)).unwrap();
    let pts = table.points();
    let open = (1.0 - mix.p_hi) * hard.evaluate(&pts[mix.lo].thresholds, &costs).gflops
        + mix.p_hi * hard.evaluate(&pts[mix.hi].thresholds, &costs).gflops;
    assert!(
        open > budget * 1.2,
        "open loop on harder images costs {open}, budget {budget}"
    );
    // The controller's expected cost on the harder images is on budget too (not just the
    // realised sample), and accuracy stays close to the offline optimum on those images.
    let expected = mean(&log.expected[2500..]);
    assert!(
        (expected - budget).abs() / budget < 0.05,
        "expected {expected} vs {budget}"
    );
    assert!(
        report.accuracy > report.optimal_accuracy - 0.02,
        "{report:?}"
    );
}

#[test]
fn tracks_a_power_budget_through_a_mismatched_model() {
    let (table, _, costs) = policy_support::table();
    let test = policy_support::records(10_000, 14, 0.0);
    let cfg = config();
    let p = cfg.true_power;
    let full = costs.gflops[2];
    let w = |x: f64| Budget::Watts(p.idle_watts + p.watts_per_gflop * x * full);
    let steps = vec![(0, w(0.5)), (3000, w(0.25)), (6000, w(0.7))];
    let s = Scenario {
        name: "watts".into(),
        trace: Trace {
            steps: steps.clone(),
        },
        frames: 9000,
        harder_from: None,
    };
    let (report, log) = simulate::run(&table, &test, &costs, &s, &cfg).unwrap();
    for (j, &(start, b)) in steps.iter().enumerate() {
        let end = steps.get(j + 1).map_or(9000, |s| s.0);
        let realised = mean(&log.realised[start + 1000..end]);
        assert!(
            (realised - b.value()).abs() / b.value() < 0.05,
            "step {j}: {realised} W vs {b}"
        );
    }
    assert!(report.settled, "{report:?}");
}
