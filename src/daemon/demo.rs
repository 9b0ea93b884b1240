//! `dvt demo`: starts `dvtd` on the bundled cascade, streams the Fashion-MNIST test images
//! through its socket while stepping the budget down, and prints one row per budget step:
//! accuracy, cost, exits per stage, frames/s and latency. `--bench` also measures the socket
//! path against an in-process cascade call.

use super::config::Config;
use super::ConfigSource;
use crate::adaptive::{AdaptiveCascade, AdaptiveOptions};
use crate::backend::{BackendArgs, BackendOptions};
use crate::bundle::Bundle;
use crate::client::{Client, ClientError, Image};
use crate::daemon::protocol::{Reply, Status};
use crate::data::{fmnist, Dataset, Split};
use crate::eval::LatencyStats;
use crate::policy::{Budget, Metric, OperatingTable};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Arguments of `dvt demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Bundle directory (default: the bundled Fashion-MNIST cascade).
    #[arg(long, default_value = "engines/fmnist-dvt")]
    pub bundle: PathBuf,
    /// Folder with the Fashion-MNIST IDX files.
    #[arg(long, default_value = fmnist::DEFAULT_DIR)]
    pub data: PathBuf,
    /// Frames streamed per budget step.
    #[arg(long, default_value_t = 1000)]
    pub frames: usize,
    /// Budget steps (from no budget down to the cheapest operating point).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Explicit budgets instead (e.g. 0.03gflops,0.01gflops,2ms).
    #[arg(long, value_delimiter = ',')]
    pub budgets: Option<Vec<String>>,
    /// Frames in flight on the connection.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// The dvtd binary (default: next to this `dvt`; else the daemon runs inside this process).
    #[arg(long)]
    pub dvtd: Option<PathBuf>,
    /// The daemon's backend (and the in-process reference's); `--threads` defaults to 1 here.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Also measure frames/s and the round-trip latency the socket adds over an in-process
    /// cascade call.
    #[arg(long)]
    pub bench: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `dvt demo` failures.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Setup failed (bundle, data, daemon start).
    #[error("{0}")]
    Setup(String),
    /// Talking to the daemon failed.
    #[error("daemon: {0}")]
    Client(#[from] ClientError),
}

/// One budget step.
#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    /// Budget (`none` = most accurate point).
    pub budget: String,
    /// Frames answered.
    pub frames: usize,
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Mean GFLOPs per frame.
    pub mean_gflops: f64,
    /// Fraction of frames answered by each stage.
    pub exits: Vec<f64>,
    /// Frames per second through the socket.
    pub fps: f64,
    /// Daemon-side latency (queue + inference), ms.
    pub latency_ms: LatencyStats,
    /// Busy replies (resent).
    pub busy: usize,
}

/// `--bench` numbers.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Frames timed one at a time.
    pub frames: usize,
    /// In-process `Cascade::classify`, batch 1, ms.
    pub in_process_ms: LatencyStats,
    /// Socket round trip, one frame at a time, ms.
    pub socket_rtt_ms: LatencyStats,
    /// Median round trip minus median in-process call, microseconds.
    pub added_p50_us: f64,
    /// Mean round trip minus mean in-process call, microseconds.
    pub added_mean_us: f64,
    /// Per frame, round trip minus the daemon's own cascade time for that frame (paired, so
    /// insensitive to how long inference took): socket, framing, preprocessing and queue
    /// hand-off, microseconds.
    pub overhead_paired_us: LatencyStats,
    /// Per frame, inside the daemon: frame read to reply queued minus the cascade time
    /// (preprocessing, queue and worker hand-off), microseconds.
    pub daemon_handoff_us: LatencyStats,
    /// Pipelined frames/s through the socket (window frames in flight).
    pub pipelined_fps: f64,
    /// In-process frames/s at batch 1.
    pub in_process_fps: f64,
}

/// A daemon for the demo: a child process or a thread of this one.
enum Running {
    Child(Child),
    Thread(std::thread::JoinHandle<()>),
}

fn resolve_bundle(p: &Path) -> PathBuf {
    if p.exists() || p != Path::new("engines/fmnist-dvt") {
        return p.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt")
}

fn start(args: &DemoArgs, bundle: &Path, socket: &Path) -> Result<Running, DemoError> {
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
            format!("engine=\"{}\"", args.backend.engine),
            format!("backend=\"{}\"", args.backend.backend),
            format!("device={}", args.backend.device),
            format!("precision=\"{}\"", args.backend.precision),
            format!("batch_profile={:?}", args.backend.batch_profile),
            format!("queue={queue}"),
        ],
    };
    Ok(Running::Thread(std::thread::spawn(move || {
        if let Err(e) = super::run(source) {
            eprintln!("demo: dvtd: {e}");
        }
    })))
}

/// The demo's CPU threads: 1 unless `--threads` says otherwise (a robot's share of the cores).
fn threads(args: &DemoArgs) -> usize {
    args.backend.threads.unwrap_or(1)
}

/// `dvtd` flags for the demo's backend settings.
fn daemon_backend_args(args: &DemoArgs) -> Vec<String> {
    let b = &args.backend;
    let profile: Vec<String> = b.batch_profile.iter().map(|v| v.to_string()).collect();
    vec![
        "--threads".into(),
        threads(args).to_string(),
        "--engine".into(),
        b.engine.to_string(),
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
fn backend_options(args: &DemoArgs) -> Result<BackendOptions, DemoError> {
    let mut o = args
        .backend
        .options()
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    o.threads = threads(args);
    o.spin = false; // as the daemon: idle threads sleep
    Ok(o)
}

fn wait_ready(socket: &Path, running: &mut Running) -> Result<(), DemoError> {
    let t0 = Instant::now();
    loop {
        if let Ok(mut c) = Client::connect(socket) {
            if c.command(&json!({"cmd": "status"})).is_ok() {
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
struct Streamed {
    /// (image index, reply) per frame answered `ok`.
    replies: Vec<(usize, Reply)>,
    /// Wall time.
    secs: f64,
    /// Busy replies (the frame was resent).
    busy: usize,
}

/// Streams `n` images (from `start`, wrapping) with `window` in flight; resends busy frames.
fn stream(
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
    let mut busy = 0;
    while done.len() < n {
        while pending.len() < window.max(1) {
            let Some(k) = todo.pop_front() else { break };
            let i = idx(k);
            let id = tx.send(&Image::u8_hwc(h, w, ch, data.pixels(i..i + 1)), 0)?;
            pending.insert(id, k);
        }
        tx.flush()?;
        let r = rx.recv()?;
        let k = pending
            .remove(&r.request_id)
            .ok_or_else(|| DemoError::Setup(format!("unknown reply id {}", r.request_id)))?;
        let i = idx(k);
        match r.status {
            Status::Ok => done.push((i, r)),
            Status::Busy => {
                busy += 1;
                todo.push_back(k); // the same image again
            }
            s => return Err(DemoError::Setup(format!("frame {i}: {s:?}: {}", r.text))),
        }
    }
    Ok(Streamed {
        replies: done,
        secs: t0.elapsed().as_secs_f64(),
        busy,
    })
}

fn row(
    budget: String,
    data: &Dataset,
    stages: usize,
    replies: &[(usize, Reply)],
    secs: f64,
    busy: usize,
) -> StepRow {
    let n = replies.len().max(1);
    let correct = replies
        .iter()
        .filter(|(i, r)| r.class == data.labels[*i])
        .count();
    let mut exits = vec![0.0; stages];
    for (_, r) in replies {
        if let Some(e) = exits.get_mut(usize::from(r.exit_stage).saturating_sub(1)) {
            *e += 1.0 / n as f64;
        }
    }
    let mut lat: Vec<f64> = replies
        .iter()
        .map(|(_, r)| f64::from(r.latency_us) / 1e3)
        .collect();
    StepRow {
        budget,
        frames: replies.len(),
        accuracy: correct as f64 / n as f64,
        mean_gflops: replies
            .iter()
            .map(|(_, r)| f64::from(r.gflops))
            .sum::<f64>()
            / n as f64,
        exits,
        fps: replies.len() as f64 / secs.max(1e-9),
        latency_ms: LatencyStats::from_samples(&mut lat),
        busy,
    }
}

fn budgets(args: &DemoArgs, table: &OperatingTable) -> Result<Vec<Option<Budget>>, DemoError> {
    if let Some(list) = &args.budgets {
        return list
            .iter()
            .map(|s| {
                if s == "none" {
                    Ok(None)
                } else {
                    s.parse()
                        .map(Some)
                        .map_err(|e| DemoError::Setup(format!("{e}")))
                }
            })
            .collect();
    }
    let chain = table.chain(Metric::Gflops);
    let (lo, hi) = (chain[0].1.max(1e-9), chain[chain.len() - 1].1);
    let steps = args.steps.max(2);
    let mut v = vec![None];
    for k in 1..steps {
        let f = k as f64 / (steps - 1) as f64;
        v.push(Some(Budget::Gflops(hi * (lo / hi).powf(f))));
    }
    Ok(v)
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    let bundle_dir = resolve_bundle(&args.bundle);
    let bundle = Bundle::load(&bundle_dir)
        .map_err(|e| DemoError::Setup(format!("bundle {}: {e}", bundle_dir.display())))?;
    let m = &bundle.manifest;
    let table = OperatingTable::from_manifest(m).map_err(|e| DemoError::Setup(e.to_string()))?;
    let data = Dataset::load(&args.data, Split::Test).map_err(|e| {
        DemoError::Setup(format!(
            "Fashion-MNIST in {}: {e} (apt install dataset-fashion-mnist, or --data DIR)",
            args.data.display()
        ))
    })?;
    let i = &m.model.input;
    if (data.height, data.width, data.channels) != (i.height, i.width, i.channels) {
        return Err(DemoError::Setup(
            "the data does not fit the bundle's input".into(),
        ));
    }
    let tmp = std::env::temp_dir().join(format!("dvt-demo-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| DemoError::Setup(e.to_string()))?;
    let socket = tmp.join("dvtd.sock");
    let mut running = start(args, &bundle_dir, &socket)?;
    let result = (|| {
        wait_ready(&socket, &mut running)?;
        let steps = budgets(args, &table)?;
        let stages = m.stages.len();
        if !args.json {
            println!("dvtd on {} ({} stages, CPU backend, {} thread(s)); {} test images per step, {} in flight",
                m.model.name, stages, threads(args), args.frames, args.window);
            let ex: Vec<String> = (1..=stages).map(|k| format!("exit{k:<3}")).collect();
            println!(
                "{:<18} {:>8} {:>9} {:>10}  {}  {:>7} {:>8} {:>8}",
                "budget",
                "frames",
                "accuracy",
                "GFLOPs",
                ex.join(" "),
                "fps",
                "p50 ms",
                "p99 ms"
            );
        }
        let mut control = Client::connect(&socket)?;
        let mut rows = Vec::new();
        for (k, b) in steps.iter().enumerate() {
            let cmd = match b {
                Some(b) => {
                    let mut v = super::control::budget_json(b);
                    v["cmd"] = json!("set-budget");
                    v
                }
                None => json!({"cmd": "set-budget", "kind": "auto"}),
            };
            let r = control.command(&cmd)?;
            if r["ok"] != json!(true) {
                return Err(DemoError::Setup(format!("set-budget refused: {r}")));
            }
            let got = stream(&socket, &data, k * args.frames, args.frames, args.window)?;
            let label = b.map_or("none (best)".to_string(), |b| match b {
                Budget::Gflops(v) => format!("{v:.5} gflops"),
                b => b.to_string(),
            });
            let r = row(label, &data, stages, &got.replies, got.secs, got.busy);
            if !args.json {
                let ex: Vec<String> = r
                    .exits
                    .iter()
                    .map(|e| format!("{:>5.1}%", 100.0 * e))
                    .collect();
                println!(
                    "{:<18} {:>8} {:>8.2}% {:>10.5}  {}  {:>7.0} {:>8.3} {:>8.3}",
                    r.budget,
                    r.frames,
                    100.0 * r.accuracy,
                    r.mean_gflops,
                    ex.join(" "),
                    r.fps,
                    r.latency_ms.p50,
                    r.latency_ms.p99
                );
                let _ = std::io::stdout().flush();
            }
            rows.push(r);
        }
        let bench = if args.bench {
            control.command(&json!({"cmd": "set-budget", "kind": "auto"}))?;
            Some(bench(args, &bundle, &socket, &data)?)
        } else {
            None
        };
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"steps": rows, "bench": bench}))
                    .unwrap_or_default()
            );
        } else if let Some(b) = &bench {
            println!();
            println!(
                "socket vs in-process, {} frames one at a time (batch 1, most accurate point):",
                b.frames
            );
            println!(
                "  in-process Cascade::classify  p50 {:.1} us  mean {:.1} us  ({:.0} frames/s)",
                b.in_process_ms.p50 * 1e3,
                b.in_process_ms.mean * 1e3,
                b.in_process_fps
            );
            println!(
                "  socket round trip             p50 {:.1} us  mean {:.1} us",
                b.socket_rtt_ms.p50 * 1e3,
                b.socket_rtt_ms.mean * 1e3
            );
            println!(
                "  added by the socket path      p50 {:+.1} us  mean {:+.1} us",
                b.added_p50_us, b.added_mean_us
            );
            println!(
                "  paired per frame: round trip - daemon cascade time  p50 {:.1} us  mean {:.1} us",
                b.overhead_paired_us.p50, b.overhead_paired_us.mean
            );
            println!(
                "    of which inside the daemon (preprocess + queue hand-off)  p50 {:.1} us",
                b.daemon_handoff_us.p50
            );
            println!(
                "  pipelined through the socket  {:.0} frames/s ({} in flight)",
                b.pipelined_fps, args.window
            );
        }
        Ok(())
    })();
    // Stop the daemon (drain) whatever happened.
    if let Ok(mut c) = Client::connect(&socket) {
        let _ = c.command(&json!({"cmd": "drain"}));
    }
    match running {
        Running::Child(mut c) => {
            let _ = c.wait();
        }
        Running::Thread(t) => {
            let _ = t.join();
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn bench(
    args: &DemoArgs,
    bundle: &Bundle,
    socket: &Path,
    data: &Dataset,
) -> Result<BenchReport, DemoError> {
    let n = args.frames.min(data.len()).max(10);
    // The same type, backend and settings as the daemon's worker (idle threads sleep, no
    // budget: the most accurate point), so only the socket differs.
    let options = AdaptiveOptions {
        backend: backend_options(args)?,
        ..AdaptiveOptions::default()
    };
    let mut local_cascade = AdaptiveCascade::load(bundle.dir(), &options)
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    // Warm both paths on the same images first.
    let mut c = Client::connect(socket)?;
    let (h, w, ch) = (data.height as u16, data.width as u16, data.channels as u16);
    for i in 0..50.min(n) {
        local_cascade
            .classify_u8_hwc(data.pixels(i..i + 1), 1)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        c.classify(&Image::u8_hwc(h, w, ch, data.pixels(i..i + 1)))?;
    }
    // Interleaved so that machine noise hits both alike. The in-process time includes the
    // normalisation, which the daemon also does.
    let (mut local, mut rtt) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut paired = Vec::with_capacity(n);
    let mut handoff = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        local_cascade
            .classify_u8_hwc(data.pixels(i..i + 1), 1)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        local.push(t0.elapsed().as_secs_f64() * 1e3);
        let t0 = Instant::now();
        let r = c.classify(&Image::u8_hwc(h, w, ch, data.pixels(i..i + 1)))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        rtt.push(ms);
        paired.push(ms * 1e3 - f64::from(r.compute_us));
        handoff.push(f64::from(r.latency_us.saturating_sub(r.compute_us)));
        if r.status != Status::Ok {
            return Err(DemoError::Setup(format!(
                "bench frame {i}: {:?} {}",
                r.status, r.text
            )));
        }
    }
    let local_total: f64 = local.iter().sum();
    let (l, s) = (
        LatencyStats::from_samples(&mut local),
        LatencyStats::from_samples(&mut rtt),
    );
    let secs = stream(socket, data, 0, (4 * n).min(data.len()), args.window)?.secs;
    Ok(BenchReport {
        frames: n,
        added_p50_us: (s.p50 - l.p50) * 1e3,
        added_mean_us: (s.mean - l.mean) * 1e3,
        in_process_ms: l,
        overhead_paired_us: LatencyStats::from_samples(&mut paired),
        daemon_handoff_us: LatencyStats::from_samples(&mut handoff),
        socket_rtt_ms: s,
        pipelined_fps: (4 * n).min(data.len()) as f64 / secs,
        in_process_fps: n as f64 / (local_total / 1e3),
    })
}

/// The default socket path (what `dvtd` binds without `--socket`).
pub fn default_socket() -> PathBuf {
    Config::default().socket_path()
}
