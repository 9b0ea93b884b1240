//! `dvt`: the offline and inspection CLI of dvt-edge.
//!
//! One file per subcommand (its arguments and its printing); the work is in the library.

mod build;
mod calibrate;
mod check_bundle;
mod eval;
mod open;
mod simulate;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    Eval(eval::EvalArgs),
    /// Record every stage's confidences on the calibration (and test) images, solve the
    /// operating points (official schedule + our frontier), write them into the manifest and
    /// draw accuracy_vs_cost.svg.
    Calibrate(calibrate::CalibrateArgs),
    /// Replay recorded confidences against budget traces through the closed-loop controller.
    Simulate(simulate::SimulateArgs),
    /// Run every stage on the selected backend with the bundle's stored reference inputs and
    /// compare each output with the exporter's PyTorch output (per-stage table; non-zero exit on
    /// failure).
    CheckBundle(check_bundle::CheckBundleArgs),
    /// Build the bundle's TensorRT engines for this GPU with trtexec (cached by TensorRT version,
    /// GPU, ONNX hash, precision and batch profile; stale engines are rebuilt).
    Build(build::BuildArgs),
    /// Benchmark the CPU backend side by side with ONNX Runtime (per stage, batch 1 and 32),
    /// the GEMM roofline, and the cascade against the static models (tables, JSON, SVG).
    Bench(dvt_edge::cli::bench::BenchArgs),
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

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Eval(args) => eval::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::CheckBundle(args) => check_bundle::run(args),
        Command::Build(args) => build::run(args),
        Command::Bench(args) => Ok(dvt_edge::cli::bench::run_cli(&args)?),
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
