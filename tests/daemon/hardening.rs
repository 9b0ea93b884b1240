//! The real `dvtd` against the ways one client or one bad file could hurt everyone (issue 14):
//! a FIFO at the budget file's path, an unparsable budget file re-read and echoed in full, a
//! budget read that blocks, idle connections pinning their largest payload buffer, and
//! connections that send half a frame and wait.

use crate::daemon_support;

use daemon_support::{cpu_ticks, test_images, Daemon};
use dvt_edge::client::{read_reply, Client, Image};
use dvt_edge::protocol::{FrameHeader, Layout, PixelType, Status, HEADER_LEN};
use serde_json::{json, Value};
use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A field of /proc/PID/status or /proc/PID/io (`VmRSS`, `rchar`), as its first number.
fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/{file}:\n{text}"))
}

/// Resident memory of the daemon, MiB.
fn rss_mib(pid: u32) -> f64 {
    proc_field(pid, "status", "VmRSS") as f64 / 1024.0
}

/// Polls `cond` every 20 ms until it holds, panicking with `what` after `limit`.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(d: &Daemon) -> Value {
    d.ctl(json!({"cmd": "status"}))
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success(), "mkfifo {}", p.display());
}

/// Puts a FIFO at `p` in one step (rename), so the path is never missing in between.
fn replace_with_fifo(p: &Path) -> std::path::PathBuf {
    let tmp = p.with_extension("fifo");
    mkfifo(&tmp);
    std::fs::rename(&tmp, p).unwrap();
    p.to_path_buf()
}

fn replace_with_file(p: &Path, text: &str) {
    let tmp = p.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, p).unwrap();
}

fn assert_serving(d: &Daemon) {
    let data = test_images(1);
    let r = d
        .client()
        .classify(&Image::u8_hwc(28, 28, 1, data.pixels(0..1)))
        .unwrap();
    assert_eq!(r.status, Status::Ok, "{r:?}");
}

fn file_daemon(budget: &Path) -> Daemon {
    let file = format!("budget.file={}", budget.display());
    Daemon::start(&[
        "--budget-source",
        "file",
        "--set",
        &file,
        "--set",
        "budget.poll_ms=20",
        "--set",
        "budget.safe=0.002gflops",
    ])
}

fn header(len: u32) -> [u8; HEADER_LEN] {
    FrameHeader {
        request_id: 7,
        dtype: PixelType::U8,
        layout: Layout::Hwc,
        height: 28,
        width: 28,
        channels: 1,
        payload_len: len,
        timestamp_ns: 0,
    }
    .encode()
}

#[test]
fn a_fifo_at_the_budget_file_is_refused_without_blocking_the_budget() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("budget");
    std::fs::write(&p, "0.004gflops\n").unwrap();
    let d = file_daemon(&p);
    assert_eq!(
        status(&d)["budget"],
        json!({"kind": "gflops", "value": 0.004})
    );
    // Before the fix `open` blocked on the FIFO for good: no update, `degraded` stayed null.
    replace_with_fifo(&p);
    wait_for(Duration::from_secs(10), "the FIFO is refused", || {
        !status(&d)["degraded"].is_null()
    });
    let st = status(&d);
    assert!(
        st["degraded"]
            .as_str()
            .unwrap()
            .contains("not a regular file"),
        "{st}"
    );
    assert_eq!(
        st["budget"],
        json!({"kind": "gflops", "value": 0.002}),
        "safe"
    );
    // The budget thread is alive: a regular file again is followed at once.
    replace_with_file(&p, "0.01gflops\n");
    wait_for(Duration::from_secs(10), "the new budget is read", || {
        status(&d)["budget"] == json!({"kind": "gflops", "value": 0.01})
    });
    assert!(status(&d)["degraded"].is_null());
}

#[test]
fn an_unparsable_budget_file_is_read_once_capped_and_not_echoed_in_full() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("budget");
    // 20 MiB on one line, no budget in it.
    std::fs::write(&p, vec![b'x'; 20 << 20]).unwrap();
    let d = file_daemon(&p);
    wait_for(Duration::from_secs(10), "the file is refused", || {
        !status(&d)["degraded"].is_null()
    });
    let (pid, t0) = (d.pid(), Instant::now());
    let (rchar, ticks) = (proc_field(pid, "io", "rchar"), cpu_ticks(pid));
    std::thread::sleep(Duration::from_secs(3));
    let read = proc_field(pid, "io", "rchar") - rchar;
    let spent = cpu_ticks(pid) - ticks;
    // Before the fix: the whole file on every poll (20 ms here): ~3 GB and seconds of CPU.
    assert!(read < 1 << 20, "{read} bytes read in {:?}", t0.elapsed());
    assert!(spent < 30, "{spent} CPU ticks in {:?}", t0.elapsed());
    let st = status(&d);
    let text = st.to_string();
    assert!(text.len() < 8 << 10, "status is {} bytes", text.len());
    let why = st["degraded"].as_str().unwrap();
    assert!(why.len() < 300 && why.contains("bytes"), "{why}");
    assert_eq!(
        st["budget"],
        json!({"kind": "gflops", "value": 0.002}),
        "safe"
    );
    assert!(d.log().len() < 64 << 10, "log is {} bytes", d.log().len());
    // A good budget written over it is read at the next poll.
    replace_with_file(&p, "0.01gflops\n");
    wait_for(Duration::from_secs(10), "the new budget is read", || {
        status(&d)["budget"] == json!({"kind": "gflops", "value": 0.01})
    });
}

#[test]
fn a_budget_read_that_blocks_is_caught_from_outside_the_reading_thread() {
    // A Jetson rail whose reading file becomes a FIFO: the source's own read blocks in `open`
    // (any source can block so: a hung mount, a wedged sensor or driver).
    let t = tempfile::tempdir().unwrap();
    let dev = t.path().join("bus/i2c/devices/1-0040");
    let h = dev.join("hwmon/hwmon0");
    std::fs::create_dir_all(&h).unwrap();
    std::fs::write(dev.join("name"), "ina3221\n").unwrap();
    for (f, v) in [
        ("name", "ina3221"),
        ("in1_label", "VDD_IN"),
        ("in1_input", "5000"),
        ("curr1_input", "1200"),
    ] {
        std::fs::write(h.join(f), format!("{v}\n")).unwrap();
    }
    let root = format!("budget.sysfs_root={}", t.path().display());
    let d = Daemon::start(&[
        "--budget-source",
        "jetson",
        "--set",
        &root,
        "--set",
        "budget.poll_ms=20",
        "--set",
        "budget.safe=0.002gflops",
    ]);
    wait_for(Duration::from_secs(10), "a first power reading", || {
        status(&d)["power_watts"].as_f64().is_some()
    });
    let fifo = replace_with_fifo(&h.join("curr1_input"));
    // Before the fix the budget thread hung in that read: `degraded` stayed null for good.
    let t0 = Instant::now();
    wait_for(
        Duration::from_secs(15),
        "the blocked read is noticed",
        || !status(&d)["degraded"].is_null(),
    );
    let st = status(&d);
    assert!(
        st["degraded"]
            .as_str()
            .unwrap()
            .contains("has not returned"),
        "{st}"
    );
    assert_eq!(
        st["budget"],
        json!({"kind": "gflops", "value": 0.002}),
        "safe"
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // Still serving frames and control lines meanwhile.
    assert_serving(&d);
    // The read returns (a writer opens the FIFO): the source recovers.
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(b"1000\n").unwrap();
    drop(w);
    replace_with_file(&h.join("curr1_input"), "1200\n");
    wait_for(Duration::from_secs(10), "the source recovers", || {
        let st = status(&d);
        st["degraded"].is_null()
            && st["budget"]["kind"] == "watts"
            && st["power_watts"]
                .as_f64()
                .is_some_and(|p| (p - 6.0).abs() < 1e-6)
    });
    assert!(d.log().contains("is back"), "{}", d.log());
}

#[test]
fn idle_connections_do_not_keep_the_memory_of_their_largest_frame() {
    let d = Daemon::start(&[]);
    assert_serving(&d);
    let before = rss_mib(d.pid());
    // 48 connections each send one 16 MiB frame (4096x4096 grey, the default payload limit),
    // get it answered, and stay open.
    let big = vec![128u8; 4096 * 4096];
    let mut conns: Vec<Client> = (0..48)
        .map(|i| {
            let mut c = d.client();
            let r = c.classify(&Image::u8_hwc(4096, 4096, 1, &big)).unwrap();
            assert_eq!(r.status, Status::Ok, "frame {i}: {r:?}");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_mib(d.pid());
    eprintln!("dvtd RSS: {before:.0} MiB at start, {after:.0} MiB with 48 idle connections");
    // Before the fix each connection kept its 16 MiB buffer: +768 MiB (issue 14: 845 MiB).
    assert!(
        after - before < 160.0,
        "48 idle connections hold {:.0} MiB more than at start ({before:.0} -> {after:.0} MiB)",
        after - before
    );
    // The connections still work.
    let data = test_images(1);
    for c in &mut conns {
        let r = c
            .classify(&Image::u8_hwc(28, 28, 1, data.pixels(0..1)))
            .unwrap();
        assert_eq!(r.status, Status::Ok);
    }
}

#[test]
fn half_sent_frames_time_out_and_control_lines_keep_a_slot() {
    // Defaults: 256 connections, 10 s frame timeout, 4 of the slots kept for control lines.
    let d = Daemon::start(&[]);
    std::thread::sleep(Duration::from_millis(200)); // the start-up probe's connection closes
    let data = test_images(1);
    // A frame sent in two halves well within the timeout is answered normally.
    let mut slow = UnixStream::connect(&d.socket).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(&header(784)[..20]).unwrap();
    // Half a control line is cut short the same way.
    let mut half_line = UnixStream::connect(&d.socket).unwrap();
    half_line
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    half_line.write_all(br#"{"cmd": "sta"#).unwrap();
    // 256 connections send half a header and wait.
    let t0 = Instant::now();
    let mut stuck: Vec<UnixStream> = (0..256)
        .map(|_| {
            let mut s = UnixStream::connect(&d.socket).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let _ = s.write_all(&header(784)[..20]);
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Before the fix every slot was taken: this was refused with "too many connections".
    let st = status(&d);
    assert_eq!(st["ok"], true, "{st}");
    assert!(st["connections"].as_i64().unwrap() >= 250, "{st}");
    // A frame on a kept slot is refused clearly, and only that connection is closed.
    let r = d
        .client()
        .classify(&Image::u8_hwc(28, 28, 1, data.pixels(0..1)))
        .unwrap();
    assert_eq!(r.status, Status::BadStream, "{r:?}");
    assert!(r.text.contains("too many connections"), "{}", r.text);
    let mut rest = header(784)[20..].to_vec();
    rest.extend_from_slice(data.pixels(0..1));
    slow.write_all(&rest).unwrap();
    let r = read_reply(&mut slow).unwrap();
    assert_eq!((r.status, r.request_id), (Status::Ok, 7), "{r:?}");
    // The stalled connections are answered and closed once their frame is 10 s late.
    let (mut timed_out, mut refused) = (0, 0);
    for s in &mut stuck {
        let r = read_reply(s).expect("a reply before the test's 30 s read timeout");
        assert_eq!(r.status, Status::BadStream, "{r:?}");
        if r.text.contains("not completed within 10 s") {
            timed_out += 1;
        } else {
            assert!(r.text.contains("too many connections"), "{}", r.text);
            refused += 1;
        }
        // Closed: EOF, or a reset when the daemon closed with our bytes unread (refused).
        let mut tail = Vec::new();
        if let Err(e) = s.read_to_end(&mut tail) {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        }
    }
    let mut answer = String::new();
    std::io::BufReader::new(&mut half_line)
        .read_line(&mut answer)
        .unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("control line not completed within 10 s"),
        "{answer}"
    );
    let waited = t0.elapsed();
    assert!(timed_out >= 249 && refused <= 7, "{timed_out} {refused}");
    assert!(
        waited > Duration::from_secs(9) && waited < Duration::from_secs(20),
        "{waited:?}"
    );
    // Frame clients are served again.
    assert_serving(&d);
    let st = status(&d);
    assert!(st["connections"].as_i64().unwrap() <= 3, "{st}");
}

#[test]
fn idle_timeout_closes_idle_connections_only() {
    let d = Daemon::start(&["--set", "idle_timeout_s=0.5"]);
    let data = test_images(1);
    let mut idle = UnixStream::connect(&d.socket).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // A client sending a frame every 200 ms stays open meanwhile.
    let mut busy = d.client();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1500) {
        let r = busy
            .classify(&Image::u8_hwc(28, 28, 1, data.pixels(0..1)))
            .unwrap();
        assert_eq!(r.status, Status::Ok);
        std::thread::sleep(Duration::from_millis(200));
    }
    // The idle one was closed (EOF, no reply: it asked nothing).
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).unwrap(), 0);
    assert!(d.log().contains("idle for 0.5 s; closed"), "{}", d.log());
}
