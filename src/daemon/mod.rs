//! `dvtd`, the edge daemon (docs/ARCHITECTURE.md, layer daemon): a Unix socket speaking binary frames
//! and JSON control lines ([`protocol`], [`control`]), a bounded queue feeding one inference
//! worker ([`worker`]) whose thresholds come from the budget controller, budget sources
//! ([`crate::budget_source`]), Prometheus metrics, systemd notify/watchdog, SIGTERM drain and
//! SIGHUP reload.

pub mod config;
pub mod frame;
mod http;
pub mod log;
pub mod metrics;
mod notify;
/// Old path of [`crate::protocol`], kept until the files being split elsewhere move over.
#[doc(hidden)]
pub use crate::protocol;
mod server;
mod signals;
pub mod worker;

use crate::adaptive::AdaptiveCascade;
use crate::budget_source::{
    file::FileSource, fixed::StaticSource, jetson::JetsonSource, watch::Watched, BudgetSource,
    Supervisor, Transition,
};
use crate::bundle::InputSpec;
use crate::policy::Budget;
use config::{parse_budget, BudgetConfig, Config, ConfigError};
use log::{log, Level};
use metrics::{ErrorKind, Metrics};
use serde_json::json;
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};
use worker::{WorkerMsg, WorkerStatus};

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

/// The budget as the sources and clients set it.
#[derive(Debug, Clone, Default)]
struct BudgetState {
    source: String,
    from_source: Option<Budget>,
    overridden: Option<Budget>,
    degraded: Option<String>,
}

impl BudgetState {
    fn effective(&self) -> Option<Budget> {
        self.overridden.or(self.from_source)
    }
}

/// State shared by the threads. The hot path (frames) only touches atomics and one
/// read lock for the input geometry.
pub struct Shared {
    /// Counters.
    pub metrics: Metrics,
    /// Set once a drain starts.
    pub draining: AtomicBool,
    started: Instant,
    heartbeat_ms: AtomicU64,
    budget: Mutex<BudgetState>,
    budget_gen: AtomicU64,
    power_bits: AtomicU64,
    status: Mutex<WorkerStatus>,
    input: RwLock<Arc<InputSpec>>,
    conns: Mutex<HashMap<u64, UnixStream>>,
    closed: (Mutex<()>, Condvar),
    pending_budget_config: Mutex<Option<BudgetConfig>>,
    /// The cascade, for readers that run a frame themselves while the worker is idle.
    serving: std::sync::OnceLock<worker::SharedServing>,
}

impl Shared {
    fn new(input: InputSpec) -> Self {
        Self {
            metrics: Metrics::default(),
            draining: AtomicBool::new(false),
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            budget: Mutex::new(BudgetState::default()),
            budget_gen: AtomicU64::new(0),
            power_bits: AtomicU64::new(f64::NAN.to_bits()),
            status: Mutex::new(WorkerStatus::default()),
            input: RwLock::new(Arc::new(input)),
            conns: Mutex::new(HashMap::new()),
            closed: (Mutex::new(()), Condvar::new()),
            pending_budget_config: Mutex::new(None),
            serving: std::sync::OnceLock::new(),
        }
    }

    fn lock_budget(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes whenever the effective budget may have changed.
    pub fn budget_generation(&self) -> u64 {
        self.budget_gen.load(Relaxed)
    }

    /// The budget in force: a client's override, else the source's.
    pub fn effective_budget(&self) -> Option<Budget> {
        self.lock_budget().effective()
    }

    fn set_override(&self, b: Option<Budget>) {
        self.lock_budget().overridden = b;
        self.budget_gen.fetch_add(1, Relaxed);
    }

    fn set_from_source(&self, source: String, b: Option<Budget>, degraded: Option<String>) {
        let mut s = self.lock_budget();
        let changed = s.from_source != b;
        s.source = source;
        s.from_source = b;
        s.degraded = degraded;
        drop(s);
        if changed {
            self.budget_gen.fetch_add(1, Relaxed);
        }
    }

    /// Latest power reading, watts.
    pub fn power_watts(&self) -> Option<f64> {
        Some(f64::from_bits(self.power_bits.load(Relaxed))).filter(|p| p.is_finite())
    }

    fn beat(&self) {
        self.heartbeat_ms
            .store(self.started.elapsed().as_millis() as u64, Relaxed);
    }

    fn input(&self) -> Arc<InputSpec> {
        self.input.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn register(&self, id: u64, s: UnixStream) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, s);
    }

    fn unregister(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    fn connection_closed(&self) {
        let _g = self.closed.0.lock().unwrap_or_else(|e| e.into_inner());
        self.closed.1.notify_all();
    }

    /// Whether the worker is alive (heartbeat within 2 s) and the daemon is not draining.
    pub fn health(&self) -> (bool, String) {
        let now = self.started.elapsed().as_millis() as u64;
        let age = now.saturating_sub(self.heartbeat_ms.load(Relaxed));
        if self.draining.load(Relaxed) {
            (false, "draining".into())
        } else if age > 2000 {
            (false, format!("worker heartbeat {age} ms old"))
        } else {
            (true, "ok".into())
        }
    }

    fn worker_status(&self) -> WorkerStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn status_json(&self) -> serde_json::Value {
        let b = self.lock_budget().clone();
        let w = self.worker_status();
        let input = self.input();
        json!({
            "ok": true,
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": protocol::VERSION,
            "model": w.model,
            "bundle": w.bundle,
            "backend": w.backend,
            "backend_kind": w.backend_info.as_ref().map(|b| b.kind.clone()),
            "precision": w.backend_info.as_ref().map(|b| b.precision.clone()),
            "stage_files": w.backend_info.as_ref().map(|b| b.stage_files.clone()),
            "backend_note": w.backend_info.as_ref().and_then(|b| b.note.clone()),
            "calibration": w.backend_info.as_ref().map(|b| b.calibration.clone()),
            "stages": w.stages,
            "input": {"height": input.height, "width": input.width, "channels": input.channels},
            "budget": b.effective().map(|b| crate::protocol::control::budget_json(&b)),
            "budget_source": b.source,
            "budget_override": b.overridden.is_some(),
            "degraded": b.degraded,
            "power_watts": self.power_watts(),
            "controller": w.controller,
            "thresholds": w.thresholds,
            "fps": w.fps,
            "queue_depth": self.metrics.queue_depth.load(Relaxed).max(0),
            "connections": self.metrics.connections.load(Relaxed).max(0),
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "draining": self.draining.load(Relaxed),
        })
    }

    fn stats_json(&self) -> serde_json::Value {
        let m = &self.metrics;
        let stages = self.worker_status().stages.clamp(1, metrics::MAX_STAGES);
        let ok = m.frames_ok.load(Relaxed);
        let errors: serde_json::Map<String, serde_json::Value> = m
            .errors_by_kind()
            .into_iter()
            .map(|(k, n)| (k.to_string(), json!(n)))
            .collect();
        json!({
            "ok": true,
            "frames": {"ok": ok, "busy": m.frames_busy.load(Relaxed), "error": m.frames_error.load(Relaxed)},
            "exits": (0..stages).map(|k| m.exits[k].load(Relaxed)).collect::<Vec<_>>(),
            "mean_gflops": if ok == 0 { 0.0 } else { m.ngflops.load(Relaxed) as f64 / 1e9 / ok as f64 },
            "mean_latency_us": m.e2e_latency.mean_us(),
            "mean_stage_latency_us": (0..stages).map(|k| m.stage_latency[k].mean_us()).collect::<Vec<_>>(),
            "errors": errors,
            "reloads": m.reloads.load(Relaxed),
            "fps": self.worker_status().fps,
        })
    }

    fn metrics_text(&self) -> String {
        let b = self.lock_budget().clone();
        let w = self.worker_status();
        let mut gauges = Vec::new();
        if let Some(e) = b.effective() {
            gauges.push((
                "dvtd_budget",
                format!("unit=\"{}\"", e.unit()),
                e.value(),
                "Budget in force.",
            ));
        }
        if let Some(p) = self.power_watts() {
            gauges.push((
                "dvtd_power_watts",
                format!("source=\"{}\"", b.source.replace('"', "'")),
                p,
                "Latest power reading of the budget source.",
            ));
        }
        gauges.push((
            "dvtd_budget_degraded",
            String::new(),
            f64::from(u8::from(b.degraded.is_some())),
            "1 while the budget source is missing or stale (safe budget in force).",
        ));
        if let Some(c) = &w.controller {
            gauges.push((
                "dvtd_operating_point",
                format!("lo=\"{}\",hi=\"{}\"", c.point_lo, c.point_hi),
                c.p_hi,
                "Operating points mixed now; the value is the share of the costlier one.",
            ));
            gauges.push((
                "dvtd_command",
                format!("metric=\"{:?}\"", c.metric).to_lowercase(),
                c.command,
                "Controller command (nominal expected cost).",
            ));
        }
        if let Some(info) = &w.backend_info {
            gauges.push((
                "dvtd_backend_info",
                format!(
                    "backend=\"{}\",precision=\"{}\",calibration=\"{}\",name=\"{}\"",
                    info.kind,
                    info.precision,
                    info.calibration,
                    info.name.replace('"', "'")
                ),
                1.0,
                "The backend the stages run on (labels); always 1.",
            ));
        }
        gauges.push((
            "dvtd_fps",
            String::new(),
            w.fps,
            "Frames per second (last 250 ms).",
        ));
        gauges.push((
            "dvtd_up",
            String::new(),
            f64::from(u8::from(self.health().0)),
            "1 when the worker is alive and serving.",
        ));
        self.metrics.render(w.stages, &gauges)
    }

    fn status_line(&self) -> String {
        let b = self.lock_budget().clone();
        let w = self.worker_status();
        let budget = b.effective().map_or("none".to_string(), |b| b.to_string());
        let point = w.controller.as_ref().map_or("-".into(), |c| {
            if c.point_lo == c.point_hi {
                c.point_lo.clone()
            } else {
                format!("{}/{}", c.point_lo, c.point_hi)
            }
        });
        let power = self
            .power_watts()
            .map_or(String::new(), |p| format!(" power={p:.2}W"));
        let degraded = if b.degraded.is_some() {
            " SAFE-BUDGET"
        } else {
            ""
        };
        // Last, as it may carry the reason `auto` fell back to the CPU.
        let backend = w.backend_info.as_ref().map_or(String::new(), |i| {
            let why = i.note.as_ref().map_or(String::new(), |n| format!(" ({n})"));
            format!(" backend={}/{}{why}", i.kind, i.precision)
        });
        format!(
            "serving budget={budget} point={point} fps={:.0}{power} source={}{degraded}{backend}",
            w.fps, b.source
        )
    }
}

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

fn budget_loop(mut sup: Supervisor, mut poll: Duration, shared: Arc<Shared>) {
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
    type Start = (
        mpsc::Receiver<worker::Job>,
        mpsc::Receiver<WorkerMsg>,
        Arc<Shared>,
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
        if let Ok((jobs_rx, msgs_rx, sh)) = start_rx.recv() {
            let serving = Arc::new(Mutex::new(worker::Serving::new(cascade)));
            let _ = sh.serving.set(serving.clone());
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
    start_tx
        .send((jobs_rx, msgs_rx, shared.clone()))
        .map_err(|_| DaemonError::Setup("the worker is gone".into()))?;
    let sh = shared.clone();
    let poll = Duration::from_millis(config.budget.poll_ms.max(1));
    spawn("dvtd-budget", move || budget_loop(sup, poll, sh))?;
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
