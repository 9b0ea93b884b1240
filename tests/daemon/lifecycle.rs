//! The real `dvtd`: SIGTERM drain under load, SIGHUP reload (a corrupt bundle is refused and
//! the old one keeps serving; a good one is swapped in without dropping frames), systemd
//! notifications, metrics and health, `dvt ctl`, budgets from clients.

use crate::daemon_support;

use daemon_support::{bundle_dir, test_images, Daemon};
use dvt_edge::client::{Client, Image};
use dvt_edge::protocol::Status;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Streams frames until the daemon stops reading; returns (ids sent, replies).
fn stream_until_closed(c: Client, px: Vec<u8>) -> (u64, Vec<(u64, Status)>) {
    let (mut tx, mut rx) = c.split();
    let sender = std::thread::spawn(move || {
        let mut sent = 0u64;
        loop {
            if tx.send(&Image::u8_hwc(28, 28, 1, &px), 0).is_err() || tx.flush().is_err() {
                break;
            }
            sent += 1;
            if sent.is_multiple_of(8) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        sent
    });
    let mut replies = Vec::new();
    while let Ok(r) = rx.recv() {
        replies.push((r.request_id, r.status));
    }
    (sender.join().unwrap(), replies)
}

#[test]
fn sigterm_under_load_answers_every_accepted_frame_and_exits_0() {
    let data = test_images(1);
    let mut d = Daemon::start(&["--queue", "32"]);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = d.client();
            let px = data.pixels(0..1).to_vec();
            std::thread::spawn(move || stream_until_closed(c, px))
        })
        .collect();
    // Let the load build up, then stop.
    let t0 = Instant::now();
    while d.ctl(json!({"cmd": "stats"}))["frames"]["ok"]
        .as_u64()
        .unwrap()
        < 200
    {
        assert!(t0.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    d.signal("TERM");
    let status = d.wait(Duration::from_secs(30));
    assert!(status.success(), "exit {status}:\n{}", d.log());
    let mut total_ok = 0;
    for h in handles {
        let (sent, replies) = h.join().unwrap();
        let ids: BTreeSet<u64> = replies.iter().map(|r| r.0).collect();
        assert_eq!(ids.len(), replies.len(), "an id was answered twice");
        // Frames are read in order and every frame read is answered: the answered ids are
        // exactly the first k ids sent.
        let k = ids.len() as u64;
        assert!(k <= sent);
        assert_eq!(
            ids.iter().next_back().copied(),
            k.checked_sub(1),
            "a gap: an accepted frame was not answered"
        );
        for (_, s) in &replies {
            assert!(matches!(s, Status::Ok | Status::Busy), "{s:?}");
        }
        total_ok += replies.iter().filter(|r| r.1 == Status::Ok).count();
    }
    assert!(total_ok >= 200);
    let log = d.log();
    assert!(log.contains("draining") && log.contains("drained"), "{log}");
    assert!(!d.socket.exists(), "socket file removed on exit");
}

#[test]
fn sighup_with_a_corrupt_bundle_keeps_the_old_one_serving() {
    let data = test_images(20);
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    copy_dir(&bundle_dir(), &bundle);
    let d = Daemon::start_with(&bundle, &["--queue", "4096"], &[]);
    let before: Vec<_> = (0..20)
        .map(|i| {
            d.client()
                .classify(&Image::u8_hwc(28, 28, 1, data.pixels(i..i + 1)))
                .unwrap()
        })
        .collect();
    // Corrupt a stage file and the manifest's neighbour; SIGHUP.
    let good_stage = std::fs::read(bundle.join("stage2.onnx")).unwrap();
    std::fs::write(bundle.join("stage2.onnx"), b"this is not an onnx file").unwrap();
    d.signal("HUP");
    let t0 = Instant::now();
    while !d.log().contains("reload refused") {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, b) in before.iter().enumerate() {
        let r = d
            .client()
            .classify(&Image::u8_hwc(28, 28, 1, data.pixels(i..i + 1)))
            .unwrap();
        assert_eq!(
            (r.status, r.class, r.exit_stage),
            (Status::Ok, b.class, b.exit_stage)
        );
    }
    // The same through the synchronous control command.
    let r = d.ctl(json!({"cmd": "reload"}));
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("still serving the old bundle"),
        "{r}"
    );
    let st = d.ctl(json!({"cmd": "stats"}));
    assert_eq!(st["errors"]["reload"], 2, "{st}");
    assert_eq!(st["reloads"], 0);

    // A good bundle again: reloaded while a client streams, without dropping a frame.
    std::fs::write(bundle.join("stage2.onnx"), good_stage).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let streamer = {
        let (c, stop) = (d.client(), stop.clone());
        let px = data.pixels(0..1).to_vec();
        std::thread::spawn(move || {
            let (mut tx, mut rx) = c.split();
            let sender = std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    tx.send(&Image::u8_hwc(28, 28, 1, &px), 0).unwrap();
                    tx.flush().unwrap();
                    n += 1;
                    std::thread::sleep(Duration::from_millis(4));
                }
                tx.finish().unwrap();
                n
            });
            let mut statuses = Vec::new();
            while let Ok(r) = rx.recv() {
                statuses.push(r.status);
            }
            (sender.join().unwrap(), statuses)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let r = d.ctl(json!({"cmd": "reload"}));
    assert_eq!(r["ok"], true, "{r}");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (sent, statuses) = streamer.join().unwrap();
    assert_eq!(
        statuses.len(),
        sent,
        "every frame answered across the reload"
    );
    let not_ok: Vec<_> = statuses.iter().filter(|s| **s != Status::Ok).collect();
    assert!(
        not_ok.is_empty(),
        "{} of {sent} not ok: {not_ok:?}",
        not_ok.len()
    );
    assert_eq!(d.ctl(json!({"cmd": "stats"}))["reloads"], 1);
}

#[test]
fn systemd_hears_ready_watchdog_status_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let np = notify_path.to_str().unwrap().to_string();
    let mut d = Daemon::start_with(
        &bundle_dir(),
        &[],
        &[("NOTIFY_SOCKET", &np), ("WATCHDOG_USEC", "400000")],
    );
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let mut recv_until = |got: &mut String, want: &str| {
        let t0 = Instant::now();
        while !got.contains(want) {
            assert!(t0.elapsed() < Duration::from_secs(30), "no {want} in {got}");
            let n = sock.recv(&mut buf).unwrap();
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    recv_until(&mut got, "READY=1");
    // READY came after the socket was bound and the warm-up frame.
    assert!(got.contains("STATUS=serving"), "{got}");
    recv_until(&mut got, "WATCHDOG=1");
    d.signal("HUP");
    recv_until(&mut got, "RELOADING=1");
    assert!(got.contains("MONOTONIC_USEC="), "{got}");
    d.signal("TERM");
    recv_until(&mut got, "STOPPING=1");
    assert!(d.wait(Duration::from_secs(30)).success());
}

#[test]
fn metrics_healthz_ctl_and_budgets() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let data = test_images(200);
    let d = Daemon::start(&["--http", &addr, "--queue", "1024"]);
    let run = |n: usize| -> f64 {
        let mut c = d.client();
        for i in 0..n {
            c.send(&Image::u8_hwc(28, 28, 1, data.pixels(i..i + 1)), 0)
                .unwrap();
        }
        c.flush().unwrap();
        let g: f64 = (0..n).map(|_| f64::from(c.recv().unwrap().gflops)).sum();
        g / n as f64
    };
    let full = run(200);
    let http = |path: &str| -> String {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let m = http("/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(m.contains("dvtd_frames_total{status=\"ok\"} 200"), "{m}");
    assert!(m.contains("dvtd_exits_total{stage=\"1\"}"));
    assert!(m.contains("dvtd_latency_seconds_count 200"));
    assert!(m.contains("dvtd_stage_latency_seconds_bucket{stage=\"1\",le=\"+Inf\"}"));
    assert!(m.contains("dvtd_queue_depth 0"));
    assert!(m.contains("dvtd_operating_point{"));
    assert!(m.contains("dvtd_errors_total{kind=\"bad_stream\"} 0"));
    let h = http("/healthz");
    assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("ok\n"), "{h}");
    assert!(http("/nope").starts_with("HTTP/1.1 404"));
    // The same text on the control socket.
    let mt = d.ctl(json!({"cmd": "metrics"}));
    assert!(mt["text"]
        .as_str()
        .unwrap()
        .contains("dvtd_frames_total{status=\"ok\"} 200"));

    // `dvt ctl` sets a budget near the cheapest operating point: the mean cost drops.
    let dvt = env!("CARGO_BIN_EXE_dvt");
    let sock = d.socket.to_str().unwrap();
    let st = d.ctl(json!({"cmd": "status"}));
    assert!(st["budget"].is_null(), "{st}");
    let cheap = full * 0.3;
    let out = std::process::Command::new(dvt)
        .args([
            "ctl",
            "--socket",
            sock,
            "set-budget",
            &format!("{cheap}gflops"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["budget"]["kind"], "gflops", "{st}");
    assert_eq!(st["budget_override"], true);
    let budgeted = run(200);
    assert!(
        budgeted < full,
        "budget {cheap}: {budgeted} GFLOPs vs {full} without"
    );
    let out = std::process::Command::new(dvt)
        .args(["ctl", "--socket", sock, "status"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(st["controller"]["frames"].as_u64().unwrap() >= 200, "{st}");
    // Bad budget: clear error, non-zero exit.
    let out = std::process::Command::new(dvt)
        .args(["ctl", "--socket", sock, "set-budget", "3 parsecs"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("units"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Back to the source (none): no budget.
    let st = d.ctl(json!({"cmd": "set-budget", "kind": "auto"}));
    assert!(st["budget"].is_null(), "{st}");
    // `dvt ctl classify` speaks the frame protocol: a PGM of test image 0, answered on the
    // most accurate point again (no budget).
    let pgm = d.dir.path().join("img0.pgm");
    let mut bytes = b"P5\n# test image 0\n28 28\n255\n".to_vec();
    bytes.extend_from_slice(data.pixels(0..1));
    std::fs::write(&pgm, bytes).unwrap();
    let out = std::process::Command::new(dvt)
        .args(["ctl", "--socket", sock, "classify"])
        .arg(&pgm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = daemon_support::in_process(&bundle_dir(), &test_images(1))[0];
    let labels = dvt_edge::bundle::Bundle::load(bundle_dir())
        .unwrap()
        .manifest
        .model
        .classes;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{} (class {}",
            labels[expected.class], expected.class
        )),
        "{text}"
    );
    // ctl on a socket with no daemon: clear error.
    let out = std::process::Command::new(dvt)
        .args(["ctl", "--socket", "/nonexistent/dvtd.sock", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is dvtd running"));
}

#[test]
fn engine_choice_without_onnx_runtime_falls_back_or_refuses_clearly() {
    let missing = [("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")];
    // auto: serves on tract and says why in `status`.
    let d = Daemon::start_with(&bundle_dir(), &["--engine", "auto"], &missing);
    let st = d.ctl(json!({"cmd": "status"}));
    let backend = st["backend"].as_str().unwrap_or_default().to_string();
    assert!(
        backend.starts_with("cpu (tract") && backend.contains("ONNX Runtime not loaded"),
        "{st}"
    );
    let data = test_images(1);
    let mut c = d.client();
    c.send(&Image::u8_hwc(28, 28, 1, data.pixels(0..1)), 0)
        .unwrap();
    c.flush().unwrap();
    assert_eq!(c.recv().unwrap().status, Status::Ok);
    // The bundle's stage times come from ONNX Runtime: ms budgets on tract start off, and the
    // log says so.
    let log = d.log();
    assert!(
        log.contains("stage times were measured on cpu (onnxruntime")
            && log.contains("this daemon runs cpu (tract"),
        "{log}"
    );
    drop(d);
    // ort: refuses to start, with the reason, instead of serving on another engine.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dvtd"))
        .arg("--bundle")
        .arg(bundle_dir())
        .arg("--socket")
        .arg(dir.path().join("dvtd.sock"))
        .args(["--engine", "ort"])
        .env("ORT_DYLIB_PATH", missing[0].1)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("onnxruntime backend unavailable") && err.contains("ORT_DYLIB_PATH"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
