//! Timing one model (a stage or a static baseline) at every batch size, ours and ONNX
//! Runtime's alternately, and keeping the run going when the peer fails.

use super::peer::{self, OrtPeer};
use super::report::{BatchRow, ModelRow};
use super::stats::Stats;
use super::{stage, BenchError, BenchOptions};
use crate::backend::{AnyBackend, Backend, HostTensor};
use std::path::PathBuf;

/// Timed calls at `batch` given `iters` at batch 1.
fn iters_for(iters: usize, batch: usize) -> usize {
    if batch <= 1 {
        iters.max(1)
    } else {
        (iters / 8).max(3)
    }
}

/// One model to time: our loaded stage, its inputs per batch size, the peer's session id.
pub(super) struct Timed<'a> {
    /// 1-based stage number; `None` for a static baseline.
    pub(super) stage: Option<usize>,
    /// Row name (and the peer's model key).
    pub(super) name: String,
    /// GFLOPs per image.
    pub(super) gflops: f64,
    /// The ONNX file the peer loads.
    pub(super) onnx: PathBuf,
    /// Our loaded model.
    pub(super) loaded: &'a mut <AnyBackend as Backend>::Stage,
    /// Its inputs, one set per batch size of `opts.batches`.
    pub(super) inputs: Vec<Vec<(String, HostTensor)>>,
}

/// What timing every model shares: our backend, the peer while it lives, and what to report.
pub(super) struct Ctx<'a> {
    /// Ours.
    pub(super) backend: &'a AnyBackend,
    /// ONNX Runtime's, until it fails.
    pub(super) peer: Option<OrtPeer>,
    /// What the report says about the peer.
    pub(super) peer_note: String,
    /// The bench's options.
    pub(super) opts: &'a BenchOptions,
    /// This machine's GEMM peak, GFLOP/s (the roofline).
    pub(super) peak: f64,
    /// Warnings for the report.
    pub(super) warnings: Vec<String>,
    /// Series whose coefficient of variation exceeded 5% ("stage3 b32").
    pub(super) noisy: Vec<String>,
}

impl Ctx<'_> {
    /// Handles a peer error: a refusal (ORT cannot run this model) skips ORT for this model
    /// only; anything else means the child is gone, so the rest of the run is ours only.
    fn peer_failed(&mut self, what: &str, e: peer::PeerError) {
        if matches!(e, peer::PeerError::Refused(_)) {
            self.warnings
                .push(format!("ONNX Runtime could not run {what}: {e}"));
            return;
        }
        self.warnings.push(format!(
            "ONNX Runtime stopped at {what}: {e}; ours only from here"
        ));
        self.peer_note = format!("failed at {what}: {e}");
        self.peer = None;
    }

    /// Times one model at every batch size, ours and ORT alternately.
    pub(super) fn time_model(&mut self, m: Timed<'_>) -> Result<ModelRow, BenchError> {
        // Whether ORT times this model (a model it refuses is ours only).
        let mut with_peer = false;
        if let Some(p) = self.peer.as_mut() {
            match p.load(&m.name, &m.onnx) {
                Ok(()) => with_peer = true,
                Err(e) => {
                    let what = format!("loading {}", m.name);
                    self.peer_failed(&what, e);
                }
            }
        }
        let mut batches = Vec::new();
        for (&batch, inputs) in self.opts.batches.iter().zip(&m.inputs) {
            let iters = iters_for(self.opts.iters, batch);
            let warmup = if batch <= 1 { (iters / 10).max(2) } else { 2 };
            // Ours and ORT alternate in rounds of at least 5 calls (up to 40 rounds), so that
            // a change of load on the shared machine hits both sides alike.
            let rounds = (iters / 5).clamp(1, 40);
            let key = format!("{}/b{batch}", m.name);
            let values = stage::upload_all(self.backend, inputs)?;
            let ours_logits = stage::logits(self.backend, m.loaded, &values)?;
            let (mut ours, mut ort) = (Vec::new(), Vec::new());
            let mut ort_logits = None;
            for r in 0..rounds {
                let n = iters / rounds + usize::from(r < iters % rounds);
                let w = if r == 0 { warmup } else { 1 };
                ours.extend(stage::time_runs(self.backend, m.loaded, &values, w, n)?);
                if let Some(p) = self.peer.as_mut().filter(|_| with_peer) {
                    match p.time(&m.name, &key, inputs, w, n) {
                        Ok(t) => {
                            ort.extend(t.samples_ms);
                            ort_logits = Some(t.out0);
                        }
                        Err(e) => {
                            let what = format!("{} batch {batch}", m.name);
                            self.peer_failed(&what, e);
                            with_peer = false;
                            ort.clear();
                            ort_logits = None;
                        }
                    }
                }
            }
            let ours = Stats::from_samples(&ours);
            let ort = (!ort.is_empty()).then(|| Stats::from_samples(&ort));
            let flop_per_call = 2.0 * m.gflops * batch as f64;
            let gflops_per_s = |s: &Stats| flop_per_call / (s.median * 1e-3).max(1e-12);
            let logits_rel_diff = ort_logits.map(|o| stage::rel_diff(&ours_logits, &o));
            if let Some(d) = logits_rel_diff.filter(|d| d.is_nan() || *d > 1e-3) {
                self.warnings.push(format!(
                    "{} batch {batch}: logits differ from ONNX Runtime by {d:.2e} (relative)",
                    m.name
                ));
            }
            let noisy = ours.noisy() || ort.is_some_and(|s| s.noisy());
            if noisy {
                self.noisy.push(format!("{} b{batch}", m.name));
            }
            batches.push(BatchRow {
                batch,
                ours,
                ort,
                ratio: ort.map(|o| ours.median / o.median),
                ratio_min: ort.map(|o| ours.min / o.min),
                ours_images_per_s: ours.images_per_s(batch),
                ort_images_per_s: ort.map(|o| o.images_per_s(batch)),
                ours_gflops_per_s: gflops_per_s(&ours),
                ours_roofline_fraction: gflops_per_s(&ours) / self.peak,
                ort_roofline_fraction: ort.map(|o| gflops_per_s(&o) / self.peak),
                logits_rel_diff,
                noisy,
            });
        }
        let b1 = batches.iter().find(|b| b.batch == 1).or(batches.first());
        Ok(ModelRow {
            stage: m.stage,
            name: m.name,
            gflops: m.gflops,
            ours_ms: b1.map_or(f64::NAN, |b| b.ours.median),
            ort_ms: b1.and_then(|b| b.ort.map(|s| s.median)),
            ratio: b1.and_then(|b| b.ratio),
            batches,
        })
    }
}

/// The ONNX Runtime peer beside a CPU backend (`None` with why not), and the note the report
/// carries about it.
pub(super) fn start_peer(
    opts: &BenchOptions,
    on_cpu: bool,
    threads: usize,
    log: &mut dyn FnMut(&str),
) -> (Option<OrtPeer>, String) {
    match &opts.python {
        // The peer is ONNX Runtime's CPU provider: a like-for-like peer of the CPU backend only.
        _ if !on_cpu => (
            None,
            "not run: ours is on TensorRT (tools/gpu-check.sh compares it with trtexec)"
                .to_string(),
        ),
        None => (None, "not run (--no-ort)".to_string()),
        Some(py) => {
            log("starting the ONNX Runtime peer");
            match OrtPeer::start(py, threads) {
                Ok(p) => {
                    let note = format!(
                        "onnxruntime {} (Python, {}), CPU execution provider, {threads} intra-op \
                         threads, sequential; times include the Python call",
                        p.version,
                        py.display()
                    );
                    (Some(p), note)
                }
                Err(e) => (None, format!("unavailable: {e}")),
            }
        }
    }
}
