//! `dvt`: the offline and inspection CLI of dvt-edge.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use dvt_edge::backend::cpu::CpuBackend;
use dvt_edge::bundle::{Bundle, Manifest};
use dvt_edge::cascade::Cascade;
use dvt_edge::data::{fmnist, Dataset, Split};
use dvt_edge::eval::{self, AllStagesReport, EvalOptions, EvalReport};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "dvt", version, about = "Dynamic Vision Transformer cascades on the edge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify a labelled dataset through the cascade and report accuracy and cost.
    Eval(EvalArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    /// The 10,000 test images.
    Test,
    /// The 5,000 held-out training images.
    Calibration,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// Bundle directory.
    #[arg(long, default_value = "engines/fmnist-dvt")]
    bundle: PathBuf,
    /// Exit thresholds, one per stage but the last (e.g. 0.9,0.8).
    #[arg(long, value_delimiter = ',', conflicts_with = "point")]
    thresholds: Option<Vec<f32>>,
    /// Use the thresholds of this manifest operating point.
    #[arg(long)]
    point: Option<String>,
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long, default_value = fmnist::DEFAULT_DIR)]
    data: PathBuf,
    /// Which images.
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Evaluate only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Images per cascade call (1 = per-frame latency).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Report every stage's own accuracy (exit forced there) and the static baselines.
    #[arg(long)]
    all_stages: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Eval(args) => run_eval(args),
    }
}

fn thresholds_for(args: &EvalArgs, manifest: &Manifest) -> Result<Vec<f32>> {
    if let Some(t) = &args.thresholds {
        return Ok(t.clone());
    }
    let points = &manifest.operating_points;
    let Some(name) = args.point.as_ref() else {
        bail!("give --thresholds T1,T2 or --point NAME (the bundle has {} operating points)", points.len());
    };
    points
        .iter()
        .find(|p| &p.name == name)
        .map(|p| p.thresholds.clone())
        .with_context(|| {
            let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
            format!("no operating point '{name}' in the bundle (have: {})", names.join(", "))
        })
}

fn run_eval(args: EvalArgs) -> Result<()> {
    let bundle = Bundle::load(&args.bundle)
        .with_context(|| format!("loading bundle {}", args.bundle.display()))?;
    let split = match args.split {
        SplitArg::Test => Split::Test,
        SplitArg::Calibration => Split::Calibration,
    };
    let mut data = Dataset::load(&args.data, split)
        .with_context(|| format!("loading Fashion-MNIST from {}", args.data.display()))?;
    if let Some(n) = args.limit {
        data.truncate(n);
    }
    let backend = args
        .threads
        .map_or_else(CpuBackend::with_available_threads, CpuBackend::new);
    let mut cascade = Cascade::load(backend, &bundle)?;
    let progress = !args.json && std::io::stderr().is_terminal();
    let manifest = &bundle.manifest;
    if args.all_stages {
        let report = eval::evaluate_all_stages(&mut cascade, manifest, &data, args.batch.max(32), progress)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_all_stages(&report);
        }
        return Ok(());
    }
    let thresholds = thresholds_for(&args, manifest)?;
    let opts = EvalOptions {
        thresholds,
        batch: args.batch,
        progress,
    };
    let report = eval::evaluate(&mut cascade, manifest, &data, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_eval(&report, manifest);
    }
    Ok(())
}

fn print_eval(r: &EvalReport, m: &Manifest) {
    println!("bundle {} on {}", m.model.name, r.backend);
    println!(
        "{} images, batch {}, thresholds {:?}",
        r.images, r.batch, r.thresholds
    );
    println!("accuracy      {:.2}%", 100.0 * r.accuracy);
    println!("mean GFLOPs   {:.5} per image", r.mean_gflops);
    if let Some(b) = m.baselines.iter().max_by(|a, b| a.gflops.total_cmp(&b.gflops)) {
        println!(
            "vs {}: {:.2}% at {:.5} GFLOPs ({:.2}x the cascade's compute)",
            b.name,
            100.0 * b.accuracy,
            b.gflops,
            b.gflops / r.mean_gflops.max(1e-12)
        );
    }
    println!("throughput    {:.0} images/s", r.images_per_s);
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
