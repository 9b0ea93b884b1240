//! Whether a calibrated cascade earns its place, judged on held-out images: what DVT
//! ("Not All Images are Worth 16x16 Words", NeurIPS 2021) promises over one static model.
//!
//! Three properties, each one that a newcomer reads off `dvt calibrate`'s output:
//! - accuracy rises with tokens: every exit, forced, beats the one before it;
//! - no static baseline (same backbone on one grid, as the manifest lists them) beats the final
//!   stage, or the cascade has no reason to exist;
//! - some calibrated frontier point reaches the final stage's accuracy, within a tolerance, at a
//!   fraction of the final stage's cumulative cost: the saving the cascade is for.

use crate::bundle::{Manifest, OperatingPoint};
use serde::Serialize;

use super::records::{Records, StageCosts};

/// How close a point must come to the final stage's accuracy to count as reaching it: 0.1 pp,
/// about a third of the standard error of an accuracy near 90% on 10,000 images.
pub const MATCH_TOLERANCE: f64 = 0.001;

/// The cheapest frontier point that reaches the final stage's accuracy.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MatchingPoint {
    /// Operating point name, e.g. "frontier-17".
    pub name: String,
    /// Its accuracy on the held-out images.
    pub accuracy: f64,
    /// Its expected GFLOPs per image on them.
    pub gflops: f64,
    /// `gflops` over the final stage's cumulative GFLOPs.
    pub cost_fraction: f64,
}

/// The properties, measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CascadeClaims {
    /// Held-out images they were measured on.
    pub images: usize,
    /// Each exit's accuracy with every image forced to leave there.
    pub stage_accuracy: Vec<f64>,
    /// `stage_accuracy` strictly increasing.
    pub accuracy_rises_with_tokens: bool,
    /// The most accurate static baseline of the manifest (name, accuracy), if it lists any.
    pub best_static: Option<(String, f64)>,
    /// No static baseline is more accurate than the final stage.
    pub beats_static_baselines: bool,
    /// Cheapest frontier point within [`MATCH_TOLERANCE`] of the final stage, if any.
    pub matches_final_stage: Option<MatchingPoint>,
}

impl CascadeClaims {
    /// Measures the claims of `frontier` (cheapest first) on `heldout`.
    ///
    /// The baselines' accuracies come from the manifest, which states them on its
    /// `accuracy_split`: pass that split's records for a like-for-like comparison.
    pub fn measure(manifest: &Manifest, frontier: &[OperatingPoint], heldout: &Records) -> Self {
        let n = heldout.len().max(1) as f64;
        let stage_accuracy: Vec<f64> = (0..heldout.stages())
            .map(|k| {
                (0..heldout.len())
                    .filter(|&i| heldout.correct(i, k))
                    .count() as f64
                    / n
            })
            .collect();
        let final_accuracy = stage_accuracy.last().copied().unwrap_or(0.0);
        let best_static = manifest
            .baselines
            .iter()
            .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
            .map(|b| (b.name.clone(), b.accuracy));
        let costs = StageCosts::new(manifest, None);
        let full = manifest.stages.last().map_or(0.0, |s| s.cumulative_gflops);
        let matches_final_stage = frontier
            .iter()
            .map(|p| (p, heldout.evaluate(&p.thresholds, &costs)))
            .filter(|(_, s)| s.accuracy >= final_accuracy - MATCH_TOLERANCE)
            .min_by(|a, b| a.1.gflops.total_cmp(&b.1.gflops))
            .map(|(p, s)| MatchingPoint {
                name: p.name.clone(),
                accuracy: s.accuracy,
                gflops: s.gflops,
                cost_fraction: if full > 0.0 { s.gflops / full } else { 1.0 },
            });
        Self {
            images: heldout.len(),
            accuracy_rises_with_tokens: stage_accuracy.windows(2).all(|w| w[1] > w[0]),
            beats_static_baselines: best_static
                .as_ref()
                .is_none_or(|(_, a)| *a <= final_accuracy),
            best_static,
            stage_accuracy,
            matches_final_stage,
        }
    }

    /// The final stage's accuracy.
    pub fn final_accuracy(&self) -> f64 {
        self.stage_accuracy.last().copied().unwrap_or(0.0)
    }

    /// One line per property, for people.
    pub fn lines(&self) -> Vec<String> {
        let pct = |a: f64| format!("{:.2}%", 100.0 * a);
        let verdict = |ok: bool| if ok { "yes" } else { "NO" };
        let exits: Vec<String> = self.stage_accuracy.iter().map(|&a| pct(a)).collect();
        let mut out = vec![format!(
            "accuracy rises with tokens: {} ({})",
            verdict(self.accuracy_rises_with_tokens),
            exits.join(", ")
        )];
        out.push(match &self.best_static {
            Some((name, a)) => format!(
                "final stage beats every static baseline: {} (best static: {name} {}, final stage {})",
                verdict(self.beats_static_baselines),
                pct(*a),
                pct(self.final_accuracy())
            ),
            None => "final stage beats every static baseline: the bundle lists none".into(),
        });
        out.push(match &self.matches_final_stage {
            Some(m) => format!(
                "final stage's accuracy (within {:.1} pp) at {:.1}% of its cost: {} {} at {:.5} GFLOPs",
                100.0 * MATCH_TOLERANCE,
                100.0 * m.cost_fraction,
                m.name,
                pct(m.accuracy),
                m.gflops
            ),
            None => format!(
                "final stage's accuracy (within {:.1} pp): no frontier point reaches it",
                100.0 * MATCH_TOLERANCE
            ),
        });
        out
    }
}
