//! H2D/D2H bandwidth, pinned vs pageable (run by `tools/gpu-check.sh` with `DVT_BANDWIDTH=1`;
//! skipped elsewhere). Pinned copies must not be slower than pageable ones.
#![cfg(feature = "cuda")]

use dvt_edge::backend::cuda::{bandwidth, Gpu};

#[test]
fn pinned_copies_reach_at_least_pageable_bandwidth() {
    if std::env::var_os("DVT_BANDWIDTH").is_none() {
        eprintln!("SKIPPED: set DVT_BANDWIDTH=1 on a GPU machine");
        return;
    }
    let gpu = Gpu::open(0).expect("a CUDA GPU");
    let (pinned, pageable) = bandwidth::measure(&gpu, 64 << 20, 20).unwrap();
    println!("{} integrated={}", gpu.name().unwrap(), gpu.is_integrated());
    println!(
        "pinned   H2D {:7.2} GB/s  D2H {:7.2} GB/s",
        pinned.h2d_gbps, pinned.d2h_gbps
    );
    println!(
        "pageable H2D {:7.2} GB/s  D2H {:7.2} GB/s",
        pageable.h2d_gbps, pageable.d2h_gbps
    );
    assert!(pinned.h2d_gbps > 0.0 && pinned.d2h_gbps > 0.0);
    assert!(
        pinned.h2d_gbps >= 0.9 * pageable.h2d_gbps,
        "pinned H2D slower than pageable"
    );
}
