//! SIGTERM/SIGINT (drain and exit 0) and SIGHUP (reload) as events on a channel. signal-hook
//! rather than ctrlc: ctrlc's termination feature folds SIGHUP into the same handler.

use super::Event;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use std::sync::mpsc::Sender;

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: drain and exit.
    Stop,
    /// SIGHUP: reload configuration and bundle.
    Reload,
}

/// Starts the signal thread; the handle stops it.
pub fn spawn(events: Sender<Event>) -> std::io::Result<Handle> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("dvtd-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let s = if sig == SIGHUP {
                    Signal::Reload
                } else {
                    Signal::Stop
                };
                if events.send(Event::Signal(s)).is_err() {
                    break;
                }
            }
        })?;
    Ok(handle)
}
