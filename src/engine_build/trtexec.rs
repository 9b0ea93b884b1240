//! `trtexec` command lines for `dvt build`. The flags depend on the TensorRT major version:
//! TRT 10 builds FP16 with `--fp16` and keeps LayerNorm/Softmax in FP32 through layer precision
//! constraints; TRT 11 removed `--fp16` (strongly typed networks only), so FP16 comes from the
//! exporter's FP16 ONNX and the build says `--stronglyTyped`.

use super::key::{BatchProfile, Precision, TrtVersion};
use crate::bundle::StageSpec;
use std::path::PathBuf;

/// One engine build.
#[derive(Debug, Clone)]
pub struct TrtexecJob<'a> {
    /// The stage (input names and shapes come from it).
    pub stage: &'a StageSpec,
    /// The ONNX to build from (FP32 ONNX for TRT 10, the FP16 ONNX for TRT 11 FP16).
    pub onnx: PathBuf,
    /// Where the engine is written.
    pub engine: PathBuf,
    /// Timing cache shared by all builds on this machine.
    pub timing_cache: PathBuf,
    /// Precision.
    pub precision: Precision,
    /// Batch profile.
    pub batch: BatchProfile,
    /// Layer-name patterns kept in FP32 under TRT 10 FP16 (LayerNorm, Softmax).
    pub fp32_layers: Vec<String>,
    /// Build a version-compatible engine (needed by the lean runtime).
    pub version_compatible: bool,
}

/// Default layer patterns kept in FP32 for TRT 10 FP16 builds. trtexec matches a layer name
/// against a pattern with at most one `*`; TensorRT names layers after the ONNX nodes, which the
/// torch exporter (opset 17) names `/stage/blocks.N/norm1/LayerNormalization` and
/// `/stage/blocks.N/attn/Softmax`.
pub fn default_fp32_layers() -> Vec<String> {
    ["*/LayerNormalization", "*/Softmax"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn shapes(stage: &StageSpec, batch: usize) -> String {
    stage
        .inputs
        .iter()
        .map(|t| {
            let dims: Vec<String> = t
                .concrete_shape(batch)
                .iter()
                .map(|d| d.to_string())
                .collect();
            format!("{}:{}", t.name, dims.join("x"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The argument list (without the program) for `trtexec` with TensorRT `version`.
pub fn trtexec_command(job: &TrtexecJob<'_>, version: TrtVersion) -> Vec<String> {
    let mut args = vec![
        format!("--onnx={}", job.onnx.display()),
        format!("--saveEngine={}", job.engine.display()),
        format!("--timingCacheFile={}", job.timing_cache.display()),
        format!("--minShapes={}", shapes(job.stage, job.batch.min)),
        format!("--optShapes={}", shapes(job.stage, job.batch.opt)),
        format!("--maxShapes={}", shapes(job.stage, job.batch.max)),
        "--skipInference".to_string(),
    ];
    match (job.precision, version.major >= 11) {
        (Precision::Fp32, false) => {}
        (Precision::Fp16, false) => {
            args.push("--fp16".to_string());
            if !job.fp32_layers.is_empty() {
                let spec: Vec<String> = job
                    .fp32_layers
                    .iter()
                    .map(|l| format!("{l}:fp32"))
                    .collect();
                args.push(format!("--layerPrecisions={}", spec.join(",")));
                args.push("--precisionConstraints=obey".to_string());
            }
        }
        // TRT 11 only builds strongly typed networks: the ONNX's own types decide precision.
        (_, true) => args.push("--stronglyTyped".to_string()),
    }
    if job.version_compatible {
        args.push("--versionCompatible".to_string());
    }
    args
}
