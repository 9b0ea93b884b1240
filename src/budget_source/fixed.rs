//! A fixed budget (`source = "static"`).

use super::{BudgetSource, Reading, SourceError};
use crate::policy::Budget;

/// Always the same budget.
#[derive(Debug, Clone)]
pub struct StaticSource(pub Option<Budget>);

impl BudgetSource for StaticSource {
    fn describe(&self) -> String {
        match self.0 {
            Some(b) => format!("static {b}"),
            None => "none (most accurate point)".into(),
        }
    }

    fn read(&mut self) -> Result<Reading, SourceError> {
        Ok(Reading {
            budget: self.0,
            power_watts: None,
        })
    }
}
