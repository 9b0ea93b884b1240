//! `dvtd`, the edge daemon (docs/ARCHITECTURE.md, layer daemon). One file per job:
//!
//! - [`lifecycle`](run) - bind the socket, start the threads, drain on SIGTERM, reload on SIGHUP;
//! - `server` - one reader per connection: frames ([`crate::protocol`]) and control lines, the
//!   run-to-completion path, buffers and timeouts;
//! - [`frame`] - a frame's pixels -> the model's input tensor;
//! - [`worker`] - the inference worker and its dynamic batching over all connections;
//! - `state` ([`Shared`]) - what the threads share, and the status / stats / metrics text of it;
//! - `budget` ([`budget_supervisor`]) - the configured budget source and its polling thread;
//! - [`config`], [`log`], [`metrics`], `http`, `notify` (systemd), `signals`.

mod budget;
pub mod config;
pub mod frame;
mod http;
mod lifecycle;
pub mod log;
pub mod metrics;
mod notify;
mod server;
mod signals;
mod state;
pub mod worker;

use config::ConfigError;
use std::path::PathBuf;
use std::sync::mpsc::Sender;

/// Why the daemon could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The bundle could not be loaded or warmed up, or the backend could not be opened.
    #[error(transparent)]
    Cascade(#[from] crate::adaptive::AdaptiveError),
    /// The socket could not be bound.
    #[error("socket {path}: {reason}")]
    Socket {
        /// Socket path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A thread or signal handler could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The drain timed out with frames unanswered.
    #[error("drain timed out after {0:.1} s with {1} connection(s) still open")]
    DrainTimeout(f64, i64),
}

/// Events for the main thread.
pub enum Event {
    /// A signal arrived.
    Signal(signals::Signal),
    /// A client asked to drain.
    Drain,
    /// A client asked to reload; the result goes back on the sender.
    Reload(Sender<Result<String, String>>),
}

pub use budget::budget_supervisor;
pub use lifecycle::{run, ConfigSource};
pub use state::Shared;
