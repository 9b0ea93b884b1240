//! systemd notifications (`Type=notify`): READY=1 after the warm-up frame and the socket bind,
//! WATCHDOG=1 from the worker loop, STATUS= lines, RELOADING=1 and STOPPING=1. All are no-ops
//! when `NOTIFY_SOCKET` is unset.

use super::log::{log, Level};
use sd_notify::NotifyState;
use std::time::Duration;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log(Level::Debug, format!("sd_notify: {e}"));
    }
}

/// Startup finished.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload started (with the monotonic time systemd >= 253 requires).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Free-form status line.
pub fn status(s: &str) {
    send(&[NotifyState::Status(s)]);
}

/// Watchdog keep-alive.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to send WATCHDOG=1 (half the configured interval), if the watchdog is on.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
