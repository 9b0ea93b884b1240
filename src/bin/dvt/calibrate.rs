//! `dvt calibrate`: arguments and report; the work is in `dvt_edge::policy::calibrate`.

use crate::open::{open_backend, open_data};
use anyhow::{Context, Result};
use dvt_edge::backend::BackendArgs;
use dvt_edge::backend::BackendKind;
use dvt_edge::bundle::Bundle;
use dvt_edge::cascade::Cascade;
use dvt_edge::data::fmnist;
use dvt_edge::data::{Dataset, Split};
use dvt_edge::policy::calibrate::{self, CalibrationSlot};
use dvt_edge::policy::frontier::FrontierOptions;
use dvt_edge::policy::Records;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// Bundle directory (its manifest.toml is rewritten; ONNX files are untouched).
    #[arg(long, default_value = "engines/fmnist-dvt")]
    pub bundle: PathBuf,
    /// Fashion-MNIST IDX folder, or an image folder: DIR/<class>/*.jpg|png, or DIR/{train,val,test}/<class>/…
    /// (README "Train on your own images").
    #[arg(long, default_value = fmnist::DEFAULT_DIR)]
    pub data: PathBuf,
    /// Solve from the records saved by an earlier run (no model run).
    #[arg(long)]
    pub from_records: bool,
    /// Do not record the test split (the comparison then uses the calibration images).
    #[arg(long)]
    pub no_heldout: bool,
    /// Use only the first N images of each split (quick checks).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Images per cascade call while recording.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Images timed one at a time for the per-stage milliseconds.
    #[arg(long, default_value_t = 200)]
    pub timing_images: usize,
    /// Most frontier points written.
    #[arg(long, default_value_t = 40)]
    pub max_points: usize,
    /// The calibration is stored for the backend that runs it (the CPU's at the manifest's top
    /// level, TensorRT's as a `[[calibrations]]` entry with its engine files).
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `dvt calibrate`.
pub fn run(args: CalibrateArgs) -> Result<()> {
    let bundle = Bundle::load(&args.bundle)
        .with_context(|| format!("loading bundle {}", args.bundle.display()))?;
    let dir = bundle.dir().to_path_buf();
    let mut manifest = bundle.manifest.clone();
    let (calib, heldout, slot) = if args.from_records {
        // No model run: the slot is the one the backend asked for would write (the CPU's
        // unless --backend tensorrt), with the engines its last calibration recorded.
        let slot = match args.backend.backend {
            BackendKind::Tensorrt => {
                let precision = args.backend.precision.to_string();
                let engines = manifest
                    .calibrations
                    .iter()
                    .find(|c| c.backend == "tensorrt" && c.precision == precision)
                    .map(|c| c.engines.clone())
                    .unwrap_or_default();
                CalibrationSlot::for_backend("tensorrt", &precision, engines)
            }
            _ => CalibrationSlot::Cpu,
        };
        let calib = Records::load(&slot.records_path(&dir, "calibration"))?;
        let test = slot.records_path(&dir, "test");
        let heldout = (!args.no_heldout && test.exists())
            .then(|| Records::load(&test))
            .transpose()?;
        (calib, heldout, slot)
    } else {
        let backend = open_backend(&args.backend, &bundle)?;
        let kind = backend.kind();
        let precision = backend.precision();
        let mut cascade = Cascade::load(backend, &bundle)?;
        let engines = cascade.backend().engine_names(cascade.stages());
        let slot = CalibrationSlot::for_backend(kind, &precision, engines);
        std::fs::create_dir_all(dir.join(slot.records_dir()))?;
        let progress = !args.json && std::io::stderr().is_terminal();
        let load = |split| -> Result<Dataset> {
            open_data(&args.data, split, &bundle, args.limit, !args.json)
        };
        let data = load(Split::Calibration)?;
        let stage_ms =
            calibrate::measure_stage_ms(&mut cascade, &manifest, &data, args.timing_images)?;
        let mut calib = calibrate::record(
            &mut cascade,
            &manifest,
            &data,
            "calibration",
            args.batch,
            progress,
        )?;
        calib.meta.stage_ms = Some(stage_ms.clone());
        calib.save(&slot.records_path(&dir, "calibration"))?;
        // A folder without test/ tests on val/: recording it twice would compare nothing new.
        let holdout = bundle.manifest.model.holdout;
        let same = dvt_edge::data::folder::splits_coincide(&args.data, holdout);
        if same && !args.no_heldout {
            eprintln!(
                "dvt: {} has no separate test split: comparing on the calibration images",
                args.data.display()
            );
        }
        let heldout = if args.no_heldout || same {
            None
        } else {
            let test = load(Split::Test)?;
            let mut h =
                calibrate::record(&mut cascade, &manifest, &test, "test", args.batch, progress)?;
            h.meta.stage_ms = Some(stage_ms);
            h.save(&slot.records_path(&dir, "test"))?;
            Some(h)
        };
        (calib, heldout, slot)
    };
    let opts = FrontierOptions {
        max_points: args.max_points,
        ..FrontierOptions::default()
    };
    let report = calibrate::finish_in(&dir, &mut manifest, &calib, heldout.as_ref(), &opts, &slot)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let into = match &slot {
        CalibrationSlot::Cpu => "the CPU calibration".to_string(),
        CalibrationSlot::Other {
            backend, precision, ..
        } => format!("the {backend} {precision} calibration"),
    };
    println!(
        "calibrated {} on {} ({} images); {} frontier + {} official points written to {} ({into})",
        manifest.model.name,
        report.backend,
        report.calibration_images,
        report.frontier_points,
        report.official_points,
        dir.join(dvt_edge::bundle::MANIFEST).display()
    );
    if let Some(ms) = &report.stage_ms {
        let ms: Vec<String> = ms.iter().map(|m| format!("{m:.3}")).collect();
        println!("stage ms per image (batch 1): {}", ms.join(", "));
    }
    let on = report
        .heldout_split
        .clone()
        .unwrap_or_else(|| "calibration (no held-out split)".into());
    println!(
        "accuracy on {on} ({} images):",
        report.heldout_images.max(calib.len())
    );
    println!("budget        GFLOPs     frontier   official");
    let pct = |a: Option<f64>| a.map_or("   n/a".to_string(), |a| format!("{:6.2}%", 100.0 * a));
    for c in &report.comparisons {
        println!(
            "{:>4.0}% final   {:<9.6}  {}    {}",
            100.0 * c.fraction,
            c.gflops,
            pct(c.frontier),
            pct(c.official)
        );
    }
    println!(
        "worst deficit of the frontier below an official point: {:+.3} points",
        100.0 * report.worst_deficit
    );
    if let Some(claims) = &report.claims {
        println!("on the {} held-out images:", claims.images);
        for line in claims.lines() {
            println!("  {line}");
        }
    }
    if let Some(plot) = &report.plot {
        println!("plot: {}", plot.display());
    }
    Ok(())
}
