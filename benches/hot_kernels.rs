//! Criterion benches of the per-frame hot path: the exit test (softmax top-1), pre-processing
//! and one stage run on the CPU backend.
//!
//! `cargo bench --bench hot_kernels` (release profile; the first build of tract in release
//! takes ~30 min on 2 cores) or `cargo bench --profile dev --bench hot_kernels` (reuses the
//! dev build: dependencies, tract included, are optimised, this crate at opt-level 1).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use dvt_edge::backend::cpu::{CpuBackend, CpuRuntime};
use dvt_edge::backend::Backend;
use dvt_edge::bundle::Bundle;
use dvt_edge::cascade::top1;
use dvt_edge::data::preprocess::normalize_u8_hwc;
use std::hint::black_box;
use std::path::Path;

fn bundle() -> Bundle {
    Bundle::load(Path::new(env!("CARGO_MANIFEST_DIR")).join("engines/fmnist-dvt"))
        .expect("the embedded bundle loads")
}

fn pixels(n: usize, per: usize) -> Vec<u8> {
    (0..n * per)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn exit_test(c: &mut Criterion) {
    let logits: Vec<f32> = (0..10).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
    c.bench_function("top1/10 logits", |b| {
        b.iter(|| top1(black_box(&logits).iter().copied()))
    });
    let rows: Vec<f32> = (0..320).map(|i| (i as f32 * 0.11).cos() * 5.0).collect();
    c.bench_function("top1/32 rows x 10 logits", |b| {
        b.iter(|| {
            black_box(&rows)
                .chunks(10)
                .map(|r| top1(r.iter().copied()).confidence)
                .sum::<f32>()
        })
    });
}

fn preprocess(c: &mut Criterion) {
    let b = bundle();
    let spec = &b.manifest.model.input;
    let per = spec.height * spec.width * spec.channels;
    for n in [1usize, 32] {
        let px = pixels(n, per);
        c.bench_function(&format!("preprocess/normalize {n} image(s)"), |bch| {
            bch.iter(|| normalize_u8_hwc(black_box(&px), n, spec).expect("geometry fits"))
        });
    }
}

fn stage_run(c: &mut Criterion) {
    let b = bundle();
    let spec = &b.manifest.model.input;
    let per = spec.height * spec.width * spec.channels;
    let image = normalize_u8_hwc(&pixels(1, per), 1, spec).expect("geometry fits");
    // Both engines, side by side in one run; ONNX Runtime only where its library loads.
    let mut engines = vec![("tract", CpuBackend::new(1))];
    match CpuBackend::with_runtime(CpuRuntime::Ort, 1) {
        Ok(ort) => engines.push(("onnxruntime", ort)),
        Err(e) => eprintln!("stage1/onnxruntime skipped: {e}"),
    }
    for (name, backend) in engines {
        let mut stage1 = backend.load_stage(&b, 0).expect("stage 1 loads");
        let inputs = vec![backend.upload(image.clone()).expect("upload")];
        c.bench_function(&format!("stage1/run batch 1 (1 thread, {name})"), |bch| {
            bch.iter_batched(
                || inputs.clone(),
                |i| backend.run(&mut stage1, &i).expect("runs"),
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, exit_test, preprocess, stage_run);
criterion_main!(benches);
