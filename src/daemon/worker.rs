//! The inference worker: one thread per backend context, fed by a bounded queue. It runs up to
//! `max_batch` queued frames per cascade call with thresholds from the budget controller, and
//! takes a new cascade (reload) between calls, so no frame is dropped by a swap.

use super::log::{log, Level};
use super::metrics::MAX_STAGES;
use super::{notify, Shared};
use crate::adaptive::{AdaptiveCascade, BackendInfo};
use crate::policy::ControllerState;
use crate::protocol::{Reply, Status};
use ndarray::Array4;
use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What goes back to a connection's writer.
#[derive(Debug)]
pub enum Outgoing {
    /// A frame reply.
    Frame(Reply),
    /// A control reply (one JSON line, newline added by the writer).
    Line(String),
}

/// One accepted frame.
#[derive(Debug)]
pub struct Job {
    /// Request id.
    pub id: u64,
    /// Client timestamp, echoed.
    pub timestamp_ns: u64,
    /// Normalised `[C, H, W]` image.
    pub image: Vec<f32>,
    /// Its `[C, H, W]`.
    pub shape: [usize; 3],
    /// When the frame was read.
    pub received: Instant,
    /// The connection's writer.
    pub reply: Sender<Outgoing>,
}

/// Messages to the worker besides frames.
pub enum WorkerMsg {
    /// Use this cascade from the next batch on; acknowledge on the sender.
    Swap(Box<AdaptiveCascade>, Sender<()>),
}

/// The cascade and what serving it remembers, shared by the worker and the connection readers:
/// when the worker is idle and nothing is queued, a reader runs its frame to completion itself
/// (no hand-off to the worker and back: each thread wake-up costs tens of microseconds).
pub struct Serving {
    cascade: AdaptiveCascade,
    seen_gen: u64,
    thresholds: Vec<f32>,
    frames: u64,
}

/// [`Serving`] behind its lock.
pub type SharedServing = Arc<Mutex<Serving>>;

impl Serving {
    /// Wraps a loaded cascade.
    pub fn new(cascade: AdaptiveCascade) -> Self {
        Self {
            cascade,
            seen_gen: u64::MAX,
            thresholds: Vec::new(),
            frames: 0,
        }
    }

    /// Whether any thread may run the cascade: the CPU backend's can; a TensorRT engine stays
    /// on the worker thread that created its CUDA context.
    pub fn runs_on_any_thread(&self) -> bool {
        self.cascade.backend().kind == "cpu"
    }

    /// Runs `batch` (applying a budget changed since the last batch) and returns each frame's
    /// reply with where it goes.
    pub fn serve(&mut self, batch: Vec<Job>, shared: &Shared) -> Vec<(Sender<Outgoing>, Reply)> {
        self.frames += batch.len() as u64;
        // Checked after the wait, so a budget set while idle applies to this batch.
        let gen = shared.budget_generation();
        if gen != self.seen_gen {
            self.seen_gen = gen;
            self.cascade.set_budget(shared.effective_budget());
        }
        let (thresholds, replies) = run_batch(&mut self.cascade, batch, shared);
        if let Some(t) = thresholds {
            self.thresholds = t;
        }
        replies
    }

    fn swap(&mut self, cascade: AdaptiveCascade) {
        self.cascade = cascade;
        self.seen_gen = u64::MAX; // re-apply the budget to the new controller
    }
}

fn deliver(replies: Vec<(Sender<Outgoing>, Reply)>) {
    for (to, r) in replies {
        let _ = to.send(Outgoing::Frame(r));
    }
}

fn lock(s: &SharedServing) -> std::sync::MutexGuard<'_, Serving> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the worker is doing, for `status`, STATUS= and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStatus {
    /// Model name.
    pub model: String,
    /// Bundle folder.
    pub bundle: String,
    /// Backend name (with the reason when `auto` fell back).
    pub backend: String,
    /// Backend kind, precision, stage files and calibration in use.
    pub backend_info: Option<BackendInfo>,
    /// Stages.
    pub stages: usize,
    /// Controller state (budget, mix of points, drift).
    pub controller: Option<ControllerState>,
    /// Thresholds of the last batch.
    pub thresholds: Vec<f32>,
    /// Frames per second over the last status period.
    pub fps: f64,
}

/// How the worker forms batches, as Triton's dynamic batcher does: frames from every
/// connection go into one queue; a batch takes up to `max_batch` of them, waiting at most
/// `max_queue_delay` after the first for more to arrive (0: only those already queued).
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most frames per cascade call.
    pub max_batch: usize,
    /// Longest wait for a batch to fill.
    pub max_queue_delay: Duration,
}

/// Collects a batch after `first`: whatever is queued, then (with a delay) what arrives
/// before the first frame has waited `max_queue_delay`.
fn collect(first: Job, jobs: &Receiver<Job>, b: Batching) -> Vec<Job> {
    let deadline = first.received + b.max_queue_delay;
    let mut batch = vec![first];
    while batch.len() < b.max_batch {
        if let Ok(j) = jobs.try_recv() {
            batch.push(j);
            continue;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match jobs.recv_timeout(deadline - now) {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
    batch
}

/// Runs the worker until every job sender is gone and the queue is empty.
pub fn run(
    serving: SharedServing,
    jobs: Receiver<Job>,
    msgs: Receiver<WorkerMsg>,
    shared: Arc<Shared>,
    batching: Batching,
) {
    let watchdog = notify::watchdog_period();
    let tick = watchdog.map_or(Duration::from_millis(100), |w| {
        w.min(Duration::from_millis(100))
    });
    let mut last_watchdog = Instant::now();
    let mut last_status = Instant::now();
    let mut frames_at_status = 0u64;
    publish_current(&serving, &shared);
    loop {
        while let Ok(WorkerMsg::Swap(new, ack)) = msgs.try_recv() {
            let mut s = lock(&serving);
            s.swap(*new);
            publish(&shared, &s.cascade, &s.thresholds, 0.0);
            drop(s);
            let _ = ack.send(());
        }
        match jobs.recv_timeout(tick) {
            Ok(first) => {
                let batch = collect(first, &jobs, batching);
                shared
                    .metrics
                    .queue_depth
                    .fetch_sub(batch.len() as i64, Relaxed);
                let replies = lock(&serving).serve(batch, &shared);
                deliver(replies);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        shared.beat();
        if let Some(w) = watchdog {
            if last_watchdog.elapsed() >= w {
                notify::watchdog();
                last_watchdog = Instant::now();
            }
        }
        let dt = last_status.elapsed();
        if dt >= Duration::from_millis(250) {
            let s = lock(&serving);
            let fps = (s.frames - frames_at_status) as f64 / dt.as_secs_f64();
            publish(&shared, &s.cascade, &s.thresholds, fps);
            frames_at_status = s.frames;
            last_status = Instant::now();
        }
    }
    let s = lock(&serving);
    publish(&shared, &s.cascade, &s.thresholds, 0.0);
    log(Level::Debug, "worker: queue drained, exiting");
}

/// Puts what the worker serves into the shared status (backend, model, thresholds).
pub fn publish_current(serving: &SharedServing, shared: &Shared) {
    let s = lock(serving);
    publish(shared, &s.cascade, &s.thresholds, 0.0);
}

fn publish(shared: &Shared, cascade: &AdaptiveCascade, thresholds: &[f32], fps: f64) {
    let info = cascade.backend();
    let st = WorkerStatus {
        model: cascade.name().to_string(),
        bundle: cascade.dir().display().to_string(),
        backend: format!(
            "{}{}{}",
            info.name,
            info.cpu_fallback
                .as_ref()
                .map_or(String::new(), |why| format!(
                    " (ONNX Runtime not loaded: {why})"
                )),
            info.note
                .as_ref()
                .map_or(String::new(), |why| format!(" ({why})"))
        ),
        backend_info: Some(info.clone()),
        stages: cascade.num_stages(),
        controller: Some(cascade.state()),
        thresholds: thresholds.to_vec(),
        fps,
    };
    *shared.status.lock().unwrap_or_else(|e| e.into_inner()) = st;
}

/// A batch's replies, each with the connection it goes to.
type Replies = Vec<(Sender<Outgoing>, Reply)>;

/// Runs one batch and answers every job; returns the thresholds it ran with (None when no
/// frame reached the cascade) and the replies.
fn run_batch(
    cascade: &mut AdaptiveCascade,
    batch: Vec<Job>,
    shared: &Shared,
) -> (Option<Vec<f32>>, Replies) {
    let mut out: Replies = Vec::with_capacity(batch.len());
    let input = cascade.input();
    let shape = [input.channels, input.height, input.width];
    let (good, stale): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| j.shape == shape);
    for j in stale {
        // Preprocessed for a bundle that a reload replaced with another input geometry.
        shared.metrics.frames_error.fetch_add(1, Relaxed);
        out.push((
            j.reply,
            Reply::error(
                j.id,
                j.timestamp_ns,
                Status::BadRequest,
                format!(
                    "frame was prepared for input {:?}, the reloaded bundle takes {shape:?}: \
                     resend",
                    j.shape
                ),
            ),
        ));
    }
    if good.is_empty() {
        return (None, out);
    }
    let n = good.len();
    let per = shape.iter().product::<usize>();
    let mut data = Vec::with_capacity(n * per);
    for j in &good {
        data.extend_from_slice(&j.image);
    }
    let tensor = Array4::from_shape_vec((n, shape[0], shape[1], shape[2]), data)
        .expect("every image has the input's shape")
        .into_dyn();
    let result = cascade.classify_batch(tensor, shared.power_watts());
    let m = &shared.metrics;
    match result {
        Ok(batch) => {
            let compute_us = batch.compute.as_micros().min(u128::from(u32::MAX)) as u32;
            let r = batch.result;
            for t in &r.timings {
                m.stage_latency[t.stage.min(MAX_STAGES - 1)]
                    .observe_us(t.elapsed.as_micros() as u64);
            }
            // `status` shows the controller as of the last answered frame (fps stays a 250 ms
            // average): updated before the replies, so a client that saw its answer sees it.
            {
                let mut st = shared.status.lock().unwrap_or_else(|e| e.into_inner());
                st.controller = Some(cascade.state());
                st.thresholds = batch.thresholds.clone();
            }
            for (j, d) in good.into_iter().zip(r.decisions) {
                let latency = j.received.elapsed().as_micros() as u64;
                m.e2e_latency.observe_us(latency);
                m.exits[d.exit_stage.min(MAX_STAGES - 1)].fetch_add(1, Relaxed);
                m.ngflops.fetch_add((d.gflops * 1e9) as u64, Relaxed);
                m.frames_ok.fetch_add(1, Relaxed);
                let reply = Reply {
                    request_id: j.id,
                    status: Status::Ok,
                    class: d.class as u32,
                    exit_stage: (d.exit_stage + 1) as u16,
                    confidence: d.confidence,
                    gflops: d.gflops as f32,
                    latency_us: latency.min(u64::from(u32::MAX)) as u32,
                    compute_us,
                    timestamp_ns: j.timestamp_ns,
                    text: cascade.label(d.class).to_string(),
                };
                out.push((j.reply, reply));
            }
            (Some(batch.thresholds), out)
        }
        Err(e) => {
            m.error(super::metrics::ErrorKind::Inference);
            log(
                Level::Error,
                format!("inference failed for {n} frame(s): {e}"),
            );
            for j in good {
                m.frames_error.fetch_add(1, Relaxed);
                let r = Reply::error(
                    j.id,
                    j.timestamp_ns,
                    Status::Internal,
                    format!("inference failed: {e}"),
                );
                out.push((j.reply, r));
            }
            (None, out)
        }
    }
}
