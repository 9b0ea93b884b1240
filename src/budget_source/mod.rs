//! Budget sources behind one trait (docs/ARCHITECTURE.md, layer budget): a fixed budget, a file that
//! is re-read when it changes, Jetson INA3221/INA238 power rails found by label in sysfs, and
//! NVML board power (feature `nvml`). A [`Supervisor`] turns a source that disappears or goes
//! stale into the configured safe budget, reporting the change once, and recovers when the
//! source returns; [`watch::Watched`] runs a source's reads on a thread of their own so a read
//! that blocks is seen as stale instead of stopping the poller.

pub mod file;
pub mod fixed;
pub mod jetson;
#[cfg(feature = "nvml")]
pub mod nvml;
pub mod watch;

use crate::policy::Budget;
use std::time::{Duration, Instant};

/// What a source says now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The budget to meet (`None`: the most accurate point).
    pub budget: Option<Budget>,
    /// Measured power, watts, for watt budgets.
    pub power_watts: Option<f64>,
}

/// Why a source has nothing usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The file, sensor or library is not there.
    #[error("{0}")]
    Missing(String),
    /// The source answered with something unusable.
    #[error("{0}")]
    Invalid(String),
    /// The source has not changed for too long.
    #[error("{0}")]
    Stale(String),
}

/// A budget source.
pub trait BudgetSource: Send {
    /// One line naming the source (and its rail or file).
    fn describe(&self) -> String;
    /// Reads the source now.
    fn read(&mut self) -> Result<Reading, SourceError>;
}

/// A change of health of the supervised source, to be logged once.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The source failed; the safe budget is in force.
    Degraded(String),
    /// The source works again.
    Recovered,
}

/// The budget in force after supervision.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// Budget to meet.
    pub budget: Option<Budget>,
    /// Latest power reading, watts.
    pub power_watts: Option<f64>,
    /// Why the safe budget is in force, if it is.
    pub degraded: Option<String>,
}

/// Wraps a source with the safe-budget fallback and staleness detection.
pub struct Supervisor {
    source: Box<dyn BudgetSource>,
    safe: Option<Budget>,
    stale_after: Option<Duration>,
    degraded: Option<String>,
    last_power: Option<(f64, Instant)>,
}

impl Supervisor {
    /// Supervises `source`; `safe` is used while it fails; a power reading unchanged for
    /// `stale_after` counts as stale.
    pub fn new(
        source: Box<dyn BudgetSource>,
        safe: Option<Budget>,
        stale_after: Option<Duration>,
    ) -> Self {
        Self {
            source,
            safe,
            stale_after,
            degraded: None,
            last_power: None,
        }
    }

    /// The source's description.
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// Reads the source; returns the budget in force and a transition to log, if any.
    pub fn poll(&mut self, now: Instant) -> (Effective, Option<Transition>) {
        let result = self.source.read().and_then(|r| self.check_stale(r, now));
        match result {
            Ok(r) => {
                let t = self.degraded.take().map(|_| Transition::Recovered);
                (
                    Effective {
                        budget: r.budget,
                        power_watts: r.power_watts,
                        degraded: None,
                    },
                    t,
                )
            }
            Err(e) => {
                let msg = e.to_string();
                let t = self
                    .degraded
                    .is_none()
                    .then(|| Transition::Degraded(msg.clone()));
                self.degraded = Some(msg.clone());
                (
                    Effective {
                        budget: self.safe,
                        power_watts: None,
                        degraded: Some(msg),
                    },
                    t,
                )
            }
        }
    }

    fn check_stale(&mut self, r: Reading, now: Instant) -> Result<Reading, SourceError> {
        let (Some(p), Some(limit)) = (r.power_watts, self.stale_after) else {
            return Ok(r);
        };
        match self.last_power {
            Some((q, since)) if q == p => {
                if now.duration_since(since) > limit {
                    return Err(SourceError::Stale(format!(
                        "{}: power reading stuck at {p:.3} W for {:.0} s",
                        self.source.describe(),
                        now.duration_since(since).as_secs_f64()
                    )));
                }
            }
            _ => self.last_power = Some((p, now)),
        }
        Ok(r)
    }
}
