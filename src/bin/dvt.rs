//! `dvt`: the offline and inspection CLI of dvt-edge.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use dvt_edge::backend::{select, AnyBackend, BackendArgs};
use dvt_edge::bundle::{Bundle, Manifest};
use dvt_edge::cascade::Cascade;
use dvt_edge::data::{fmnist, Dataset, Split};
use dvt_edge::eval::{self, AllStagesReport, EvalOptions, EvalReport};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "dvt",
    version,
    about = "Dynamic Vision Transformer cascades on the edge"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify a labelled dataset through the cascade and report accuracy and cost.
    Eval(EvalArgs),
    /// Record every stage's confidences on the calibration (and test) images, solve the
    /// operating points (official schedule + our frontier), write them into the manifest and
    /// draw accuracy_vs_cost.svg.
    Calibrate(CalibrateArgs),
    /// Replay recorded confidences against budget traces through the closed-loop controller.
    Simulate(SimulateArgs),
    /// Run every stage on the selected backend with the bundle's stored reference inputs and
    /// compare each output with the exporter's PyTorch output (per-stage table; non-zero exit on
    /// failure).
    CheckBundle(check_cmd::CheckBundleArgs),
    /// Build the bundle's TensorRT engines for this GPU with trtexec (cached by TensorRT version,
    /// GPU, ONNX hash, precision and batch profile; stale engines are rebuilt).
    Build(build_cmd::BuildArgs),
    /// Benchmark the CPU backend side by side with ONNX Runtime (per stage, batch 1 and 32),
    /// the GEMM roofline, and the cascade against the static models (tables, JSON, SVG).
    Bench(dvt_edge::bench::cli::BenchArgs),
    /// Talk to a running dvtd: status, stats, set-budget, reload, drain, metrics, health.
    Ctl(dvt_edge::cli::ctl::CtlArgs),
    /// Start dvtd on the bundled cascade, stream the Fashion-MNIST test images through its
    /// socket while stepping the budget, and print accuracy, cost, exits and fps per step.
    Demo(dvt_edge::cli::demo::DemoArgs),
    /// The far end of `dvt demo --bench`'s ping-pong floor (stdin/stdout on a Unix socket).
    #[command(name = "__echo", hide = true)]
    Echo {
        /// Request bytes.
        request: usize,
        /// Reply bytes.
        reply: usize,
        /// Microseconds of work before each reply.
        #[arg(default_value_t = 0)]
        busy_us: u64,
    },
    /// Write a Triton model repository (config.pbtxt + the bundle) for the dvt backend.
    TritonRepo(dvt_edge::triton_repo::TritonRepoArgs),
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
    /// Fashion-MNIST IDX folder, or an image folder: DIR/<class>/*.jpg|png, or DIR/{train,val,test}/<class>/…
    /// (README "Train on your own images").
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
    #[command(flatten)]
    backend: BackendArgs,
    /// Report every stage's own accuracy (exit forced there) and the static baselines.
    #[arg(long)]
    all_stages: bool,
    /// Skip the static models measured beside the cascade.
    #[arg(long)]
    no_baselines: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

/// `split` of the IDX or image folder `path` for `bundle` (notes and skipped files on stderr).
fn open_data(
    path: &std::path::Path,
    split: Split,
    bundle: &Bundle,
    limit: Option<usize>,
    progress: bool,
) -> Result<Dataset> {
    let opened = Dataset::open(
        path,
        split,
        &bundle.manifest.model,
        limit,
        progress && std::io::stderr().is_terminal(),
    )
    .with_context(|| format!("loading {}", path.display()))?;
    for note in &opened.notes {
        eprintln!("dvt: {note}");
    }
    for e in opened.skipped.iter().skip(1).take(9) {
        eprintln!("dvt: skipped {e}");
    }
    Ok(opened.data)
}

/// The backend `args` ask for, checked against `bundle`; says on stderr (one line) why when
/// `auto` fell back to the CPU or the CPU to tract. A backend that cannot run is one error line.
fn open_backend(args: &BackendArgs, bundle: &Bundle) -> Result<AnyBackend> {
    let selected = select::open(&args.options()?, bundle)?;
    for why in selected.notes() {
        eprintln!("dvt: {why}");
    }
    Ok(selected.backend)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Eval(args) => run_eval(args),
        Command::Calibrate(args) => policy_cmd::calibrate(args),
        Command::Simulate(args) => policy_cmd::simulate(args),
        Command::CheckBundle(args) => check_cmd::run(args),
        Command::Build(args) => build_cmd::run(args),
        Command::Bench(args) => Ok(dvt_edge::bench::cli::run_cli(&args)?),
        Command::Ctl(args) => Ok(dvt_edge::cli::ctl::run(&args)?),
        Command::Demo(args) => Ok(dvt_edge::cli::demo::run(&args)?),
        Command::Echo {
            request,
            reply,
            busy_us,
        } => Ok(dvt_edge::cli::floor::echo(request, reply, busy_us)?),
        Command::TritonRepo(args) => Ok(dvt_edge::triton_repo::run(&args)?),
    }
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

fn run_eval(args: EvalArgs) -> Result<()> {
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

#[derive(clap::Args)]
struct CalibrateArgs {
    /// Bundle directory (its manifest.toml is rewritten; ONNX files are untouched).
    #[arg(long, default_value = "engines/fmnist-dvt")]
    bundle: PathBuf,
    /// Fashion-MNIST IDX folder, or an image folder: DIR/<class>/*.jpg|png, or DIR/{train,val,test}/<class>/…
    /// (README "Train on your own images").
    #[arg(long, default_value = fmnist::DEFAULT_DIR)]
    data: PathBuf,
    /// Solve from the records saved by an earlier run (no model run).
    #[arg(long)]
    from_records: bool,
    /// Do not record the test split (the comparison then uses the calibration images).
    #[arg(long)]
    no_heldout: bool,
    /// Use only the first N images of each split (quick checks).
    #[arg(long)]
    limit: Option<usize>,
    /// Images per cascade call while recording.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Images timed one at a time for the per-stage milliseconds.
    #[arg(long, default_value_t = 200)]
    timing_images: usize,
    /// Most frontier points written.
    #[arg(long, default_value_t = 40)]
    max_points: usize,
    /// The calibration is stored for the backend that runs it (the CPU's at the manifest's top
    /// level, TensorRT's as a `[[calibrations]]` entry with its engine files).
    #[command(flatten)]
    backend: BackendArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Bundle directory (calibrated: operating points and records).
    #[arg(long, default_value = "engines/fmnist-dvt")]
    bundle: PathBuf,
    /// Budget trace CSV (`frame,budget_gflops` or `frame,budget_watts`, also `budget_ms`,
    /// `budget_ips`); without it the built-in scenarios run.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Run only this built-in scenario (step, ramp, harder, watts-step).
    #[arg(long, conflicts_with = "trace")]
    scenario: Option<String>,
    /// Frames to simulate for a trace (default: its last frame + 500).
    #[arg(long)]
    frames: Option<usize>,
    /// Which recorded split to replay.
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Seed of the frame draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// `dvt check-bundle`: wiring only, the work is in `dvt_edge::bundle::check`.
mod check_cmd {
    use anyhow::{bail, Context, Result};
    use dvt_edge::backend::BackendArgs;
    use dvt_edge::bundle::check::{check_bundle, check_inputs, CheckReport};
    use dvt_edge::bundle::Bundle;
    use std::path::PathBuf;

    #[derive(clap::Args)]
    pub struct CheckBundleArgs {
        /// Bundle directory.
        pub dir: PathBuf,
        /// Relative-error bound for every output (default: the bound stored with the
        /// references, else 1e-4).
        #[arg(long)]
        pub tolerance: Option<f32>,
        /// Also decode the reference images' files from this image folder (bundles written by
        /// tools/train.py) and check the runtime's pre-processing against the trainer's.
        #[arg(long)]
        pub data: Option<PathBuf>,
        #[command(flatten)]
        pub backend: BackendArgs,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        pub json: bool,
    }

    pub fn run(args: CheckBundleArgs) -> Result<()> {
        let bundle = Bundle::load(&args.dir)
            .with_context(|| format!("loading bundle {}", args.dir.display()))?;
        let backend = super::open_backend(&args.backend, &bundle)?;
        let mut report = check_bundle(&backend, &bundle, args.tolerance)
            .with_context(|| format!("checking bundle {}", args.dir.display()))?;
        if let Some(data) = &args.data {
            let inputs = check_inputs(&backend, &bundle, data)
                .with_context(|| format!("checking pre-processing on {}", data.display()))?;
            report.passed &= inputs.pass;
            report.inputs = Some(inputs);
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report, &bundle);
        }
        if !report.passed {
            bail!(
                "{} does not reproduce its reference outputs",
                args.dir.display()
            );
        }
        Ok(())
    }

    fn print_report(r: &CheckReport, b: &Bundle) {
        println!(
            "bundle {} on {}, {} reference images",
            b.manifest.model.name, r.backend, r.images
        );
        println!("stage    output    shape                 max |diff|   rel err    bound      top-1   ok");
        for row in &r.rows {
            let top1 = row
                .top1_agreement
                .map_or("     -".to_string(), |a| format!("{:5.1}%", 100.0 * a));
            println!(
                "{:<8} {:<9} {:<21} {:<12.3e} {:<10.3e} {:<10.1e} {}  {}{}",
                row.stage,
                row.output,
                format!("{:?}", row.shape),
                row.max_abs,
                row.rel_err,
                row.tolerance,
                top1,
                if row.pass { "yes" } else { "NO" },
                row.note
                    .as_deref()
                    .map_or(String::new(), |n| format!(" ({n})"))
            );
        }
        if let Some(i) = &r.inputs {
            println!(
                "pre-processing of {} reference files: {} bit-exact, max |pixel diff| {} (in {}), \
                 final top-1 agreement {:.1}%, logits rel err {:.3e}: {}",
                i.files,
                i.exact,
                i.max_pixel_diff,
                i.worst_file,
                100.0 * i.top1_agreement,
                i.logits_rel_err,
                if i.pass { "ok" } else { "MISMATCH" }
            );
        }
        let verdict = if r.passed {
            "all outputs match"
        } else {
            "MISMATCH"
        };
        println!("{verdict}");
    }
}

/// `dvt calibrate` and `dvt simulate`: wiring only, the work is in `dvt_edge::policy`.
mod policy_cmd {
    use super::{CalibrateArgs, SimulateArgs, SplitArg};
    use anyhow::{bail, Context, Result};
    use dvt_edge::backend::BackendKind;
    use dvt_edge::bundle::Bundle;
    use dvt_edge::cascade::Cascade;
    use dvt_edge::data::{Dataset, Split};
    use dvt_edge::policy::calibrate::{self, records_path, CalibrationSlot};
    use dvt_edge::policy::frontier::FrontierOptions;
    use dvt_edge::policy::simulate::{self, Scenario, SimConfig, SimReport, SimSummary, Trace};
    use dvt_edge::policy::{Metric, OperatingTable, Records, StageCosts};
    use std::io::IsTerminal;

    pub fn calibrate(args: CalibrateArgs) -> Result<()> {
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
            let backend = super::open_backend(&args.backend, &bundle)?;
            let kind = backend.kind();
            let precision = backend.precision();
            let mut cascade = Cascade::load(backend, &bundle)?;
            let engines = cascade.backend().engine_names(cascade.stages());
            let slot = CalibrationSlot::for_backend(kind, &precision, engines);
            std::fs::create_dir_all(dir.join(slot.records_dir()))?;
            let progress = !args.json && std::io::stderr().is_terminal();
            let load = |split| -> Result<Dataset> {
                super::open_data(&args.data, split, &bundle, args.limit, !args.json)
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
                let mut h = calibrate::record(
                    &mut cascade,
                    &manifest,
                    &test,
                    "test",
                    args.batch,
                    progress,
                )?;
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
        let report =
            calibrate::finish_in(&dir, &mut manifest, &calib, heldout.as_ref(), &opts, &slot)?;
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
        let pct =
            |a: Option<f64>| a.map_or("   n/a".to_string(), |a| format!("{:6.2}%", 100.0 * a));
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
        println!("plot: {}", report.plot.display());
        Ok(())
    }

    pub fn simulate(args: SimulateArgs) -> Result<()> {
        let bundle = Bundle::load_unchecked(&args.bundle)
            .with_context(|| format!("loading bundle {}", args.bundle.display()))?;
        let manifest = &bundle.manifest;
        let table = OperatingTable::from_manifest(manifest)?;
        let split = match args.split {
            SplitArg::Test => "test",
            SplitArg::Calibration => "calibration",
        };
        let records = Records::load(&records_path(bundle.dir(), split)).with_context(|| {
            format!(
                "no {split} records: run `dvt calibrate --bundle {}`",
                args.bundle.display()
            )
        })?;
        records.check_matches(manifest)?;
        let costs = StageCosts::new(manifest, records.meta.stage_ms.as_deref());
        let full = manifest.stages.last().map_or(0.0, |s| s.cumulative_gflops);
        let config = SimConfig::for_cost(full);
        let scenarios: Vec<Scenario> = if let Some(path) = &args.trace {
            let trace = Trace::load(path)?;
            vec![Scenario {
                name: path.display().to_string(),
                frames: args.frames.unwrap_or(trace.len() + 500),
                trace,
                harder_from: None,
            }]
        } else {
            // Scenario budgets span the costs where a budget binds: up to the most accurate
            // point's cost (above it every budget runs that point and nothing is tracked).
            let span = table
                .chain(Metric::Gflops)
                .last()
                .map_or(full, |&(_, c)| c.min(full));
            let all = simulate::builtin(span, config.true_power);
            match &args.scenario {
                Some(name) => {
                    let names: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
                    let Some(s) = all.into_iter().find(|s| &s.name == name) else {
                        bail!("no scenario '{name}' (have: {})", names.join(", "));
                    };
                    vec![s]
                }
                None => all,
            }
        };
        let mut config = config;
        config.seed = args.seed;
        let reports: Vec<SimReport> = scenarios
            .iter()
            .map(|s| simulate::run(&table, &records, &costs, s, &config).map(|r| r.0))
            .collect::<Result<_, _>>()?;
        if args.json {
            if args.trace.is_some() {
                println!("{}", serde_json::to_string_pretty(&reports[0])?);
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&SimSummary::new(reports))?
                );
            }
            return Ok(());
        }
        println!(
            "replaying {} {split} images of {}",
            records.len(),
            manifest.model.name
        );
        println!(
            "scenario          frames  track err  bias     block err  settle  accuracy  optimal"
        );
        for r in &reports {
            println!(
                "{:<16} {:>7}  {:>8.2}%  {:>+6.2}%  {:>8.2}%  {:>6}{} {:>7.2}%  {:>6.2}%",
                r.scenario,
                r.frames,
                100.0 * r.mean_abs_tracking_error,
                100.0 * r.mean_tracking_bias,
                100.0 * r.realised_block_error,
                r.settling_frames,
                if r.settled { " " } else { "!" },
                100.0 * r.accuracy,
                100.0 * r.optimal_accuracy
            );
        }
        println!(
            "track err: mean |expected cost of the chosen mix - budget| / budget after settling;"
        );
        println!("block err: the same for the realised cost averaged over 200-frame blocks; settle: frames");
        println!("until the 200-frame average stays within 5% of the budget (! = never).");
        Ok(())
    }
}

mod build_cmd {
    //! `dvt build`: thin wiring over `dvt_edge::engine_build::build`.
    use anyhow::{anyhow, Result};
    use dvt_edge::bundle::Bundle;
    use dvt_edge::engine_build::build::{detect_target, find_trtexec, plan, run_step};
    use dvt_edge::engine_build::{BatchProfile, Precision, TrtVersion};
    use std::path::PathBuf;

    #[derive(Clone, Copy, clap::ValueEnum)]
    pub enum PrecisionArg {
        Fp16,
        Fp32,
    }

    #[derive(clap::Args)]
    pub struct BuildArgs {
        /// Bundle directory.
        #[arg(long, default_value = "engines/fmnist-dvt")]
        bundle: PathBuf,
        /// Engine precision.
        #[arg(long, value_enum, default_value = "fp16")]
        precision: PrecisionArg,
        /// Batch profile min,opt,max.
        #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 1, 32])]
        batch: Vec<usize>,
        /// trtexec binary (default: $TRTEXEC, PATH, /usr/src/tensorrt/bin/trtexec).
        #[arg(long)]
        trtexec: Option<PathBuf>,
        /// TensorRT version (default: asked from trtexec).
        #[arg(long)]
        trt_version: Option<String>,
        /// GPU name (default: nvidia-smi).
        #[arg(long, requires = "compute_capability")]
        gpu_name: Option<String>,
        /// Compute capability, e.g. 8.7 (default: nvidia-smi).
        #[arg(long, requires = "gpu_name")]
        compute_capability: Option<String>,
        /// Rebuild even engines whose key matches.
        #[arg(long)]
        force: bool,
        /// Print the trtexec command lines instead of running them.
        #[arg(long)]
        dry_run: bool,
    }

    pub fn run(args: BuildArgs) -> Result<()> {
        let bundle = Bundle::load(&args.bundle)?;
        let precision = match args.precision {
            PrecisionArg::Fp16 => Precision::Fp16,
            PrecisionArg::Fp32 => Precision::Fp32,
        };
        let batch = match args.batch[..] {
            [min, opt, max] => BatchProfile::new(min, opt, max),
            _ => None,
        }
        .ok_or_else(|| anyhow!("--batch needs min,opt,max with 1 <= min <= opt <= max"))?;
        let trtexec = args
            .trtexec
            .or_else(find_trtexec)
            .unwrap_or_else(|| PathBuf::from("trtexec"));
        let version = match &args.trt_version {
            Some(v) => Some(TrtVersion::parse(v).ok_or_else(|| anyhow!("bad --trt-version {v}"))?),
            None => None,
        };
        let gpu = match (args.gpu_name, &args.compute_capability) {
            (Some(name), Some(cc)) => {
                let v = TrtVersion::parse(cc)
                    .ok_or_else(|| anyhow!("bad --compute-capability {cc}"))?;
                Some((name, (v.major, v.minor)))
            }
            _ => None,
        };
        let target = detect_target(&trtexec, version, gpu).map_err(|e| anyhow!(e))?;
        let steps = plan(&bundle, &target, precision, batch, args.force)?;
        eprintln!(
            "TensorRT {} on {} (sm {}.{}), {precision}, batch {:?}",
            target.tensorrt,
            target.gpu_name,
            target.compute_capability.0,
            target.compute_capability.1,
            batch
        );
        if args.dry_run {
            for s in &steps {
                match &s.args {
                    Some(a) => println!("{} {}", trtexec.display(), a.join(" ")),
                    None => println!("# {}: {} is current", s.stage, s.engine.display()),
                }
            }
            return Ok(());
        }
        let bar = indicatif::ProgressBar::new(steps.len() as u64);
        for s in &steps {
            bar.set_message(s.stage.clone());
            run_step(&trtexec, s)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        for s in &steps {
            let state = if s.args.is_some() { "built" } else { "current" };
            println!("{}: {state} {}", s.stage, s.engine.display());
        }
        Ok(())
    }
}
