//! The bench's statistics and point selection, through the public API.

use dvt_edge::bench::cascade::{matching_point, spread};
use dvt_edge::bench::stats::{Stats, CV_WARN};

#[test]
fn stats_order_and_noise_flag() {
    // A quiet series with one outlier: median stays, max and p99 see it, CV flags it.
    let mut v = vec![1.0; 99];
    v.push(11.0);
    let s = Stats::from_samples(&v);
    assert_eq!((s.min, s.median, s.p90, s.max), (1.0, 1.0, 1.0, 11.0));
    assert_eq!(s.p99, 1.0);
    assert!(s.cv > CV_WARN && s.noisy());
    // Within 2% around the mean: not noisy.
    let quiet: Vec<f64> = (0..50)
        .map(|i| 10.0 + 0.2 * ((i % 3) as f64 - 1.0))
        .collect();
    assert!(!Stats::from_samples(&quiet).noisy());
}

#[test]
fn point_selection() {
    // (expected GFLOPs, accuracy)
    let pts = [
        (0.01, Some(0.70)),
        (0.02, Some(0.76)),
        (0.03, Some(0.78)),
        (0.04, Some(0.79)),
    ];
    assert_eq!(matching_point(&pts, 0.77), Some((2, true)));
    assert_eq!(matching_point(&pts, 0.99), Some((3, false)));
    let costs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    assert_eq!(spread(&costs, 2, Some(1)), vec![0, 1, 3]);
}
