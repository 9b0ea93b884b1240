//! The socket: accepts connections, and per connection reads frames and control lines
//! (pipelined: a reader thread queues frames without waiting for answers, a writer thread
//! sends replies as the worker produces them). No client can hold more than its share: payload
//! buffers kept between frames are capped for all connections together ([`buffers`]), a frame
//! that stops arriving half-way closes its connection ([`timeouts`]), and a few connection
//! slots stay open for control lines when frame clients hold all the others.

pub(super) mod buffers;
mod spin;
mod timeouts;

use super::frame;
use super::log::{limited, log, Level};
use super::metrics::ErrorKind;
use super::worker::{Job, Outgoing};
use super::{Event, Shared};
use crate::protocol::control::{self, Command, MAX_LINE};
use crate::protocol::{FrameHeader, HeaderError, Reply, Status, HEADER_LEN, REQUEST_MAGIC};
use buffers::{BufferBudget, PayloadBuf};
use spin::Spinner;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub use timeouts::Timeouts;
use timeouts::{Closed, ConnState, Registry};

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest payload.
    pub max_payload: u32,
    /// Most connections.
    pub max_connections: usize,
    /// Of those, slots kept for control lines (at most `max_connections - 1` are kept).
    pub control_connections: usize,
    /// Payload buffer capacity kept between frames by all connections together, bytes.
    pub kept_payload: usize,
    /// Frame and idle timeouts.
    pub timeouts: Timeouts,
    /// How long a reader polls for its connection's next message before it sleeps
    /// ([`spin`]; zero: it sleeps at once).
    pub idle_spin: Duration,
}

impl Limits {
    fn kept_slots(&self) -> usize {
        self.control_connections
            .min(self.max_connections.saturating_sub(1))
    }
}

fn secs(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64())
}

/// Accepts until the daemon drains, then drops the listener (its job sender with it).
pub fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    jobs: SyncSender<Job>,
    events: Sender<Event>,
    limits: Limits,
) {
    let registry = Registry::new();
    let buffers = BufferBudget::new(limits.kept_payload);
    let spinner = Arc::new(Spinner::default());
    if limits.timeouts.frame.is_some() || limits.timeouts.idle.is_some() {
        let (r, sh) = (registry.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name("dvtd-timeouts".into())
            .spawn(move || r.enforce(limits.timeouts, || sh.draining.load(Relaxed)));
        if let Err(e) = spawned {
            log(
                Level::Error,
                format!("cannot start the connection timeouts thread, serving without: {e}"),
            );
        }
    }
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        if shared.draining.load(Relaxed) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                limited(Level::Warn, format!("accept failed: {e}"));
                continue;
            }
        };
        if shared.metrics.connections.load(Relaxed) >= limits.max_connections as i64 {
            shared.metrics.error(ErrorKind::Connections);
            limited(
                Level::Warn,
                format!(
                    "refusing a connection: {} already open",
                    limits.max_connections
                ),
            );
            let r = Reply::error(
                0,
                0,
                Status::BadStream,
                format!("too many connections (limit {})", limits.max_connections),
            );
            let _ = (&stream).write_all(&r.encode());
            continue;
        }
        // Frame clients get all slots but the kept ones; a connection in a kept slot may
        // send control lines only (it is not known what a client sends before it does).
        let open = shared.metrics.connections.load(Relaxed).max(0) as usize;
        let frame_open = open.saturating_sub(registry.control_only());
        let control_only = frame_open >= limits.max_connections - limits.kept_slots();
        let handle = match stream.try_clone() {
            Ok(h) => h,
            Err(e) => {
                limited(Level::Warn, format!("refusing a connection: {e}"));
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        if let Ok(clone) = stream.try_clone() {
            shared.register(id, clone);
        }
        let state = registry.add(id, handle, control_only);
        shared.metrics.connections.fetch_add(1, Relaxed);
        let ends = Ends {
            shared: shared.clone(),
            jobs: jobs.clone(),
            events: events.clone(),
            registry: registry.clone(),
            buffers: buffers.clone(),
            spinner: spinner.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("dvtd-conn-{id}"))
            .spawn(move || connection(id, stream, ends, state, limits));
        if let Err(e) = spawned {
            log(
                Level::Error,
                format!("cannot start a connection thread: {e}"),
            );
            registry.remove(id);
            shared.unregister(id);
            shared.metrics.connections.fetch_sub(1, Relaxed);
        }
    }
}

/// What a connection thread shares with the rest of the daemon.
struct Ends {
    shared: Arc<Shared>,
    jobs: SyncSender<Job>,
    events: Sender<Event>,
    registry: Arc<Registry>,
    buffers: Arc<BufferBudget>,
    spinner: Arc<Spinner>,
}

fn connection(id: u64, stream: UnixStream, ends: Ends, state: Arc<ConnState>, limits: Limits) {
    let Ends {
        shared,
        jobs,
        events,
        registry,
        buffers,
        spinner,
    } = ends;
    let (out, rx) = mpsc::channel::<Outgoing>();
    let written = state.clone();
    let lines = Arc::new(AtomicUsize::new(0));
    let write_half = match stream.try_clone() {
        Ok(w) => Arc::new(Mutex::new(BufWriter::with_capacity(64 * 1024, w))),
        Err(e) => {
            limited(Level::Warn, format!("connection {id}: {e}"));
            registry.remove(id);
            shared.unregister(id);
            shared.metrics.connections.fetch_sub(1, Relaxed);
            shared.connection_closed();
            return;
        }
    };
    let (w, l) = (write_half.clone(), lines.clone());
    let writer = std::thread::Builder::new()
        .name(format!("dvtd-write-{id}"))
        .spawn(move || write_loop(&w, rx, &written.unanswered, &l));
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let conn = Conn {
        shared: &shared,
        jobs: &jobs,
        events: &events,
        out: &out,
        state: &state,
        limits,
        write_half: &write_half,
        lines: &lines,
        spinner: &spinner,
    };
    let end = read_loop(&mut reader, &conn, PayloadBuf::new(buffers));
    if let Err(e) = end {
        limited(Level::Info, format!("connection {id}: {e}"));
    }
    drop(jobs);
    drop(out); // the writer ends once every queued frame of this connection is answered
    if let Ok(w) = writer {
        let _ = w.join();
    }
    registry.remove(id);
    shared.unregister(id);
    shared.metrics.connections.fetch_sub(1, Relaxed);
    shared.connection_closed();
}

/// Frames read but not yet answered on the wire, per connection, before the reader pauses:
/// a client that never reads its replies stalls itself (socket back-pressure) instead of
/// growing the daemon's memory.
pub const MAX_UNANSWERED: usize = 4096;

/// A connection's write half: the writer thread and (for a frame run to completion on the
/// reader) the reader write under its lock, so replies never interleave.
type WriteHalf = Arc<Mutex<BufWriter<UnixStream>>>;

fn write_loop(
    w: &WriteHalf,
    rx: mpsc::Receiver<Outgoing>,
    unanswered: &AtomicUsize,
    lines: &AtomicUsize,
) {
    // Counters drop under the write lock, after the bytes are in the buffer: a reader that
    // sees both at 0 under the lock knows nothing is waiting to go out before its reply.
    let put = |w: &mut BufWriter<UnixStream>, o: Outgoing| match o {
        Outgoing::Frame(r) => {
            let res = w.write_all(&r.encode());
            unanswered.fetch_sub(1, Relaxed);
            res
        }
        Outgoing::Line(l) => {
            let res = w.write_all(l.as_bytes()).and_then(|_| w.write_all(b"\n"));
            lines.fetch_sub(1, Relaxed);
            res
        }
    };
    while let Ok(o) = rx.recv() {
        let mut g = w.lock().unwrap_or_else(|e| e.into_inner());
        let mut ok = put(&mut g, o).is_ok();
        while ok {
            match rx.try_recv() {
                Ok(o) => ok = put(&mut g, o).is_ok(),
                Err(_) => break,
            }
        }
        if !ok || g.flush().is_err() {
            drop(g);
            // The client is gone: keep receiving (and dropping) so the worker never blocks.
            for o in rx.iter() {
                match o {
                    Outgoing::Frame(_) => unanswered.fetch_sub(1, Relaxed),
                    Outgoing::Line(_) => lines.fetch_sub(1, Relaxed),
                };
            }
            return;
        }
    }
    let _ = w.lock().unwrap_or_else(|e| e.into_inner()).flush();
}

/// What a connection's reader works with.
struct Conn<'a> {
    shared: &'a Shared,
    jobs: &'a SyncSender<Job>,
    events: &'a Sender<Event>,
    out: &'a Sender<Outgoing>,
    state: &'a ConnState,
    limits: Limits,
    write_half: &'a WriteHalf,
    /// Control replies queued for the writer and not yet written.
    lines: &'a AtomicUsize,
    spinner: &'a Spinner,
}

impl Conn<'_> {
    /// Sends a frame reply (counted as answered by the writer).
    fn reply(&self, r: Reply) {
        self.state.unanswered.fetch_add(1, Relaxed);
        let _ = self.out.send(Outgoing::Frame(r));
    }

    /// Sends a control reply line.
    fn line(&self, text: String) {
        self.lines.fetch_add(1, Relaxed);
        let _ = self.out.send(Outgoing::Line(text));
    }

    /// Runs `job` on this thread when the worker is idle, nothing is queued and the cascade may
    /// run here, and writes the reply straight to the socket when nothing is waiting to go out
    /// before it: the frame then costs no thread hand-off at all. Gives the job back otherwise.
    fn run_here(&self, job: Job) -> Result<Result<(), String>, Job> {
        let m = &self.shared.metrics;
        if m.queue_depth.load(Relaxed) != 0 {
            return Err(job);
        }
        let Some(serving) = self.shared.serving.get() else {
            return Err(job);
        };
        let Ok(mut s) = serving.try_lock() else {
            return Err(job);
        };
        if !s.runs_on_any_thread() {
            return Err(job);
        }
        self.state.unanswered.fetch_add(1, Relaxed);
        let replies = s.serve(vec![job], self.shared);
        drop(s);
        for (to, r) in replies {
            let mut w = self.write_half.lock().unwrap_or_else(|e| e.into_inner());
            if self.state.unanswered.load(Relaxed) == 1 && self.lines.load(Relaxed) == 0 {
                let res = w.write_all(&r.encode()).and_then(|_| w.flush());
                self.state.unanswered.fetch_sub(1, Relaxed);
                if let Err(e) = res {
                    return Ok(Err(format!("write failed: {e}")));
                }
            } else {
                drop(w);
                let _ = to.send(Outgoing::Frame(r));
            }
        }
        Ok(Ok(()))
    }

    /// Why the timeouts closed the connection, for the log (`what`: the message cut short).
    fn ended(&self, why: Closed, what: &str) -> String {
        match why {
            Closed::Idle => format!(
                "idle for {} s; closed",
                secs(self.state.idle_limit(&self.limits.timeouts))
            ),
            Closed::Late => format!(
                "{what} not completed within {} s; closed",
                secs(self.limits.timeouts.frame)
            ),
        }
    }

    /// Answers a frame that did not arrive in time, and says so for the log.
    fn late_frame(&self, id: u64, ts: u64) -> String {
        let m = &self.shared.metrics;
        m.error(ErrorKind::BadStream);
        m.frames_error.fetch_add(1, Relaxed);
        let t = secs(self.limits.timeouts.frame);
        self.reply(Reply::error(
            id,
            ts,
            Status::BadStream,
            format!("frame not completed within {t} s; closing the connection"),
        ));
        format!("frame {id} not completed within {t} s; closed")
    }

    /// After a read inside a message failed or came up short: a timeout's answer if the
    /// timeouts shut the connection, else `disconnected`.
    fn cut_short(&self, id: u64, ts: u64, disconnected: String) -> String {
        if self.state.closed_by_timeout() == Some(Closed::Late) {
            self.late_frame(id, ts)
        } else {
            self.shared.metrics.error(ErrorKind::Disconnect);
            disconnected
        }
    }
}

/// Reads messages until EOF or a stream error; `Err` carries a line for the log.
fn read_loop(
    reader: &mut BufReader<UnixStream>,
    c: &Conn<'_>,
    mut payload: PayloadBuf,
) -> Result<(), String> {
    loop {
        while c.state.unanswered.load(Relaxed) >= MAX_UNANSWERED {
            std::thread::sleep(Duration::from_millis(1));
        }
        if reader.buffer().is_empty() {
            c.spinner
                .until_readable(reader.get_ref(), c.limits.idle_spin);
        }
        let first = match reader.fill_buf() {
            Ok([]) => {
                return match c.state.closed_by_timeout() {
                    Some(why) => Err(c.ended(why, "message")),
                    None => Ok(()),
                }
            }
            Ok(b) => b[0],
            Err(e) => return Err(format!("read failed: {e}")),
        };
        if matches!(first, b'\n' | b'\r' | b' ' | b'\t') {
            reader.consume(1);
            continue;
        }
        c.state.begin().map_err(|why| c.ended(why, "message"))?;
        if first == b'{' {
            control_line(reader, c)?;
        } else if c.state.control_only {
            c.shared.metrics.error(ErrorKind::Connections);
            c.reply(Reply::error(
                0,
                0,
                Status::BadStream,
                format!(
                    "too many connections (limit {}): this connection holds a slot kept for \
                     control lines; closing it",
                    c.limits.max_connections
                ),
            ));
            return Err("a frame in a slot kept for control lines; closed".into());
        } else {
            frame(reader, c, &mut payload)?;
        }
        c.state.done();
    }
}

/// Reads and answers one control line.
fn control_line(reader: &mut BufReader<UnixStream>, c: &Conn<'_>) -> Result<(), String> {
    let m = &c.shared.metrics;
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("read failed: {e}"))?;
    if n > MAX_LINE {
        m.error(ErrorKind::BadControl);
        c.line(error_json(&format!(
            "control line longer than {MAX_LINE} bytes"
        )));
        return Err("control line too long; closed".into());
    }
    if let Err(why) = c.state.received() {
        m.error(ErrorKind::BadControl);
        c.line(error_json(&format!(
            "control line not completed within {} s; closing the connection",
            secs(c.limits.timeouts.frame)
        )));
        return Err(c.ended(why, "control line"));
    }
    let text = String::from_utf8_lossy(&line);
    let reply = match control::parse_command(&text) {
        Ok(cmd) => execute(cmd, c.shared, c.events),
        Err(e) => {
            m.error(ErrorKind::BadControl);
            error_json(&e.to_string())
        }
    };
    c.line(reply);
    Ok(())
}

/// Reads one frame and queues it for the worker, or answers why not.
fn frame(
    reader: &mut BufReader<UnixStream>,
    c: &Conn<'_>,
    payload: &mut PayloadBuf,
) -> Result<(), String> {
    let (shared, jobs, limits) = (c.shared, c.jobs, c.limits);
    let m = &shared.metrics;
    let mut hb = [0u8; HEADER_LEN];
    if let Err(e) = reader.read_exact(&mut hb) {
        return Err(c.cut_short(0, 0, format!("disconnected inside a frame header: {e}")));
    }
    let received = Instant::now();
    let header = match FrameHeader::decode(&hb, limits.max_payload) {
        Ok(h) => h,
        Err((e, raw)) => {
            let id = raw.map_or(0, |r| r.request_id);
            let ts = u64::from_le_bytes(hb[32..40].try_into().expect("8 bytes"));
            m.frames_error.fetch_add(1, Relaxed);
            if e.is_fatal() {
                m.error(match e {
                    HeaderError::TooLarge { .. } => ErrorKind::TooLarge,
                    _ => ErrorKind::BadStream,
                });
                let garbage = hb[0..4] != REQUEST_MAGIC;
                c.reply(Reply::error(
                    id,
                    ts,
                    Status::BadStream,
                    format!("{e}; closing the connection"),
                ));
                return Err(if garbage {
                    format!("not a frame or a control line ({e}); closed")
                } else {
                    format!("{e}; closed")
                });
            }
            m.error(ErrorKind::BadHeader);
            let len = raw.map_or(0, |r| u64::from(r.payload_len));
            let skipped = std::io::copy(&mut reader.by_ref().take(len), &mut std::io::sink())
                .map_err(|e| format!("read failed: {e}"))?;
            if skipped < len || c.state.received().is_err() {
                return Err(c.cut_short(id, ts, "disconnected inside a frame payload".into()));
            }
            c.reply(Reply::error(id, ts, Status::BadRequest, e.to_string()));
            return Ok(());
        }
    };
    let (id, ts) = (header.request_id, header.timestamp_ns);
    let buf = payload.get(header.payload_len as usize);
    if let Err(e) = reader.read_exact(buf) {
        return Err(c.cut_short(id, ts, format!("disconnected inside frame {id}: {e}")));
    }
    if c.state.received().is_err() {
        return Err(c.late_frame(id, ts));
    }
    let spec = shared.input();
    let image = frame::to_input(&header, buf, &spec);
    payload.settle();
    let image = match image {
        Ok(v) => v,
        Err(e) => {
            m.error(ErrorKind::BadPixels);
            m.frames_error.fetch_add(1, Relaxed);
            c.reply(Reply::error(id, ts, Status::BadRequest, e.to_string()));
            return Ok(());
        }
    };
    let job = Job {
        id,
        timestamp_ns: ts,
        image,
        shape: [spec.channels, spec.height, spec.width],
        received,
        reply: c.out.clone(),
    };
    let job = match c.run_here(job) {
        Ok(done) => return done,
        Err(job) => job,
    };
    m.queue_depth.fetch_add(1, Relaxed);
    c.state.unanswered.fetch_add(1, Relaxed);
    if let Err(e) = jobs.try_send(job) {
        m.queue_depth.fetch_sub(1, Relaxed);
        c.state.unanswered.fetch_sub(1, Relaxed);
        let (status, text) = match e {
            TrySendError::Full(_) => {
                m.frames_busy.fetch_add(1, Relaxed);
                (
                    Status::Busy,
                    "busy: the queue is full, retry later".to_string(),
                )
            }
            TrySendError::Disconnected(_) => {
                m.frames_error.fetch_add(1, Relaxed);
                (Status::Internal, "the daemon is shutting down".to_string())
            }
        };
        c.reply(Reply::error(id, ts, status, text));
    }
    Ok(())
}

fn error_json(msg: &str) -> String {
    serde_json::json!({"ok": false, "error": msg}).to_string()
}

/// Runs one control command; returns the JSON reply line.
pub fn execute(cmd: Command, shared: &Shared, events: &Sender<Event>) -> String {
    match cmd {
        Command::Status => shared.status_json().to_string(),
        Command::Stats => shared.stats_json().to_string(),
        Command::Metrics => {
            serde_json::json!({"ok": true, "text": shared.metrics_text()}).to_string()
        }
        Command::Health => {
            let (ok, why) = shared.health();
            serde_json::json!({"ok": ok, "health": why}).to_string()
        }
        Command::SetBudget(b) => {
            shared.set_override(b);
            let mut v = shared.status_json();
            v["set"] = b.as_ref().map_or(
                serde_json::Value::String("auto".into()),
                control::budget_json,
            );
            v.to_string()
        }
        Command::Reload => {
            let (tx, rx) = mpsc::channel();
            if events.send(Event::Reload(tx)).is_err() {
                return error_json("the daemon is shutting down");
            }
            match rx.recv() {
                Ok(Ok(msg)) => serde_json::json!({"ok": true, "reloaded": msg}).to_string(),
                Ok(Err(e)) => error_json(&format!(
                    "reload refused, still serving the old bundle: {e}"
                )),
                Err(_) => error_json("the daemon is shutting down"),
            }
        }
        Command::Drain => {
            let _ = events.send(Event::Drain);
            serde_json::json!({"ok": true, "draining": true}).to_string()
        }
    }
}
