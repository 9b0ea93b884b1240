//! `dvt demo --bench`, many clients: pipelining connections through daemons started with
//! `max_batch` at each `max_queue_delay_us`, beside the in-process batched cascade.

use super::daemon::{backend_options, start, stop, stream, wait_ready, Streamed};
use super::{DemoArgs, DemoError};
use crate::adaptive::{AdaptiveCascade, AdaptiveOptions};
use crate::bundle::Bundle;
use crate::data::Dataset;
use crate::eval::LatencyStats;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Many pipelining clients through one daemon at one `max_queue_delay_us`.
#[derive(Debug, Clone, Serialize)]
pub struct BatchingRow {
    /// The daemon's max_queue_delay_us.
    pub max_queue_delay_us: u64,
    /// Frames answered per second, all clients together.
    pub fps: f64,
    /// `fps` / the in-process batched cascade's frames/s measured just before.
    pub vs_in_process: f64,
    /// Client-side latency per frame (send to reply), ms.
    pub latency_ms: LatencyStats,
    /// Busy replies (resent).
    pub busy: usize,
}

/// The dynamic-batching measurement.
#[derive(Debug, Clone, Serialize)]
pub struct BatchingReport {
    /// Clients, each on its own connection.
    pub clients: usize,
    /// Frames in flight per client.
    pub window: usize,
    /// Frames per client.
    pub frames_per_client: usize,
    /// The daemon's max_batch and the reference's batch.
    pub batch: usize,
    /// In-process `AdaptiveCascade` on batches of `batch` frames, frames/s (the peer; mean of
    /// the measurements made before each row).
    pub in_process_fps: f64,
    /// One row per delay.
    pub rows: Vec<BatchingRow>,
}

/// `clients` connections pipelining `window` frames each through a daemon started with
/// `max_batch = batch` at each `max_queue_delay_us`, beside the in-process cascade on batches of
/// `batch` frames (the same backend settings), measured in one run.
pub(super) fn batching_bench(
    args: &DemoArgs,
    bundle: &Bundle,
    data: &Dataset,
    tmp: &Path,
) -> Result<BatchingReport, DemoError> {
    let batch = args.batch.max(1);
    let per_client = (args.frames / args.clients.max(1)).max(batch) * 2;
    // The reference: the same type the worker runs, fed full batches with no socket at all.
    let options = AdaptiveOptions {
        backend: backend_options(args)?,
        max_batch: batch,
        ..AdaptiveOptions::default()
    };
    let mut local = AdaptiveCascade::load(bundle.dir(), &options)
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let total = per_client * args.clients.max(1);
    // Measured right before each delay's run, so that the machine's load (shared, noisy) hits
    // each ratio's two sides alike.
    let mut in_process = || -> Result<f64, DemoError> {
        let t0 = Instant::now();
        let mut done = 0;
        while done < total {
            let lo = done % data.len();
            let k = batch.min(data.len() - lo);
            local
                .classify_u8_hwc(data.pixels(lo..lo + k), k)
                .map_err(|e| DemoError::Setup(e.to_string()))?;
            done += k;
        }
        Ok(done as f64 / t0.elapsed().as_secs_f64())
    };
    let mut references = Vec::new();
    let mut rows = Vec::new();
    for &delay in &args.queue_delays {
        let in_process_fps = in_process()?;
        references.push(in_process_fps);
        let socket = tmp.join(format!("batching-{delay}.sock"));
        let extra = [
            "--max-batch".to_string(),
            batch.to_string(),
            "--max-queue-delay-us".to_string(),
            delay.to_string(),
        ];
        let mut running = start(args, bundle.dir(), &socket, &extra)?;
        let measured = (|| -> Result<BatchingRow, DemoError> {
            wait_ready(&socket, &mut running)?;
            // Warm the daemon's batch sizes first.
            stream(&socket, data, 0, 4 * batch, batch)?;
            let t0 = Instant::now();
            let results: Vec<Result<Streamed, DemoError>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..args.clients.max(1))
                    .map(|c| {
                        let socket = &socket;
                        s.spawn(move || {
                            stream(socket, data, c * per_client, per_client, args.client_window)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(DemoError::Setup("client panicked".into())))
                    })
                    .collect()
            });
            let secs = t0.elapsed().as_secs_f64();
            let mut latency = Vec::new();
            let (mut answered, mut busy) = (0, 0);
            for r in results {
                let r = r?;
                answered += r.replies.len();
                busy += r.busy;
                latency.extend(r.latency_ms);
            }
            let fps = answered as f64 / secs;
            Ok(BatchingRow {
                max_queue_delay_us: delay,
                fps,
                vs_in_process: fps / in_process_fps,
                latency_ms: LatencyStats::from_samples(&mut latency),
                busy,
            })
        })();
        stop(&socket, running);
        rows.push(measured?);
    }
    let in_process_fps = references.iter().sum::<f64>() / references.len().max(1) as f64;
    Ok(BatchingReport {
        clients: args.clients.max(1),
        window: args.client_window,
        frames_per_client: per_client,
        batch,
        in_process_fps,
        rows,
    })
}

/// Prints the batching table.
pub(super) fn print(d: &BatchingReport) {
    println!();
    println!(
        "dynamic batching: {} clients x {} frames, {} in flight each, max_batch {}; \
         in-process batch-{} cascade {:.0} frames/s",
        d.clients, d.frames_per_client, d.window, d.batch, d.batch, d.in_process_fps
    );
    println!("  max_queue_delay_us   frames/s   vs in-process   p50 ms   p99 ms   busy");
    for r in &d.rows {
        println!(
            "  {:>18}   {:>8.0}   {:>12.2}x   {:>6.2}   {:>6.2}   {:>4}",
            r.max_queue_delay_us,
            r.fps,
            r.vs_in_process,
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.busy
        );
    }
}
