//! The transport's floor: a bare Unix-socket ping-pong of a frame's request and reply sizes
//! between two processes, which `dvt demo --bench` measures beside the daemon's round trip. The
//! daemon's added latency is judged against it (a ratio), not against an absolute number that
//! changes from machine to machine.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// `busy_us` that makes the echo read each request's busy time from its first 8 bytes
/// ([`PingPong::round_trip_busy_ms`]).
pub const BUSY_PER_REQUEST: u64 = u64::MAX;

/// The echo end: reads `request` bytes from stdin, answers `reply` bytes on stdout, until EOF;
/// with `busy_us` > 0 it computes that long before each answer (as a server that runs a model
/// does), which shows what waking up after a longer wait costs the client; with
/// [`BUSY_PER_REQUEST`] each request says how long. Run as `dvt __echo REQUEST REPLY [BUSY_US]`
/// with both stdin and stdout on one Unix socket.
pub fn echo(request: usize, reply: usize, busy_us: u64) -> std::io::Result<()> {
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut buf = vec![0u8; request.max(1)];
    let answer = vec![0x5au8; reply.max(1)];
    loop {
        match input.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let busy_us = if busy_us == BUSY_PER_REQUEST && buf.len() >= 8 {
            u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"))
        } else {
            busy_us
        };
        if busy_us > 0 {
            let t0 = Instant::now();
            let mut x = 0u64;
            while t0.elapsed().as_micros() < u128::from(busy_us) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        output.write_all(&answer)?;
        output.flush()?;
    }
}

/// A running echo process on the other end of a Unix socket.
pub struct PingPong {
    child: Child,
    sock: UnixStream,
    request: Vec<u8>,
    reply: Vec<u8>,
}

impl PingPong {
    /// Starts `exe __echo request reply busy_us` (normally this `dvt` itself).
    pub fn start(
        exe: &std::path::Path,
        request: usize,
        reply: usize,
        busy_us: u64,
    ) -> std::io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        let theirs_out = theirs.try_clone()?;
        let child = Command::new(exe)
            .args(["__echo", &request.to_string(), &reply.to_string()])
            .arg(busy_us.to_string())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(OwnedFd::from(theirs_out)))
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Self {
            child,
            sock: ours,
            request: vec![0xa5u8; request.max(1)],
            reply: vec![0u8; reply.max(1)],
        })
    }

    /// One round trip whose far end (started with [`BUSY_PER_REQUEST`]) computes `busy_us`
    /// before answering, in milliseconds.
    pub fn round_trip_busy_ms(&mut self, busy_us: u64) -> std::io::Result<f64> {
        if self.request.len() >= 8 {
            self.request[..8].copy_from_slice(&busy_us.to_le_bytes());
        }
        self.round_trip_ms()
    }

    /// One round trip, in milliseconds.
    pub fn round_trip_ms(&mut self) -> std::io::Result<f64> {
        let t0 = Instant::now();
        self.sock.write_all(&self.request)?;
        self.sock.read_exact(&mut self.reply)?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}
