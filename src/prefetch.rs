//! Hints that bring a cache line into this core's cache ahead of a read or a write.

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

/// Asks for cache lines in this core's cache, owned (to be written), where the
/// processor has `prefetchw`, which the compiler does not emit for the baseline
/// x86-64 target: a store to a line another core holds then need not wait for the
/// line to leave that core. Only a hint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForWrite {
    available: bool,
}

impl ForWrite {
    /// Whether this processor has the instruction (CPUID 8000_0001h, ECX bit 8).
    /// Never under Miri, which runs no inline assembly.
    pub(crate) fn detect() -> ForWrite {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        let available = {
            use std::arch::x86_64::__cpuid;
            const PREFETCHW: u32 = 1 << 8;
            __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & PREFETCHW != 0
        };
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let available = false;
        ForWrite { available }
    }

    /// Asks for the line holding `p`, owned.
    #[inline]
    pub(crate) fn ask(self, p: *const u8) {
        if self.available {
            // SAFETY: this processor has the instruction (`detect`).
            unsafe { write(p) };
        }
    }
}

/// Asks for the line holding `p`, owned (`prefetchw`), without asking whether the
/// processor has the instruction: every processor with AVX-512 has it.
///
/// # Safety
///
/// The processor has `prefetchw` ([`ForWrite::detect`]); no other condition: a
/// prefetch reads nothing and writes nothing, and it never faults, whatever the
/// address.
#[inline(always)]
pub(crate) unsafe fn write(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: as the caller promises.
    unsafe {
        std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly))
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = p;
}
