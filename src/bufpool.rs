//! Reused byte buffers. Every batch moves megabytes (a 5-block answer is ~5 MB of JSON and
//! ~7 MB of rows); allocating those afresh each time makes the kernel zero new pages on first
//! touch, which costs more CPU than parsing them. A [`BufPool`] keeps a bounded number of spent
//! buffers so that the next batch writes into memory that is already mapped.
//!
//! Response bodies go through the HTTP client's pool ([`crate::rpc::client::RpcClient::bodies`]);
//! row buffers through [`ROWS`], which a [`crate::msg::RowBuf`] returns its bytes to
//! when dropped, wherever that happens (a sink, a callback).

use std::sync::Mutex;

/// Row buffers of decoded batches ([`crate::msg::RowBuf::data`]). An export empties
/// it when it ends, so that a process that embeds ethetl keeps no idle buffers after a run.
pub static ROWS: BufPool = BufPool::new(128);

/// Buffers below this capacity are left to the allocator: they are cheap to make afresh.
pub const MIN_KEPT_CAPACITY: usize = 64 << 10;

/// Larger buffers are freed when handed back, not kept: an outsized answer (a hostile node's,
/// or a rare huge block) must not stay resident for the rest of the run.
pub const MAX_KEPT_CAPACITY: usize = 64 << 20;

/// The idle buffers of one pool hold at most this much in all.
pub const MAX_KEPT_BYTES: usize = 256 << 20;

/// A bounded set of cleared `Vec<u8>`s shared between the threads that fill buffers and the
/// threads that are done with them.
#[derive(Debug)]
pub struct BufPool {
    /// Idle buffers, smallest capacity first.
    free: Mutex<Vec<Vec<u8>>>,
    max_kept: usize,
}

impl BufPool {
    /// A pool that keeps at most `max_kept` idle buffers.
    pub const fn new(max_kept: usize) -> BufPool {
        BufPool {
            free: Mutex::new(Vec::new()),
            max_kept,
        }
    }

    /// An empty buffer with room for at least `capacity` bytes: the smallest idle one that is
    /// large enough, else a new one with a quarter more room, so that later requests of about
    /// the same size fit. (Growing a smaller idle buffer would copy its whole old capacity into
    /// fresh pages: the cost this pool exists to avoid.)
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        if capacity < MIN_KEPT_CAPACITY {
            // Small buffers are never kept; handing out a large idle one would waste it.
            return Vec::with_capacity(capacity);
        }
        let reused = self.free.lock().ok().and_then(|mut f| {
            let at = f.partition_point(|b| b.capacity() < capacity);
            (at < f.len()).then(|| f.remove(at))
        });
        reused.unwrap_or_else(|| Vec::with_capacity(capacity.saturating_add(capacity / 4)))
    }

    /// Hands a spent buffer back. When the pool is full (in count, or in bytes: at most
    /// [`MAX_KEPT_BYTES`]), the smallest buffers are freed (this one, or idle ones it is larger
    /// than), so the pool drifts toward the sizes in use. Buffers over [`MAX_KEPT_CAPACITY`]
    /// are never kept.
    pub fn put(&self, mut v: Vec<u8>) {
        if v.capacity() < MIN_KEPT_CAPACITY || v.capacity() > MAX_KEPT_CAPACITY {
            return;
        }
        v.clear();
        let Ok(mut f) = self.free.lock() else { return };
        if f.len() >= self.max_kept {
            if self.max_kept == 0 || f[0].capacity() >= v.capacity() {
                return;
            }
            f.remove(0);
        }
        // Within the byte budget too: smaller idle buffers make way, else this one goes.
        let mut total: usize = f.iter().map(Vec::capacity).sum();
        while total + v.capacity() > MAX_KEPT_BYTES
            && f.first().is_some_and(|b| b.capacity() < v.capacity())
        {
            total -= f.remove(0).capacity();
        }
        if total + v.capacity() > MAX_KEPT_BYTES {
            return;
        }
        let at = f.partition_point(|b| b.capacity() < v.capacity());
        f.insert(at, v);
    }

    /// Frees every idle buffer.
    pub fn release_idle(&self) {
        let idle = self.free.lock().map(|mut f| std::mem::take(&mut *f));
        drop(idle);
    }

    /// Idle buffers held now.
    pub fn idle(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = MIN_KEPT_CAPACITY;

    #[test]
    fn hands_out_the_smallest_buffer_that_fits() {
        let p = BufPool::new(4);
        let mut big = Vec::with_capacity(8 * K);
        big.extend_from_slice(b"old");
        let big_ptr = big.as_ptr();
        let mid = Vec::<u8>::with_capacity(2 * K);
        let mid_ptr = mid.as_ptr();
        p.put(big);
        p.put(mid);
        assert_eq!(p.idle(), 2);
        let a = p.take(K);
        assert_eq!(a.as_ptr(), mid_ptr, "best fit");
        let b = p.take(3 * K);
        assert_eq!(b.as_ptr(), big_ptr);
        assert!(b.is_empty(), "returned buffers are cleared");
        let c = p.take(10 * K);
        assert!(
            c.capacity() >= 12 * K,
            "new buffers get a quarter more room"
        );
        assert_eq!(p.idle(), 0);
        p.put(c);
        assert!(
            p.take(100).capacity() < K,
            "small requests never take a kept buffer"
        );
        assert_eq!(p.idle(), 1);
    }

    #[test]
    fn stays_bounded_and_keeps_the_largest() {
        let p = BufPool::new(2);
        p.put(Vec::with_capacity(K / 2)); // small: left to the allocator
        assert_eq!(p.idle(), 0);
        p.put(Vec::with_capacity(2 * K));
        p.put(Vec::with_capacity(3 * K));
        p.put(Vec::with_capacity(K)); // full, and smaller than every idle one: freed
        p.put(Vec::with_capacity(5 * K)); // full: replaces the smallest
        assert_eq!(p.idle(), 2);
        assert!(p.take(4 * K).capacity() >= 5 * K);
        assert!(p.take(3 * K).capacity() >= 3 * K);
        assert_eq!(p.idle(), 0);
        p.put(Vec::with_capacity(2 * K));
        p.release_idle();
        assert_eq!(p.idle(), 0);
    }
}
