//! NVML board power on desktop RTX GPUs (feature `nvml`; `libnvidia-ml.so.1` is loaded at run
//! time by `nvml-wrapper`, so the binary starts on machines without the driver). On Jetson
//! NVML reports no power (spec §3.7): use the `jetson` source there.

use super::{BudgetSource, Reading, SourceError};
use crate::policy::Budget;
use nvml_wrapper::Nvml;

/// The NVML source: a watt budget tracked with `nvmlDeviceGetPowerUsage` (mW).
pub struct NvmlSource {
    device: u32,
    target_watts: f64,
    nvml: Option<Nvml>,
}

impl NvmlSource {
    /// Tracks GPU `device` against `target_watts`; NVML is initialised on first read (and
    /// again after a failure).
    pub fn new(device: u32, target_watts: f64) -> Self {
        Self {
            device,
            target_watts,
            nvml: None,
        }
    }
}

impl BudgetSource for NvmlSource {
    fn describe(&self) -> String {
        format!("nvml gpu {} ({} W target)", self.device, self.target_watts)
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        if self.nvml.is_none() {
            self.nvml = Some(
                Nvml::init().map_err(|e| SourceError::Missing(format!("NVML unavailable: {e}")))?,
            );
        }
        let nvml = self.nvml.as_ref().expect("just set");
        let mw = nvml
            .device_by_index(self.device)
            .and_then(|d| d.power_usage())
            .map_err(|e| SourceError::Missing(format!("NVML power of gpu {}: {e}", self.device)));
        match mw {
            Ok(mw) => Ok(Reading {
                budget: Some(Budget::Watts(self.target_watts)),
                power_watts: Some(f64::from(mw) / 1e3),
            }),
            Err(e) => {
                self.nvml = None;
                Err(e)
            }
        }
    }
}
