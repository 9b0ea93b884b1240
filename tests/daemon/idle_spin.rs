//! `idle_spin_us`: a reader polls for its connection's next frame for a bounded time after
//! each message. It must cost CPU only around frames (an idle daemon stays asleep), and its
//! poll must not make the connection's writes non-blocking (replies that fill the socket
//! buffer must wait, not fail).

use crate::daemon_support;

use daemon_support::{cpu_ticks, test_images, Daemon};
use dvt_edge::client::Image;
use dvt_edge::protocol::Status;
use std::time::{Duration, Instant};

/// CPU ticks the daemon spends on `frames` frames sent one at a time at `hz`.
fn ticks_for_paced_frames(d: &Daemon, frames: usize, hz: f64) -> u64 {
    let data = test_images(frames);
    let mut c = d.client();
    let period = Duration::from_secs_f64(1.0 / hz);
    std::thread::sleep(Duration::from_millis(100));
    let before = cpu_ticks(d.pid());
    let start = Instant::now();
    for i in 0..frames {
        if let Some(wait) = (start + period * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let r = c
            .classify(&Image::u8_hwc(28, 28, 1, data.pixels(i..i + 1)))
            .unwrap();
        assert_eq!(r.status, Status::Ok, "{r:?}");
    }
    std::thread::sleep(Duration::from_millis(50));
    cpu_ticks(d.pid()) - before
}

#[test]
fn the_poll_costs_cpu_after_each_frame_and_none_while_idle() {
    let spinning = Daemon::start(&["--idle-spin-us", "5000"]);
    let plain = Daemon::start(&[]);
    // 40 frames 50 ms apart: each poll runs its full 5 ms (200 ms = 20 ticks in all), the
    // frames themselves take well under 1 ms each.
    let spun = ticks_for_paced_frames(&spinning, 40, 20.0);
    let slept = ticks_for_paced_frames(&plain, 40, 20.0);
    assert!(
        spun >= slept + 10,
        "the poll did not run: {spun} ticks with it, {slept} without"
    );
    // Idle: no frame, no poll.
    let before = cpu_ticks(spinning.pid());
    std::thread::sleep(Duration::from_millis(1500));
    let idle = cpu_ticks(spinning.pid()) - before;
    assert!(
        idle <= 5,
        "an idle daemon with idle_spin_us spent {idle} ticks in 1.5 s"
    );
}

#[test]
fn replies_that_fill_the_socket_still_arrive_while_readers_poll() {
    let d = Daemon::start(&["--idle-spin-us", "2000", "--queue", "4096"]);
    let n = 3000; // ~0.5 MB of replies: more than a Unix socket buffers
    let data = test_images(n);
    let (mut tx, mut rx) = d.client().split();
    let frames = data.clone();
    let sender = std::thread::spawn(move || {
        for i in 0..n {
            tx.send(&Image::u8_hwc(28, 28, 1, frames.pixels(i..i + 1)), i as u64)
                .unwrap();
        }
        tx.flush().unwrap();
        tx
    });
    // Nobody reads for a while: the daemon's writes to this connection must block and wait.
    std::thread::sleep(Duration::from_millis(500));
    let mut ok = 0;
    for _ in 0..n {
        let r = rx.recv().unwrap();
        assert_eq!(r.status, Status::Ok, "{r:?}");
        ok += 1;
    }
    let _tx = sender.join().unwrap();
    assert_eq!(ok, n);
    assert!(
        d.log().lines().all(|l| !l.contains("write failed")),
        "{}",
        d.log()
    );
}
