//! A bounded poll for a connection's next message before its reader sleeps in `read`
//! (`idle_spin_us`, off by default).
//!
//! Why: on a VM, a thread that sleeps between two frames sleeps on a halted vCPU, and waking
//! that vCPU again costs tens of microseconds once the host has stopped polling it; a reader
//! that polls for a short while after each message is still running when the next frame of a
//! fast client arrives. The poll is bounded, starts only after a message (an idle connection
//! never polls), and only one reader of the daemon polls at a time, so it costs at most one
//! core for at most `idle_spin_us` after each message, and nothing while no frames come.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The daemon-wide right to poll: one reader at a time.
#[derive(Debug, Default)]
pub struct Spinner {
    taken: AtomicBool,
}

impl Spinner {
    /// Polls `stream` until a byte (or EOF, or an error) can be read or `bound` has passed;
    /// returns at once when `bound` is zero or another reader is polling. Nothing is
    /// consumed: the caller's buffered read then finds the bytes without sleeping.
    pub fn until_readable(&self, stream: &UnixStream, bound: Duration) {
        if bound.is_zero()
            || self
                .taken
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let t0 = Instant::now();
        let fd = stream.as_raw_fd();
        let mut byte = 0u8;
        loop {
            // MSG_DONTWAIT on this call only: O_NONBLOCK on the file would also reach the
            // writer thread's clone of it, whose writes must block.
            // SAFETY: recv writes at most 1 byte into `byte`, which is 1 byte long.
            let n = unsafe {
                libc::recv(
                    fd,
                    (&mut byte as *mut u8).cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                break; // bytes, or EOF: the read that follows sees which
            }
            let e = std::io::Error::last_os_error();
            let again = matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            );
            if !again || t0.elapsed() >= bound {
                break;
            }
            // Yield, not just spin: a socket write's wake-up assumes the writer sleeps next,
            // so the client this reader just answered may be queued on this very CPU, and a
            // pure spin would make it wait for the poll to end (measured: +2 ms per frame).
            std::thread::yield_now();
        }
        self.taken.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn returns_when_bytes_arrive_and_consumes_none() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let s = Spinner::default();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            a.write_all(b"xy").unwrap();
            a
        });
        let t0 = Instant::now();
        s.until_readable(&b, Duration::from_secs(5));
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "it waited for the bound"
        );
        let _a = t.join().unwrap();
        let mut got = [0u8; 2];
        (&b).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"xy");
    }

    #[test]
    fn gives_up_at_its_bound_and_frees_the_right_to_poll() {
        let (_a, b) = UnixStream::pair().unwrap();
        let s = Spinner::default();
        let t0 = Instant::now();
        s.until_readable(&b, Duration::from_millis(30));
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
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

    #[test]
    fn eof_ends_the_poll() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        let s = Spinner::default();
        let t0 = Instant::now();
        s.until_readable(&b, Duration::from_secs(5));
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}
