//! The answers the Triton backend must give, computed the way `dvt eval --point` computes them:
//! the bundle's cascade on the CPU, the point's thresholds from the calibration that matches the
//! backend, one Fashion-MNIST test image per call. Prints one JSON object:
//! `{"point", "thresholds", "answers": [[class, exit_stage (1-based), confidence, gflops], ...]}`.
//!
//! ```text
//! cargo run -p triton-dvt --example reference -- BUNDLE POINT [LIMIT] [DATA_DIR]
//! ```
//! (`triton/tests/test_triton.py` runs it.)

use dvt_edge::backend::select;
use dvt_edge::bundle::Bundle;
use dvt_edge::cascade::Cascade;
use dvt_edge::data::preprocess::normalize_u8_hwc;
use dvt_edge::data::{fmnist, Dataset, Split};
use dvt_edge::{BackendKind, BackendOptions};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(bundle_dir), Some(point)) = (args.first(), args.get(1)) else {
        return Err("usage: reference BUNDLE POINT [LIMIT] [DATA_DIR]".into());
    };
    let limit: usize = args.get(2).map_or(Ok(10_000), |s| s.parse())?;
    let data_dir = PathBuf::from(args.get(3).map_or(fmnist::DEFAULT_DIR, String::as_str));
    let bundle = Bundle::load(bundle_dir)?;
    let mut data = Dataset::load(&data_dir, Split::Test)?;
    data.truncate(limit);
    let options = BackendOptions {
        kind: BackendKind::Cpu,
        ..BackendOptions::default()
    };
    let selected = select::open(&options, &bundle)?;
    let mut cascade = Cascade::load(selected.backend, &bundle)?;
    let backend = cascade.backend();
    let engines = backend.engine_names(cascade.stages());
    let choice = bundle
        .manifest
        .calibration_for(backend.kind(), &backend.precision(), &engines);
    let thresholds = choice
        .points
        .iter()
        .find(|p| &p.name == point)
        .map(|p| p.thresholds.clone())
        .ok_or_else(|| format!("no operating point '{point}' in {bundle_dir}"))?;
    let spec = &bundle.manifest.model.input;
    let mut answers = Vec::with_capacity(data.len());
    for i in 0..data.len() {
        let image = normalize_u8_hwc(data.pixels(i..i + 1), 1, spec)?;
        let d = cascade.classify(image, &thresholds)?.decisions[0];
        answers.push(serde_json::json!([
            d.class,
            d.exit_stage + 1,
            d.confidence,
            d.gflops as f32
        ]));
    }
    println!(
        "{}",
        serde_json::json!({"point": point, "thresholds": thresholds, "answers": answers})
    );
    Ok(())
}
