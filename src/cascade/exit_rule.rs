//! DVT's exit rule (docs/ARCHITECTURE.md, "The model's math"): exit at the first stage whose max softmax
//! probability reaches its threshold; the last stage always answers.

/// A threshold vector that does not fit the cascade.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    /// Wrong length.
    #[error("{given} thresholds given, the cascade needs {needed} (one per stage but the last)")]
    Count {
        /// Given length.
        given: usize,
        /// Needed length.
        needed: usize,
    },
    /// NaN threshold.
    #[error("threshold {index} is NaN")]
    NaN {
        /// Position.
        index: usize,
    },
}

/// Checks that `thresholds` has one entry per non-final stage and no NaN.
pub fn validate_thresholds(thresholds: &[f32], num_stages: usize) -> Result<(), ThresholdError> {
    let needed = num_stages.saturating_sub(1);
    if thresholds.len() != needed {
        return Err(ThresholdError::Count {
            given: thresholds.len(),
            needed,
        });
    }
    if let Some(index) = thresholds.iter().position(|t| t.is_nan()) {
        return Err(ThresholdError::NaN { index });
    }
    Ok(())
}

/// Whether an image whose stage-`stage` confidence is `confidence` stops there.
pub fn exits_at(stage: usize, confidence: f32, thresholds: &[f32]) -> bool {
    match thresholds.get(stage) {
        Some(&t) => confidence >= t,
        None => true, // the final stage always answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stage_reaching_its_threshold_answers() {
        let t = [0.9, 0.8];
        assert!(exits_at(0, 0.9, &t));
        assert!(!exits_at(0, 0.89, &t));
        assert!(exits_at(1, 0.85, &t));
        assert!(!exits_at(1, 0.5, &t));
    }

    #[test]
    fn last_stage_always_answers() {
        assert!(exits_at(2, 0.0, &[0.9, 0.8]));
        assert!(exits_at(2, f32::NAN, &[0.9, 0.8]));
    }

    #[test]
    fn thresholds_above_one_never_exit() {
        assert!(!exits_at(0, 1.0, &[1.5, 1.5]));
    }

    #[test]
    fn threshold_count_is_checked() {
        assert_eq!(
            validate_thresholds(&[0.5], 3),
            Err(ThresholdError::Count {
                given: 1,
                needed: 2
            })
        );
        assert!(validate_thresholds(&[0.5, 0.4], 3).is_ok());
        assert_eq!(
            validate_thresholds(&[0.5, f32::NAN], 3),
            Err(ThresholdError::NaN { index: 1 })
        );
    }
}
