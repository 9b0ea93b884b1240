//! DVT's official threshold procedure (docs/ARCHITECTURE.md, "The model's math"): MSDNet's "budgeted batch
//! classification" with geometric exit proportions `q^k / sum_j q^j`, `q = p / 20`,
//! p = 1..59, reproduced step by step (including its `floor` and its handling of ties).

use super::records::Records;

/// The threshold the official code uses for "nobody exits here".
pub const NEVER: f32 = 1e8;

/// The official schedule's number of operating points (p = 1..=59).
pub const POINTS: u32 = 59;

/// Target exit proportions for schedule index `p` on a `stages`-stage cascade.
pub fn target_fractions(p: u32, stages: usize) -> Vec<f64> {
    let q = f64::from(p) / 20.0;
    let w: Vec<f64> = (1..=stages as i32).map(|k| q.powi(k)).collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|x| x / sum).collect()
}

/// `dynamic_find_threshold`: the thresholds (one per non-final stage) that make the given
/// proportions of `records` exit at each stage. Labels are not used.
pub fn find_thresholds(records: &Records, fractions: &[f64]) -> Vec<f32> {
    let n = records.len();
    let k_stages = records.stages();
    let mut thresholds = vec![NEVER; k_stages.saturating_sub(1)];
    // `filtered[i] > 0`: image i has exited at an earlier stage.
    let mut filtered = vec![0u32; n];
    for k in 0..k_stages.saturating_sub(1) {
        let mut order: Vec<usize> = (0..n).collect();
        // Descending confidence; a stable sort keeps the image order on ties, as torch does
        // for the equal values it meets in practice.
        order.sort_by(|&a, &b| records.conf(b, k).total_cmp(&records.conf(a, k)));
        let out_n = (n as f64 * fractions[k]).floor() as usize;
        let mut count = 0usize;
        for &i in &order {
            if filtered[i] == 0 {
                count += 1;
                if count == out_n {
                    thresholds[k] = records.conf(i, k);
                    break;
                }
            }
        }
        for (i, f) in filtered.iter_mut().enumerate() {
            *f += u32::from(records.conf(i, k) >= thresholds[k]);
        }
    }
    thresholds
}

/// The official table: thresholds for p = 1..=59, in that order.
pub fn official_thresholds(records: &Records) -> Vec<(u32, Vec<f32>)> {
    (1..=POINTS)
        .map(|p| {
            let f = target_fractions(p, records.stages());
            (p, find_thresholds(records, &f))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_fractions_match_the_spec() {
        let f = target_fractions(20, 3);
        assert!(f.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-12));
        let f = target_fractions(1, 3);
        assert!((f[0] - 0.950).abs() < 5e-4 && (f[1] - 0.048).abs() < 5e-4);
    }
}
