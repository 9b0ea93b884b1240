/// Top-1 class of a logit vector and its softmax probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Top1 {
    /// Arg-max class (the first one on ties).
    pub class: usize,
    /// `softmax(logits)[class]`, computed stably in f32. NaN logits give NaN, which never
    /// passes a threshold.
    pub confidence: f32,
}

/// Top-1 of `logits` (must be non-empty).
pub fn top1(logits: impl Iterator<Item = f32> + Clone) -> Top1 {
    let (class, max) =
        logits
            .clone()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, v)| {
                if v > bv || (i == 0 && v.is_nan()) {
                    (i, v)
                } else {
                    (bi, bv)
                }
            });
    let sum: f32 = logits.map(|v| (v - max).exp()).sum();
    Top1 {
        class,
        confidence: 1.0 / sum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_matches_softmax() {
        let l = [1.0f32, 3.0, 2.0];
        let t = top1(l.iter().copied());
        let e: Vec<f32> = l.iter().map(|v| v.exp()).collect();
        let p = e[1] / e.iter().sum::<f32>();
        assert_eq!(t.class, 1);
        assert!((t.confidence - p).abs() < 1e-6);
    }

    #[test]
    fn large_logits_do_not_overflow() {
        let t = top1([1000.0f32, 0.0].iter().copied());
        assert_eq!(t.class, 0);
        assert!((t.confidence - 1.0).abs() < 1e-6);
    }

    #[test]
    fn nan_never_confident() {
        let t = top1([f32::NAN, 1.0].iter().copied());
        assert!(t.confidence.is_nan());
    }
}
