//! The real `dvtd` on a real socket: answers match an in-process cascade, and bad input of
//! every kind gets a clear reply while the daemon keeps serving.

use crate::daemon_support;

use daemon_support::{bundle_dir, in_process, test_images, Daemon};
use dvt_edge::bundle::Bundle;
use dvt_edge::client::{read_reply, Client, Image, Pixels};
use dvt_edge::protocol::{FrameHeader, Layout, PixelType, Status, HEADER_LEN};
use serde_json::json;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn header(id: u64, h: u16, w: u16, c: u16, dtype: PixelType, len: u32) -> [u8; HEADER_LEN] {
    FrameHeader {
        request_id: id,
        dtype,
        layout: Layout::Hwc,
        height: h,
        width: w,
        channels: c,
        payload_len: len,
        timestamp_ns: 99,
    }
    .encode()
}

/// Still serving: a fresh connection classifies a real image.
fn assert_serving(d: &Daemon) {
    let data = test_images(1);
    let r = d
        .client()
        .classify(&Image::u8_hwc(28, 28, 1, data.pixels(0..1)))
        .unwrap();
    assert_eq!(r.status, Status::Ok, "{r:?}");
}

fn raw(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads until EOF; the daemon must have closed its side.
fn assert_closed(s: &mut UnixStream) {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("daemon closes the connection");
}

#[test]
fn pipelined_answers_match_the_in_process_cascade() {
    let n = 150;
    let data = test_images(n);
    let expected = in_process(&bundle_dir(), &data);
    let labels = Bundle::load(bundle_dir()).unwrap().manifest.model.classes;
    let d = Daemon::start(&["--max-batch", "1", "--queue", "1024"]);
    let mut c = d.client();
    for i in 0..n {
        c.send(
            &Image::u8_hwc(28, 28, 1, data.pixels(i..i + 1)),
            1000 + i as u64,
        )
        .unwrap();
    }
    c.flush().unwrap();
    let mut seen = HashSet::new();
    for _ in 0..n {
        let r = c.recv().unwrap();
        assert_eq!(r.status, Status::Ok, "{r:?}");
        let i = r.request_id as usize;
        assert!(seen.insert(i), "id {i} answered twice");
        assert_eq!(r.timestamp_ns, 1000 + i as u64);
        let e = expected[i];
        assert_eq!(r.class as usize, e.class, "image {i}");
        assert_eq!(r.exit_stage as usize, e.exit_stage + 1, "image {i}");
        assert!(
            (r.confidence - e.confidence).abs() < 1e-5,
            "image {i}: {} vs {}",
            r.confidence,
            e.confidence
        );
        // The wire carries f32: the same f64 rounded once.
        assert_eq!(r.gflops, e.gflops as f32, "image {i}");
        assert_eq!(r.text, labels[e.class]);
        assert!(r.latency_us >= r.compute_us);
    }
    // Control lines on the same connection after the frames.
    let st = c.command(&json!({"cmd": "stats"})).unwrap();
    assert_eq!(st["frames"]["ok"], n);
    let exits: u64 = st["exits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(exits, n as u64);
}

#[test]
fn a_client_that_polls_for_replies_gets_the_same_answers_and_a_blocking_socket_back() {
    let n = 40;
    let data = test_images(n);
    let expected = in_process(&bundle_dir(), &data);
    let d = Daemon::start(&[]);
    let mut c = d.client();
    // Longer than a frame takes (the poll ends with the reply) and shorter (it falls back to
    // a blocking read): both must give the reply.
    for (i, spin_us) in (0..n).zip([5_000u64, 1].into_iter().cycle()) {
        c.set_reply_spin(Duration::from_micros(spin_us));
        let r = c
            .classify(&Image::u8_hwc(28, 28, 1, data.pixels(i..i + 1)))
            .unwrap();
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert_eq!(r.class as usize, expected[i].class, "image {i}");
        assert_eq!(
            r.exit_stage as usize,
            expected[i].exit_stage + 1,
            "image {i}"
        );
    }
    // A control line waits for its answer with a blocking read: it would fail with
    // WouldBlock if the poll had left the socket non-blocking.
    std::thread::sleep(Duration::from_millis(20));
    let st = c.command(&json!({"cmd": "stats"})).unwrap();
    assert_eq!(st["frames"]["ok"], n);
    // The halves of a split client never poll (the sender would see O_NONBLOCK).
    c.set_reply_spin(Duration::from_millis(5));
    let (mut tx, mut rx) = c.split();
    tx.send(&Image::u8_hwc(28, 28, 1, data.pixels(0..1)), 7)
        .unwrap();
    tx.flush().unwrap();
    let r = rx.recv().unwrap();
    assert_eq!((r.status, r.timestamp_ns), (Status::Ok, 7));
}

#[test]
fn batched_answers_agree_with_the_in_process_cascade() {
    let n = 120;
    let data = test_images(n);
    let expected = in_process(&bundle_dir(), &data);
    let d = Daemon::start(&["--max-batch", "8", "--queue", "1024"]);
    let mut c = d.client();
    for i in 0..n {
        c.send(&Image::u8_hwc(28, 28, 1, data.pixels(i..i + 1)), 0)
            .unwrap();
    }
    c.flush().unwrap();
    let mut agree = 0;
    for _ in 0..n {
        let r = c.recv().unwrap();
        assert_eq!(r.status, Status::Ok);
        let e = expected[r.request_id as usize];
        if r.class as usize == e.class && r.exit_stage as usize == e.exit_stage + 1 {
            agree += 1;
            assert!((r.confidence - e.confidence).abs() < 1e-3);
        }
    }
    // Batched matrix products may round differently; a frame on a threshold may move.
    assert!(agree >= n - 2, "{agree}/{n} agree");
}

#[test]
fn garbage_bad_magic_and_bad_version_are_answered_and_closed() {
    let d = Daemon::start(&[]);
    // Garbage.
    let mut s = raw(&d);
    s.write_all(&[0xde; 100]).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!(r.status, Status::BadStream);
    assert!(r.text.contains("bad magic"), "{}", r.text);
    assert_closed(&mut s);
    // Wrong magic that starts like a frame.
    let mut s = raw(&d);
    let mut h = header(5, 28, 28, 1, PixelType::U8, 784);
    h[3] = b'X';
    s.write_all(&h).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!(r.status, Status::BadStream);
    assert_closed(&mut s);
    // Wrong version.
    let mut s = raw(&d);
    let mut h = header(6, 28, 28, 1, PixelType::U8, 784);
    h[4..6].copy_from_slice(&99u16.to_le_bytes());
    s.write_all(&h).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!(r.status, Status::BadStream);
    assert!(r.text.contains("version 99"), "{}", r.text);
    assert_closed(&mut s);
    // A bad control line is answered and the connection stays usable.
    let mut c = d.client();
    let bad = c.command(&json!({"cmd": "explode"})).unwrap();
    assert_eq!(bad["ok"], false);
    assert!(bad["error"].as_str().unwrap().contains("unknown cmd"));
    assert_eq!(c.command(&json!({"cmd": "status"})).unwrap()["ok"], true);
    let st = d.ctl(json!({"cmd": "stats"}));
    assert!(st["errors"]["bad_stream"].as_u64().unwrap() >= 3, "{st}");
    assert_serving(&d);
}

#[test]
fn absurd_payload_length_is_refused_without_allocating_it() {
    let d = Daemon::start(&[]);
    let rss = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let before = rss(d.pid());
    let mut s = raw(&d);
    // 65535 x 65535 x 4 f32 would be ~68 GB; the announced length is 4 GiB - 1.
    s.write_all(&header(77, 65535, 65535, 4, PixelType::F32, u32::MAX))
        .unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.status, r.request_id), (Status::BadStream, 77));
    assert!(r.text.contains("exceeds the limit"), "{}", r.text);
    assert_closed(&mut s);
    let after = rss(d.pid());
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} kB to {after} kB"
    );
    assert_serving(&d);
}

#[test]
fn wrong_sizes_and_nan_pixels_get_an_error_and_the_connection_goes_on() {
    let data = test_images(1);
    let d = Daemon::start(&[]);
    let mut s = raw(&d);
    // Length that does not match the geometry: skipped, answered, connection kept.
    s.write_all(&header(1, 32, 32, 1, PixelType::U8, 784))
        .unwrap();
    s.write_all(&[0u8; 784]).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.status, r.request_id), (Status::BadRequest, 1));
    assert!(r.text.contains("32x32x1"), "{}", r.text);
    // NaN pixels.
    let mut px = vec![0.5f32; 784];
    px[300] = f32::NAN;
    let bytes: Vec<u8> = px.iter().flat_map(|v| v.to_le_bytes()).collect();
    s.write_all(&header(2, 28, 28, 1, PixelType::F32, 784 * 4))
        .unwrap();
    s.write_all(&bytes).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.status, r.request_id), (Status::BadRequest, 2));
    assert!(
        r.text.contains("must be finite") && r.text.contains("300"),
        "{}",
        r.text
    );
    // Two channels cannot become a grey image.
    s.write_all(&header(3, 28, 28, 2, PixelType::U8, 784 * 2))
        .unwrap();
    s.write_all(&[0u8; 784 * 2]).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.status, r.request_id), (Status::BadRequest, 3));
    // A frame of another size and colour is resized and converted.
    let big: Vec<u8> = (0..56 * 56 * 3).map(|i| (i % 251) as u8).collect();
    s.write_all(&header(4, 56, 56, 3, PixelType::U8, 56 * 56 * 3))
        .unwrap();
    s.write_all(&big).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.status, r.request_id), (Status::Ok, 4), "{r:?}");
    // And the same connection still classifies a real image.
    s.write_all(&header(5, 28, 28, 1, PixelType::U8, 784))
        .unwrap();
    s.write_all(data.pixels(0..1)).unwrap();
    let r = read_reply(&mut s).unwrap();
    assert_eq!((r.status, r.request_id), (Status::Ok, 5));
    let st = d.ctl(json!({"cmd": "stats"}));
    assert_eq!(st["errors"]["bad_header"], 1, "{st}");
    assert_eq!(st["errors"]["bad_pixels"], 2, "{st}");
}

#[test]
fn truncated_header_and_mid_frame_disconnects_leave_the_daemon_up() {
    let data = test_images(1);
    let mut d = Daemon::start(&[]);
    {
        let mut s = raw(&d);
        s.write_all(&header(1, 28, 28, 1, PixelType::U8, 784)[..20])
            .unwrap();
    } // closed after half a header
    {
        let mut s = raw(&d);
        s.write_all(&header(2, 28, 28, 1, PixelType::U8, 784))
            .unwrap();
        s.write_all(&data.pixels(0..1)[..300]).unwrap();
    } // closed after part of the payload
    std::thread::sleep(Duration::from_millis(200));
    assert!(d.alive());
    assert_serving(&d);
    let st = d.ctl(json!({"cmd": "stats"}));
    assert_eq!(st["errors"]["disconnect"], 2, "{st}");
    assert!(d.log().contains("disconnected inside"), "{}", d.log());
}

#[test]
fn sixty_four_connections_at_once() {
    let n = 64;
    let per = 4;
    let data = test_images(n * per);
    let expected = in_process(&bundle_dir(), &data);
    // The queue holds every frame: this test is about connections, not back-pressure.
    let d = Daemon::start(&["--queue", "1024"]);
    let clients: Vec<Client> = (0..n).map(|_| d.client()).collect();
    let st = d.ctl(json!({"cmd": "status"}));
    assert!(st["connections"].as_i64().unwrap() >= n as i64, "{st}");
    std::thread::scope(|sc| {
        for (k, mut c) in clients.into_iter().enumerate() {
            let (data, expected) = (&data, &expected);
            sc.spawn(move || {
                for i in 0..per {
                    let img = k * per + i;
                    c.send(
                        &Image::u8_hwc(28, 28, 1, data.pixels(img..img + 1)),
                        img as u64,
                    )
                    .unwrap();
                }
                c.flush().unwrap();
                for _ in 0..per {
                    let r = c.recv().unwrap();
                    assert_eq!(r.status, Status::Ok, "{r:?}");
                    let e = expected[r.timestamp_ns as usize];
                    // Batches mix frames of several connections; compare the class only.
                    assert_eq!(r.class as usize, e.class);
                }
            });
        }
    });
    let st = d.ctl(json!({"cmd": "stats"}));
    assert_eq!(st["frames"]["ok"], n * per);
}

#[test]
fn a_full_queue_answers_busy_never_drops() {
    // Several pipelining connections: one frame runs on its reader while the worker is idle
    // (so a single connection is throttled by its socket rather than answered busy); the others
    // meet a one-frame queue that is full.
    let (conns, n) = (4, 1000);
    let data = test_images(1);
    let d = Daemon::start(&["--queue", "1", "--max-batch", "1"]);
    let px = data.pixels(0..1).to_vec();
    let (mut ok, mut busy) = (0, 0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|_| {
                let (mut tx, mut rx) = d.client().split();
                let px = px.clone();
                s.spawn(move || {
                    let sender = std::thread::spawn(move || {
                        for _ in 0..n {
                            tx.send(&Image::u8_hwc(28, 28, 1, &px), 0).unwrap();
                        }
                        tx.finish().unwrap();
                    });
                    let mut seen = HashSet::new();
                    let (mut ok, mut busy) = (0, 0);
                    for _ in 0..n {
                        let r = rx.recv().unwrap();
                        assert!(
                            seen.insert(r.request_id),
                            "id {} answered twice",
                            r.request_id
                        );
                        match r.status {
                            Status::Ok => ok += 1,
                            Status::Busy => {
                                assert!(r.text.contains("busy"));
                                busy += 1
                            }
                            s => panic!("unexpected {s:?}: {}", r.text),
                        }
                    }
                    sender.join().unwrap();
                    assert_eq!(seen.len(), n);
                    (ok, busy)
                })
            })
            .collect();
        for h in handles {
            let (o, b) = h.join().unwrap();
            ok += o;
            busy += b;
        }
    });
    assert_eq!(ok + busy, conns * n, "every frame answered");
    assert!(busy > 0 && ok > 0, "ok {ok}, busy {busy}");
    let st = d.ctl(json!({"cmd": "stats"}));
    assert_eq!(st["frames"]["busy"], busy, "{st}");
    assert_eq!(st["frames"]["ok"], ok);
}

#[test]
fn f32_nchw_frames_match_u8_frames() {
    let data = test_images(3);
    let d = Daemon::start(&["--max-batch", "1"]);
    let mut c = d.client();
    for i in 0..3 {
        let px = data.pixels(i..i + 1);
        let a = c.classify(&Image::u8_hwc(28, 28, 1, px)).unwrap();
        let f: Vec<f32> = px.iter().map(|&p| p as f32 / 255.0).collect();
        let b = c
            .classify(&Image {
                height: 28,
                width: 28,
                channels: 1,
                layout: Layout::Nchw,
                pixels: Pixels::F32(&f),
            })
            .unwrap();
        assert_eq!((a.class, a.exit_stage), (b.class, b.exit_stage));
        assert!((a.confidence - b.confidence).abs() < 1e-5);
    }
}

#[test]
fn a_client_that_never_reads_replies_is_throttled_not_buffered() {
    let data = test_images(1);
    let d = Daemon::start(&[]);
    let mut s = raw(&d);
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut frame = header(0, 28, 28, 1, PixelType::U8, 784).to_vec();
    frame.extend_from_slice(data.pixels(0..1));
    let mut sent = 0u64;
    // Write without reading until the daemon stops taking frames (the write times out).
    while sent < 1_000_000 && s.write_all(&frame).is_ok() {
        sent += 1;
    }
    assert!(
        sent < 1_000_000,
        "the daemon kept reading with no reply read"
    );
    let st = d.ctl(json!({"cmd": "stats"}));
    let read = st["frames"]["ok"].as_u64().unwrap() + st["frames"]["busy"].as_u64().unwrap();
    // At most the per-connection limit in memory plus what the socket buffers hold.
    assert!(read < 4096 + 20_000, "{read} frames read: {st}");
    assert_serving(&d);
    // Reading the replies resumes the stream: every frame read is answered.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answered = 0u64;
    while read_reply(&mut s).is_ok() {
        answered += 1;
    }
    let st = d.ctl(json!({"cmd": "stats"}));
    let total = st["frames"]["ok"].as_u64().unwrap() + st["frames"]["busy"].as_u64().unwrap();
    assert_eq!(answered, total - 1, "{st}"); // minus assert_serving's frame
    assert!(answered >= read);
}

#[test]
fn connections_beyond_the_limit_are_answered_and_closed() {
    let d = Daemon::start(&["--set", "max_connections=2"]);
    std::thread::sleep(Duration::from_millis(200)); // the start-up probe's connection closes
    let a = d.client();
    let b = d.client();
    let mut c = raw(&d);
    let r = read_reply(&mut c).unwrap();
    assert_eq!(r.status, Status::BadStream);
    assert!(r.text.contains("too many connections"), "{}", r.text);
    assert_closed(&mut c);
    drop((a, b));
    std::thread::sleep(Duration::from_millis(100));
    assert_serving(&d);
}
