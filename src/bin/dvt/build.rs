//! `dvt build`: arguments; the work is in `dvt_edge::engine_build::build`.

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
    /// Build version-compatible engines, for a machine whose TensorRT is only the lean runtime
    /// (`libnvinfer_lean`, e.g. the `tensorrt-lean` wheels): it loads no other kind.
    #[arg(long)]
    version_compatible: bool,
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
            let v =
                TrtVersion::parse(cc).ok_or_else(|| anyhow!("bad --compute-capability {cc}"))?;
            Some((name, (v.major, v.minor)))
        }
        _ => None,
    };
    let mut target = detect_target(&trtexec, version, gpu).map_err(|e| anyhow!(e))?;
    target.version_compatible = args.version_compatible;
    let steps = plan(&bundle, &target, precision, batch, args.force)?;
    eprintln!(
        "TensorRT {} on {} (sm {}.{}), {precision}, batch {:?}{}",
        target.tensorrt,
        target.gpu_name,
        target.compute_capability.0,
        target.compute_capability.1,
        batch,
        if target.version_compatible {
            ", version-compatible (lean runtime)"
        } else {
            ""
        }
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
