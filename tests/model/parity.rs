//! The CPU backend reproduces the exporter's PyTorch outputs for every stage of the bundled
//! cascade, and the cascade wires the stages together the same way PyTorch does.

use crate::common;

use common::{bundle_dir, rel_err};
use dvt_edge::backend::cpu::CpuBackend;
use dvt_edge::backend::HostTensor;
use dvt_edge::bundle::{reference, Bundle};
use dvt_edge::cascade::{top1, Cascade};
use dvt_edge::data::preprocess::normalize_u8_hwc;

const LIMIT: f32 = 1e-4;

fn setup() -> (Bundle, reference::References) {
    let bundle = Bundle::load(bundle_dir()).expect("bundled cascade loads");
    let refs = reference::load(bundle.dir()).expect("reference tensors load");
    (bundle, refs)
}

#[test]
fn every_stage_output_matches_pytorch() {
    common::assert_every_stage_matches_pytorch(&CpuBackend::new(1), LIMIT);
}

#[test]
fn preprocessing_matches_the_exporter() {
    let (bundle, refs) = setup();
    let raw = &refs["raw"];
    let pixels: Vec<u8> = raw.iter().map(|&p| p as u8).collect();
    let n = raw.shape()[0];
    let image = normalize_u8_hwc(&pixels, n, &bundle.manifest.model.input).unwrap();
    assert!(rel_err(&image, &refs["image"]) < 1e-6);
}

#[test]
fn cascade_hands_reuse_outputs_to_the_next_stage() {
    let (bundle, refs) = setup();
    let mut cascade = Cascade::load(CpuBackend::new(1), &bundle).unwrap();
    let image: HostTensor = refs["image"].clone();
    let n = image.shape()[0];
    let mut seen = vec![vec![None; n]; 3];
    // Thresholds above 1: every image runs every stage, stage 3 consumes stage 2's live outputs.
    let result = cascade
        .run(image, &[2.0, 2.0], &mut |o| {
            seen[o.stage][o.image] = Some(o.top1)
        })
        .unwrap();
    assert!(result.decisions.iter().all(|d| d.exit_stage == 2));
    for (k, stage_seen) in seen.iter().enumerate() {
        let logits = &refs[&format!("stage{}.logits", k + 1)];
        for (i, row) in logits.outer_iter().enumerate() {
            let want = top1(row.iter().copied());
            let got = stage_seen[i].expect("every image observed at every stage");
            assert_eq!(got.class, want.class, "stage {} image {i}", k + 1);
            assert!((got.confidence - want.confidence).abs() < 1e-4);
        }
    }
}

#[test]
fn batched_and_single_image_calls_agree() {
    let (bundle, refs) = setup();
    let mut cascade = Cascade::load(CpuBackend::new(1), &bundle).unwrap();
    let image: HostTensor = refs["image"].clone();
    let thresholds = [0.9, 0.9];
    let batched = cascade.classify(image.clone(), &thresholds).unwrap();
    for (i, d) in batched.decisions.iter().enumerate() {
        let one = image
            .slice_axis(ndarray::Axis(0), (i..i + 1).into())
            .to_owned();
        let single = cascade.classify(one, &thresholds).unwrap();
        assert_eq!(single.decisions[0].class, d.class);
        assert_eq!(single.decisions[0].exit_stage, d.exit_stage);
        assert!((single.decisions[0].confidence - d.confidence).abs() < 1e-4);
    }
}
