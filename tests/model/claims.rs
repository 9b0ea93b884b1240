//! `policy::claims`: what the cascade buys over one static model, measured on held-out records:
//! each property detected when it holds and when it does not.

use crate::policy_support;

use dvt_edge::bundle::{Baseline, Manifest};
use dvt_edge::policy::claims::{CascadeClaims, MATCH_TOLERANCE};
use dvt_edge::policy::{Records, RecordsMeta, StageCosts};
use std::path::Path;

/// The bundled manifest with the synthetic records' stage costs.
fn manifest(costs: &StageCosts) -> Manifest {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt/manifest.toml"),
    )
    .unwrap();
    let mut m = Manifest::parse(&text).unwrap();
    for (s, g) in m.stages.iter_mut().zip(&costs.gflops) {
        s.cumulative_gflops = *g;
        s.sha256 = None;
    }
    m
}

fn baseline(name: &str, accuracy: f64) -> Baseline {
    Baseline {
        name: name.into(),
        grid: [4, 4],
        onnx: None,
        sha256: None,
        gflops: 0.002,
        accuracy,
    }
}

#[test]
fn synthetic_cascade_rises_with_tokens_and_matches_its_last_stage_for_less() {
    let costs = policy_support::costs();
    let calib = policy_support::records(5000, 31, 0.0);
    let heldout = policy_support::records(20_000, 32, 0.0);
    let mut m = manifest(&costs);
    let frontier = policy_support::frontier_points(&calib, &costs);
    m.baselines = vec![baseline("static-4x4", 0.5)];
    let c = CascadeClaims::measure(&m, &frontier, &heldout);

    assert_eq!(c.images, 20_000);
    // Each exit's accuracy, counted directly.
    for k in 0..3 {
        let right = (0..heldout.len())
            .filter(|&i| heldout.correct(i, k))
            .count();
        assert!((c.stage_accuracy[k] - right as f64 / 20_000.0).abs() < 1e-12);
    }
    assert!(c.accuracy_rises_with_tokens, "{:?}", c.stage_accuracy);
    assert!(c.beats_static_baselines);
    let hit = c
        .matches_final_stage
        .clone()
        .expect("a point reaches stage 3");
    assert!(hit.accuracy >= c.final_accuracy() - MATCH_TOLERANCE);
    assert!(hit.cost_fraction < 1.0, "{hit:?}");
    // It is the cheapest such point: every cheaper one falls short.
    for p in &frontier {
        let s = heldout.evaluate(&p.thresholds, &costs);
        if s.gflops < hit.gflops {
            assert!(
                s.accuracy < c.final_accuracy() - MATCH_TOLERANCE,
                "{}",
                p.name
            );
        }
    }
    let text = c.lines().join("\n");
    assert!(text.contains("rises with tokens: yes"), "{text}");
    assert!(text.contains(&hit.name), "{text}");

    // A static model better than the final stage is called out.
    m.baselines
        .push(baseline("static-7x7", c.final_accuracy() + 0.01));
    let c = CascadeClaims::measure(&m, &frontier, &heldout);
    assert!(!c.beats_static_baselines);
    assert_eq!(c.best_static.as_ref().unwrap().0, "static-7x7");
    assert!(c.lines()[1].contains("NO"), "{:?}", c.lines());
}

#[test]
fn a_last_stage_worse_than_the_one_before_is_called_out() {
    // The bundled model's old shape: stage 3 slightly below stage 2.
    let meta = RecordsMeta {
        split: "hand-made".into(),
        backend: "synthetic".into(),
        stage_sha256: vec![None; 3],
        stage_ms: None,
    };
    let mut r = Records::new(meta, 3);
    // 10 images: stage 1 right on 6, stage 2 on 9, stage 3 on 8.
    for i in 0..10u32 {
        let pick = |right: bool| if right { 3usize } else { 4 };
        let top = [
            (pick(i < 6), 0.5f32),
            (pick(i < 9), 0.7),
            (pick(i < 8), 0.9),
        ];
        r.push(&top, 3).unwrap();
    }
    let costs = policy_support::costs();
    let m = manifest(&costs);
    let frontier = policy_support::frontier_points(&r, &costs);
    let c = CascadeClaims::measure(&m, &frontier, &r);
    assert_eq!(c.stage_accuracy, vec![0.6, 0.9, 0.8]);
    assert!(!c.accuracy_rises_with_tokens);
    assert!(c.lines()[0].contains("NO"), "{:?}", c.lines());
    // Stopping at stage 2 for everything is more accurate than stage 3 and cheaper.
    let hit = c.matches_final_stage.unwrap();
    assert!(hit.accuracy >= 0.8 && hit.cost_fraction < 1.0, "{hit:?}");
}

#[test]
fn the_bundled_cascades_recorded_exits_agree_with_its_manifest() {
    // The claims of the committed bundle come from `dvt calibrate`'s records of the 10,000 test
    // images; each exit's accuracy there must be the one training measured in PyTorch.
    let (bundle, c) = bundled_claims();
    assert_eq!(c.images, 10_000);
    for (s, a) in bundle.manifest.stages.iter().zip(&c.stage_accuracy) {
        let trained = s
            .test_accuracy
            .expect("the manifest states each stage's test accuracy");
        // ONNX Runtime and PyTorch may part on an image whose top two logits tie closely.
        assert!(
            (trained - a).abs() <= 0.0005,
            "{}: {trained} vs {a}",
            s.name
        );
    }
    eprintln!("{}", c.lines().join("\n"));
}

#[test]
fn the_bundled_cascade_shows_what_dvt_is_for() {
    // On the 10,000 test images, the four properties the bundled model must show: exits that
    // rise with tokens, >= 90% at the last one, no static baseline above it, and its accuracy
    // (within 0.1 pp) at a third of its cost or less.
    let (bundle, c) = bundled_claims();
    let report = c.lines().join("\n");
    assert!(c.accuracy_rises_with_tokens, "{report}");
    assert!(c.final_accuracy() >= 0.90, "{report}");
    assert_eq!(bundle.manifest.baselines.len(), 3, "{report}");
    assert!(c.beats_static_baselines, "{report}");
    let m = c
        .matches_final_stage
        .expect("a frontier point reaches the final stage");
    assert!(m.cost_fraction <= 1.0 / 3.0, "{report}");
}

/// The committed bundle and its claims on the 10,000 recorded test images (its own frontier).
fn bundled_claims() -> (dvt_edge::bundle::Bundle, CascadeClaims) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt");
    let bundle = dvt_edge::bundle::Bundle::load_unchecked(&dir).unwrap();
    let test = Records::load(&dvt_edge::policy::calibrate::records_path(&dir, "test")).unwrap();
    test.check_matches(&bundle.manifest).unwrap();
    let frontier: Vec<_> = bundle
        .manifest
        .operating_points
        .iter()
        .filter(|p| p.source == "frontier")
        .cloned()
        .collect();
    let c = CascadeClaims::measure(&bundle.manifest, &frontier, &test);
    (bundle, c)
}
