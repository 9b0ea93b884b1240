//! This machine's f32 GEMM peak, the roof of the roofline: a large matrix product timed with
//! the fastest kernels we link.
//!
//! Two candidates: tract-linalg's kernel as tract selects it for a MatMul with a constant
//! (pre-packed) right-hand side, on tract's thread pool (what our stages run on), and
//! matrixmultiply (ndarray's backend) single-threaded on every thread at once. The peak is the
//! best of the two; both are reported.

use serde::Serialize;
use std::time::Instant;
use tract_core::ops::einsum::EinSum;
use tract_onnx::prelude::*;

/// Product size: m = k = n. 1024 is large enough to hide packing and thread start-up, small
/// enough to finish in a few tenths of a second.
pub const SIZE: usize = 1024;

/// The measured peak.
#[derive(Debug, Clone, Serialize)]
pub struct GemmPeak {
    /// m = k = n of the product.
    pub size: usize,
    /// Threads used.
    pub threads: usize,
    /// tract-linalg, best of the timed products, GFLOP/s (2 FLOPs per multiply-add).
    pub tract_gflops: f64,
    /// matrixmultiply, one product per thread in parallel, aggregate GFLOP/s.
    pub matrixmultiply_gflops: f64,
    /// The larger of the two: the roof.
    pub peak_gflops: f64,
    /// Which kernel gave the peak.
    pub peak_kernel: String,
}

fn flops() -> f64 {
    2.0 * (SIZE as f64).powi(3)
}

fn fill(n: usize, seed: u32) -> Vec<f32> {
    // Any non-trivial values; denormals and zeros could take fast or slow paths.
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / 16_777_216.0
                - 0.5
        })
        .collect()
}

/// GFLOP/s of tract's MatMul, best of `reps` products.
fn tract_peak(reps: usize) -> TractResult<f64> {
    let mut model = TypedModel::default();
    let a = model.add_source("a", f32::fact([SIZE, SIZE]))?;
    let b = tract_ndarray::Array2::from_shape_vec((SIZE, SIZE), fill(SIZE * SIZE, 7))?;
    let b = model.add_const("b", b.into_tensor())?;
    let out = model.wire_node(
        "gemm",
        EinSum::new("mk,kn->mn".parse()?, f32::datum_type()),
        &[a, b],
    )?;
    model.select_output_outlets(&out)?;
    let plan = model.into_optimized()?.into_runnable()?;
    let mut state = plan.spawn()?;
    let input = tract_ndarray::Array2::from_shape_vec((SIZE, SIZE), fill(SIZE * SIZE, 3))?
        .into_tensor()
        .into_tvalue();
    state.run(tvec![input.clone()])?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        state.run(tvec![input.clone()])?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(flops() / best / 1e9)
}

/// Aggregate GFLOP/s of matrixmultiply with one product per thread, best of `reps` rounds.
fn matrixmultiply_peak(threads: usize, reps: usize) -> f64 {
    let a = ndarray::Array2::from_shape_vec((SIZE, SIZE), fill(SIZE * SIZE, 1)).expect("square");
    let b = ndarray::Array2::from_shape_vec((SIZE, SIZE), fill(SIZE * SIZE, 2)).expect("square");
    let mut best = f64::INFINITY;
    for _ in 0..reps + 1 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut c = ndarray::Array2::<f32>::zeros((SIZE, SIZE));
                    ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
                    std::hint::black_box(&c);
                });
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    threads as f64 * flops() / best / 1e9
}

/// Measures the peak with `threads` threads (tract's pool must already be set up, as
/// [`crate::backend::cpu::CpuBackend::new`] does).
pub fn measure(threads: usize, reps: usize) -> TractResult<GemmPeak> {
    let reps = reps.max(1);
    let tract_gflops = tract_peak(reps)?;
    let matrixmultiply_gflops = matrixmultiply_peak(threads.max(1), reps);
    let (peak_gflops, peak_kernel) = if tract_gflops >= matrixmultiply_gflops {
        (tract_gflops, "tract-linalg")
    } else {
        (matrixmultiply_gflops, "matrixmultiply")
    };
    Ok(GemmPeak {
        size: SIZE,
        threads,
        tract_gflops,
        matrixmultiply_gflops,
        peak_gflops,
        peak_kernel: peak_kernel.into(),
    })
}
