//! `dvt eval`: arguments and report tables; the work is in `dvt_edge::eval`.

use crate::open::{open_backend, open_data, SplitArg};
use anyhow::{bail, Context, Result};
use dvt_edge::backend::{AnyBackend, BackendArgs};
use dvt_edge::bundle::{Bundle, Manifest};
use dvt_edge::cascade::Cascade;
use dvt_edge::data::{fmnist, Split};
use dvt_edge::eval::{self, AllStagesReport, EvalOptions, EvalReport};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Bundle directory.
    #[arg(long, default_value = "engines/fmnist-dvt")]
    pub bundle: PathBuf,
    /// Exit thresholds, one per stage but the last (e.g. 0.9,0.8).
    #[arg(long, value_delimiter = ',', conflicts_with = "point")]
    pub thresholds: Option<Vec<f32>>,
    /// Use the thresholds of this manifest operating point.
    #[arg(long)]
    pub point: Option<String>,
    /// Fashion-MNIST IDX folder, or an image folder: DIR/<class>/*.jpg|png, or DIR/{train,val,test}/<class>/…
    /// (README "Train on your own images").
    #[arg(long, default_value = fmnist::DEFAULT_DIR)]
    pub data: PathBuf,
    /// Which images.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Evaluate only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Images per cascade call (1 = per-frame latency).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Report every stage's own accuracy (exit forced there) and the static baselines.
    #[arg(long)]
    pub all_stages: bool,
    /// Skip the static models measured beside the cascade.
    #[arg(long)]
    pub no_baselines: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `--thresholds`, or those of `--point` in the calibration that matches `backend`.
fn thresholds_for(
    args: &EvalArgs,
    manifest: &Manifest,
    cascade: &Cascade<AnyBackend>,
) -> Result<Vec<f32>> {
    if let Some(t) = &args.thresholds {
        return Ok(t.clone());
    }
    let backend = cascade.backend();
    let engines = backend.engine_names(cascade.stages());
    let choice = manifest.calibration_for(backend.kind(), &backend.precision(), &engines);
    if let (Some(w), Some(_)) = (&choice.warning, &args.point) {
        eprintln!("dvt: {w}");
    }
    let points = choice.points;
    let Some(name) = args.point.as_ref() else {
        bail!(
            "give --thresholds T1,T2 or --point NAME (the bundle has {} operating points)",
            points.len()
        );
    };
    points
        .iter()
        .find(|p| &p.name == name)
        .map(|p| p.thresholds.clone())
        .with_context(|| {
            let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
            format!(
                "no operating point '{name}' in the bundle (have: {})",
                names.join(", ")
            )
        })
}

/// Runs `dvt eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let bundle = Bundle::load(&args.bundle)
        .with_context(|| format!("loading bundle {}", args.bundle.display()))?;
    let split = match args.split {
        SplitArg::Test => Split::Test,
        SplitArg::Calibration => Split::Calibration,
    };
    let data = open_data(&args.data, split, &bundle, args.limit, !args.json)?;
    let backend = open_backend(&args.backend, &bundle)?;
    let mut cascade = Cascade::load(backend, &bundle)?;
    let progress = !args.json && std::io::stderr().is_terminal();
    let manifest = &bundle.manifest;
    if args.all_stages {
        let report =
            eval::evaluate_all_stages(&mut cascade, manifest, &data, args.batch.max(32), progress)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_all_stages(&report);
        }
        return Ok(());
    }
    let thresholds = thresholds_for(&args, manifest, &cascade)?;
    let opts = EvalOptions {
        thresholds,
        batch: args.batch,
        progress,
    };
    let report = eval::evaluate(&mut cascade, manifest, &data, &opts)?;
    let (alternatives, skipped) = if args.no_baselines {
        (Vec::new(), Vec::new())
    } else {
        eval::static_alternatives(
            cascade.backend(),
            &bundle,
            &data,
            args.batch,
            report.accuracy,
        )?
    };
    for s in &skipped {
        eprintln!("dvt: static baseline not measured: {s}");
    }
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["alternatives"] = serde_json::to_value(&alternatives)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_eval(&report, manifest, &alternatives);
    }
    Ok(())
}

fn print_eval(r: &EvalReport, m: &Manifest, alternatives: &[eval::Alternative]) {
    println!("bundle {} on {}", m.model.name, r.backend);
    println!(
        "{} images, batch {}, thresholds {:?}",
        r.images, r.batch, r.thresholds
    );
    println!("accuracy      {:.2}%", 100.0 * r.accuracy);
    println!("mean GFLOPs   {:.5} per image", r.mean_gflops);
    println!("throughput    {:.0} images/s", r.images_per_s);
    if !m.baselines.is_empty() && !alternatives.iter().any(|a| a.role.starts_with("cheapest")) {
        println!("no static model reaches the cascade's accuracy");
    }
    for a in alternatives {
        println!(
            "vs {} ({}): {:.2}% at {:.5} GFLOPs ({:.2}x the cascade's compute), {:.0} images/s",
            a.name,
            a.role,
            100.0 * a.accuracy,
            a.gflops,
            a.gflops / r.mean_gflops.max(1e-12),
            a.images_per_s
        );
    }
    println!("stage  grid    exits    calls   p50 ms   p99 ms");
    for (k, (s, lat)) in m.stages.iter().zip(&r.stage_latency_ms).enumerate() {
        println!(
            "{:<6} {:<7} {:>6.2}%  {:>6}  {:>7.3}  {:>7.3}",
            k + 1,
            format!("{}x{}", s.grid[0], s.grid[1]),
            100.0 * r.exit_fractions[k],
            lat.calls,
            lat.p50,
            lat.p99
        );
    }
    println!(
        "cascade               {:>6}  {:>7.3}  {:>7.3}",
        r.cascade_latency_ms.calls, r.cascade_latency_ms.p50, r.cascade_latency_ms.p99
    );
}

fn print_all_stages(r: &AllStagesReport) {
    println!("{} images on {}", r.images, r.backend);
    println!("model            accuracy   GFLOPs    cumulative");
    for s in r.stages.iter().chain(&r.baselines) {
        println!(
            "{:<16} {:>7.2}%  {:>8.5}  {:>8.5}",
            s.name,
            100.0 * s.accuracy,
            s.gflops,
            s.cumulative_gflops
        );
    }
}
