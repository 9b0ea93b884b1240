//! `dvtd`: the edge daemon. Argument parsing and wiring only; the work is in
//! `dvt_edge::daemon`.

use anyhow::Result;
use clap::Parser;
use dvt_edge::daemon::{self, ConfigSource};
use std::path::PathBuf;

/// Serves a DVT cascade on a Unix socket (binary frames + JSON control lines), meeting a
/// compute or power budget. Every setting of dvtd.toml can be overridden with --set.
#[derive(Parser)]
#[command(name = "dvtd", version)]
struct Args {
    /// Configuration file (configs/dvtd.toml documents every setting).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Bundle directory.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Socket path.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Backend: auto (TensorRT when this GPU's engines are built, else the CPU, saying why),
    /// cpu, tensorrt.
    #[arg(long, value_enum)]
    backend: Option<dvt_edge::BackendKind>,
    /// CUDA device (TensorRT).
    #[arg(long)]
    device: Option<usize>,
    /// TensorRT engine precision.
    #[arg(long, value_enum)]
    precision: Option<dvt_edge::Precision>,
    /// TensorRT batch profile min,opt,max the engines were built with.
    #[arg(long, value_delimiter = ',')]
    batch_profile: Option<Vec<usize>>,
    /// CPU threads (0: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// CPU runtime: auto (ONNX Runtime if libonnxruntime loads, else tract), tract, ort
    /// (`--engine`, its old name, still works).
    #[arg(long = "cpu-runtime", alias = "engine", value_enum)]
    cpu_runtime: Option<dvt_edge::backend::cpu::CpuRuntime>,
    /// Queue length before "busy" replies.
    #[arg(long)]
    queue: Option<usize>,
    /// Most frames per cascade call.
    #[arg(long)]
    max_batch: Option<usize>,
    /// Longest wait (microseconds) for a batch to fill after its first frame.
    #[arg(long)]
    max_queue_delay_us: Option<u64>,
    /// Microseconds a reader polls for the next message before it sleeps (0: never).
    #[arg(long)]
    idle_spin_us: Option<u64>,
    /// Loopback HTTP address for /metrics and /healthz.
    #[arg(long)]
    http: Option<String>,
    /// Budget source: none, static, file, jetson, nvml.
    #[arg(long)]
    budget_source: Option<String>,
    /// Budget of the static source (e.g. 0.005gflops, 30ips, 4ms, 10w); implies
    /// --budget-source static unless another source is given.
    #[arg(long)]
    budget: Option<String>,
    /// Budget while the source is missing or stale.
    #[arg(long)]
    safe_budget: Option<String>,
    /// Any setting: KEY=VALUE with dotted keys (e.g. budget.poll_ms=50); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn main() -> Result<()> {
    let a = Args::parse();
    let mut o = Vec::new();
    let path = |p: &PathBuf| quoted(&p.to_string_lossy());
    if let Some(v) = &a.bundle {
        o.push(format!("bundle={}", path(v)));
    }
    if let Some(v) = &a.socket {
        o.push(format!("socket={}", path(v)));
    }
    if let Some(v) = a.backend {
        o.push(format!("backend={}", quoted(&v.to_string())));
    }
    if let Some(v) = a.device {
        o.push(format!("device={v}"));
    }
    if let Some(v) = a.precision {
        o.push(format!("precision={}", quoted(&v.to_string())));
    }
    if let Some(v) = &a.batch_profile {
        o.push(format!("batch_profile={v:?}"));
    }
    if let Some(v) = a.threads {
        o.push(format!("threads={v}"));
    }
    if let Some(v) = a.cpu_runtime {
        o.push(format!("cpu_runtime={}", quoted(&v.to_string())));
    }
    if let Some(v) = a.queue {
        o.push(format!("queue={v}"));
    }
    if let Some(v) = a.max_batch {
        o.push(format!("max_batch={v}"));
    }
    if let Some(v) = a.max_queue_delay_us {
        o.push(format!("max_queue_delay_us={v}"));
    }
    if let Some(v) = a.idle_spin_us {
        o.push(format!("idle_spin_us={v}"));
    }
    if let Some(v) = &a.http {
        o.push(format!("http={}", quoted(v)));
    }
    if let Some(v) = &a.budget {
        o.push(format!("budget.value={}", quoted(v)));
        if a.budget_source.is_none() {
            o.push("budget.source=\"static\"".into());
        }
    }
    if let Some(v) = &a.budget_source {
        o.push(format!("budget.source={}", quoted(v)));
    }
    if let Some(v) = &a.safe_budget {
        o.push(format!("budget.safe={}", quoted(v)));
    }
    o.extend(a.set);
    daemon::run(ConfigSource {
        file: a.config,
        overrides: o,
    })?;
    Ok(())
}
