//! `dvt check-bundle`: arguments and report table; the work is in `dvt_edge::bundle::check`.

use crate::open::open_backend;
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
    let backend = open_backend(&args.backend, &bundle)?;
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
    println!(
        "stage    output    shape                 max |diff|   rel err    bound      top-1   ok"
    );
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
