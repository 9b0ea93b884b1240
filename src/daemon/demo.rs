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
use crate::protocol::{Reply, Status};
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
    /// With --bench: pipelining clients of the dynamic-batching measurement.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// With --bench: the daemon's max_batch for the dynamic-batching measurement (also the
    /// in-process reference's batch).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// With --bench: frames in flight per client of the dynamic-batching measurement (clients x
    /// this = frames the daemon can batch; a camera pipelines a few).
    #[arg(long, default_value_t = 4)]
    pub client_window: usize,
    /// With --bench: max_queue_delay_us settings measured (a daemon started for each).
    #[arg(long, value_delimiter = ',', default_values_t = vec![0u64, 500, 2000])]
    pub queue_delays: Vec<u64>,
    /// With --bench: the one-at-a-time client polls for its reply this long before sleeping
    /// ([`Client::set_reply_spin`]; 0 = sleep at once, as every other client does).
    #[arg(long, default_value_t = 0)]
    pub reply_spin_us: u64,
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
    /// A bare Unix-socket ping-pong of the same request and reply sizes between two processes,
    /// interleaved with the round trips above, ms: the transport's floor.
    pub floor_ms: LatencyStats,
    /// `added_p50_us` / the floor's p50: how many bare round trips the daemon path adds.
    pub added_over_floor: f64,
    /// The paired overhead's p50 / the floor's p50: the same ratio measured per frame (round
    /// trip minus that frame's own cascade time), which the cascade's run-to-run noise does not
    /// swamp as it does a difference of two medians.
    pub paired_over_floor: f64,
    /// The far end's busy time per request in the second ping-pong (the cascade's median), us.
    pub busy_floor_us: u64,
    /// That ping-pong's round trip minus the busy time, ms: the transport around a server
    /// that computes as long as the cascade (information, not the goal).
    pub busy_floor_ms: LatencyStats,
    /// The one-at-a-time client's reply poll (`--reply-spin-us`), us.
    pub reply_spin_us: u64,
    /// The client thread's CPU time per socket round trip (`CLOCK_THREAD_CPUTIME_ID`), us: what the
    /// poll costs; without it, the syscalls and the reply's parsing.
    pub client_cpu_per_frame_us: Option<f64>,
    /// The paired overhead's p50 / the busy ping-pong's p50: the daemon path against a bare
    /// transport whose far end also computes for the cascade's time, so that both clients
    /// wait (and their CPUs idle) as long.
    pub paired_over_busy_floor: f64,
    /// Pipelined frames/s through the socket (window frames in flight).
    pub pipelined_fps: f64,
    /// Many clients, dynamic batching, against the in-process batched cascade.
    pub batching: Option<BatchingReport>,
    /// In-process frames/s at batch 1.
    pub in_process_fps: f64,
}

/// Many pipelining clients through one daemon at one `max_queue_delay_us`.
#[derive(Debug, Clone, Serialize)]
pub struct BatchingRow {
    /// The daemon's max_queue_delay_us.
    pub max_queue_delay_us: u64,
    /// Frames answered per second, all clients together.
    pub fps: f64,
    /// `fps` / the in-process batched cascade's frames/s measured just before.
    pub vs_in_process: f64,
    /// Client-side latency per frame (send to reply), ms.
    pub latency_ms: LatencyStats,
    /// Busy replies (resent).
    pub busy: usize,
}

/// The dynamic-batching measurement.
#[derive(Debug, Clone, Serialize)]
pub struct BatchingReport {
    /// Clients, each on its own connection.
    pub clients: usize,
    /// Frames in flight per client.
    pub window: usize,
    /// Frames per client.
    pub frames_per_client: usize,
    /// The daemon's max_batch and the reference's batch.
    pub batch: usize,
    /// In-process `AdaptiveCascade` on batches of `batch` frames, frames/s (the peer; mean of
    /// the measurements made before each row).
    pub in_process_fps: f64,
    /// One row per delay.
    pub rows: Vec<BatchingRow>,
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

fn start(
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
    /// Client-side latency of each `ok` frame (send to reply), ms.
    latency_ms: Vec<f64>,
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
    let mut running = start(args, &bundle_dir, &socket, &[])?;
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
            let mut b = bench(args, &bundle, &socket, &data)?;
            if !args.queue_delays.is_empty() && args.clients > 0 {
                b.batching = Some(batching_bench(args, &bundle, &data, &tmp)?);
            }
            Some(b)
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
                "  bare socket ping-pong (2 processes, {}-byte request, same reply size)  p50 {:.1} us",
                data.image_len() + crate::protocol::HEADER_LEN,
                b.floor_ms.p50 * 1e3
            );
            println!(
                "  added / floor                 {:.2}x (goal <= 2)",
                b.added_over_floor
            );
            println!(
                "  the same ping-pong, far end busy {} us per request: round trip - busy p50 {:.1} us",
                b.busy_floor_us,
                b.busy_floor_ms.p50 * 1e3
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
                "  paired / floor                {:.2}x (the same goal, per frame)",
                b.paired_over_floor
            );
            println!(
                "  paired / busy ping-pong       {:.2}x (both clients wait as long)",
                b.paired_over_busy_floor
            );
            if let Some(cpu) = b.client_cpu_per_frame_us {
                println!(
                    "  client CPU per round trip     {cpu:.1} us (reply poll {} us; idle cost 0: \
                     it polls only while a reply is awaited)",
                    b.reply_spin_us
                );
            }
            println!(
                "  pipelined through the socket  {:.0} frames/s ({} in flight)",
                b.pipelined_fps, args.window
            );
            if let Some(d) = &b.batching {
                println!();
                println!(
                    "dynamic batching: {} clients x {} frames, {} in flight each, max_batch {}; \
                     in-process batch-{} cascade {:.0} frames/s",
                    d.clients, d.frames_per_client, d.window, d.batch, d.batch, d.in_process_fps
                );
                println!(
                    "  max_queue_delay_us   frames/s   vs in-process   p50 ms   p99 ms   busy"
                );
                for r in &d.rows {
                    println!(
                        "  {:>18}   {:>8.0}   {:>12.2}x   {:>6.2}   {:>6.2}   {:>4}",
                        r.max_queue_delay_us,
                        r.fps,
                        r.vs_in_process,
                        r.latency_ms.p50,
                        r.latency_ms.p99,
                        r.busy
                    );
                }
            }
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
    // The floor: the same request and reply sizes between two processes, nothing else.
    let request_len = crate::protocol::HEADER_LEN + data.pixels(0..1).len();
    let reply_len = c
        .classify(&Image::u8_hwc(h, w, ch, data.pixels(0..1)))?
        .encode()
        .len();
    let exe = std::env::current_exe().map_err(|e| DemoError::Setup(e.to_string()))?;
    let mut floor = super::floor::PingPong::start(&exe, request_len, reply_len, 0)
        .map_err(|e| DemoError::Setup(format!("ping-pong floor: {e}")))?;
    let mut floor_ms = Vec::with_capacity(n);
    for _ in 0..50 {
        floor
            .round_trip_ms()
            .map_err(|e| DemoError::Setup(e.to_string()))?;
    }
    // The same ping-pong with the far end busy for the cascade's own median time: a server
    // that computes between read and reply lets its client's CPU idle longer, and the wake-up
    // then costs more. Not part of the goal; it shows where the rest of the added time goes.
    let busy_us = {
        let mut t = Vec::with_capacity(20);
        for i in 0..20.min(n) {
            let t0 = Instant::now();
            local_cascade
                .classify_u8_hwc(data.pixels(i..i + 1), 1)
                .map_err(|e| DemoError::Setup(e.to_string()))?;
            t.push(t0.elapsed().as_micros() as u64);
        }
        t.sort_unstable();
        t[t.len() / 2]
    };
    let mut busy_floor = super::floor::PingPong::start(&exe, request_len, reply_len, busy_us)
        .map_err(|e| DemoError::Setup(format!("ping-pong floor: {e}")))?;
    let mut busy_floor_ms = Vec::with_capacity(n);
    // Interleaved so that machine noise hits all three alike. The in-process time includes the
    // normalisation, which the daemon also does.
    let (mut local, mut rtt) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut paired = Vec::with_capacity(n);
    let mut handoff = Vec::with_capacity(n);
    c.set_reply_spin(Duration::from_micros(args.reply_spin_us));
    let mut client_cpu_ns = 0u64;
    for i in 0..n {
        let t0 = Instant::now();
        local_cascade
            .classify_u8_hwc(data.pixels(i..i + 1), 1)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        local.push(t0.elapsed().as_secs_f64() * 1e3);
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        let r = c.classify(&Image::u8_hwc(h, w, ch, data.pixels(i..i + 1)))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if let (Some(a), Some(b)) = (cpu0, thread_cpu_ns()) {
            client_cpu_ns += b.saturating_sub(a);
        }
        rtt.push(ms);
        paired.push(ms * 1e3 - f64::from(r.compute_us));
        handoff.push(f64::from(r.latency_us.saturating_sub(r.compute_us)));
        floor_ms.push(
            floor
                .round_trip_ms()
                .map_err(|e| DemoError::Setup(format!("ping-pong floor: {e}")))?,
        );
        // Minus the far end's busy time: what the transport itself took around it.
        busy_floor_ms.push(
            busy_floor
                .round_trip_ms()
                .map_err(|e| DemoError::Setup(format!("ping-pong floor: {e}")))?
                - busy_us as f64 / 1e3,
        );
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
    drop(floor);
    drop(busy_floor);
    let fl = LatencyStats::from_samples(&mut floor_ms);
    let secs = stream(socket, data, 0, (4 * n).min(data.len()), args.window)?.secs;
    let overhead_paired_us = LatencyStats::from_samples(&mut paired);
    let busy_floor_ms = LatencyStats::from_samples(&mut busy_floor_ms);
    Ok(BenchReport {
        frames: n,
        floor_ms: fl,
        busy_floor_us: busy_us,
        paired_over_busy_floor: overhead_paired_us.p50 / (busy_floor_ms.p50 * 1e3).max(1e-9),
        busy_floor_ms,
        added_over_floor: (s.p50 - l.p50) / fl.p50.max(1e-9),
        added_p50_us: (s.p50 - l.p50) * 1e3,
        added_mean_us: (s.mean - l.mean) * 1e3,
        in_process_ms: l,
        paired_over_floor: overhead_paired_us.p50 / (fl.p50 * 1e3).max(1e-9),
        overhead_paired_us,
        daemon_handoff_us: LatencyStats::from_samples(&mut handoff),
        socket_rtt_ms: s,
        reply_spin_us: args.reply_spin_us,
        client_cpu_per_frame_us: thread_cpu_ns().map(|_| client_cpu_ns as f64 / 1e3 / n as f64),
        pipelined_fps: (4 * n).min(data.len()) as f64 / secs,
        batching: None,
        in_process_fps: n as f64 / (local_total / 1e3),
    })
}

/// This thread's CPU time so far, ns (`CLOCK_THREAD_CPUTIME_ID`; `None` where it fails).
fn thread_cpu_ns() -> Option<u64> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `t` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    (rc == 0).then(|| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

/// `clients` connections pipelining `window` frames each through a daemon started with
/// `max_batch = batch` at each `max_queue_delay_us`, beside the in-process cascade on batches of
/// `batch` frames (the same backend settings), measured in one run.
fn batching_bench(
    args: &DemoArgs,
    bundle: &Bundle,
    data: &Dataset,
    tmp: &Path,
) -> Result<BatchingReport, DemoError> {
    let batch = args.batch.max(1);
    let per_client = (args.frames / args.clients.max(1)).max(batch) * 2;
    // The reference: the same type the worker runs, fed full batches with no socket at all.
    let options = AdaptiveOptions {
        backend: backend_options(args)?,
        max_batch: batch,
        ..AdaptiveOptions::default()
    };
    let mut local = AdaptiveCascade::load(bundle.dir(), &options)
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let total = per_client * args.clients.max(1);
    // Measured right before each delay's run, so that the machine's load (shared, noisy) hits
    // each ratio's two sides alike.
    let mut in_process = || -> Result<f64, DemoError> {
        let t0 = Instant::now();
        let mut done = 0;
        while done < total {
            let lo = done % data.len();
            let k = batch.min(data.len() - lo);
            local
                .classify_u8_hwc(data.pixels(lo..lo + k), k)
                .map_err(|e| DemoError::Setup(e.to_string()))?;
            done += k;
        }
        Ok(done as f64 / t0.elapsed().as_secs_f64())
    };
    let mut references = Vec::new();
    let mut rows = Vec::new();
    for &delay in &args.queue_delays {
        let in_process_fps = in_process()?;
        references.push(in_process_fps);
        let socket = tmp.join(format!("batching-{delay}.sock"));
        let extra = [
            "--max-batch".to_string(),
            batch.to_string(),
            "--max-queue-delay-us".to_string(),
            delay.to_string(),
        ];
        let mut running = start(args, bundle.dir(), &socket, &extra)?;
        let measured = (|| -> Result<BatchingRow, DemoError> {
            wait_ready(&socket, &mut running)?;
            // Warm the daemon's batch sizes first.
            stream(&socket, data, 0, 4 * batch, batch)?;
            let t0 = Instant::now();
            let results: Vec<Result<Streamed, DemoError>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..args.clients.max(1))
                    .map(|c| {
                        let socket = &socket;
                        s.spawn(move || {
                            stream(socket, data, c * per_client, per_client, args.client_window)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(DemoError::Setup("client panicked".into())))
                    })
                    .collect()
            });
            let secs = t0.elapsed().as_secs_f64();
            let mut latency = Vec::new();
            let (mut answered, mut busy) = (0, 0);
            for r in results {
                let r = r?;
                answered += r.replies.len();
                busy += r.busy;
                latency.extend(r.latency_ms);
            }
            let fps = answered as f64 / secs;
            Ok(BatchingRow {
                max_queue_delay_us: delay,
                fps,
                vs_in_process: fps / in_process_fps,
                latency_ms: LatencyStats::from_samples(&mut latency),
                busy,
            })
        })();
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
        rows.push(measured?);
    }
    let in_process_fps = references.iter().sum::<f64>() / references.len().max(1) as f64;
    Ok(BatchingReport {
        clients: args.clients.max(1),
        window: args.client_window,
        frames_per_client: per_client,
        batch,
        in_process_fps,
        rows,
    })
}

/// The default socket path (what `dvtd` binds without `--socket`).
pub fn default_socket() -> PathBuf {
    Config::default().socket_path()
}
