//! GPU check of the TensorRT backend on the bundled cascade (run by `tools/gpu-check.sh` after
//! `dvt build`; skipped unless `DVT_GPU_CHECK=fp32` or `fp16` names the engines to test).
//! Runs the bundle's 32 reference images through every stage on the GPU, with reuse tensors handed
//! from stage to stage on the device, compares each stage's logits with the CPU backend (FP32:
//! relative error <= 1e-3; FP16: top-1 agreement >= 99%), and prints a per-stage timing table.
#![cfg(feature = "tensorrt")]

use crate::common;

use dvt_edge::backend::cpu::CpuBackend;
use dvt_edge::backend::tensorrt::{TrtBackend, TrtOptions};
use dvt_edge::backend::Backend;
use dvt_edge::bundle::{reference, Bundle, Feed, StageSpec};
use dvt_edge::engine_build::{BatchProfile, Precision};
use std::time::Instant;

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |b, (i, v)| if *v > row[b] { i } else { b })
}

/// The inputs of stage `spec`: the image, or the previous stage's reuse outputs (the bundle's
/// wiring rule), kept where the backend holds them.
fn stage_inputs<V: Clone>(
    img: &V,
    prev: &[V],
    spec: &StageSpec,
    prev_spec: Option<&StageSpec>,
) -> Vec<V> {
    dvt_edge::bundle::wiring::feeds(spec, prev_spec)
        .expect("the bundle's stages are wired")
        .into_iter()
        .map(|feed| match feed {
            Feed::Image => img.clone(),
            Feed::Upstream(o) => prev[o].clone(),
        })
        .collect()
}

#[test]
fn gpu_cascade_matches_cpu() {
    let precision = match std::env::var("DVT_GPU_CHECK").as_deref() {
        Ok("fp32") => Precision::Fp32,
        Ok("fp16") => Precision::Fp16,
        _ => {
            eprintln!("SKIPPED: set DVT_GPU_CHECK=fp32|fp16 on a GPU machine with built engines");
            return;
        }
    };
    let bundle = Bundle::load(common::bundle_dir()).unwrap();
    let refs = reference::load(bundle.dir()).unwrap();
    let image = refs["image"].clone();
    let n = image.shape()[0];
    let batch = BatchProfile::new(1, 1, 32).unwrap();
    let gpu = TrtBackend::new(TrtOptions {
        device: 0,
        precision,
        batch,
    })
    .unwrap();
    let cpu = CpuBackend::with_available_threads();
    println!("backend: {}", gpu.name());

    let mut g_stages: Vec<_> = (0..bundle.num_stages())
        .map(|i| gpu.load_stage(&bundle, i).unwrap())
        .collect();
    let mut c_stages: Vec<_> = (0..bundle.num_stages())
        .map(|i| cpu.load_stage(&bundle, i).unwrap())
        .collect();

    let mut g_prev = Vec::new();
    let mut c_prev = Vec::new();
    let g_img = gpu.upload(image.clone()).unwrap();
    let c_img = cpu.upload(image.clone()).unwrap();
    for (k, spec) in bundle.manifest.stages.iter().enumerate() {
        let prev_spec = k.checked_sub(1).map(|p| &bundle.manifest.stages[p]);
        let g_in = stage_inputs(&g_img, &g_prev, spec, prev_spec);
        let c_in = stage_inputs(&c_img, &c_prev, spec, prev_spec);
        let g_out = gpu.run(&mut g_stages[k], &g_in).unwrap();
        let c_out = cpu.run(&mut c_stages[k], &c_in).unwrap();
        let li = spec
            .outputs
            .iter()
            .position(|o| o.name == "logits")
            .unwrap();
        let g_logits = gpu.download(&g_out[li]).unwrap();
        let c_logits = cpu.download(&c_out[li]).unwrap();
        let rel = common::rel_err(&g_logits, &c_logits);
        let classes = g_logits.shape()[1];
        let gs = g_logits.as_slice().unwrap();
        let cs = c_logits.as_slice().unwrap();
        let agree = (0..n)
            .filter(|&i| {
                argmax(&gs[i * classes..][..classes]) == argmax(&cs[i * classes..][..classes])
            })
            .count();
        println!(
            "{}: rel err {rel:.2e}, top-1 agreement {agree}/{n}",
            spec.name
        );
        match precision {
            Precision::Fp32 => assert!(rel <= 1e-3, "{}: FP32 rel err {rel}", spec.name),
            Precision::Fp16 => assert!(
                agree as f64 >= 0.99 * n as f64,
                "{}: FP16 agreement {agree}/{n}",
                spec.name
            ),
        }
        g_prev = g_out;
        c_prev = c_out;
    }

    // Timing: GPU time per stage (CUDA events) and wall time of the chained cascade with the logits'
    // copy back, at batch 1 and 32.
    println!(
        "{:<8} {:>6} {:>12} {:>12}",
        "stage", "batch", "gpu ms", "wall ms"
    );
    for b in [1usize, 32] {
        let rows: Vec<usize> = (0..b).collect();
        let img = gpu.select_rows(&g_img, &rows).unwrap();
        let reps = 50;
        let mut gpu_ms = vec![0f32; bundle.num_stages()];
        let start = Instant::now();
        for _ in 0..reps {
            let mut prev: Vec<_> = Vec::new();
            for (k, spec) in bundle.manifest.stages.iter().enumerate() {
                let prev_spec = k.checked_sub(1).map(|p| &bundle.manifest.stages[p]);
                let inputs = stage_inputs(&img, &prev, spec, prev_spec);
                let out = gpu.run(&mut g_stages[k], &inputs).unwrap();
                let li = spec
                    .outputs
                    .iter()
                    .position(|o| o.name == "logits")
                    .unwrap();
                gpu.download(&out[li]).unwrap();
                gpu_ms[k] += g_stages[k].last_gpu_ms().unwrap().unwrap();
                prev = out;
            }
        }
        let wall = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
        for (k, spec) in bundle.manifest.stages.iter().enumerate() {
            println!(
                "{:<8} {:>6} {:>12.4} {:>12}",
                spec.name,
                b,
                gpu_ms[k] / reps as f32,
                ""
            );
        }
        println!(
            "{:<8} {:>6} {:>12.4} {:>12.4}",
            "cascade",
            b,
            gpu_ms.iter().sum::<f32>() / reps as f32,
            wall
        );
    }
}
