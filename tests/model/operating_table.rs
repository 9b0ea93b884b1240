//! Budget -> operating point, open loop, on a table solved from synthetic records.

use crate::policy_support;

use dvt_edge::policy::{Budget, PolicyError, Rng};

#[test]
fn more_budget_never_buys_less_and_never_exceeds_the_budget() {
    let (table, calib, costs) = policy_support::table();
    let pts = table.points();
    let (lo, hi) = (pts[0].expected_gflops, pts[pts.len() - 1].expected_gflops);
    assert!(
        table.len() >= 5,
        "a real frontier, got {} points",
        table.len()
    );
    let mut prev: Option<(f64, f64)> = None;
    for i in 0..=200 {
        let b = lo + (hi * 1.2 - lo) * f64::from(i) / 200.0;
        let mix = table.choose(Budget::Gflops(b)).unwrap();
        assert!(mix.feasible);
        assert!(mix.expected_cost <= b * (1.0 + 1e-12), "{b}: {mix:?}");
        // In expectation over the calibration images too, not just by the table's numbers.
        let cost = |j: usize| calib.evaluate(&pts[j].thresholds, &costs).gflops;
        let on_images = (1.0 - mix.p_hi) * cost(mix.lo) + mix.p_hi * cost(mix.hi);
        assert!(on_images <= b * (1.0 + 1e-9), "{b}: {on_images}");
        let acc = mix.expected_accuracy.unwrap();
        if let Some((c, a)) = prev {
            assert!(
                mix.expected_cost >= c - 1e-15 && acc >= a - 1e-12,
                "not monotone at {b}"
            );
        }
        prev = Some((mix.expected_cost, acc));
    }
    // Below the cheapest point nothing fits: the cheapest point, flagged.
    let m = table.choose(Budget::Gflops(lo * 0.5)).unwrap();
    assert!(!m.feasible && m.lo == 0 && m.p_hi == 0.0);
}

#[test]
fn per_frame_interpolation_hits_a_budget_between_points() {
    let (table, calib, costs) = policy_support::table();
    let pts = table.points();
    // A budget strictly inside one segment of the chain.
    let chain = table.chain(dvt_edge::policy::Metric::Gflops);
    let j = chain.len() / 2;
    let target = 0.3 * chain[j].1 + 0.7 * chain[j + 1].1;
    let mix = table.choose(Budget::Gflops(target)).unwrap();
    assert_ne!(mix.lo, mix.hi);
    assert!(mix.p_hi > 0.0 && mix.p_hi < 1.0);
    assert!((mix.expected_cost - target).abs() < 1e-12 * target.max(1.0));
    // Realised: draw the point per frame, then an image, and pay its exit's cost.
    let mut rng = Rng::new(9);
    let frames = 200_000;
    let mut total = 0.0;
    for _ in 0..frames {
        let p = &pts[mix.pick(rng.uniform())];
        let i = rng.below(calib.len());
        total += costs.gflops[calib.exit_stage(i, &p.thresholds)];
    }
    let realised = total / f64::from(frames);
    assert!(
        (realised - target).abs() / target < 0.01,
        "realised {realised} vs target {target}"
    );
    // Neither neighbour alone hits it.
    assert!(
        pts[mix.lo].expected_gflops < target * 0.99 && pts[mix.hi].expected_gflops > target * 1.01
    );
}

#[test]
fn time_budgets_use_measured_stage_times_and_watts_need_the_loop() {
    let (table, _, _) = policy_support::table();
    let a = table.choose(Budget::ImagesPerSecond(250.0)).unwrap();
    let b = table.choose(Budget::MsPerFrame(4.0)).unwrap();
    assert_eq!((a.lo, a.hi), (b.lo, b.hi));
    assert!((a.p_hi - b.p_hi).abs() < 1e-9 && b.expected_cost <= 4.0 + 1e-12);
    assert!(matches!(
        table.choose(Budget::Watts(10.0)),
        Err(PolicyError::NeedsFeedback(_))
    ));
    assert!(table.choose(Budget::Gflops(-1.0)).is_err());
    assert!(table.choose(Budget::Gflops(f64::NAN)).is_err());
}
