//! The daemon's life: bind the socket (never over a live daemon), start the worker, readers,
//! budget thread and HTTP, notify systemd, then drain on SIGTERM or `drain` and reload on SIGHUP
//! or `reload` without dropping a frame.

use super::*;
use crate::adaptive::AdaptiveCascade;
use crate::budget_source::Transition;
use crate::bundle::InputSpec;
use config::{Config, ConfigError};
use log::{log, Level};
use metrics::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use worker::WorkerMsg;

/// Where the configuration comes from (kept for reloads).
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The TOML file, if any.
    pub file: Option<PathBuf>,
    /// `key=value` overrides from the command line.
    pub overrides: Vec<String>,
}

impl ConfigSource {
    fn load(&self) -> Result<Config, ConfigError> {
        Config::load(self.file.as_deref(), &self.overrides)
    }
}

fn load_cascade(c: &Config) -> Result<AdaptiveCascade, DaemonError> {
    let options = crate::adaptive::AdaptiveOptions {
        backend: c.backend_options()?,
        max_batch: c.max_batch,
        controller: c.controller_config()?,
    };
    let cascade = AdaptiveCascade::load(&c.bundle, &options)?;
    for w in cascade.warnings() {
        log(Level::Warn, w.clone());
    }
    let b = cascade.backend();
    log(
        Level::Info,
        format!(
            "backend {} (precision {}, calibration {}); stages run {}",
            b.name,
            b.precision,
            b.calibration,
            b.stage_files.join(", ")
        ),
    );
    Ok(cascade)
}

/// Binds the socket, replacing a stale socket file but never a live daemon's.
fn bind(path: &Path, mode: u32) -> Result<UnixListener, DaemonError> {
    let fail = |reason: String| DaemonError::Socket {
        path: path.to_path_buf(),
        reason,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(fail("exists and is not a socket".into()));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(fail("another daemon is serving it".into()));
        }
        std::fs::remove_file(path).map_err(|e| fail(format!("cannot remove stale socket: {e}")))?;
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create its folder: {e}")))?;
        }
    }
    let l = UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(format!("chmod {mode:o}: {e}")))?;
    Ok(l)
}

fn spawn<F: FnOnce() + Send + 'static>(
    name: &str,
    f: F,
) -> Result<std::thread::JoinHandle<()>, DaemonError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| DaemonError::Setup(format!("cannot start thread {name}: {e}")))
}

/// Runs the daemon until SIGTERM/SIGINT or a `drain` command; returns after every accepted
/// frame was answered.
pub fn run(source: ConfigSource) -> Result<(), DaemonError> {
    let config = source.load()?;
    server::buffers::limit_arenas();
    let mut sup = budget_supervisor(&config.budget)?;
    // The worker builds the first cascade on its own thread, so a GPU backend's CUDA context is
    // created where it runs; warm-up is over before anything is bound or READY=1 is sent.
    let (init_tx, init_rx) = mpsc::channel::<Result<InputSpec, DaemonError>>();
    // The worker's queues, the shared state, and where it says that `status` shows it.
    type Start = (
        mpsc::Receiver<worker::Job>,
        mpsc::Receiver<WorkerMsg>,
        Arc<Shared>,
        Sender<()>,
    );
    let (start_tx, start_rx) = mpsc::channel::<Start>();
    let batching = worker::Batching {
        max_batch: config.max_batch,
        max_queue_delay: Duration::from_micros(config.max_queue_delay_us),
    };
    let first = config.clone();
    let worker = spawn("dvtd-worker", move || {
        let t0 = Instant::now();
        let cascade = match load_cascade(&first) {
            Ok(e) => e,
            Err(e) => {
                let _ = init_tx.send(Err(e));
                return;
            }
        };
        log(
            Level::Info,
            format!(
                "loaded {} ({} stages) from {} and warmed up in {:.0} ms",
                cascade.name(),
                cascade.num_stages(),
                first.bundle.display(),
                t0.elapsed().as_secs_f64() * 1e3
            ),
        );
        let _ = init_tx.send(Ok(cascade.input().clone()));
        // Gone when the start-up fails after the load (socket in use...): nothing to serve.
        if let Ok((jobs_rx, msgs_rx, sh, published)) = start_rx.recv() {
            let serving = Arc::new(Mutex::new(worker::Serving::new(cascade)));
            let _ = sh.serving.set(serving.clone());
            worker::publish_current(&serving, &sh);
            let _ = published.send(());
            worker::run(serving, jobs_rx, msgs_rx, sh, batching)
        }
    })?;
    let input = init_rx
        .recv()
        .map_err(|_| DaemonError::Setup("the worker died while loading the bundle".into()))??;
    let shared = Arc::new(Shared::new(input));
    // The first budget is in force before the first frame.
    let (first, transition) = sup.poll(Instant::now());
    if let Some(Transition::Degraded(why)) = transition {
        shared.metrics.error(ErrorKind::BudgetSource);
        log(
            Level::Warn,
            format!("budget source failed ({why}); using the safe budget until it returns"),
        );
    }
    shared.set_from_source(sup.describe(), first.budget, first.degraded);
    let (events_tx, events) = mpsc::channel::<Event>();
    let sig = signals::spawn(events_tx.clone())
        .map_err(|e| DaemonError::Setup(format!("signal handlers: {e}")))?;
    let path = config.socket_path();
    let listener = bind(&path, config.socket_mode)?;
    let (jobs_tx, jobs_rx) = mpsc::sync_channel(config.queue);
    let (msgs_tx, msgs_rx) = mpsc::channel::<WorkerMsg>();
    let (published_tx, published_rx) = mpsc::channel();
    start_tx
        .send((jobs_rx, msgs_rx, shared.clone(), published_tx))
        .map_err(|_| DaemonError::Setup("the worker is gone".into()))?;
    // No connection is accepted before `status` names the backend and the model.
    published_rx
        .recv()
        .map_err(|_| DaemonError::Setup("the worker is gone".into()))?;
    let sh = shared.clone();
    let poll = Duration::from_millis(config.budget.poll_ms.max(1));
    spawn("dvtd-budget", move || {
        super::budget::budget_loop(sup, poll, sh)
    })?;
    if !config.http.is_empty() {
        let l = std::net::TcpListener::bind(&config.http).map_err(|e| DaemonError::Socket {
            path: PathBuf::from(&config.http),
            reason: e.to_string(),
        })?;
        log(
            Level::Info,
            format!("metrics on http://{}/metrics", config.http),
        );
        let sh = shared.clone();
        spawn("dvtd-http", move || http::serve(l, sh))?;
    }
    let limits = server::Limits {
        max_payload: config.max_payload_bytes,
        max_connections: config.max_connections,
        control_connections: config.control_connections,
        kept_payload: usize::try_from(config.kept_payload_bytes).unwrap_or(usize::MAX),
        timeouts: server::Timeouts {
            frame: config::seconds(config.frame_timeout_s),
            idle: config::seconds(config.idle_timeout_s),
        },
        idle_spin: Duration::from_micros(config.idle_spin_us),
    };
    let sh = shared.clone();
    let ev = events_tx.clone();
    let acceptor = spawn("dvtd-accept", move || {
        server::accept_loop(listener, sh, jobs_tx, ev, limits)
    })?;
    drop(events_tx);
    shared.beat();
    log(Level::Info, format!("serving on {}", path.display()));
    notify::ready(&shared.status_line());

    let mut config = config;
    let mut msgs_tx = Some(msgs_tx);
    for ev in events.iter() {
        match ev {
            Event::Signal(signals::Signal::Stop) | Event::Drain => break,
            Event::Signal(signals::Signal::Reload) => {
                if let Err(e) = reload(&source, &mut config, &shared, msgs_tx.as_ref()) {
                    log(
                        Level::Error,
                        format!("reload refused, still serving the old bundle: {e}"),
                    );
                }
            }
            Event::Reload(reply) => {
                let r = reload(&source, &mut config, &shared, msgs_tx.as_ref());
                if let Err(e) = &r {
                    log(
                        Level::Error,
                        format!("reload refused, still serving the old bundle: {e}"),
                    );
                }
                let _ = reply.send(r);
            }
        }
    }
    // Drain: stop accepting, stop reading, answer everything accepted.
    notify::stopping();
    log(
        Level::Info,
        "draining: no new connections or frames; answering accepted frames",
    );
    let t_drain = Instant::now();
    shared.draining.store(true, Relaxed);
    let _ = UnixStream::connect(&path); // wakes the acceptor
    let _ = acceptor.join();
    let _ = std::fs::remove_file(&path);
    for s in shared
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
    {
        let _ = s.shutdown(std::net::Shutdown::Read);
    }
    let deadline = Duration::from_secs_f64(config.drain_timeout_s.max(0.0));
    {
        let mut g = shared.closed.0.lock().unwrap_or_else(|e| e.into_inner());
        while shared.metrics.connections.load(Relaxed) > 0 && t_drain.elapsed() < deadline {
            g = shared
                .closed
                .1
                .wait_timeout(g, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
    sig.close();
    let open = shared.metrics.connections.load(Relaxed);
    if open > 0 {
        return Err(DaemonError::DrainTimeout(
            t_drain.elapsed().as_secs_f64(),
            open,
        ));
    }
    msgs_tx.take();
    let _ = worker.join();
    let m = &shared.metrics;
    log(
        Level::Info,
        format!(
            "drained in {:.0} ms: {} frames answered ({} ok, {} busy, {} errors); exiting",
            t_drain.elapsed().as_secs_f64() * 1e3,
            m.frames_ok.load(Relaxed) + m.frames_busy.load(Relaxed) + m.frames_error.load(Relaxed),
            m.frames_ok.load(Relaxed),
            m.frames_busy.load(Relaxed),
            m.frames_error.load(Relaxed)
        ),
    );
    Ok(())
}

/// Re-reads the configuration and the bundle; swaps them in only if both are good.
fn reload(
    source: &ConfigSource,
    config: &mut Config,
    shared: &Shared,
    worker: Option<&Sender<WorkerMsg>>,
) -> Result<String, String> {
    notify::reloading();
    let result = (|| {
        let new = source.load().map_err(|e| e.to_string())?;
        budget_supervisor(&new.budget).map_err(|e| e.to_string())?;
        for (what, changed) in [
            ("socket", new.socket_path() != config.socket_path()),
            ("queue", new.queue != config.queue),
            ("max_batch", new.max_batch != config.max_batch),
            (
                "max_queue_delay_us",
                new.max_queue_delay_us != config.max_queue_delay_us,
            ),
            ("http", new.http != config.http),
            ("idle_spin_us", new.idle_spin_us != config.idle_spin_us),
        ] {
            if changed {
                log(
                    Level::Warn,
                    format!("reload: a change of {what} takes effect at the next restart"),
                );
            }
        }
        let t0 = Instant::now();
        let cascade = load_cascade(&Config {
            max_batch: config.max_batch,
            ..new.clone()
        })
        .map_err(|e| e.to_string())?;
        let msg = format!(
            "{} ({} stages) from {} on {} in {:.0} ms",
            cascade.name(),
            cascade.num_stages(),
            new.bundle.display(),
            cascade.backend().name,
            t0.elapsed().as_secs_f64() * 1e3
        );
        let input = cascade.input().clone();
        let (ack_tx, ack) = mpsc::channel();
        worker
            .ok_or("the worker is stopping")?
            .send(WorkerMsg::Swap(Box::new(cascade), ack_tx))
            .map_err(|_| "the worker is gone".to_string())?;
        // New frames are prepared for the new input once the worker runs the new cascade.
        ack.recv().map_err(|_| "the worker is gone".to_string())?;
        *shared.input.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(input);
        *shared
            .pending_budget_config
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(new.budget.clone());
        *config = Config {
            max_batch: config.max_batch,
            queue: config.queue,
            ..new
        };
        shared.metrics.reloads.fetch_add(1, Relaxed);
        log(Level::Info, format!("reloaded {msg}"));
        Ok(msg)
    })();
    if result.is_err() {
        shared.metrics.error(ErrorKind::Reload);
    }
    notify::ready(&shared.status_line());
    result
}
