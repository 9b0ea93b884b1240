//! `dvt simulate`: arguments and report; the work is in `dvt_edge::policy::simulate`.

use crate::open::SplitArg;
use anyhow::{bail, Context, Result};
use dvt_edge::bundle::Bundle;
use dvt_edge::policy::calibrate::records_path;
use dvt_edge::policy::simulate::{self, Scenario, SimConfig, SimReport, SimSummary, Trace};
use dvt_edge::policy::{Metric, OperatingTable, Records, StageCosts};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Bundle directory (calibrated: operating points and records).
    #[arg(long, default_value = "engines/fmnist-dvt")]
    pub bundle: PathBuf,
    /// Budget trace CSV (`frame,budget_gflops` or `frame,budget_watts`, also `budget_ms`,
    /// `budget_ips`); without it the built-in scenarios run.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Run only this built-in scenario (step, ramp, harder, watts-step).
    #[arg(long, conflicts_with = "trace")]
    pub scenario: Option<String>,
    /// Frames to simulate for a trace (default: its last frame + 500).
    #[arg(long)]
    pub frames: Option<usize>,
    /// Which recorded split to replay.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Seed of the frame draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `dvt simulate`.
pub fn run(args: SimulateArgs) -> Result<()> {
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
    println!("scenario          frames  track err  bias     block err  settle  accuracy  optimal");
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
    println!("track err: mean |expected cost of the chosen mix - budget| / budget after settling;");
    println!(
        "block err: the same for the realised cost averaged over 200-frame blocks; settle: frames"
    );
    println!("until the 200-frame average stays within 5% of the budget (! = never).");
    Ok(())
}
