//! A small pool of part buffers for the upload engine.
//!
//! Each in-flight part borrows one buffer; it returns to the pool when the last `Bytes`
//! view of it is dropped (after the HTTP client is done with the body). Reusing a fixed
//! set of buffers keeps memory at about `concurrency × part size` and avoids the heap
//! fragmentation that fresh multi-MiB allocations on many threads cause.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Buffers of `size` bytes; at most `keep` are retained when idle.
pub(crate) struct BufferPool {
    size: usize,
    keep: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    pub(crate) fn new(size: usize, keep: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            size,
            keep,
            free: Mutex::new(Vec::new()),
        })
    }

    /// A zero-initialised (on first use) buffer of the pool's size.
    pub(crate) fn take(self: &Arc<Self>) -> PooledBuf {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        let buf = reused.unwrap_or_else(|| vec![0u8; self.size]);
        PooledBuf {
            buf,
            len: self.size,
            pool: Arc::clone(self),
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        if buf.len() != self.size {
            return;
        }
        if let Ok(mut f) = self.free.lock()
            && f.len() < self.keep
        {
            f.push(buf);
        }
    }
}

/// One borrowed buffer; `len` bytes of it are valid data.
pub(crate) struct PooledBuf {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<BufferPool>,
}

impl PooledBuf {
    /// The first `len` bytes, to fill (`len` is capped at the buffer size).
    pub(crate) fn fill(&mut self, len: usize) -> &mut [u8] {
        self.len = len.min(self.buf.len());
        &mut self.buf[..self.len]
    }

    /// Freeze into `Bytes`; the buffer goes back to the pool when all views are gone.
    pub(crate) fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_after_the_last_view_drops() {
        let pool = BufferPool::new(16, 2);
        let mut b = pool.take();
        b.fill(4).copy_from_slice(b"abcd");
        let ptr = b.as_ref().as_ptr();
        let bytes = b.freeze();
        let view = bytes.slice(1..3);
        assert_eq!(&bytes[..], b"abcd");
        drop(bytes);
        assert!(pool.free.lock().unwrap().is_empty());
        assert_eq!(&view[..], b"bc");
        drop(view);
        assert_eq!(pool.free.lock().unwrap().len(), 1);
        let again = pool.take();
        assert_eq!(again.as_ref().as_ptr(), ptr);
        assert_eq!(again.as_ref().len(), 16);
    }
}
