//! `dvt demo`: starts `dvtd` on the bundled cascade, streams the Fashion-MNIST test images
//! through its socket while stepping the budget down, and prints one row per budget step:
//! accuracy, cost, exits per stage, frames/s and latency. `--bench` also measures the socket
//! path against an in-process cascade call (`bench`) and many clients against the in-process
//! batched cascade (`batching`).

mod batching;
mod bench;
mod daemon;

pub use batching::{BatchingReport, BatchingRow};
pub use bench::BenchReport;

use crate::backend::BackendArgs;
use crate::bundle::Bundle;
use crate::client::{Client, ClientError};
use crate::daemon::config::Config;
use crate::data::{fmnist, Dataset, Split};
use crate::eval::LatencyStats;
use crate::policy::{Budget, Metric, OperatingTable};
use crate::protocol::Reply;
use daemon::{resolve_bundle, start, stream, threads, wait_ready};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

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
    /// With --bench: the daemon's readers poll for the next frame this long after each one
    /// before sleeping (dvtd's `--idle-spin-us`; 0 = as shipped).
    #[arg(long, default_value_t = 0)]
    pub daemon_spin_us: u64,
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
    let extra = if args.daemon_spin_us > 0 {
        vec![
            "--idle-spin-us".to_string(),
            args.daemon_spin_us.to_string(),
        ]
    } else {
        Vec::new()
    };
    let mut running = start(args, &bundle_dir, &socket, &extra)?;
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
                    let mut v = crate::protocol::control::budget_json(b);
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
            let mut b = bench::bench(args, &bundle, &socket, &data, running.pid())?;
            if !args.queue_delays.is_empty() && args.clients > 0 {
                b.batching = Some(batching::batching_bench(args, &bundle, &data, &tmp)?);
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
            bench::print(b, args, data.image_len());
        }
        Ok(())
    })();
    daemon::stop(&socket, running);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// The default socket path (what `dvtd` binds without `--socket`).
pub fn default_socket() -> PathBuf {
    Config::default().socket_path()
}
