//! [`AnyBackend`]: the backend chosen at run time (CPU or TensorRT) as one type, so the cascade,
//! evaluation, calibration, the daemon and the benches are written once over [`Backend`] and never
//! copied per backend. A value or stage of one backend handed to the other is an error, not UB.

use super::cpu::{CpuBackend, CpuStage};
#[cfg(feature = "tensorrt")]
use super::cuda::DeviceTensor;
#[cfg(feature = "tensorrt")]
use super::tensorrt::{TrtBackend, TrtStage};
use super::{Backend, BackendError, HostTensor};
use crate::bundle::Bundle;
use std::path::Path;
use tract_onnx::prelude::TValue;

/// The selected backend. Cloning shares the TensorRT backend (one CUDA context and stream) and
/// copies the CPU one's handles, so several cascades (a bench's static models) can use it.
#[derive(Clone)]
pub enum AnyBackend {
    /// The embedded CPU backend (ONNX Runtime or tract).
    Cpu(CpuBackend),
    /// TensorRT engines on a CUDA GPU.
    #[cfg(feature = "tensorrt")]
    Tensorrt(std::sync::Arc<TrtBackend>),
}

/// A tensor where the selected backend keeps it.
#[derive(Clone)]
pub enum AnyValue {
    /// Host memory (CPU backend).
    Host(TValue),
    /// Device memory (TensorRT backend).
    #[cfg(feature = "tensorrt")]
    Device(DeviceTensor),
}

/// A stage loaded on the selected backend.
pub enum AnyStage {
    /// A CPU stage (ONNX file).
    Cpu(CpuStage),
    /// A TensorRT stage (engine file).
    #[cfg(feature = "tensorrt")]
    Tensorrt(TrtStage),
}

impl AnyStage {
    /// The file this stage runs: the ONNX file on the CPU, the engine plan on TensorRT.
    pub fn source(&self) -> &Path {
        match self {
            AnyStage::Cpu(s) => s.source(),
            #[cfg(feature = "tensorrt")]
            AnyStage::Tensorrt(s) => s.engine_path(),
        }
    }
}

#[cfg(feature = "tensorrt")]
fn mixed() -> BackendError {
    BackendError::Transfer("a value or stage of another backend was passed in".into())
}

impl AnyBackend {
    /// `"cpu"` or `"tensorrt"`: the backend part of a calibration's identity.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyBackend::Cpu(_) => "cpu",
            #[cfg(feature = "tensorrt")]
            AnyBackend::Tensorrt(_) => "tensorrt",
        }
    }

    /// Numeric precision the stages run at (`"fp32"` on the CPU, the engines' on TensorRT).
    pub fn precision(&self) -> String {
        match self {
            AnyBackend::Cpu(_) => "fp32".into(),
            #[cfg(feature = "tensorrt")]
            AnyBackend::Tensorrt(t) => t.options().precision.to_string(),
        }
    }

    /// The engine file names of `stages` loaded on this backend (what a calibration records);
    /// empty on the CPU, whose calibration is keyed by the ONNX hashes already.
    pub fn engine_names(&self, stages: &[AnyStage]) -> Vec<String> {
        if self.as_cpu().is_some() {
            return Vec::new();
        }
        stages
            .iter()
            .filter_map(|s| s.source().file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    /// The CPU backend, if that is the one selected.
    pub fn as_cpu(&self) -> Option<&CpuBackend> {
        match self {
            AnyBackend::Cpu(c) => Some(c),
            #[cfg(feature = "tensorrt")]
            AnyBackend::Tensorrt(_) => None,
        }
    }
}

impl Backend for AnyBackend {
    type Value = AnyValue;
    type Stage = AnyStage;

    fn name(&self) -> String {
        match self {
            AnyBackend::Cpu(b) => b.name(),
            #[cfg(feature = "tensorrt")]
            AnyBackend::Tensorrt(b) => b.name(),
        }
    }

    fn load_stage(&self, bundle: &Bundle, index: usize) -> Result<AnyStage, BackendError> {
        Ok(match self {
            AnyBackend::Cpu(b) => AnyStage::Cpu(b.load_stage(bundle, index)?),
            #[cfg(feature = "tensorrt")]
            AnyBackend::Tensorrt(b) => AnyStage::Tensorrt(b.load_stage(bundle, index)?),
        })
    }

    fn upload(&self, tensor: HostTensor) -> Result<AnyValue, BackendError> {
        Ok(match self {
            AnyBackend::Cpu(b) => AnyValue::Host(b.upload(tensor)?),
            #[cfg(feature = "tensorrt")]
            AnyBackend::Tensorrt(b) => AnyValue::Device(b.upload(tensor)?),
        })
    }

    fn run(
        &self,
        stage: &mut AnyStage,
        inputs: &[AnyValue],
    ) -> Result<Vec<AnyValue>, BackendError> {
        match (self, stage) {
            (AnyBackend::Cpu(b), AnyStage::Cpu(s)) => {
                let host = inputs
                    .iter()
                    .map(|v| match v {
                        AnyValue::Host(t) => Ok(t.clone()),
                        #[cfg(feature = "tensorrt")]
                        _ => Err(mixed()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(b.run(s, &host)?.into_iter().map(AnyValue::Host).collect())
            }
            #[cfg(feature = "tensorrt")]
            (AnyBackend::Tensorrt(b), AnyStage::Tensorrt(s)) => {
                let dev = inputs
                    .iter()
                    .map(|v| match v {
                        AnyValue::Device(t) => Ok(t.clone()),
                        _ => Err(mixed()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(b.run(s, &dev)?.into_iter().map(AnyValue::Device).collect())
            }
            #[cfg(feature = "tensorrt")]
            _ => Err(mixed()),
        }
    }

    fn download(&self, value: &AnyValue) -> Result<HostTensor, BackendError> {
        match (self, value) {
            (AnyBackend::Cpu(b), AnyValue::Host(v)) => b.download(v),
            #[cfg(feature = "tensorrt")]
            (AnyBackend::Tensorrt(b), AnyValue::Device(v)) => b.download(v),
            #[cfg(feature = "tensorrt")]
            _ => Err(mixed()),
        }
    }

    fn select_rows(&self, value: &AnyValue, rows: &[usize]) -> Result<AnyValue, BackendError> {
        match (self, value) {
            (AnyBackend::Cpu(b), AnyValue::Host(v)) => Ok(AnyValue::Host(b.select_rows(v, rows)?)),
            #[cfg(feature = "tensorrt")]
            (AnyBackend::Tensorrt(b), AnyValue::Device(v)) => {
                Ok(AnyValue::Device(b.select_rows(v, rows)?))
            }
            #[cfg(feature = "tensorrt")]
            _ => Err(mixed()),
        }
    }
}
