//! `dvt demo --bench`, one frame at a time: the socket round trip beside the in-process
//! cascade, the transport's floor (a bare ping-pong of the same sizes) and the same ping-pong
//! with a busy far end.

use super::daemon::{backend_options, stream};
use super::{BatchingReport, DemoArgs, DemoError};
use crate::adaptive::{AdaptiveCascade, AdaptiveOptions};
use crate::bundle::Bundle;
use crate::client::{Client, Image};
use crate::data::Dataset;
use crate::eval::LatencyStats;
use crate::protocol::Status;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// `--bench` numbers.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Frames timed one at a time.
    pub frames: usize,
    /// In-process `Cascade::classify`, batch 1, ms.
    pub in_process_ms: LatencyStats,
    /// Socket round trip, one frame at a time, ms.
    pub socket_rtt_ms: LatencyStats,
    /// Median round trip minus median in-process call, microseconds.
    pub added_p50_us: f64,
    /// Mean round trip minus mean in-process call, microseconds.
    pub added_mean_us: f64,
    /// Per frame, round trip minus the daemon's own cascade time for that frame (paired, so
    /// insensitive to how long inference took): socket, framing, preprocessing and queue
    /// hand-off, microseconds.
    pub overhead_paired_us: LatencyStats,
    /// Per frame, inside the daemon: frame read to reply queued minus the cascade time
    /// (preprocessing, queue and worker hand-off), microseconds.
    pub daemon_handoff_us: LatencyStats,
    /// A bare Unix-socket ping-pong of the same request and reply sizes between two processes,
    /// interleaved with the round trips above, ms: the transport's floor.
    pub floor_ms: LatencyStats,
    /// `added_p50_us` / the floor's p50: how many bare round trips the daemon path adds.
    pub added_over_floor: f64,
    /// The paired overhead's p50 / the floor's p50: the same ratio measured per frame (round
    /// trip minus that frame's own cascade time), which the cascade's run-to-run noise does not
    /// swamp as it does a difference of two medians.
    pub paired_over_floor: f64,
    /// The far end's median busy time per request in the second ping-pong (each request: the
    /// daemon's cascade time for the same frame), us.
    pub busy_floor_us: u64,
    /// That ping-pong's round trip minus the busy time, ms: the transport around a server
    /// that computes as long as the cascade (information, not the goal).
    pub busy_floor_ms: LatencyStats,
    /// The one-at-a-time client's reply poll (`--reply-spin-us`), us.
    pub reply_spin_us: u64,
    /// The daemon readers' poll for the next frame (`--daemon-spin-us`), us.
    pub daemon_spin_us: u64,
    /// What the settings cost in CPU: the daemon idle, and both ends at a camera's pace.
    pub cpu: Option<CpuCost>,
    /// The client thread's CPU time per socket round trip (`CLOCK_THREAD_CPUTIME_ID`), us: what the
    /// poll costs; without it, the syscalls and the reply's parsing.
    pub client_cpu_per_frame_us: Option<f64>,
    /// The paired overhead's p50 / the busy ping-pong's p50: the daemon path against a bare
    /// transport whose far end also computes for the cascade's time, so that both clients
    /// wait (and their CPUs idle) as long.
    pub paired_over_busy_floor: f64,
    /// Pipelined frames/s through the socket (window frames in flight).
    pub pipelined_fps: f64,
    /// Many clients, dynamic batching, against the in-process batched cascade.
    pub batching: Option<BatchingReport>,
    /// In-process frames/s at batch 1.
    pub in_process_fps: f64,
}

/// CPU time the latency settings cost, measured on the running daemon (its process's threads,
/// from `/proc/PID/task/*/schedstat`) and on the client thread.
#[derive(Debug, Clone, Serialize)]
pub struct CpuCost {
    /// The daemon's CPU while no frame arrives, percent of one core (over `idle_s`).
    pub daemon_idle_pct: f64,
    /// Length of that idle window, s.
    pub idle_s: f64,
    /// Frames sent at a camera's pace, one at a time.
    pub paced_frames: usize,
    /// Their rate, frames/s.
    pub paced_hz: f64,
    /// Daemon CPU per paced frame, us (cascade included).
    pub paced_daemon_cpu_per_frame_us: f64,
    /// The cascade's own time per paced frame (the daemon's `compute_us`), us: the rest of the
    /// daemon's CPU is the frame path and its poll.
    pub paced_compute_us: f64,
    /// Client thread CPU per paced frame, us.
    pub paced_client_cpu_per_frame_us: f64,
    /// Round trip of the paced frames (both ends have slept between frames), ms.
    pub paced_rtt_ms: LatencyStats,
}

/// The CPU time of every thread of process `pid` so far, ns (`None` off Linux or once it is gone).
fn process_cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = t.ok()?.path().join("schedstat");
        // A thread that ended since the listing no longer counts; the others do.
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// The daemon idle for `idle`, then `frames` frames one at a time at `hz`.
fn cpu_cost(
    c: &mut Client,
    pid: u32,
    data: &Dataset,
    idle: Duration,
    frames: usize,
    hz: f64,
) -> Result<Option<CpuCost>, DemoError> {
    let (h, w, ch) = (data.height as u16, data.width as u16, data.channels as u16);
    // Past any poll the last frame started.
    std::thread::sleep(Duration::from_millis(50));
    let Some(a) = process_cpu_ns(pid) else {
        return Ok(None);
    };
    let t0 = Instant::now();
    std::thread::sleep(idle);
    let (Some(b), idle_s) = (process_cpu_ns(pid), t0.elapsed().as_secs_f64()) else {
        return Ok(None);
    };
    let period = Duration::from_secs_f64(1.0 / hz);
    let (d0, c0) = (process_cpu_ns(pid), thread_cpu_ns());
    let (mut rtt, mut compute) = (Vec::with_capacity(frames), 0f64);
    let start = Instant::now();
    for i in 0..frames {
        let due = start + period * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        let r = c.classify(&Image::u8_hwc(h, w, ch, data.pixels(i..i + 1)))?;
        rtt.push(t.elapsed().as_secs_f64() * 1e3);
        compute += f64::from(r.compute_us);
    }
    // The last frame's poll, if any, ends within the bound (at most 10 ms).
    std::thread::sleep(Duration::from_millis(20));
    let (d1, c1) = (process_cpu_ns(pid), thread_cpu_ns());
    let per = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (Some(x), Some(y)) => y.saturating_sub(x) as f64 / 1e3 / frames as f64,
        _ => f64::NAN,
    };
    Ok(Some(CpuCost {
        daemon_idle_pct: b.saturating_sub(a) as f64 / 1e9 / idle_s * 100.0,
        idle_s,
        paced_frames: frames,
        paced_hz: hz,
        paced_daemon_cpu_per_frame_us: per(d0, d1),
        paced_compute_us: compute / frames as f64,
        paced_client_cpu_per_frame_us: per(c0, c1),
        paced_rtt_ms: LatencyStats::from_samples(&mut rtt),
    }))
}

pub(super) fn bench(
    args: &DemoArgs,
    bundle: &Bundle,
    socket: &Path,
    data: &Dataset,
    daemon_pid: Option<u32>,
) -> Result<BenchReport, DemoError> {
    let n = args.frames.min(data.len()).max(10);
    // The same type, backend and settings as the daemon's worker (idle threads sleep, no
    // budget: the most accurate point), so only the socket differs.
    let options = AdaptiveOptions {
        backend: backend_options(args)?,
        ..AdaptiveOptions::default()
    };
    let mut local_cascade = AdaptiveCascade::load(bundle.dir(), &options)
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    // Warm both paths on the same images first.
    let mut c = Client::connect(socket)?;
    let (h, w, ch) = (data.height as u16, data.width as u16, data.channels as u16);
    for i in 0..50.min(n) {
        local_cascade
            .classify_u8_hwc(data.pixels(i..i + 1), 1)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        c.classify(&Image::u8_hwc(h, w, ch, data.pixels(i..i + 1)))?;
    }
    // The floor: the same request and reply sizes between two processes, nothing else.
    let request_len = crate::protocol::HEADER_LEN + data.pixels(0..1).len();
    let reply_len = c
        .classify(&Image::u8_hwc(h, w, ch, data.pixels(0..1)))?
        .encode()
        .len();
    let exe = std::env::current_exe().map_err(|e| DemoError::Setup(e.to_string()))?;
    let mut floor = crate::cli::floor::PingPong::start(&exe, request_len, reply_len, 0)
        .map_err(|e| DemoError::Setup(format!("ping-pong floor: {e}")))?;
    let mut floor_ms = Vec::with_capacity(n);
    for _ in 0..50 {
        floor
            .round_trip_ms()
            .map_err(|e| DemoError::Setup(e.to_string()))?;
    }
    // The same ping-pong with the far end busy, per frame, for as long as the daemon's cascade
    // just took on that frame: a server that computes between read and reply lets its client's
    // CPU idle longer, and the wake-up then costs more (on a VM, more still once the host stops
    // polling the halted vCPU). Not part of the goal; it shows where the rest of the added time
    // goes.
    let mut busy_floor = crate::cli::floor::PingPong::start(
        &exe,
        request_len,
        reply_len,
        crate::cli::floor::BUSY_PER_REQUEST,
    )
    .map_err(|e| DemoError::Setup(format!("ping-pong floor: {e}")))?;
    let mut busy_times = Vec::with_capacity(n);
    let mut busy_floor_ms = Vec::with_capacity(n);
    // Interleaved so that machine noise hits all three alike. The in-process time includes the
    // normalisation, which the daemon also does.
    let (mut local, mut rtt) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut paired = Vec::with_capacity(n);
    let mut handoff = Vec::with_capacity(n);
    c.set_reply_spin(Duration::from_micros(args.reply_spin_us));
    let mut client_cpu_ns = 0u64;
    for i in 0..n {
        let t0 = Instant::now();
        local_cascade
            .classify_u8_hwc(data.pixels(i..i + 1), 1)
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        local.push(t0.elapsed().as_secs_f64() * 1e3);
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        let r = c.classify(&Image::u8_hwc(h, w, ch, data.pixels(i..i + 1)))?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if let (Some(a), Some(b)) = (cpu0, thread_cpu_ns()) {
            client_cpu_ns += b.saturating_sub(a);
        }
        rtt.push(ms);
        paired.push(ms * 1e3 - f64::from(r.compute_us));
        handoff.push(f64::from(r.latency_us.saturating_sub(r.compute_us)));
        floor_ms.push(
            floor
                .round_trip_ms()
                .map_err(|e| DemoError::Setup(format!("ping-pong floor: {e}")))?,
        );
        // Minus the far end's busy time: what the transport itself took around it.
        let busy_us = u64::from(r.compute_us);
        busy_times.push(busy_us);
        busy_floor_ms.push(
            busy_floor
                .round_trip_busy_ms(busy_us)
                .map_err(|e| DemoError::Setup(format!("ping-pong floor: {e}")))?
                - busy_us as f64 / 1e3,
        );
        if r.status != Status::Ok {
            return Err(DemoError::Setup(format!(
                "bench frame {i}: {:?} {}",
                r.status, r.text
            )));
        }
    }
    let local_total: f64 = local.iter().sum();
    let (l, s) = (
        LatencyStats::from_samples(&mut local),
        LatencyStats::from_samples(&mut rtt),
    );
    drop(floor);
    drop(busy_floor);
    let fl = LatencyStats::from_samples(&mut floor_ms);
    let cpu = match daemon_pid {
        Some(pid) => cpu_cost(&mut c, pid, data, Duration::from_secs(1), 60.min(n), 30.0)?,
        None => None,
    };
    let secs = stream(socket, data, 0, (4 * n).min(data.len()), args.window)?.secs;
    let overhead_paired_us = LatencyStats::from_samples(&mut paired);
    let busy_floor_ms = LatencyStats::from_samples(&mut busy_floor_ms);
    Ok(BenchReport {
        frames: n,
        floor_ms: fl,
        busy_floor_us: {
            busy_times.sort_unstable();
            busy_times[busy_times.len() / 2]
        },
        paired_over_busy_floor: overhead_paired_us.p50 / (busy_floor_ms.p50 * 1e3).max(1e-9),
        busy_floor_ms,
        added_over_floor: (s.p50 - l.p50) / fl.p50.max(1e-9),
        added_p50_us: (s.p50 - l.p50) * 1e3,
        added_mean_us: (s.mean - l.mean) * 1e3,
        in_process_ms: l,
        paired_over_floor: overhead_paired_us.p50 / (fl.p50 * 1e3).max(1e-9),
        overhead_paired_us,
        daemon_handoff_us: LatencyStats::from_samples(&mut handoff),
        socket_rtt_ms: s,
        reply_spin_us: args.reply_spin_us,
        daemon_spin_us: args.daemon_spin_us,
        cpu,
        client_cpu_per_frame_us: thread_cpu_ns().map(|_| client_cpu_ns as f64 / 1e3 / n as f64),
        pipelined_fps: (4 * n).min(data.len()) as f64 / secs,
        batching: None,
        in_process_fps: n as f64 / (local_total / 1e3),
    })
}

/// This thread's CPU time so far, ns (`CLOCK_THREAD_CPUTIME_ID`; `None` where it fails).
fn thread_cpu_ns() -> Option<u64> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `t` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    (rc == 0).then(|| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

/// Prints the one-frame-at-a-time table (and the batching table when measured).
pub(super) fn print(b: &BenchReport, args: &DemoArgs, image_len: usize) {
    println!();
    println!(
        "socket vs in-process, {} frames one at a time (batch 1, most accurate point):",
        b.frames
    );
    println!(
        "  in-process Cascade::classify  p50 {:.1} us  mean {:.1} us  ({:.0} frames/s)",
        b.in_process_ms.p50 * 1e3,
        b.in_process_ms.mean * 1e3,
        b.in_process_fps
    );
    println!(
        "  socket round trip             p50 {:.1} us  mean {:.1} us",
        b.socket_rtt_ms.p50 * 1e3,
        b.socket_rtt_ms.mean * 1e3
    );
    println!(
        "  added by the socket path      p50 {:+.1} us  mean {:+.1} us",
        b.added_p50_us, b.added_mean_us
    );
    println!(
        "  bare socket ping-pong (2 processes, {}-byte request, same reply size)  p50 {:.1} us",
        image_len + crate::protocol::HEADER_LEN,
        b.floor_ms.p50 * 1e3
    );
    println!(
        "  added / floor                 {:.2}x (goal <= 2)",
        b.added_over_floor
    );
    println!(
        "  the same ping-pong, far end busy as long as dvtd's cascade per frame (median {} us): round trip - busy p50 {:.1} us",
        b.busy_floor_us,
        b.busy_floor_ms.p50 * 1e3
    );
    println!(
        "  paired per frame: round trip - daemon cascade time  p50 {:.1} us  mean {:.1} us",
        b.overhead_paired_us.p50, b.overhead_paired_us.mean
    );
    println!(
        "    of which inside the daemon (preprocess + queue hand-off)  p50 {:.1} us",
        b.daemon_handoff_us.p50
    );
    println!(
        "  paired / floor                {:.2}x (the same goal, per frame)",
        b.paired_over_floor
    );
    println!(
        "  paired / busy ping-pong       {:.2}x (both clients wait as long)",
        b.paired_over_busy_floor
    );
    if let Some(cpu) = b.client_cpu_per_frame_us {
        println!(
            "  client CPU per round trip     {cpu:.1} us (reply poll {} us; idle cost 0: \
             it polls only while a reply is awaited)",
            b.reply_spin_us
        );
    }
    println!(
        "  daemon readers' poll for the next frame {} us",
        b.daemon_spin_us
    );
    if let Some(cpu) = &b.cpu {
        println!(
            "  CPU: dvtd idle {:.2}% of a core over {:.1} s; at {:.0} frames/s ({} frames, one at a \
             time) dvtd {:.0} us per frame (cascade {:.0} us), client {:.0} us per frame, round \
             trip p50 {:.1} us",
            cpu.daemon_idle_pct,
            cpu.idle_s,
            cpu.paced_hz,
            cpu.paced_frames,
            cpu.paced_daemon_cpu_per_frame_us,
            cpu.paced_compute_us,
            cpu.paced_client_cpu_per_frame_us,
            cpu.paced_rtt_ms.p50 * 1e3
        );
    }
    println!(
        "  pipelined through the socket  {:.0} frames/s ({} in flight)",
        b.pipelined_fps, args.window
    );
    if let Some(d) = &b.batching {
        super::batching::print(d);
    }
}
