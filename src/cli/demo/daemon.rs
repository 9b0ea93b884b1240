//! The demo's daemon: `dvtd` started as a child (or, without the binary, a thread of this
//! process), waited for, and streamed to.

use super::{DemoArgs, DemoError};
use crate::backend::BackendOptions;
use crate::client::{Client, Image};
use crate::daemon::ConfigSource;
use crate::data::Dataset;
use crate::protocol::{Reply, Status};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon for the demo: a child process or a thread of this one.
pub(super) enum Running {
    Child(Child),
    Thread(std::thread::JoinHandle<()>),
}

impl Running {
    /// The daemon's process id, when it runs as its own process.
    pub(super) fn pid(&self) -> Option<u32> {
        match self {
            Running::Child(c) => Some(c.id()),
            Running::Thread(_) => None,
        }
    }
}

pub(super) fn resolve_bundle(p: &Path) -> PathBuf {
    if p.exists() || p != Path::new("engines/fmnist-dvt") {
        return p.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt")
}

pub(super) fn start(
    args: &DemoArgs,
    bundle: &Path,
    socket: &Path,
    extra: &[String],
) -> Result<Running, DemoError> {
    let bin = args.dvtd.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .map(|e| e.with_file_name("dvtd"))
            .filter(|p| p.exists())
    });
    let queue = (args.window * 4).max(1024);
    if let Some(bin) = bin {
        let child = Command::new(&bin)
            .arg("--bundle")
            .arg(bundle)
            .arg("--socket")
            .arg(socket)
            .args(daemon_backend_args(args))
            .args(extra)
            .args(["--queue", &queue.to_string()])
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| DemoError::Setup(format!("cannot start {}: {e}", bin.display())))?;
        eprintln!("demo: started {} (pid {})", bin.display(), child.id());
        return Ok(Running::Child(child));
    }
    eprintln!(
        "demo: no dvtd binary next to dvt (cargo build --bin dvtd); running the daemon in-process"
    );
    let q = |s: &Path| toml::Value::String(s.to_string_lossy().into_owned()).to_string();
    let source = ConfigSource {
        file: None,
        overrides: vec![
            format!("bundle={}", q(bundle)),
            format!("socket={}", q(socket)),
            format!("threads={}", threads(args)),
            format!("cpu_runtime=\"{}\"", args.backend.cpu_runtime),
            format!("backend=\"{}\"", args.backend.backend),
            format!("device={}", args.backend.device),
            format!("precision=\"{}\"", args.backend.precision),
            format!("batch_profile={:?}", args.backend.batch_profile),
            format!("queue={queue}"),
        ]
        .into_iter()
        .chain(extra.chunks(2).filter_map(|kv| match kv {
            // `--max-batch 32` -> `max_batch=32` for the in-process daemon.
            [k, v] => Some(format!(
                "{}={v}",
                k.trim_start_matches("--").replace('-', "_")
            )),
            _ => None,
        }))
        .collect(),
    };
    Ok(Running::Thread(std::thread::spawn(move || {
        if let Err(e) = crate::daemon::run(source) {
            eprintln!("demo: dvtd: {e}");
        }
    })))
}

/// The demo's CPU threads: 1 unless `--threads` says otherwise (a robot's share of the cores).
pub(super) fn threads(args: &DemoArgs) -> usize {
    args.backend.threads.unwrap_or(1)
}

/// `dvtd` flags for the demo's backend settings.
pub(super) fn daemon_backend_args(args: &DemoArgs) -> Vec<String> {
    let b = &args.backend;
    let profile: Vec<String> = b.batch_profile.iter().map(|v| v.to_string()).collect();
    vec![
        "--threads".into(),
        threads(args).to_string(),
        "--cpu-runtime".into(),
        b.cpu_runtime.to_string(),
        "--backend".into(),
        b.backend.to_string(),
        "--device".into(),
        b.device.to_string(),
        "--precision".into(),
        b.precision.to_string(),
        "--batch-profile".into(),
        profile.join(","),
    ]
}

/// The daemon's backend options, for the in-process reference.
pub(super) fn backend_options(args: &DemoArgs) -> Result<BackendOptions, DemoError> {
    let mut o = args
        .backend
        .options()
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    o.threads = threads(args);
    o.spin = false; // as the daemon: idle threads sleep
    Ok(o)
}

pub(super) fn wait_ready(socket: &Path, running: &mut Running) -> Result<(), DemoError> {
    let t0 = Instant::now();
    loop {
        if let Ok(mut c) = Client::connect(socket) {
            if c.command(&serde_json::json!({"cmd": "status"})).is_ok() {
                return Ok(());
            }
        }
        if let Running::Child(c) = running {
            if let Ok(Some(st)) = c.try_wait() {
                return Err(DemoError::Setup(format!("dvtd exited with {st}")));
            }
        }
        if t0.elapsed() > Duration::from_secs(120) {
            return Err(DemoError::Setup("dvtd did not come up within 120 s".into()));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// What [`stream`] got back.
pub(super) struct Streamed {
    /// (image index, reply) per frame answered `ok`.
    pub(super) replies: Vec<(usize, Reply)>,
    /// Client-side latency of each `ok` frame (send to reply), ms.
    pub(super) latency_ms: Vec<f64>,
    /// Wall time.
    pub(super) secs: f64,
    /// Busy replies (the frame was resent).
    pub(super) busy: usize,
}

/// Streams `n` images (from `start`, wrapping) with `window` in flight; resends busy frames.
pub(super) fn stream(
    socket: &Path,
    data: &Dataset,
    first: usize,
    n: usize,
    window: usize,
) -> Result<Streamed, DemoError> {
    let c = Client::connect(socket)?;
    let (mut tx, mut rx) = c.split();
    let (h, w, ch) = (data.height as u16, data.width as u16, data.channels as u16);
    let idx = |k: usize| (first + k) % data.len();
    let t0 = Instant::now();
    let mut pending = std::collections::HashMap::new();
    let mut todo: std::collections::VecDeque<usize> = (0..n).collect();
    let mut done = Vec::with_capacity(n);
    let mut latency_ms = Vec::with_capacity(n);
    let mut busy = 0;
    let now_ns = || t0.elapsed().as_nanos() as u64;
    while done.len() < n {
        while pending.len() < window.max(1) {
            let Some(k) = todo.pop_front() else { break };
            let i = idx(k);
            // The timestamp comes back in the reply: the client-side latency of each frame.
            let id = tx.send(&Image::u8_hwc(h, w, ch, data.pixels(i..i + 1)), now_ns())?;
            pending.insert(id, k);
        }
        tx.flush()?;
        let r = rx.recv()?;
        let k = pending
            .remove(&r.request_id)
            .ok_or_else(|| DemoError::Setup(format!("unknown reply id {}", r.request_id)))?;
        let i = idx(k);
        match r.status {
            Status::Ok => {
                latency_ms.push(now_ns().saturating_sub(r.timestamp_ns) as f64 / 1e6);
                done.push((i, r));
            }
            Status::Busy => {
                busy += 1;
                todo.push_back(k); // the same image again
            }
            s => return Err(DemoError::Setup(format!("frame {i}: {s:?}: {}", r.text))),
        }
    }
    Ok(Streamed {
        replies: done,
        latency_ms,
        secs: t0.elapsed().as_secs_f64(),
        busy,
    })
}

/// Drains the daemon (whatever happened before) and waits for it to exit.
pub(super) fn stop(socket: &Path, running: Running) {
    if let Ok(mut c) = Client::connect(socket) {
        let _ = c.command(&serde_json::json!({"cmd": "drain"}));
    }
    match running {
        Running::Child(mut c) => {
            let _ = c.wait();
        }
        Running::Thread(t) => {
            let _ = t.join();
        }
    }
}
