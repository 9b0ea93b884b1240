//! A bounded poll for bytes on a Unix socket, shared by the client's reply wait
//! ([`crate::client::Client::set_reply_spin`]) and the daemon readers' wait for the next frame
//! (`idle_spin_us`): both keep their CPU awake for a short while instead of sleeping in `read`,
//! because waking a halted CPU costs tens of µs on a VM.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Polls `stream` until a byte (or EOF, or an error) can be read or `bound` has passed.
/// Nothing is consumed: the caller's read that follows finds the bytes without sleeping, or
/// sleeps as it would have, or reports the error.
pub(crate) fn until_readable(stream: &UnixStream, bound: Duration) {
    let t0 = Instant::now();
    let fd = stream.as_raw_fd();
    let mut byte = 0u8;
    loop {
        // MSG_DONTWAIT on this call only: O_NONBLOCK on the file would also reach every clone
        // of it (a writer thread, a client's sending half), whose writes must block.
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
            return; // bytes, or EOF
        }
        let again = matches!(
            std::io::Error::last_os_error().kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        );
        if !again || t0.elapsed() >= bound {
            return;
        }
        // Yield, not just spin: a socket write's wake-up assumes the writer sleeps next, so
        // the thread this one just woke may be queued on this very CPU, and a pure spin would
        // make it wait for the poll to end (measured: +2 ms per frame at 30 frames/s).
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn returns_when_bytes_arrive_and_consumes_none() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            a.write_all(b"xy").unwrap();
            a
        });
        let t0 = Instant::now();
        until_readable(&b, Duration::from_secs(5));
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
    fn gives_up_at_its_bound() {
        let (_a, b) = UnixStream::pair().unwrap();
        let t0 = Instant::now();
        until_readable(&b, Duration::from_millis(30));
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
    }

    #[test]
    fn eof_ends_the_poll() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        let t0 = Instant::now();
        until_readable(&b, Duration::from_secs(5));
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
}
