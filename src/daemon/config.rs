//! `dvtd.toml`: the daemon's settings, every one of which can be overridden on the command
//! line (`--set section.key=value`, plus shorthand flags).

use crate::backend::cpu::CpuRuntime;
use crate::backend::select::{batch_profile, BackendKind, BackendOptions};
use crate::engine_build::Precision;
use crate::policy::{Budget, ControllerConfig, PowerModel};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file or an override is not valid.
    #[error("{0}")]
    Invalid(String),
}

/// Largest `idle_spin_us` accepted (10 ms: a third of a 30 Hz camera's frame interval).
pub const MAX_IDLE_SPIN_US: u64 = 10_000;

/// All daemon settings (defaults in [`Config::default`], documented in `configs/dvtd.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Socket path (default: `$RUNTIME_DIRECTORY/dvtd.sock` under systemd, else
    /// `$XDG_RUNTIME_DIR/dvtd.sock`, else `/tmp/dvtd-<uid>.sock`).
    pub socket: Option<PathBuf>,
    /// Permission bits of the socket file.
    pub socket_mode: u32,
    /// Backend: auto (TensorRT when this GPU's engines are built, else the CPU), cpu, tensorrt.
    pub backend: BackendKind,
    /// CUDA device (TensorRT).
    pub device: usize,
    /// TensorRT engine precision: fp16 or fp32 (the CPU always runs the FP32 ONNX).
    pub precision: Precision,
    /// TensorRT batch profile [min, opt, max] the engines were built with (`dvt build --batch`).
    pub batch_profile: Vec<usize>,
    /// CPU runtime: auto (ONNX Runtime if its library loads, else tract), tract, ort
    /// (`engine`, its old name, still works).
    #[serde(alias = "engine")]
    pub cpu_runtime: CpuRuntime,
    /// CPU backend threads (0: one per core).
    pub threads: usize,
    /// Frames waiting for the worker before new frames get a "busy" reply.
    pub queue: usize,
    /// Most frames the worker runs in one cascade call.
    pub max_batch: usize,
    /// Longest wait, microseconds, for a batch to fill after its first frame (0: run what is
    /// queued at once).
    pub max_queue_delay_us: u64,
    /// Most simultaneous connections (more are answered with an error and closed).
    pub max_connections: usize,
    /// Largest frame payload accepted, bytes.
    pub max_payload_bytes: u32,
    /// Payload buffer capacity that connections keep between frames, all together, bytes
    /// (buffers of at most 64 KiB are always kept; a larger one beyond this is freed after
    /// its frame).
    pub kept_payload_bytes: u64,
    /// Seconds a frame or control line may take to arrive in full once its first byte has;
    /// a later one is answered `bad_stream` and its connection closed (0: no limit).
    pub frame_timeout_s: f64,
    /// Seconds a connection may stay idle (no message arriving, no reply pending) before it
    /// is closed (0: no limit).
    pub idle_timeout_s: f64,
    /// Connection slots, out of `max_connections`, kept for control lines: once the others
    /// are taken, new connections may send control lines only, and are closed after
    /// `frame_timeout_s` idle (at most `max_connections - 1` are kept).
    pub control_connections: usize,
    /// Microseconds a connection's reader polls for the next message after each one before it
    /// sleeps (one reader at a time; 0: never poll). Cuts the wake-up of a sleeping CPU out of
    /// a fast client's round trip at the price of up to this much CPU per message.
    pub idle_spin_us: u64,
    /// Seconds a drain (SIGTERM) waits for in-flight frames before giving up.
    pub drain_timeout_s: f64,
    /// Loopback address for `/metrics` and `/healthz` over HTTP (empty: off).
    pub http: String,
    /// Where the budget comes from.
    pub budget: BudgetConfig,
    /// Controller gains and power model.
    pub controller: ControllerSettings,
}

/// Budget source settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// `none` (most accurate point until `set-budget`), `static`, `file`, `jetson`, `nvml`.
    pub source: String,
    /// The budget of the `static` source, e.g. `"0.005gflops"`, `"30ips"`, `"4ms"`, `"10w"`.
    pub value: String,
    /// The file of the `file` source (one budget like `value`, re-read when it changes).
    pub file: PathBuf,
    /// Budget used while the source is missing or stale (empty: the most accurate point).
    pub safe: String,
    /// Watt budget tracked with the power readings of the `jetson` and `nvml` sources.
    pub target_watts: f64,
    /// Jetson rail whose power is tracked (`total`: VDD_IN/POM_5V_IN, else VIN, else the sum).
    pub rail: String,
    /// Root of sysfs (a test directory in tests).
    pub sysfs_root: PathBuf,
    /// NVML device index.
    pub nvml_device: u32,
    /// Milliseconds between reads of the source.
    pub poll_ms: u64,
    /// A power reading unchanged for this long, or a budget file not rewritten for this long,
    /// counts as stale (0: never).
    pub stale_after_s: f64,
    /// A read of the source that has not returned after this many seconds (a blocked file,
    /// sensor or driver) counts as stale; reads then run on a thread of their own (0: read on
    /// the budget thread, unwatched).
    pub read_timeout_s: f64,
}

/// Controller settings (see [`crate::policy::ControllerConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerSettings {
    /// Watts with the cascade idle (prior of the power model).
    pub idle_watts: f64,
    /// Extra watts per GFLOP of expected cost per frame (prior).
    pub watts_per_gflop: f64,
    /// Longest memory of the drift estimate, frames.
    pub filter_frames: f64,
    /// Integral gain (0: off).
    pub ki: f64,
    /// Seed of the per-frame draws between two operating points.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bundle: PathBuf::from("engines/fmnist-dvt"),
            socket: None,
            socket_mode: 0o660,
            backend: BackendKind::Auto,
            device: 0,
            precision: Precision::Fp16,
            batch_profile: vec![1, 1, 32],
            cpu_runtime: CpuRuntime::Auto,
            threads: 0,
            queue: 64,
            max_batch: 8,
            max_queue_delay_us: 0,
            max_connections: 256,
            max_payload_bytes: 16 << 20,
            kept_payload_bytes: 64 << 20,
            frame_timeout_s: 10.0,
            idle_timeout_s: 0.0,
            control_connections: 4,
            idle_spin_us: 0,
            drain_timeout_s: 10.0,
            http: String::new(),
            budget: BudgetConfig::default(),
            controller: ControllerSettings::default(),
        }
    }
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            source: "none".into(),
            value: String::new(),
            file: PathBuf::from("/var/lib/dvtd/budget"),
            safe: String::new(),
            target_watts: 10.0,
            rail: "total".into(),
            sysfs_root: PathBuf::from("/sys"),
            nvml_device: 0,
            poll_ms: 100,
            stale_after_s: 0.0,
            read_timeout_s: 2.0,
        }
    }
}

impl Default for ControllerSettings {
    fn default() -> Self {
        let d = ControllerConfig::default();
        Self {
            idle_watts: d.power.idle_watts,
            watts_per_gflop: d.power.watts_per_gflop,
            filter_frames: d.filter_frames,
            ki: d.ki,
            seed: d.seed,
        }
    }
}

/// `Some(seconds)` for a positive setting, `None` for 0 (off).
pub fn seconds(s: f64) -> Option<std::time::Duration> {
    (s.is_finite() && s > 0.0).then(|| std::time::Duration::from_secs_f64(s))
}

impl BudgetConfig {
    /// How long a read of the source may take before it counts as stale (`None`: unwatched).
    pub fn read_timeout(&self) -> Option<std::time::Duration> {
        seconds(self.read_timeout_s)
    }
}

/// Parses an optional budget setting (`""` is none).
pub fn parse_budget(s: &str, what: &str) -> Result<Option<Budget>, ConfigError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e| ConfigError::Invalid(format!("{what} = {s:?}: {e}")))
}

impl Config {
    /// The configuration: `file` (if any) with the `overrides` (`key=value`, dotted keys,
    /// TOML values; bare words are strings) applied on top.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                    path: p.to_path_buf(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", p.display())))?
            }
            None => toml::Table::new(),
        };
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and parses the budgets once, so a bad file fails at start or reload.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.queue == 0 || self.max_batch == 0 || self.max_connections == 0 {
            return bad("queue, max_batch and max_connections must be at least 1".into());
        }
        if self.max_payload_bytes == 0 {
            return bad("max_payload_bytes must be at least 1".into());
        }
        let profile = batch_profile(&self.batch_profile).map_err(|_| {
            ConfigError::Invalid(format!(
                "batch_profile = {:?}: give [min, opt, max] with 1 <= min <= opt <= max",
                self.batch_profile
            ))
        })?;
        if self.backend != BackendKind::Cpu && self.max_batch > profile.max {
            return bad(format!(
                "max_batch = {} exceeds the TensorRT batch profile's max {} (batch_profile): \
                 lower max_batch, build engines with a larger profile, or set backend = \"cpu\"",
                self.max_batch, profile.max
            ));
        }
        for (name, v) in [
            ("frame_timeout_s", self.frame_timeout_s),
            ("idle_timeout_s", self.idle_timeout_s),
            ("drain_timeout_s", self.drain_timeout_s),
            ("budget.stale_after_s", self.budget.stale_after_s),
            ("budget.read_timeout_s", self.budget.read_timeout_s),
        ] {
            if !v.is_finite() || v < 0.0 {
                return bad(format!(
                    "{name} = {v}: seconds must be a finite number >= 0"
                ));
            }
        }
        if self.idle_spin_us > MAX_IDLE_SPIN_US {
            return bad(format!(
                "idle_spin_us = {}: at most {MAX_IDLE_SPIN_US} (a poll longer than a frame \
                 interval burns a core for nothing)",
                self.idle_spin_us
            ));
        }
        parse_budget(&self.budget.value, "budget.value")?;
        parse_budget(&self.budget.safe, "budget.safe")?;
        match self.budget.source.as_str() {
            "none" | "file" | "jetson" | "nvml" => {}
            "static" if parse_budget(&self.budget.value, "budget.value")?.is_none() => {
                return bad("budget.source = \"static\" needs budget.value".into())
            }
            "static" => {}
            other => {
                return bad(format!(
                    "budget.source = {other:?}: use none, static, file, jetson or nvml"
                ))
            }
        }
        Ok(())
    }

    /// The socket path to bind.
    pub fn socket_path(&self) -> PathBuf {
        if let Some(p) = &self.socket {
            return p.clone();
        }
        if let Some(d) = std::env::var_os("RUNTIME_DIRECTORY") {
            // systemd's RuntimeDirectory=dvtd: /run/dvtd
            return PathBuf::from(d).join("dvtd.sock");
        }
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
            return PathBuf::from(d).join("dvtd.sock");
        }
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
        PathBuf::from(format!("/tmp/dvtd-{uid}.sock"))
    }

    /// The backend settings (idle ONNX Runtime threads sleep: between frames a robot's daemon
    /// should not spin a core against its power budget).
    pub fn backend_options(&self) -> Result<BackendOptions, ConfigError> {
        Ok(BackendOptions {
            kind: self.backend,
            device: self.device,
            precision: self.precision,
            batch: batch_profile(&self.batch_profile)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            cpu_runtime: self.cpu_runtime,
            threads: self.threads,
            spin: false,
        })
    }

    /// The controller configuration.
    pub fn controller_config(&self) -> Result<ControllerConfig, ConfigError> {
        let c = &self.controller;
        Ok(ControllerConfig {
            filter_frames: c.filter_frames,
            ki: c.ki,
            power: PowerModel {
                idle_watts: c.idle_watts,
                watts_per_gflop: c.watts_per_gflop,
            },
            seed: c.seed,
            ..ControllerConfig::default()
        })
    }
}

/// Sets `a.b.c = value` in a TOML table.
fn apply_override(table: &mut toml::Table, o: &str) -> Result<(), ConfigError> {
    let (key, raw) = o.split_once('=').ok_or_else(|| {
        ConfigError::Invalid(format!(
            "override {o:?} is not KEY=VALUE (e.g. budget.poll_ms=50)"
        ))
    })?;
    // A TOML value if it parses as one (numbers, booleans, quoted strings, arrays), else the
    // bare text as a string (paths, budgets).
    let value = format!("v = {}", raw.trim())
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.trim().to_string()));
    let mut parts: Vec<&str> = key.trim().split('.').collect();
    if parts == ["engine"] || parts == ["cpu_runtime"] {
        // One setting under two names (`engine` is the old one): the override replaces either.
        table.remove("engine");
        parts = vec!["cpu_runtime"];
    }
    let mut t = table;
    for p in &parts[..parts.len() - 1] {
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| ConfigError::Invalid(format!("override {o:?}: {p} is not a table")))?;
    }
    t.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_every_setting() {
        let c = Config::load(
            None,
            &[
                "queue=3".into(),
                "budget.source=static".into(),
                "budget.value=0.01gflops".into(),
                "bundle=/x/y".into(),
                "controller.seed=9".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.queue, 3);
        assert_eq!(c.budget.value, "0.01gflops");
        assert_eq!(c.bundle, PathBuf::from("/x/y"));
        assert_eq!(c.controller.seed, 9);
        assert!(Config::load(None, &["nonsense=1".into()]).is_err());
        assert!(Config::load(None, &["budget.source=static".into()]).is_err());
        assert!(Config::load(None, &["budget.safe=12 parsecs".into()]).is_err());
    }

    #[test]
    fn budget_read_timeout_is_checked() {
        let c = Config::load(None, &["budget.read_timeout_s=0".into()]).unwrap();
        assert_eq!(c.budget.read_timeout(), None);
        assert_eq!(
            Config::default().budget.read_timeout(),
            Some(std::time::Duration::from_secs(2))
        );
        for bad in ["budget.read_timeout_s=-1", "budget.read_timeout_s=nan"] {
            assert!(Config::load(None, &[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_settings_are_checked() {
        let c = Config::load(
            None,
            &[
                "frame_timeout_s=2.5".into(),
                "idle_timeout_s=60".into(),
                "control_connections=2".into(),
                "kept_payload_bytes=1048576".into(),
            ],
        )
        .unwrap();
        assert_eq!((c.frame_timeout_s, c.idle_timeout_s), (2.5, 60.0));
        assert_eq!((c.control_connections, c.kept_payload_bytes), (2, 1 << 20));
        assert_eq!(Config::default().idle_spin_us, 0, "polling is opt-in");
        let c = Config::load(None, &["idle_spin_us=500".into()]).unwrap();
        assert_eq!(c.idle_spin_us, 500);
        let e = Config::load(None, &["idle_spin_us=10001".into()]).unwrap_err();
        assert!(e.to_string().contains("idle_spin_us"), "{e}");
        for bad in ["frame_timeout_s=-1", "idle_timeout_s=inf"] {
            assert!(Config::load(None, &[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn shipped_config_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/dvtd.toml");
        // Its header says every value in it is the default.
        assert_eq!(Config::load(Some(&p), &[]).unwrap(), Config::default());
    }
}
