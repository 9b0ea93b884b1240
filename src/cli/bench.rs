//! The `dvt bench` command line: arguments and output; `src/bin/dvt/main.rs` only dispatches here.

use crate::bench::{peer, report, run, BenchError, BenchOptions};
use crate::bundle::Bundle;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// `dvt bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Bundle directory.
    #[arg(long, default_value = "engines/fmnist-dvt")]
    pub bundle: PathBuf,
    /// Timed calls per stage at batch 1 (batch 32 gets iters/8, at least 3).
    #[arg(long, default_value_t = 200)]
    pub iters: usize,
    /// Images classified one by one for the cascade-vs-static comparison.
    #[arg(long, default_value_t = 300)]
    pub images: usize,
    /// Operating points measured for the latency/accuracy plot (plus the matched one).
    #[arg(long, default_value_t = 8)]
    pub points: usize,
    /// Batch sizes of the per-stage table.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 32])]
    pub batch: Vec<usize>,
    /// Our backend (`--threads` also sets ONNX Runtime's peer threads).
    #[command(flatten)]
    pub backend: crate::backend::BackendArgs,
    /// Folder with the Fashion-MNIST IDX files (synthetic images when missing).
    #[arg(long, default_value = crate::data::fmnist::DEFAULT_DIR)]
    pub data: PathBuf,
    /// Python with onnxruntime for the peer (default: $DVT_PYTHON, ./.venv/bin/python, python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the ONNX Runtime peer.
    #[arg(long)]
    pub no_ort: bool,
    /// Write the latency-vs-accuracy SVG here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file (tables still go to stdout).
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// Errors of the command: the bench's, or the bundle's, or writing the output.
#[derive(Debug, thiserror::Error)]
pub enum BenchCliError {
    /// The bundle did not load.
    #[error("loading bundle {path}: {source}")]
    Bundle {
        /// Bundle directory.
        path: PathBuf,
        /// Why (boxed: the bundle's error is large and this path is cold).
        source: Box<crate::bundle::BundleError>,
    },
    /// A bad argument.
    #[error("{0}")]
    Args(String),
    /// The bench failed.
    #[error(transparent)]
    Bench(#[from] BenchError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(String),
}

/// Runs `dvt bench`.
pub fn run_cli(args: &BenchArgs) -> Result<(), BenchCliError> {
    if args.batch.is_empty() || args.batch.contains(&0) {
        return Err(BenchCliError::Args("--batch needs sizes >= 1".into()));
    }
    if args.iters == 0 {
        return Err(BenchCliError::Args("--iters must be at least 1".into()));
    }
    let bundle = Bundle::load(&args.bundle).map_err(|source| BenchCliError::Bundle {
        path: args.bundle.clone(),
        source: Box::new(source),
    })?;
    let defaults = BenchOptions::default();
    let backend = args
        .backend
        .options()
        .map_err(|e| BenchCliError::Args(e.to_string()))?;
    let opts = BenchOptions {
        threads: args.backend.threads.unwrap_or(defaults.threads),
        backend,
        iters: args.iters,
        batches: args.batch.clone(),
        images: args.images,
        points: args.points,
        data_dir: args.data.clone(),
        python: (!args.no_ort).then(|| args.python.clone().unwrap_or_else(peer::default_python)),
        plot: args.plot.clone(),
    };
    let verbose = !args.json && std::io::stderr().is_terminal();
    let mut log = |s: &str| {
        if verbose {
            eprintln!("bench: {s}");
        }
    };
    let r = run(&bundle, &opts, &mut log)?;
    let json =
        serde_json::to_string_pretty(&r).map_err(|e| BenchCliError::Output(e.to_string()))?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, &json)
            .map_err(|e| BenchCliError::Output(format!("{}: {e}", path.display())))?;
    }
    let text = if args.json { json } else { report::render(&r) };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(|e| BenchCliError::Output(e.to_string()))
}
