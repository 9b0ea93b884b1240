//! The exit rule on the real cascade: the first stage whose confidence reaches its threshold
//! answers, with that stage's own prediction and cumulative cost.

use crate::common;

use common::bundle_dir;
use dvt_edge::backend::cpu::CpuBackend;
use dvt_edge::bundle::{reference, Bundle};
use dvt_edge::cascade::{top1, Cascade, CascadeError, Top1};

fn reference_top1(refs: &reference::References, stage: usize) -> Vec<Top1> {
    refs[&format!("stage{}.logits", stage + 1)]
        .outer_iter()
        .map(|r| top1(r.iter().copied()))
        .collect()
}

#[test]
fn exits_follow_the_thresholds() {
    let bundle = Bundle::load(bundle_dir()).unwrap();
    let refs = reference::load(bundle.dir()).unwrap();
    let per_stage: Vec<Vec<Top1>> = (0..3).map(|k| reference_top1(&refs, k)).collect();
    let mut cascade = Cascade::load(CpuBackend::new(1), &bundle).unwrap();
    let costs: Vec<f64> = bundle
        .manifest
        .stages
        .iter()
        .map(|s| s.cumulative_gflops)
        .collect();

    // Thresholds placed between observed confidences (never within 1e-3 of one) so that the
    // expected exits are unambiguous.
    let pick = |k: usize| {
        let mut c: Vec<f32> = per_stage[k].iter().map(|t| t.confidence).collect();
        c.sort_by(f32::total_cmp);
        let mid = c.len() / 2;
        (mid..c.len() - 1)
            .find(|&i| c[i + 1] - c[i] > 2e-3)
            .map(|i| (c[i] + c[i + 1]) / 2.0)
            .expect("a gap between confidences")
    };
    let thresholds = [pick(0), pick(1)];
    let result = cascade
        .classify(refs["image"].clone(), &thresholds)
        .unwrap();
    let mut exits = [0usize; 3];
    for (i, d) in result.decisions.iter().enumerate() {
        let expected = (0..3)
            .find(|&k| k == 2 || per_stage[k][i].confidence >= thresholds[k])
            .unwrap();
        assert_eq!(d.exit_stage, expected, "image {i}");
        assert_eq!(d.class, per_stage[expected][i].class);
        assert_eq!(d.gflops, costs[expected]);
        exits[expected] += 1;
    }
    assert!(
        exits[0] > 0 && exits[0] < 32,
        "the chosen threshold splits the batch: {exits:?}"
    );
    // Only the images that went on were run by the later stages.
    let batches: Vec<usize> = result.timings.iter().map(|t| t.batch).collect();
    assert_eq!(batches[0], 32);
    assert_eq!(batches[1], 32 - exits[0]);
}

#[test]
fn zero_thresholds_stop_everyone_at_stage_one() {
    let bundle = Bundle::load(bundle_dir()).unwrap();
    let refs = reference::load(bundle.dir()).unwrap();
    let mut cascade = Cascade::load(CpuBackend::new(1), &bundle).unwrap();
    let result = cascade
        .classify(refs["image"].clone(), &[0.0, 0.0])
        .unwrap();
    assert!(result.decisions.iter().all(|d| d.exit_stage == 0));
    assert_eq!(result.timings.len(), 1, "later stages never ran");
}

#[test]
fn bad_threshold_vectors_and_shapes_are_errors() {
    let bundle = Bundle::load(bundle_dir()).unwrap();
    let refs = reference::load(bundle.dir()).unwrap();
    let mut cascade = Cascade::load(CpuBackend::new(1), &bundle).unwrap();
    let image = refs["image"].clone();
    assert!(matches!(
        cascade.classify(image.clone(), &[0.5]),
        Err(CascadeError::Thresholds(_))
    ));
    assert!(matches!(
        cascade.classify(image.clone(), &[0.5, f32::NAN]),
        Err(CascadeError::Thresholds(_))
    ));
    let wrong = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 1, 14, 14]));
    let err = cascade.classify(wrong, &[0.5, 0.5]).unwrap_err();
    assert!(matches!(err, CascadeError::ImageShape { .. }), "{err}");
}
