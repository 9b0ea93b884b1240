//! Payload buffers under one cap for all connections: a connection keeps its buffer between
//! frames (no allocation per frame for a streaming camera) only while the capacity kept by all
//! connections together stays within the cap, so connections that once sent a large frame and
//! then sit idle do not pin that memory.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Buffers up to this capacity are always kept and not counted: no more than the socket
/// reader's own buffer per connection.
pub const ALWAYS_KEPT: usize = 64 * 1024;

/// The capacity kept by all connections' payload buffers, and its cap.
#[derive(Debug)]
pub struct BufferBudget {
    cap: usize,
    kept: AtomicUsize,
}

impl BufferBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            kept: AtomicUsize::new(0),
        })
    }

    /// Bytes kept now.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.kept.load(Relaxed)
    }

    fn try_take(&self, n: usize) -> bool {
        self.kept
            .fetch_update(Relaxed, Relaxed, |k| {
                k.checked_add(n).filter(|&total| total <= self.cap)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.kept.fetch_sub(n, Relaxed);
    }
}

/// One connection's payload buffer.
#[derive(Debug)]
pub struct PayloadBuf {
    budget: Arc<BufferBudget>,
    buf: Vec<u8>,
    /// Capacity counted against the budget.
    counted: usize,
}

impl PayloadBuf {
    /// An empty buffer drawing on `budget`.
    pub fn new(budget: Arc<BufferBudget>) -> Self {
        Self {
            budget,
            buf: Vec::new(),
            counted: 0,
        }
    }

    /// The buffer, `len` bytes long (contents unspecified until overwritten).
    pub fn get(&mut self, len: usize) -> &mut [u8] {
        self.buf.resize(len, 0);
        &mut self.buf
    }

    /// After a frame: keeps the buffer if the budget has room for its capacity, else frees it
    /// and gives its memory back to the system.
    pub fn settle(&mut self) {
        let cap = self.buf.capacity();
        if cap <= ALWAYS_KEPT {
            self.release();
        } else if cap > self.counted {
            if self.budget.try_take(cap - self.counted) {
                self.counted = cap;
            } else {
                self.release();
                self.buf = Vec::new();
                return_freed_memory();
            }
        }
    }

    fn release(&mut self) {
        self.budget.give(std::mem::take(&mut self.counted));
    }
}

impl Drop for PayloadBuf {
    fn drop(&mut self) {
        self.release();
        if self.buf.capacity() > ALWAYS_KEPT {
            self.buf = Vec::new();
            return_freed_memory();
        }
    }
}

/// Hands memory freed in the allocator's heaps back to the system. glibc raises its mmap
/// threshold after a large block is freed, so later large buffers come from per-thread heaps
/// that are not trimmed when they are freed: without this, freed payload buffers stay resident.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim only releases free pages of its own heaps; it is
        // thread-safe and has no preconditions.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Caps glibc's malloc arenas. By default glibc gives busy threads arenas of their own (up to
/// 8 per core), and an arena keeps what its thread freed; with one reader thread per connection
/// that also runs frames itself, retained memory would grow with the number of connections.
/// A few shared arenas bound it, at the cost of some allocator contention between readers.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; called once at start-up.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_kept_only_within_the_cap() {
        let budget = BufferBudget::new(3 << 20);
        let mut a = PayloadBuf::new(budget.clone());
        let mut b = PayloadBuf::new(budget.clone());
        a.get(2 << 20);
        a.settle();
        assert!(a.buf.capacity() >= 2 << 20 && budget.kept() == a.buf.capacity());
        b.get(2 << 20);
        b.settle(); // no room left: freed
        assert_eq!((b.buf.capacity(), b.counted), (0, 0));
        b.get(100);
        b.settle(); // small buffers are kept, not counted
        assert_eq!(b.counted, 0);
        drop(a);
        assert_eq!(budget.kept(), 0);
        b.get(2 << 20);
        b.settle();
        assert_eq!(budget.kept(), b.buf.capacity());
    }
}
