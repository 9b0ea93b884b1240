//! `dvt bench` from start to end: the backend and the peer, every stage and static baseline
//! timed, the cascade against the static models, the plot and the report.

#[cfg(feature = "cli")]
use super::plot;
use super::report::{BenchReport, CascadeVsStatic, Machine, PeerInfo, PointRow, StaticRow};
use super::timing::{start_peer, Ctx, Timed};
use super::versus::cascade_vs_static;
use super::{cpu_model, gemm, stage, BenchError, BenchOptions};
use crate::backend::{select, Backend, BackendOptions, HostTensor};
use crate::bundle::Bundle;
use crate::data::preprocess::normalize_u8_hwc;
use crate::data::{Dataset, Split};
use std::path::Path;

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

    let (peer, peer_note) = start_peer(opts, on_cpu, threads, log);
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
    let vs = cascade_vs_static(
        bundle,
        &backend,
        &statics,
        (&pixels, labels.as_deref()),
        opts,
        log,
    )?;
    warnings.extend(vs.warnings);
    let (point_rows, static_rows, versus) = (vs.points, vs.statics, vs.versus);

    let backend_name = backend.name();
    let plot = draw_plot(
        opts,
        &manifest.model.name,
        &backend_name,
        &point_rows,
        &static_rows,
        versus.as_ref(),
    )?;

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

/// Draws the latency-vs-accuracy SVG where `opts.plot` asks for one and there is something to
/// draw; returns its path.
#[cfg(feature = "cli")]
fn draw_plot(
    opts: &BenchOptions,
    model: &str,
    backend_name: &str,
    point_rows: &[PointRow],
    static_rows: &[StaticRow],
    versus: Option<&CascadeVsStatic>,
) -> Result<Option<String>, BenchError> {
    Ok(match &opts.plot {
        Some(path) if !point_rows.is_empty() || !static_rows.is_empty() => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            let acc = |a: Option<f64>, m: Option<f64>| a.or(m).unwrap_or(f64::NAN);
            let data = plot::LatencyPlot {
                title: format!(
                    "{}: latency vs accuracy, batch 1, {} ({})",
                    model,
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
                matched: versus.and_then(|v| {
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
    })
}

/// Without the `cli` feature (plotters) no plot is drawn.
#[cfg(not(feature = "cli"))]
fn draw_plot(
    _: &BenchOptions,
    _: &str,
    _: &str,
    _: &[PointRow],
    _: &[StaticRow],
    _: Option<&CascadeVsStatic>,
) -> Result<Option<String>, BenchError> {
    Ok(None)
}
