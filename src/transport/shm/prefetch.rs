//! A hint that brings a cache line into this core's cache ahead of a read.

/// Asks for the cache line holding `p` in this core's cache, to be read; only a hint
/// (nothing where the processor has no such instruction).
#[inline]
pub(crate) fn read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch reads nothing and writes nothing, and it never faults,
        // whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
