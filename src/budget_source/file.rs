//! A budget written into a file by another program (`source = "file"`), re-read when its
//! modification time or size changes. The first non-empty, non-`#` line holds one budget such
//! as `12w`, `0.004gflops`, `30ips` or `5ms`.

use super::{BudgetSource, Reading, SourceError};
use crate::policy::Budget;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The file source.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    stale_after: Option<Duration>,
    seen: Option<(SystemTime, u64)>,
    budget: Option<Budget>,
}

impl FileSource {
    /// Watches `path`; a file not rewritten for `stale_after` is stale.
    pub fn new(path: PathBuf, stale_after: Option<Duration>) -> Self {
        Self {
            path,
            stale_after,
            seen: None,
            budget: None,
        }
    }
}

/// Parses the budget file's text.
pub fn parse_budget_text(text: &str) -> Result<Budget, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or("the file holds no budget")?;
    line.parse::<Budget>().map_err(|e| e.to_string())
}

impl BudgetSource for FileSource {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        let meta = std::fs::metadata(&self.path).map_err(|e| {
            self.seen = None;
            SourceError::Missing(format!("budget file {}: {e}", self.path.display()))
        })?;
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if let Some(limit) = self.stale_after {
            let age = SystemTime::now()
                .duration_since(mtime)
                .unwrap_or(Duration::ZERO);
            if age > limit {
                return Err(SourceError::Stale(format!(
                    "budget file {} not rewritten for {:.0} s",
                    self.path.display(),
                    age.as_secs_f64()
                )));
            }
        }
        let key = (mtime, meta.len());
        if self.seen != Some(key) || self.budget.is_none() {
            let text = std::fs::read_to_string(&self.path).map_err(|e| {
                SourceError::Missing(format!("budget file {}: {e}", self.path.display()))
            })?;
            let b = parse_budget_text(&text).map_err(|e| {
                self.budget = None;
                SourceError::Invalid(format!("budget file {}: {e}", self.path.display()))
            })?;
            self.budget = Some(b);
            self.seen = Some(key);
        }
        Ok(Reading {
            budget: self.budget,
            power_watts: None,
        })
    }
}
