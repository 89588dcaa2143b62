//! Raw views of user buffers that outlive the call that handed them to oxmpi.
//!
//! A nonblocking operation keeps a pointer to the user's buffer until it completes.
//! The invariant that makes this sound: a `UserBuf`/`UserBufMut` is created (by the
//! `unsafe` constructors, whose callers say why at each site) only from a borrow that
//! the public API ties to a [`crate::Scope`] (or to a blocking call that does not return
//! before completion), and every operation holding one is completed before that scope
//! ends, whether the `Request` was waited on, dropped or forgotten. All
//! dereferences happen inside the engine, on its owning thread, one access at a time
//! (`engine::owner`).

/// A read-only view of a user's send buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserBuf {
    ptr: *const u8,
    len: usize,
}

/// A writable view of a user's receive buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserBufMut {
    ptr: *mut u8,
    len: usize,
}

impl UserBuf {
    /// Views `data` beyond the borrow.
    ///
    /// # Safety
    ///
    /// The view is used only while `data` stays valid and, but for this view, untouched:
    /// the operation holding it completes before the call that made it returns, or
    /// before the [`crate::Scope`] that `data` is borrowed for ends.
    pub(crate) unsafe fn new(data: &[u8]) -> UserBuf {
        UserBuf {
            ptr: data.as_ptr(),
            len: data.len(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The address, for single-copy transfers by another process.
    pub(crate) fn addr(&self) -> usize {
        self.ptr as usize
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: the buffer is valid and not written by anyone for as long as the
        // operation holding this view is incomplete (module invariant).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The part `off..off + len`, which must lie inside the buffer.
    pub(crate) fn sub(&self, off: usize, len: usize) -> UserBuf {
        assert!(
            off <= self.len && len <= self.len - off,
            "UserBuf::sub out of range"
        );
        // SAFETY: in bounds, checked above.
        let ptr = unsafe { self.ptr.add(off) };
        UserBuf { ptr, len }
    }
}

impl UserBufMut {
    /// Views `data` beyond the borrow.
    ///
    /// # Safety
    ///
    /// The view is used only while `data` stays valid and, but for this view, untouched:
    /// the operation holding it completes before the call that made it returns, or
    /// before the [`crate::Scope`] that `data` is borrowed for ends.
    pub(crate) unsafe fn new(data: &mut [u8]) -> UserBufMut {
        UserBufMut {
            ptr: data.as_mut_ptr(),
            len: data.len(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Address of the first byte, for a peer that writes it directly.
    pub(crate) fn addr(&self) -> usize {
        self.ptr as usize
    }

    #[allow(clippy::mut_from_ref)]
    pub(crate) fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: the receive operation holding this view has exclusive use of the
        // buffer until it completes (module invariant); the engine's single owner
        // makes one access at a time, so no two slices from it are live at once.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Read-only view of the same bytes.
    pub(crate) fn as_const(&self) -> UserBuf {
        UserBuf {
            ptr: self.ptr,
            len: self.len,
        }
    }

    /// The part `off..off + len`, which must lie inside the buffer.
    pub(crate) fn sub(&self, off: usize, len: usize) -> UserBufMut {
        assert!(
            off <= self.len && len <= self.len - off,
            "UserBufMut::sub out of range"
        );
        // SAFETY: in bounds, checked above.
        let ptr = unsafe { self.ptr.add(off) };
        UserBufMut { ptr, len }
    }
}

/// Heap bytes owned by oxmpi (a schedule's temporary) that operations in flight may
/// point into. Views are handed out as [`UserBufMut`] from one base pointer, so views
/// of different ranges never invalidate each other.
pub(crate) struct TempBuf {
    view: UserBufMut,
    /// Bytes allocated (at least `view.len`).
    cap: usize,
}

/// Temporaries up to this size come from a per-thread pool of blocks of this size, so
/// a short collective allocates nothing.
const POOLED: usize = 4096;
/// Most blocks kept in the pool.
const POOL_MAX: usize = 16;
/// Long blocks kept per thread for the next long temporaries. A fresh long temporary
/// costs a fault or a clear per page (a 2-rank allreduce of 512 KiB spent about a
/// tenth of its time zeroing its temporary); a schedule has at most a few long
/// temporaries at once.
const KEEP_BLOCKS: usize = 4;
/// Most bytes the kept blocks of a thread hold in all.
const KEEP_BYTES: usize = 64 << 20;

// Both are reached with `try_with`, never `with`: a `Universe` kept in a thread-local
// of the user's is dropped (and finalizes, running schedules) while the thread's
// thread-locals are destroyed, possibly after these. A pool destroyed already hands
// out nothing and takes nothing back: blocks are then allocated and freed plainly.
thread_local! {
    static POOL: std::cell::RefCell<Vec<Box<[u8]>>> = const { std::cell::RefCell::new(Vec::new()) };
    static KEPT: std::cell::RefCell<Vec<Box<[u8]>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Frees the blocks this thread keeps for temporaries (when oxmpi is finalized).
/// Pools destroyed already (at thread exit) freed their blocks then.
pub(crate) fn release_kept() {
    let _ = POOL.try_with(|p| p.borrow_mut().clear());
    let _ = KEPT.try_with(|k| k.borrow_mut().clear());
}

/// The smallest kept block of at least `len` bytes and at most four times that (a
/// much larger one stays for a longer temporary), if any.
fn kept(len: usize) -> Option<Box<[u8]>> {
    KEPT.try_with(|k| {
        let mut k = k.borrow_mut();
        let best = (0..k.len())
            .filter(|&i| (len..=len.saturating_mul(4)).contains(&k[i].len()))
            .min_by_key(|&i| k[i].len())?;
        Some(k.swap_remove(best))
    })
    .ok()
    .flatten()
}

/// Keeps `block` for a later temporary, making room by dropping the smallest kept
/// blocks while there are too many or too many bytes. After this thread's kept blocks
/// were destroyed (thread exit), `block` is freed.
fn keep(block: Box<[u8]>) {
    if block.len() > KEEP_BYTES {
        return;
    }
    // Destroyed: the closure, and `block` with it, is dropped unrun.
    let _ = KEPT.try_with(|k| {
        let mut k = k.borrow_mut();
        k.push(block);
        k.sort_unstable_by_key(|b| std::cmp::Reverse(b.len()));
        let mut total = 0;
        k.retain(|b| {
            total += b.len();
            total <= KEEP_BYTES
        });
        k.truncate(KEEP_BLOCKS);
    });
}

impl TempBuf {
    /// `len` bytes of unspecified (initialized) content: zeros, or what an earlier
    /// temporary left there. Schedules write a temporary before they read it.
    pub(crate) fn new(len: usize) -> TempBuf {
        let block: Box<[u8]> = if len <= POOLED {
            POOL.try_with(|p| p.borrow_mut().pop())
                .ok()
                .flatten()
                .unwrap_or_else(|| vec![0u8; POOLED].into_boxed_slice())
        } else {
            kept(len).unwrap_or_else(|| vec![0u8; len].into_boxed_slice())
        };
        let cap = block.len();
        let raw: *mut [u8] = Box::into_raw(block);
        TempBuf {
            view: UserBufMut {
                ptr: raw.cast(),
                len,
            },
            cap,
        }
    }

    /// A view of all the bytes, valid while `self` lives.
    pub(crate) fn view(&self) -> UserBufMut {
        self.view
    }

    /// Gives up the memory without freeing it: for when an operation that may still
    /// touch it cannot be waited for.
    pub(crate) fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for TempBuf {
    fn drop(&mut self) {
        let raw = std::ptr::slice_from_raw_parts_mut(self.view.ptr, self.cap);
        // SAFETY: `raw` is exactly the boxed slice made in `new`, given up only here.
        let block = unsafe { Box::from_raw(raw) };
        if self.cap == POOLED {
            // Destroyed (thread exit): the closure, and `block` with it, is dropped unrun.
            let _ = POOL.try_with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL_MAX {
                    p.push(block);
                }
            });
        } else {
            keep(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_temporaries_reuse_the_best_fitting_kept_block() {
        release_kept();
        let big = TempBuf::new(1 << 20);
        let small = TempBuf::new(10_000);
        let (big_at, small_at) = (big.view().ptr, small.view().ptr);
        drop(big);
        drop(small);
        // Best fit: a 9 000-byte temporary gets the 10 000-byte block, not the 1 MiB one.
        let t = TempBuf::new(9_000);
        assert_eq!((t.view().ptr, t.view().len), (small_at, 9_000));
        // A block more than four times too long stays for a longer temporary.
        let fresh = TempBuf::new(5_000);
        assert!(fresh.view().ptr != big_at);
        let long = TempBuf::new(600_000);
        assert_eq!(long.view().ptr, big_at);
        drop((t, fresh, long));
        KEPT.with(|k| assert_eq!(k.borrow().len(), 3));
        // At most KEEP_BLOCKS blocks, the longest ones (the 8 KiB temporary took the
        // 10 000-byte block, the others are fresh).
        let many: Vec<TempBuf> = (1..=6).map(|i| TempBuf::new(i * 8192)).collect();
        drop(many);
        let lens: Vec<usize> = KEPT.with(|k| k.borrow().iter().map(|b| b.len()).collect());
        assert_eq!(lens, [1 << 20, 48 * 1024, 40 * 1024, 32 * 1024]);
        release_kept();
        KEPT.with(|k| assert!(k.borrow().is_empty()));
    }

    /// Temporaries made and freed while a thread's thread-locals are destroyed, after
    /// the pools (a `Universe` kept in a thread-local finalizing at thread exit), are
    /// allocated and freed plainly: no panic (which would abort the process there).
    #[test]
    fn temporaries_work_after_the_pools_are_destroyed() {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0: not run, 1: worked, 2: panicked.
        static OUTCOME: AtomicU8 = AtomicU8::new(0);
        struct AtExit;
        impl Drop for AtExit {
            fn drop(&mut self) {
                let worked = std::panic::catch_unwind(|| {
                    for len in [100, 100_000] {
                        let t = TempBuf::new(len);
                        assert_eq!(t.view().len, len);
                    }
                    release_kept();
                });
                OUTCOME.store(if worked.is_ok() { 1 } else { 2 }, Ordering::SeqCst);
            }
        }
        thread_local! {
            static AT_EXIT: std::cell::RefCell<Option<AtExit>> =
                const { std::cell::RefCell::new(None) };
        }
        std::thread::spawn(|| {
            AT_EXIT.with(|a| *a.borrow_mut() = Some(AtExit));
            // The pools come to life after `AT_EXIT`, so they are destroyed before it.
            drop((TempBuf::new(100), TempBuf::new(100_000)));
        })
        .join()
        .expect("the thread ended normally");
        assert_eq!(OUTCOME.load(Ordering::SeqCst), 1, "1: worked, 2: panicked");
    }
}
