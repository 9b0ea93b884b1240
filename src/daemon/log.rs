//! Minimal stderr logging: journald reads the `<N>` sd-daemon level prefix when stderr is the
//! journal (`JOURNAL_STREAM` set); otherwise lines read `dvtd: warning: ...`. Connection-level
//! messages go through a rate limit so a misbehaving client cannot flood the log.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// Severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error = 3,
    /// Degraded but serving.
    Warn = 4,
    /// Lifecycle events.
    Info = 6,
    /// Per-connection detail (shown with `DVTD_LOG=debug`).
    Debug = 7,
}

fn journal() -> bool {
    static J: OnceLock<bool> = OnceLock::new();
    *J.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

fn debug_on() -> bool {
    static D: OnceLock<bool> = OnceLock::new();
    *D.get_or_init(|| std::env::var("DVTD_LOG").is_ok_and(|v| v == "debug"))
}

/// Writes one line.
pub fn log(level: Level, msg: impl Display) {
    if level == Level::Debug && !debug_on() {
        return;
    }
    let name = match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
    };
    if journal() {
        eprintln!("<{}>{msg}", level as u8);
    } else {
        eprintln!("dvtd: {name}: {msg}");
    }
}

/// Logs `msg` unless more than 20 rate-limited lines were written in the current second.
pub fn limited(level: Level, msg: impl Display) {
    static START: OnceLock<Instant> = OnceLock::new();
    static WINDOW: AtomicU64 = AtomicU64::new(0);
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let sec = START.get_or_init(Instant::now).elapsed().as_secs() + 1;
    if WINDOW.swap(sec, Relaxed) != sec {
        COUNT.store(0, Relaxed);
    }
    let n = COUNT.fetch_add(1, Relaxed);
    if n < 20 {
        log(level, msg);
    } else if n == 20 {
        log(
            level,
            "more client errors this second; suppressed (see dvtd_errors_total)",
        );
    }
}
