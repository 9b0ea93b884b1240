//! The state the daemon's threads share: counters, the budget as sources and clients set it,
//! the worker's status, the connections; and what `status`, `stats`, `/metrics` and the systemd
//! STATUS line make of it.

use super::*;
use crate::bundle::InputSpec;
use crate::policy::Budget;
use config::BudgetConfig;
use metrics::Metrics;
use serde_json::json;
use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;
use worker::WorkerStatus;

/// The budget as the sources and clients set it.
#[derive(Debug, Clone, Default)]
pub(super) struct BudgetState {
    pub(super) source: String,
    pub(super) from_source: Option<Budget>,
    pub(super) overridden: Option<Budget>,
    pub(super) degraded: Option<String>,
}

impl BudgetState {
    pub(super) fn effective(&self) -> Option<Budget> {
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
    pub(super) started: Instant,
    pub(super) heartbeat_ms: AtomicU64,
    pub(super) budget: Mutex<BudgetState>,
    pub(super) budget_gen: AtomicU64,
    pub(super) power_bits: AtomicU64,
    pub(super) status: Mutex<WorkerStatus>,
    pub(super) input: RwLock<Arc<InputSpec>>,
    pub(super) conns: Mutex<HashMap<u64, UnixStream>>,
    pub(super) closed: (Mutex<()>, Condvar),
    pub(super) pending_budget_config: Mutex<Option<BudgetConfig>>,
    /// The cascade, for readers that run a frame themselves while the worker is idle.
    pub(super) serving: std::sync::OnceLock<worker::SharedServing>,
}

impl Shared {
    pub(super) fn new(input: InputSpec) -> Self {
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

    pub(super) fn lock_budget(&self) -> std::sync::MutexGuard<'_, BudgetState> {
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

    pub(super) fn set_override(&self, b: Option<Budget>) {
        self.lock_budget().overridden = b;
        self.budget_gen.fetch_add(1, Relaxed);
    }

    pub(super) fn set_from_source(
        &self,
        source: String,
        b: Option<Budget>,
        degraded: Option<String>,
    ) {
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

    pub(super) fn beat(&self) {
        self.heartbeat_ms
            .store(self.started.elapsed().as_millis() as u64, Relaxed);
    }

    pub(super) fn input(&self) -> Arc<InputSpec> {
        self.input.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn register(&self, id: u64, s: UnixStream) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, s);
    }

    pub(super) fn unregister(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    pub(super) fn connection_closed(&self) {
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

    pub(super) fn worker_status(&self) -> WorkerStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn status_json(&self) -> serde_json::Value {
        let b = self.lock_budget().clone();
        let w = self.worker_status();
        let input = self.input();
        json!({
            "ok": true,
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": crate::protocol::VERSION,
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

    pub(super) fn stats_json(&self) -> serde_json::Value {
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

    pub(super) fn metrics_text(&self) -> String {
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

    pub(super) fn status_line(&self) -> String {
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
