//! Counters and latency histograms, lock-free on the hot path (atomics only), rendered as
//! Prometheus text exposition.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Most stages tracked per stage (more stages share the last slot).
pub const MAX_STAGES: usize = 8;
/// Histogram bucket upper bounds, microseconds.
pub const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A latency histogram (cumulative buckets are computed when rendering).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Adds one sample.
    pub fn observe_us(&self, us: u64) {
        let i = BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Samples so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Mean, microseconds (0 when empty).
    pub fn mean_us(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum_us.load(Relaxed) as f64 / n as f64
        }
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cum += self.buckets[i].load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cum}",
                *b as f64 / 1e6
            );
        }
        cum += self.buckets[BUCKETS_US.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braces} {}", self.count());
    }
}

/// Kinds of errors counted (label `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad magic, version or garbage.
    BadStream,
    /// Payload longer than the limit.
    TooLarge,
    /// Header fields that do not fit together (size, dtype, layout).
    BadHeader,
    /// Pixels that cannot be used (NaN, channels).
    BadPixels,
    /// Malformed control line.
    BadControl,
    /// The cascade failed.
    Inference,
    /// A client vanished mid-frame.
    Disconnect,
    /// Too many connections.
    Connections,
    /// Reload refused (bad config or bundle).
    Reload,
    /// Budget source missing or stale.
    BudgetSource,
}

const ERROR_KINDS: [(ErrorKind, &str); 10] = [
    (ErrorKind::BadStream, "bad_stream"),
    (ErrorKind::TooLarge, "too_large"),
    (ErrorKind::BadHeader, "bad_header"),
    (ErrorKind::BadPixels, "bad_pixels"),
    (ErrorKind::BadControl, "bad_control"),
    (ErrorKind::Inference, "inference"),
    (ErrorKind::Disconnect, "disconnect"),
    (ErrorKind::Connections, "connections"),
    (ErrorKind::Reload, "reload"),
    (ErrorKind::BudgetSource, "budget_source"),
];

/// All of the daemon's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Frames answered with a class.
    pub frames_ok: AtomicU64,
    /// Frames answered "busy".
    pub frames_busy: AtomicU64,
    /// Frames answered with an error.
    pub frames_error: AtomicU64,
    /// Exits per stage.
    pub exits: [AtomicU64; MAX_STAGES],
    /// GFLOPs spent, in nano-GFLOPs (integer so it can be an atomic).
    pub ngflops: AtomicU64,
    /// Per-stage call latency.
    pub stage_latency: [Histogram; MAX_STAGES],
    /// Frame read to reply queued.
    pub e2e_latency: Histogram,
    /// Frames waiting for the worker.
    pub queue_depth: AtomicI64,
    /// Open connections.
    pub connections: AtomicI64,
    /// Successful reloads.
    pub reloads: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS.len()],
}

impl Metrics {
    /// Counts one error.
    pub fn error(&self, kind: ErrorKind) {
        let i = ERROR_KINDS
            .iter()
            .position(|(k, _)| *k == kind)
            .expect("every kind is listed");
        self.errors[i].fetch_add(1, Relaxed);
    }

    /// Errors of `kind` so far.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        let i = ERROR_KINDS
            .iter()
            .position(|(k, _)| *k == kind)
            .expect("every kind is listed");
        self.errors[i].load(Relaxed)
    }

    /// Errors by kind name.
    pub fn errors_by_kind(&self) -> Vec<(&'static str, u64)> {
        ERROR_KINDS
            .iter()
            .zip(&self.errors)
            .map(|((_, n), c)| (*n, c.load(Relaxed)))
            .collect()
    }

    /// Prometheus text exposition. `gauges` are extra `(name, labels, value, help)` lines
    /// (budget, operating point, power) that live outside the counters.
    pub fn render(&self, stages: usize, gauges: &[(&str, String, f64, &str)]) -> String {
        let mut o = String::new();
        let stages = stages.clamp(1, MAX_STAGES);
        o.push_str("# HELP dvtd_frames_total Frames answered, by status.\n# TYPE dvtd_frames_total counter\n");
        for (status, c) in [
            ("ok", &self.frames_ok),
            ("busy", &self.frames_busy),
            ("error", &self.frames_error),
        ] {
            let _ = writeln!(
                o,
                "dvtd_frames_total{{status=\"{status}\"}} {}",
                c.load(Relaxed)
            );
        }
        o.push_str("# HELP dvtd_exits_total Frames answered by each stage.\n# TYPE dvtd_exits_total counter\n");
        for k in 0..stages {
            let _ = writeln!(
                o,
                "dvtd_exits_total{{stage=\"{}\"}} {}",
                k + 1,
                self.exits[k].load(Relaxed)
            );
        }
        o.push_str("# HELP dvtd_gflops_total GFLOPs spent on answered frames.\n# TYPE dvtd_gflops_total counter\n");
        let _ = writeln!(
            o,
            "dvtd_gflops_total {}",
            self.ngflops.load(Relaxed) as f64 / 1e9
        );
        o.push_str("# HELP dvtd_stage_latency_seconds Wall time of one stage call (a batch).\n# TYPE dvtd_stage_latency_seconds histogram\n");
        for k in 0..stages {
            self.stage_latency[k].render(
                &mut o,
                "dvtd_stage_latency_seconds",
                &format!("stage=\"{}\"", k + 1),
            );
        }
        o.push_str("# HELP dvtd_latency_seconds From a frame read to its reply queued (queue + inference).\n# TYPE dvtd_latency_seconds histogram\n");
        self.e2e_latency.render(&mut o, "dvtd_latency_seconds", "");
        o.push_str("# HELP dvtd_queue_depth Frames waiting for the worker.\n# TYPE dvtd_queue_depth gauge\n");
        let _ = writeln!(
            o,
            "dvtd_queue_depth {}",
            self.queue_depth.load(Relaxed).max(0)
        );
        o.push_str(
            "# HELP dvtd_connections Open client connections.\n# TYPE dvtd_connections gauge\n",
        );
        let _ = writeln!(
            o,
            "dvtd_connections {}",
            self.connections.load(Relaxed).max(0)
        );
        o.push_str(
            "# HELP dvtd_reloads_total Successful reloads.\n# TYPE dvtd_reloads_total counter\n",
        );
        let _ = writeln!(o, "dvtd_reloads_total {}", self.reloads.load(Relaxed));
        o.push_str("# HELP dvtd_errors_total Errors by kind.\n# TYPE dvtd_errors_total counter\n");
        for (kind, n) in self.errors_by_kind() {
            let _ = writeln!(o, "dvtd_errors_total{{kind=\"{kind}\"}} {n}");
        }
        for (name, labels, value, help) in gauges {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
            if labels.is_empty() {
                let _ = writeln!(o, "{name} {value}");
            } else {
                let _ = writeln!(o, "{name}{{{labels}}} {value}");
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.e2e_latency.observe_us(40);
        m.e2e_latency.observe_us(700);
        m.e2e_latency.observe_us(5_000_000);
        let text = m.render(3, &[]);
        assert!(
            text.contains("dvtd_latency_seconds_bucket{le=\"0.00005\"} 1"),
            "{text}"
        );
        assert!(text.contains("dvtd_latency_seconds_bucket{le=\"0.001\"} 2"));
        assert!(text.contains("dvtd_latency_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("dvtd_latency_seconds_count 3"));
    }
}
