//! The budget wiring: the configured budget source, supervised (staleness, a safe budget), and
//! the thread that polls it into the shared state.

use super::*;
use crate::budget_source::{
    file::FileSource, fixed::StaticSource, jetson::JetsonSource, watch::Watched, BudgetSource,
    Supervisor, Transition,
};
use config::{parse_budget, BudgetConfig, ConfigError};
use log::{log, Level};
use metrics::ErrorKind;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds the supervised budget source of `c`.
pub fn budget_supervisor(c: &BudgetConfig) -> Result<Supervisor, ConfigError> {
    let stale = (c.stale_after_s > 0.0).then(|| Duration::from_secs_f64(c.stale_after_s));
    let safe = parse_budget(&c.safe, "budget.safe")?;
    let source: Box<dyn BudgetSource> = match c.source.as_str() {
        "none" => Box::new(StaticSource(None)),
        "static" => Box::new(StaticSource(parse_budget(&c.value, "budget.value")?)),
        "file" => Box::new(FileSource::new(c.file.clone(), stale)),
        "jetson" => Box::new(JetsonSource::new(
            c.sysfs_root.clone(),
            c.rail.clone(),
            c.target_watts,
        )),
        #[cfg(feature = "nvml")]
        "nvml" => Box::new(crate::budget_source::nvml::NvmlSource::new(
            c.nvml_device,
            c.target_watts,
        )),
        #[cfg(not(feature = "nvml"))]
        "nvml" => {
            return Err(ConfigError::Invalid(
                "budget.source = \"nvml\" needs dvtd built with --features nvml".into(),
            ))
        }
        other => {
            return Err(ConfigError::Invalid(format!(
                "unknown budget.source {other:?}"
            )))
        }
    };
    // Reads run on a thread of their own: one that blocks leaves the budget loop running.
    let source: Box<dyn BudgetSource> = match c.read_timeout() {
        Some(t) => Box::new(Watched::new(source, t)),
        None => source,
    };
    Ok(Supervisor::new(source, safe, stale))
}

pub(super) fn budget_loop(mut sup: Supervisor, mut poll: Duration, shared: Arc<Shared>) {
    let mut last_status = Instant::now() - Duration::from_secs(10);
    while !shared.draining.load(Relaxed) {
        let pending = shared
            .pending_budget_config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(c) = pending {
            match budget_supervisor(&c) {
                Ok(s) => {
                    log(Level::Info, format!("budget source now {}", s.describe()));
                    sup = s;
                    poll = Duration::from_millis(c.poll_ms.max(1));
                }
                Err(e) => log(Level::Error, format!("budget source unchanged: {e}")),
            }
        }
        let (eff, transition) = sup.poll(Instant::now());
        match transition {
            Some(Transition::Degraded(why)) => {
                shared.metrics.error(ErrorKind::BudgetSource);
                let safe = eff
                    .budget
                    .map_or("the most accurate point".into(), |b| b.to_string());
                log(Level::Warn, format!("budget source failed ({why}); using the safe budget {safe} until it returns"));
            }
            Some(Transition::Recovered) => log(
                Level::Info,
                format!("budget source {} is back", sup.describe()),
            ),
            None => {}
        }
        shared
            .power_bits
            .store(eff.power_watts.unwrap_or(f64::NAN).to_bits(), Relaxed);
        shared.set_from_source(sup.describe(), eff.budget, eff.degraded);
        if last_status.elapsed() >= Duration::from_secs(1) {
            notify::status(&shared.status_line());
            last_status = Instant::now();
        }
        std::thread::sleep(poll);
    }
}
