//! Latency statistics of one timed series (trtexec-style: min / median / p90 / p99 / max and a
//! warning when the spread is too large to trust the median).

use serde::Serialize;

/// Coefficient of variation above which a series is flagged as noisy (trtexec uses 1%; a
/// shared 2-core VM never gets there, 5% still catches a disturbed run).
pub const CV_WARN: f64 = 0.05;

/// Summary of latency samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Number of samples.
    pub n: usize,
    /// Fastest sample.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Slowest sample.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Coefficient of variation: standard deviation / mean.
    pub cv: f64,
}

impl Stats {
    /// Summarises `samples` (any order). Empty input gives all zeros.
    pub fn from_samples(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let rank = |q: f64| s[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        let mean = s.iter().sum::<f64>() / n as f64;
        let var = s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        Self {
            n,
            min: s[0],
            median: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            max: s[n - 1],
            mean,
            cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        }
    }

    /// True when the spread exceeds [`CV_WARN`].
    pub fn noisy(&self) -> bool {
        self.cv > CV_WARN
    }

    /// Images per second at `batch` images per call, from the median.
    pub fn images_per_s(&self, batch: usize) -> f64 {
        if self.median > 0.0 {
            batch as f64 * 1e3 / self.median
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Stats::from_samples(&v);
        assert_eq!(
            (s.n, s.min, s.median, s.p90, s.p99, s.max),
            (100, 1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert!((s.mean - 50.5).abs() < 1e-12);
    }

    #[test]
    fn constant_series_is_quiet_and_spread_is_noisy() {
        let s = Stats::from_samples(&[2.0; 10]);
        assert_eq!(s.cv, 0.0);
        assert!(!s.noisy());
        assert!((s.images_per_s(32) - 16_000.0).abs() < 1e-9);
        let spread = Stats::from_samples(&[1.0, 1.0, 1.0, 2.0]);
        // mean 1.25, sd 0.433 -> cv 0.35
        assert!((spread.cv - 0.3464).abs() < 1e-3, "{}", spread.cv);
        assert!(spread.noisy());
    }

    #[test]
    fn empty_is_zero() {
        let s = Stats::from_samples(&[]);
        assert_eq!(s, Stats::default());
        assert_eq!(s.images_per_s(1), 0.0);
    }
}
