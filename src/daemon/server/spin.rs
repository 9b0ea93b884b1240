//! A bounded poll for a connection's next message before its reader sleeps in `read`
//! (`idle_spin_us`, off by default).
//!
//! Why: on a VM, a thread that sleeps between two frames sleeps on a halted vCPU, and waking
//! that vCPU again costs tens of microseconds once the host has stopped polling it; a reader
//! that polls for a short while after each message is still running when the next frame of a
//! fast client arrives. The poll is bounded, starts only after a message (an idle connection
//! never polls), and only one reader of the daemon polls at a time, so it costs at most one
//! core for at most `idle_spin_us` after each message, and nothing while no frames come.

use crate::socket_poll;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The daemon-wide right to poll: one reader at a time.
#[derive(Debug, Default)]
pub struct Spinner {
    taken: AtomicBool,
}

impl Spinner {
    /// Polls `stream` for up to `bound` ([`socket_poll::until_readable`]); returns at once
    /// when `bound` is zero or another reader is polling.
    pub fn until_readable(&self, stream: &UnixStream, bound: Duration) {
        if bound.is_zero()
            || self
                .taken
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        socket_poll::until_readable(stream, bound);
        self.taken.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn frees_the_right_to_poll_after_its_bound() {
        let (_a, b) = UnixStream::pair().unwrap();
        let s = Spinner::default();
        s.until_readable(&b, Duration::from_millis(30));
        assert!(!s.taken.load(Ordering::Relaxed));
    }

    #[test]
    fn only_one_reader_polls_at_a_time() {
        let (_a, b) = UnixStream::pair().unwrap();
        let s = Spinner::default();
        s.taken.store(true, Ordering::Relaxed); // another reader is polling
        let t0 = Instant::now();
        s.until_readable(&b, Duration::from_secs(5));
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}
