//! DVT's official threshold procedure (spec dvt-model.md §5.2) on synthetic confidences.

use dvt_edge::policy::official::{find_thresholds, official_thresholds, target_fractions, NEVER};
use dvt_edge::policy::{Records, RecordsMeta, Rng, StageCosts};

fn synthetic(n: usize, seed: u64) -> Records {
    let meta = RecordsMeta {
        split: "synthetic".into(),
        backend: "none".into(),
        stage_sha256: vec![None; 3],
        stage_ms: None,
    };
    let mut r = Records::new(meta, 3);
    let mut rng = Rng::new(seed);
    for _ in 0..n {
        let label = rng.below(10) as u32;
        let top: Vec<(usize, f32)> = (0..3)
            .map(|_| (rng.below(10), rng.uniform() as f32))
            .collect();
        r.push(&top, label).unwrap();
    }
    r
}

#[test]
fn reproduces_the_spec_exit_fractions() {
    // The spec's table: p -> exit proportions at the three exits.
    let spec = [
        (1, [0.950, 0.048, 0.002]),
        (10, [0.571, 0.286, 0.143]),
        (20, [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]),
        (40, [0.143, 0.286, 0.571]),
        (59, [0.079, 0.233, 0.688]),
    ];
    let records = synthetic(20_000, 3);
    let costs = StageCosts {
        gflops: vec![1.0, 2.0, 3.0],
        ms: None,
    };
    for (p, want) in spec {
        let t = find_thresholds(&records, &target_fractions(p, 3));
        let got = records.evaluate(&t, &costs).exit_fractions;
        for k in 0..3 {
            assert!(
                (got[k] - want[k]).abs() < 1.5e-3,
                "p={p}: exit fractions {got:?}, spec {want:?}"
            );
        }
        // Each threshold is the confidence of a real image (the official walk stops on one).
        for (k, &tk) in t.iter().enumerate() {
            assert!(
                (0..records.len()).any(|i| records.conf(i, k) == tk),
                "p={p} T{k}={tk}"
            );
        }
    }
}

#[test]
fn official_walk_is_monotone_in_p_and_exact() {
    let a = synthetic(3000, 5);
    let table = official_thresholds(&a);
    assert_eq!(table.len(), 59);
    assert_eq!(table[0].0, 1);
    // Increasing p sends more images on: the first threshold never decreases.
    for w in table.windows(2) {
        assert!(w[1].1[0] >= w[0].1[0], "{:?} then {:?}", w[0], w[1]);
    }
    // Exactly floor(n * q1) images have stage-1 confidence >= T1 (no ties in the data).
    let n = a.len();
    let f = target_fractions(20, 3);
    let t = find_thresholds(&a, &f);
    let exits = (0..n).filter(|&i| a.conf(i, 0) >= t[0]).count();
    assert_eq!(exits, (n as f64 * f[0]).floor() as usize);
    // A zero target leaves the threshold at "nobody exits".
    assert_eq!(find_thresholds(&a, &[0.0, 0.0, 1.0]), vec![NEVER, NEVER]);
}
