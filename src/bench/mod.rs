//! `dvt bench`: side-by-side performance of the CPU backend, measured in one run and reported
//! as ratios (the machines are shared and noisy, so absolute numbers drift between runs).
//!
//! - per stage and per static baseline, batch 1 (robot latency) and batch 32 (throughput):
//!   our backend against ONNX Runtime's CPU execution provider ([`peer`]) on the same ONNX
//!   file, the same inputs and the same thread count, timed alternately;
//! - the roofline: this machine's f32 GEMM peak ([`gemm`]) and each stage's fraction of it;
//! - the cascade at its operating points against the static models, image by image, and the
//!   executor's overhead ([`cascade`]);
//! - tables and JSON ([`report`]) and a latency-vs-accuracy SVG ([`plot`]).

pub mod cascade;
pub mod cli;
pub mod gemm;
pub mod peer;
pub mod plot;
pub mod report;
pub mod stage;
pub mod stats;

use crate::backend::{select, AnyBackend, Backend, BackendError, BackendOptions, HostTensor};
use crate::bundle::Bundle;
use crate::cascade::{Cascade, CascadeError};
use crate::data::preprocess::{normalize_u8_hwc, PreprocessError};
use crate::data::{Dataset, Split};
use cascade::{matching_point, measure_interleaved, spread, Runner};
use peer::OrtPeer;
use report::{
    BatchRow, BenchReport, CascadeVsStatic, Machine, ModelRow, PeerInfo, PointRow, StaticRow,
};
use stats::Stats;
use std::path::{Path, PathBuf};

/// Why the bench stopped. A missing or failing ONNX Runtime peer is not an error: the report
/// says so and carries our numbers alone.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Our backend failed on a stage.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The cascade failed.
    #[error(transparent)]
    Cascade(#[from] CascadeError),
    /// The images do not fit the bundle.
    #[error(transparent)]
    Input(#[from] PreprocessError),
    /// The GEMM peak could not be measured.
    #[error("GEMM peak: {0}")]
    Gemm(String),
    /// The bundle has no stages.
    #[error("the bundle has no stages")]
    NoStages,
    /// The plot could not be written.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Threads for our backend and for ONNX Runtime.
    pub threads: usize,
    /// Our backend (CPU engine, or TensorRT; the ONNX Runtime peer runs only beside the CPU).
    pub backend: BackendOptions,
    /// Timed calls per model at batch 1 (larger batches get fewer, at least 3).
    pub iters: usize,
    /// Batch sizes of the per-stage table.
    pub batches: Vec<usize>,
    /// Images classified one by one for the cascade-vs-static comparison.
    pub images: usize,
    /// Operating points measured for the plot (spread over the cost range), besides the one
    /// matched against the largest static model.
    pub points: usize,
    /// Folder with the Fashion-MNIST IDX files (synthetic images when absent).
    pub data_dir: PathBuf,
    /// Python interpreter for the ONNX Runtime peer; `None` skips the peer.
    pub python: Option<PathBuf>,
    /// Where to write the latency-vs-accuracy SVG, if anywhere.
    pub plot: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backend: BackendOptions::default(),
            iters: 200,
            batches: vec![1, 32],
            images: 300,
            points: 8,
            data_dir: PathBuf::from(crate::data::fmnist::DEFAULT_DIR),
            python: Some(peer::default_python()),
            plot: None,
        }
    }
}

/// Timed calls at `batch` given `iters` at batch 1.
fn iters_for(iters: usize, batch: usize) -> usize {
    if batch <= 1 {
        iters.max(1)
    } else {
        (iters / 8).max(3)
    }
}

/// The CPU model name from /proc/cpuinfo (Linux), else "unknown CPU".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Test images: the first `n` Fashion-MNIST test images when `dir` has them (with labels),
/// else a deterministic synthetic pattern of the bundle's input size.
fn bench_images(bundle: &Bundle, dir: &Path, n: usize) -> (Vec<u8>, Option<Vec<u32>>, String) {
    let input = &bundle.manifest.model.input;
    let per = input.height * input.width * input.channels;
    if let Ok(mut data) = Dataset::load(dir, Split::Test) {
        if (data.height, data.width, data.channels) == (input.height, input.width, input.channels)
            && data.len() >= n
        {
            data.truncate(n);
            return (
                data.pixels(0..n).to_vec(),
                Some(data.labels[..n].to_vec()),
                format!("first {n} Fashion-MNIST test images from {}", dir.display()),
            );
        }
    }
    let pixels = (0..n * per)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    (
        pixels,
        None,
        format!("{n} synthetic images (no dataset in {})", dir.display()),
    )
}

/// One model to time: our loaded stage, its inputs per batch size, the peer's session id.
struct Timed<'a> {
    stage: Option<usize>,
    name: String,
    gflops: f64,
    onnx: PathBuf,
    loaded: &'a mut <AnyBackend as Backend>::Stage,
    inputs: Vec<Vec<(String, HostTensor)>>,
}

struct Ctx<'a> {
    backend: &'a AnyBackend,
    peer: Option<OrtPeer>,
    peer_note: String,
    opts: &'a BenchOptions,
    peak: f64,
    warnings: Vec<String>,
    /// Series whose coefficient of variation exceeded 5% ("stage3 b32").
    noisy: Vec<String>,
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
    fn time_model(&mut self, m: Timed<'_>) -> Result<ModelRow, BenchError> {
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

/// Runs the whole bench on `bundle`. `log` receives one line per phase (progress).
pub fn run(
    bundle: &Bundle,
    opts: &BenchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<BenchReport, BenchError> {
    let manifest = &bundle.manifest;
    let n_stages = manifest.stages.len();
    if n_stages == 0 {
        return Err(BenchError::NoStages);
    }
    let threads = opts.threads.max(1);
    let selected = select::open(
        &BackendOptions {
            threads,
            ..opts.backend.clone()
        },
        bundle,
    )?;
    let backend = selected.backend.clone();
    let on_cpu = backend.as_cpu().is_some();
    let max_batch = opts.batches.iter().copied().max().unwrap_or(1).max(1);
    let (pixels, labels, images_source) =
        bench_images(bundle, &opts.data_dir, opts.images.max(max_batch));
    let input = &manifest.model.input;
    let per = input.height * input.width * input.channels;

    log("measuring the GEMM peak");
    let gemm = gemm::measure(threads, 5).map_err(|e| BenchError::Gemm(format!("{e:#}")))?;

    let (peer, peer_note) = match &opts.python {
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
    };
    let mut ctx = Ctx {
        backend: &backend,
        peer,
        peer_note,
        opts,
        peak: gemm.peak_gflops,
        warnings: Vec::new(),
        noisy: Vec::new(),
    };
    if ctx.peer.is_none() && opts.python.is_some() && on_cpu {
        ctx.warnings.push(format!(
            "ONNX Runtime peer {}: ours only (install tools/requirements.txt into .venv or set \
             DVT_PYTHON)",
            ctx.peer_note
        ));
    }
    if let Some(why) = &selected.note {
        ctx.warnings.push(format!("ours: {why}"));
    }
    if let Some(why) = backend.as_cpu().and_then(|c| c.fallback()) {
        ctx.warnings.push(format!(
            "ours runs on tract: ONNX Runtime not loaded ({why})"
        ));
    }
    if !on_cpu {
        ctx.warnings
            .push("roofline fractions are against this host CPU's GEMM peak, not the GPU's".into());
    }
    if cfg!(debug_assertions) {
        ctx.warnings.push(
            "debug build: tract is optimised (profile.dev.package.\"*\"), our own code \
             (executor, softmax) is not; use --release for final numbers"
                .into(),
        );
    }

    // Inputs per batch size: the images and every stage's upstream tensors from our backend.
    let mut stages = (0..n_stages)
        .map(|k| backend.load_stage(bundle, k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut image_batches = Vec::new();
    let mut per_stage: Vec<Vec<Vec<(String, HostTensor)>>> = vec![Vec::new(); n_stages];
    for &b in &opts.batches {
        let imgs = normalize_u8_hwc(&pixels[..b * per], b, input)?;
        let inputs = stage::cascade_inputs(&backend, &mut stages, &manifest.stages, &imgs)?;
        for (k, i) in inputs.into_iter().enumerate() {
            per_stage[k].push(i);
        }
        image_batches.push(imgs);
    }
    let mut stage_rows = Vec::new();
    for (k, (loaded, inputs)) in stages.iter_mut().zip(per_stage).enumerate() {
        let spec = &manifest.stages[k];
        log(&format!("timing {}", spec.name));
        stage_rows.push(ctx.time_model(Timed {
            stage: Some(k + 1),
            name: spec.name.clone(),
            gflops: spec.gflops,
            onnx: bundle.stage_path(k),
            loaded,
            inputs,
        })?);
    }
    let mut baseline_rows = Vec::new();
    let mut statics = Vec::new();
    for b in &manifest.baselines {
        let Some(one) = stage::baseline_bundle(bundle, b) else {
            continue;
        };
        log(&format!("timing {}", b.name));
        let mut loaded = match backend.load_stage(&one, 0) {
            Ok(l) => l,
            // `dvt build` builds the cascade's stages, not the static baselines.
            Err(e) if !on_cpu => {
                ctx.warnings.push(format!("{} skipped: {e}", b.name));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let inputs = image_batches
            .iter()
            .map(|imgs| vec![("image".to_string(), imgs.clone())])
            .collect();
        baseline_rows.push(ctx.time_model(Timed {
            stage: None,
            name: b.name.clone(),
            gflops: b.gflops,
            onnx: one.stage_path(0),
            loaded: &mut loaded,
            inputs,
        })?);
        statics.push((b.clone(), one));
    }
    let peer_info = PeerInfo {
        available: ctx.peer.is_some(),
        version: ctx.peer.as_ref().map(|p| p.version.clone()),
        note: ctx.peer_note.clone(),
    };
    drop(ctx.peer.take());
    let mut warnings = std::mem::take(&mut ctx.warnings);
    if !ctx.noisy.is_empty() {
        warnings.push(format!(
            "coefficient of variation > 5% (the machine was busy; medians and ratios measured \
             side by side are still comparable, absolute times less so): {}",
            ctx.noisy.join(", ")
        ));
    }

    // Cascade vs static, image by image at batch 1.
    let n_img = opts.images;
    let singles = (0..n_img)
        .map(|i| normalize_u8_hwc(&pixels[i * per..(i + 1) * per], 1, input))
        .collect::<Result<Vec<_>, _>>()?;
    let labels = labels.as_deref().map(|l| &l[..n_img]);
    let points = &manifest.operating_points;
    let largest = manifest
        .baselines
        .iter()
        .position(|b| Some(&b.grid) == manifest.stages.last().map(|s| &s.grid))
        .or_else(|| {
            (0..manifest.baselines.len()).max_by(|&a, &b| {
                manifest.baselines[a]
                    .gflops
                    .total_cmp(&manifest.baselines[b].gflops)
            })
        });
    let matched = largest.and_then(|b| {
        let target = manifest.baselines[b].accuracy;
        let costs: Vec<(f64, Option<f64>)> = points
            .iter()
            .map(|p| (p.expected_gflops, p.accuracy))
            .collect();
        matching_point(&costs, target).map(|(p, ok)| (b, p, ok))
    });
    let mut point_rows = Vec::new();
    let mut static_rows = Vec::new();
    let mut versus = None;
    if n_img > 0 {
        let mut main = Cascade::load(backend.clone(), bundle)?;
        let mut static_cascades = statics
            .iter()
            .map(|(b, one)| Ok((b.clone(), Cascade::load(backend.clone(), one)?)))
            .collect::<Result<Vec<_>, CascadeError>>()?;
        log("timing the cascade against the static models");
        let warmup = (n_img / 10).clamp(2, 20);
        // The matched point and every static model, interleaved image by image.
        let mut runners: Vec<Runner<'_, AnyBackend>> = Vec::new();
        if let Some((_, p, _)) = matched {
            runners.push(Runner {
                cascade: &mut main,
                thresholds: points[p].thresholds.clone(),
            });
        }
        for (_, c) in static_cascades.iter_mut() {
            runners.push(Runner {
                cascade: c,
                thresholds: Vec::new(),
            });
        }
        let mut measured = measure_interleaved(&mut runners, &singles, labels, warmup)?;
        drop(runners);
        let matched_measure = matched.map(|_| measured.remove(0));
        for ((b, _), m) in static_cascades.iter().zip(measured) {
            static_rows.push(StaticRow {
                name: b.name.clone(),
                manifest_accuracy: b.accuracy,
                gflops: b.gflops,
                measured: m,
            });
        }
        let costs: Vec<f64> = points.iter().map(|p| p.expected_gflops).collect();
        for i in spread(&costs, opts.points, matched.map(|m| m.1)) {
            let p = &points[i];
            let m = match (matched, &matched_measure) {
                (Some((_, mp, _)), Some(m)) if mp == i => m.clone(),
                _ => {
                    log(&format!("timing operating point {}", p.name));
                    let mut r = [Runner {
                        cascade: &mut main,
                        thresholds: p.thresholds.clone(),
                    }];
                    measure_interleaved(&mut r, &singles, labels, warmup)?.remove(0)
                }
            };
            point_rows.push(PointRow {
                name: p.name.clone(),
                source: p.source.clone(),
                thresholds: p.thresholds.clone(),
                manifest_accuracy: p.accuracy,
                expected_gflops: p.expected_gflops,
                measured: m,
            });
        }
        if let (Some((b, p, ok)), Some(m)) = (matched, &matched_measure) {
            let base = &manifest.baselines[b];
            if let Some(s) = static_rows.iter().find(|s| s.name == base.name) {
                if !ok {
                    warnings.push(format!(
                        "no operating point reaches {}'s accuracy ({:.2}%): compared with the \
                         most accurate point, {}",
                        base.name,
                        100.0 * base.accuracy,
                        points[p].name
                    ));
                }
                if m.overhead_ratio > 1.03 {
                    warnings.push(format!(
                        "executor overhead {:.3} exceeds the 1.03 goal",
                        m.overhead_ratio
                    ));
                }
                versus = Some(CascadeVsStatic {
                    point: points[p].name.clone(),
                    static_model: base.name.clone(),
                    accuracy_matched: ok,
                    point_accuracy: points[p].accuracy,
                    static_accuracy: base.accuracy,
                    cascade_ms: m.mean_ms,
                    static_ms: s.measured.mean_ms,
                    wall_ratio: m.mean_ms / s.measured.mean_ms,
                    gflops_ratio: m.mean_gflops / s.measured.mean_gflops.max(1e-12),
                    overhead_ratio: m.overhead_ratio,
                });
            }
        }
    }

    let backend_name = backend.name();
    let plot = match &opts.plot {
        Some(path) if !point_rows.is_empty() || !static_rows.is_empty() => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            let acc = |a: Option<f64>, m: Option<f64>| a.or(m).unwrap_or(f64::NAN);
            let data = plot::LatencyPlot {
                title: format!(
                    "{}: latency vs accuracy, batch 1, {} ({})",
                    manifest.model.name,
                    backend_name,
                    cpu_model()
                ),
                cascade: point_rows
                    .iter()
                    .map(|p| {
                        let a = acc(p.manifest_accuracy, p.measured.accuracy);
                        (p.name.clone(), p.measured.mean_ms, a)
                    })
                    .collect(),
                statics: static_rows
                    .iter()
                    .map(|s| (s.name.clone(), s.measured.mean_ms, s.manifest_accuracy))
                    .collect(),
                matched: versus.as_ref().and_then(|v| {
                    point_rows.iter().find(|p| p.name == v.point).map(|p| {
                        let a = acc(p.manifest_accuracy, p.measured.accuracy);
                        (p.name.clone(), p.measured.mean_ms, a)
                    })
                }),
            };
            plot::draw(path, &data)?;
            Some(path.display().to_string())
        }
        _ => None,
    };

    Ok(BenchReport {
        bundle: manifest.model.name.clone(),
        backend: backend_name,
        machine: Machine {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .into(),
        },
        ort: peer_info,
        images_source,
        iters: opts.iters,
        stages: stage_rows,
        baselines: baseline_rows,
        gemm_peak_gflops: gemm.peak_gflops,
        gemm,
        points: point_rows,
        statics: static_rows,
        cascade_overhead_ratio: versus.as_ref().map(|v| v.overhead_ratio),
        cascade_vs_static: versus,
        plot,
        warnings,
    })
}
