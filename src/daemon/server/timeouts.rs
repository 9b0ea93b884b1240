//! Connection timeouts: a frame or control line whose first byte has arrived must arrive in
//! full within the frame timeout, and a connection with nothing arriving and no reply pending
//! may stay idle only for the idle timeout. A connection past either is shut for reading, so
//! its reader wakes, answers why and closes. One `dvtd-timeouts` thread checks every
//! connection a few times per timeout; readers only store timestamps, no system call is added
//! to the frame path.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{
    AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `started` while the message read is being acted on (never timed out).
const BUSY: u64 = u64::MAX - 2;
/// `started` once the idle timeout closed the connection.
const CLOSED_IDLE: u64 = u64::MAX - 1;
/// `started` once the frame timeout closed the connection.
const CLOSED_LATE: u64 = u64::MAX;

/// Why the timeouts closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A message started but did not arrive in full in time.
    Late,
    /// Nothing arrived and no reply was pending for too long.
    Idle,
}

/// The two limits (`None`: no limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// A started message must arrive in full within this.
    pub frame: Option<Duration>,
    /// A connection may stay idle this long.
    pub idle: Option<Duration>,
}

/// What the timeouts know of one connection.
#[derive(Debug)]
pub struct ConnState {
    stream: UnixStream,
    epoch: Instant,
    /// Milliseconds since `epoch` + 1 at which the current message's first byte was seen;
    /// 0 between messages; or one of BUSY, CLOSED_IDLE, CLOSED_LATE.
    started: AtomicU64,
    /// Milliseconds since `epoch` + 1 at which the last message was dealt with.
    idle_since: AtomicU64,
    /// Frames read but not yet answered on the wire.
    pub unanswered: AtomicUsize,
    /// A connection in a slot kept for control lines.
    pub control_only: bool,
}

impl ConnState {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn closed(v: u64) -> Option<Closed> {
        match v {
            CLOSED_IDLE => Some(Closed::Idle),
            CLOSED_LATE => Some(Closed::Late),
            _ => None,
        }
    }

    /// The first byte of a message arrived. `Err` if the connection was already closed.
    pub fn begin(&self) -> Result<(), Closed> {
        match self
            .started
            .compare_exchange(0, self.now(), Relaxed, Relaxed)
        {
            Ok(_) => Ok(()),
            Err(v) => Self::closed(v).map_or(Ok(()), Err),
        }
    }

    /// The message arrived in full; it is being acted on. `Err` if it came too late.
    pub fn received(&self) -> Result<(), Closed> {
        let v = self.started.load(Relaxed);
        if let Some(c) = Self::closed(v) {
            return Err(c);
        }
        self.started
            .compare_exchange(v, BUSY, Relaxed, Relaxed)
            .map(|_| ())
            .map_err(|v| Self::closed(v).unwrap_or(Closed::Late))
    }

    /// The message was dealt with; the connection is idle until the next one.
    pub fn done(&self) {
        self.idle_since.store(self.now(), Relaxed);
        // Release: whoever sees 0 sees the new idle_since.
        let _ = self.started.compare_exchange(BUSY, 0, Release, Relaxed);
    }

    /// Whether (and why) the timeouts closed the connection.
    pub fn closed_by_timeout(&self) -> Option<Closed> {
        Self::closed(self.started.load(Relaxed))
    }

    /// Closes the connection for `why` if it is still in state `seen`.
    fn close(&self, seen: u64, why: u64) {
        if self
            .started
            .compare_exchange(seen, why, Relaxed, Relaxed)
            .is_ok()
        {
            let _ = self.stream.shutdown(std::net::Shutdown::Read);
        }
    }

    /// How long this connection may stay idle: a slot kept for control lines turns over, so
    /// it may stay idle at most the frame timeout.
    pub fn idle_limit(&self, t: &Timeouts) -> Option<Duration> {
        match (t.idle, t.frame.filter(|_| self.control_only)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies the limits at `now`.
    fn check(&self, now: u64, t: &Timeouts) {
        let ms = |d: Duration| d.as_millis() as u64;
        let started = self.started.load(Acquire);
        if started == 0 {
            let since = self.idle_since.load(Relaxed);
            if let Some(idle) = self.idle_limit(t) {
                if self.unanswered.load(Relaxed) == 0 && now.saturating_sub(since) > ms(idle) {
                    self.close(0, CLOSED_IDLE);
                }
            }
        } else if started < BUSY {
            if let Some(frame) = t.frame {
                if now.saturating_sub(started) > ms(frame) {
                    self.close(started, CLOSED_LATE);
                }
            }
        }
    }
}

/// Every open connection's state, and how many sit in control slots.
#[derive(Debug)]
pub struct Registry {
    epoch: Instant,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            conns: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections in control slots now.
    pub fn control_only(&self) -> usize {
        self.lock().values().filter(|c| c.control_only).count()
    }

    /// Registers connection `id` (`stream`: a handle used to shut it).
    pub fn add(&self, id: u64, stream: UnixStream, control_only: bool) -> Arc<ConnState> {
        let epoch = self.epoch;
        let now = epoch.elapsed().as_millis() as u64 + 1;
        let s = Arc::new(ConnState {
            stream,
            epoch,
            started: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            unanswered: AtomicUsize::new(0),
            control_only,
        });
        self.lock().insert(id, s.clone());
        s
    }

    /// Forgets connection `id`.
    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Checks every connection against `t` until `stop` says so; a few checks per timeout.
    pub fn enforce(&self, t: Timeouts, stop: impl Fn() -> bool) {
        let shortest = [t.frame, t.idle].into_iter().flatten().min();
        let Some(shortest) = shortest else {
            return;
        };
        let tick = (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        while !stop() {
            std::thread::sleep(tick);
            let now = self.epoch.elapsed().as_millis() as u64 + 1;
            let conns: Vec<Arc<ConnState>> = self.lock().values().cloned().collect();
            for c in conns {
                c.check(now, &t);
            }
        }
    }
}
