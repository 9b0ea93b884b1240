//! Engine cache keys. A serialized TensorRT engine is only valid for the TensorRT version, GPU and
//! ONNX it was built from; an engine whose key differs is rebuilt, never loaded.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// A TensorRT version, as `getInferLibVersion()` reports it (major*10000 + minor*100 + patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrtVersion {
    /// Major version (10, 11): the ABI and the builder flags depend on it.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl TrtVersion {
    /// Decodes `getInferLibVersion()`'s integer (e.g. 110400 for 11.4.0).
    pub fn from_code(code: i32) -> Option<Self> {
        if code <= 0 {
            return None;
        }
        let code = code as u32;
        Some(Self {
            major: code / 10000,
            minor: (code / 100) % 100,
            patch: code % 100,
        })
    }

    /// Parses "10.3.0" or "10.3" (trtexec's banner, `dpkg` versions).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().unwrap_or(Some(0))?;
        Some(Self {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for TrtVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Numeric precision an engine is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// FP32 everywhere (the parity reference for the CPU backend).
    Fp32,
    /// FP16 compute with FP32 LayerNorm/Softmax (TRT 10) or the strongly typed FP16 ONNX (TRT 11).
    #[default]
    Fp16,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        })
    }
}

/// The batch sizes an engine's optimisation profile covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchProfile {
    /// Smallest batch.
    pub min: usize,
    /// Batch TensorRT tunes for.
    pub opt: usize,
    /// Largest batch; the backend preallocates buffers for it.
    pub max: usize,
}

impl BatchProfile {
    /// The profile `dvt build` builds and the TensorRT backend loads unless told otherwise:
    /// tuned for one frame (a camera stream), up to 32 for batched evaluation and dvtd's batches.
    pub const DEFAULT: BatchProfile = BatchProfile {
        min: 1,
        opt: 1,
        max: 32,
    };

    /// A profile, checked for `1 <= min <= opt <= max`.
    pub fn new(min: usize, opt: usize, max: usize) -> Option<Self> {
        (min >= 1 && min <= opt && opt <= max).then_some(Self { min, opt, max })
    }

    /// Whether `batch` can run on an engine built with this profile.
    pub fn contains(&self, batch: usize) -> bool {
        (self.min..=self.max).contains(&batch)
    }
}

/// Everything a serialized engine depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineKey {
    /// TensorRT version that built the engine.
    pub tensorrt: TrtVersion,
    /// GPU name, as the driver reports it.
    pub gpu_name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (u32, u32),
    /// sha256 (hex) of the stage's ONNX file.
    pub onnx_sha256: String,
    /// Build precision.
    pub precision: Precision,
    /// Batch profile.
    pub batch: BatchProfile,
    /// Built with `--versionCompatible` (for the lean runtime). Absent in keys written before
    /// the field existed: those engines are not.
    #[serde(default)]
    pub version_compatible: bool,
}

/// The first field in which a stored engine's key differs from the wanted one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("engine built for {field} = {found}, this machine needs {wanted}")]
pub struct KeyMismatch {
    /// Field name.
    pub field: &'static str,
    /// Value in the stored key.
    pub found: String,
    /// Value wanted here.
    pub wanted: String,
}

impl EngineKey {
    /// A stable hex digest of the key (first 16 hex digits of a sha256 of its canonical text).
    pub fn digest(&self) -> String {
        let mut text = format!(
            "trt={}|gpu={}|sm={}.{}|onnx={}|prec={}|batch={},{},{}",
            self.tensorrt,
            self.gpu_name,
            self.compute_capability.0,
            self.compute_capability.1,
            self.onnx_sha256.to_ascii_lowercase(),
            self.precision,
            self.batch.min,
            self.batch.opt,
            self.batch.max
        );
        // Appended only when set, so the engines of every earlier key keep their file names.
        if self.version_compatible {
            text.push_str("|vc");
        }
        let hash = Sha256::digest(text.as_bytes());
        hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// File name of the engine of `stage` under this key.
    pub fn engine_file(&self, stage: &str) -> String {
        format!("{stage}.{}.{}.plan", self.precision, self.digest())
    }

    /// Compares a stored key (`self`) with the key wanted on this machine.
    pub fn check_matches(&self, wanted: &EngineKey) -> Result<(), KeyMismatch> {
        let field = |field: &'static str, found: String, want: String| {
            if found == want {
                Ok(())
            } else {
                Err(KeyMismatch {
                    field,
                    found,
                    wanted: want,
                })
            }
        };
        field(
            "tensorrt",
            self.tensorrt.to_string(),
            wanted.tensorrt.to_string(),
        )?;
        field("gpu_name", self.gpu_name.clone(), wanted.gpu_name.clone())?;
        field(
            "compute_capability",
            format!("{:?}", self.compute_capability),
            format!("{:?}", wanted.compute_capability),
        )?;
        field(
            "onnx_sha256",
            self.onnx_sha256.to_ascii_lowercase(),
            wanted.onnx_sha256.to_ascii_lowercase(),
        )?;
        field(
            "precision",
            self.precision.to_string(),
            wanted.precision.to_string(),
        )?;
        field(
            "batch",
            format!("{:?}", self.batch),
            format!("{:?}", wanted.batch),
        )?;
        field(
            "version_compatible",
            self.version_compatible.to_string(),
            wanted.version_compatible.to_string(),
        )
    }

    /// The key as the JSON sidecar written next to each engine.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("EngineKey serializes")
    }

    /// Parses a JSON sidecar.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}
