//! Classify Fashion-MNIST test images with the bundled cascade under a compute budget, through
//! the one type an embedder needs: `AdaptiveCascade`.
//!
//!     cargo run --example classify -- [BUDGET] [IMAGES]     # e.g. 0.01gflops 2000
//!
//! The backend is `auto`: TensorRT when this machine has it and the bundle's engines are built
//! (`dvt build`), else the CPU, saying why.

use anyhow::{Context, Result};
use dvt_edge::data::{fmnist, Dataset, Split};
use dvt_edge::{AdaptiveCascade, AdaptiveOptions, Budget};
use std::path::Path;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let budget: Budget = args.next().as_deref().unwrap_or("0.01gflops").parse()?;
    let images: usize = args.next().map_or(Ok(1000), |n| n.parse())?;

    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt");
    let mut dvt = AdaptiveCascade::load(&bundle, &AdaptiveOptions::default())?;
    for warning in dvt.warnings() {
        eprintln!("note: {warning}");
    }
    dvt.set_budget(Some(budget));

    let mut data = Dataset::load(Path::new(fmnist::DEFAULT_DIR), Split::Test)
        .context("Fashion-MNIST test images (Debian package dataset-fashion-mnist)")?;
    data.truncate(images);

    // One frame at a time, as a camera delivers them: the controller steers every frame.
    let (mut correct, mut gflops, mut exits) = (0, 0.0, vec![0usize; dvt.num_stages()]);
    for i in 0..data.len() {
        let answer = dvt.classify_u8_hwc(data.pixels(i..i + 1), 1)?[0];
        correct += usize::from(answer.class == data.labels[i] as usize);
        gflops += answer.gflops;
        exits[answer.exit_stage] += 1;
        if i < 3 {
            println!(
                "image {i}: {} (confidence {:.2}, answered by stage {})",
                dvt.label(answer.class),
                answer.confidence,
                answer.exit_stage + 1
            );
        }
    }
    let n = data.len().max(1) as f64;
    println!(
        "backend {} (calibration {})",
        dvt.backend().name,
        dvt.backend().calibration
    );
    println!("budget {budget}: {:.5} GFLOPs/image", gflops / n);
    println!(
        "accuracy {:.2}% on {} images",
        100.0 * correct as f64 / n,
        data.len()
    );
    println!("exits per stage {exits:?}");
    Ok(())
}
