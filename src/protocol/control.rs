//! Control commands: one JSON object per line on the daemon socket (a line starts with `{`,
//! a frame with `DVTQ`), one JSON object per line back. See `docs/protocol.md`.

use crate::policy::Budget;
use serde::Deserialize;

/// Longest control line accepted, bytes (a longer line is an error and closes the
/// connection: the daemon never buffers an unbounded line).
pub const MAX_LINE: usize = 64 * 1024;

/// A parsed control command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Bundle, budget, operating point, queue, uptime.
    Status,
    /// Counters: frames, exits per stage, latencies, errors by kind.
    Stats,
    /// Overrides the budget source with `Some(budget)`; `None` hands control back to the
    /// configured source.
    SetBudget(Option<Budget>),
    /// Re-reads the configuration and the bundle and swaps them in (answers when done).
    Reload,
    /// Stops accepting, answers every accepted frame, exits 0.
    Drain,
    /// Prometheus text exposition.
    Metrics,
    /// Whether the worker is alive and serving.
    Health,
}

/// A control line that cannot be obeyed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// Not JSON, or not an object with a known `cmd`.
    #[error("bad control line: {0}")]
    Parse(String),
    /// A `set-budget` with a bad kind or value.
    #[error("bad budget: {0}")]
    Budget(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    cmd: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    value: Option<f64>,
}

/// Parses one control line (without its newline).
pub fn parse_command(line: &str) -> Result<Command, ControlError> {
    let w: Wire =
        serde_json::from_str(line.trim()).map_err(|e| ControlError::Parse(e.to_string()))?;
    Ok(match w.cmd.as_str() {
        "status" => Command::Status,
        "stats" => Command::Stats,
        "reload" => Command::Reload,
        "drain" => Command::Drain,
        "metrics" => Command::Metrics,
        "health" | "healthz" => Command::Health,
        "set-budget" | "set_budget" => Command::SetBudget(budget_from(w.kind.as_deref(), w.value)?),
        other => {
            return Err(ControlError::Parse(format!(
                "unknown cmd '{other}' (status, stats, set-budget, reload, drain, metrics, health)"
            )))
        }
    })
}

/// `{kind, value}` to a budget; kind `auto` (no value) clears the override.
pub fn budget_from(kind: Option<&str>, value: Option<f64>) -> Result<Option<Budget>, ControlError> {
    let kind = kind.ok_or_else(|| {
        ControlError::Budget("set-budget needs \"kind\" (gflops, ips, ms, watts or auto)".into())
    })?;
    if kind == "auto" {
        return Ok(None);
    }
    let v =
        value.ok_or_else(|| ControlError::Budget(format!("kind '{kind}' needs a \"value\"")))?;
    let b = match kind {
        "gflops" => Budget::Gflops(v),
        "ips" | "fps" | "images_per_second" => Budget::ImagesPerSecond(v),
        "ms" | "ms_per_frame" => Budget::MsPerFrame(v),
        "w" | "watts" => Budget::Watts(v),
        other => {
            return Err(ControlError::Budget(format!(
                "unknown kind '{other}' (gflops, ips, ms, watts, auto)"
            )))
        }
    };
    b.validate()
        .map_err(|e| ControlError::Budget(e.to_string()))?;
    Ok(Some(b))
}

/// The wire form of a budget for `set-budget`: `{"kind": .., "value": ..}`.
pub fn budget_json(b: &Budget) -> serde_json::Value {
    let kind = match b {
        Budget::Gflops(_) => "gflops",
        Budget::ImagesPerSecond(_) => "ips",
        Budget::MsPerFrame(_) => "ms",
        Budget::Watts(_) => "watts",
    };
    serde_json::json!({"kind": kind, "value": b.value()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse_command(r#"{"cmd":"status"}"#), Ok(Command::Status));
        assert_eq!(
            parse_command(r#"{"cmd":"set-budget","kind":"watts","value":7.5}"#),
            Ok(Command::SetBudget(Some(Budget::Watts(7.5))))
        );
        assert_eq!(
            parse_command(r#"{"cmd":"set-budget","kind":"auto"}"#),
            Ok(Command::SetBudget(None))
        );
        assert!(parse_command(r#"{"cmd":"set-budget","kind":"gflops","value":-1}"#).is_err());
        assert!(parse_command(r#"{"cmd":"launch"}"#).is_err());
        assert!(parse_command("{not json").is_err());
        assert!(parse_command(r#"{"cmd":"status","extra":1}"#).is_err());
    }
}
