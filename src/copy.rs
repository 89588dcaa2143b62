//! Copies of message data that avoid the processor's string move (`rep movsb`).
//!
//! glibc's `memcpy` (2.36, Debian 12) moves from 2112 bytes up with `rep movsb` on a
//! processor that says it moves strings fast (ERMS, FSRM). On the AMD EPYC this was
//! tuned on, that was the slow way: `oxbench bw` of 4-64 KiB went 1.4-1.9x the
//! bandwidth, and a 4-rank alltoall through the node's area 0.56-0.77 of the time, with
//! glibc told to use its vector loop instead (`GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold`,
//! docs/shared-memory.md); on an Intel Xeon the two are alike (docs/benchmarks.md).
//! Newer glibc avoids `rep movsb` on such processors
//! itself; this module does it for the copies of message data on the shared-memory
//! paths (ring, area, landing an eager message, a schedule's local copies), with a
//! loop of 32-byte vector moves where the processor has AVX, two fixed-width moves
//! inline for up to 32 bytes, and `memcpy` for the other short copies (below `rep
//! movsb`'s threshold, where glibc uses vector moves anyway) and elsewhere. Not through it: an unexpected message stored aside (at most the eager
//! limit, with an allocation), the copy an in-place alltoall makes of its buffer, and
//! reduction kernels' copies.
//!
//! Invariant: the result is that of `copy_from_slice`; only the instructions differ.

#[cfg(all(target_arch = "x86_64", not(miri)))]
use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_store_si256, _mm256_storeu_si256};

/// Copies shorter than this go to `memcpy`: below glibc's `rep movsb` threshold its
/// own vector moves run, and a loop's set-up would cost more than it saves.
const LOOP_FROM: usize = 2048;
// The loop's head and tail are a vector each.
const _: () = assert!(LOOP_FROM >= 32);

/// Copies `src` into `dst`, which must be as long.
///
/// # Panics
///
/// If the lengths differ (as `copy_from_slice` does).
#[inline(always)]
#[track_caller]
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    assert_eq!(
        dst.len(),
        src.len(),
        "copy between slices of different lengths"
    );
    // SAFETY: both slices hold `dst.len()` bytes and cannot overlap (one is borrowed
    // mutably).
    unsafe { copy_raw(dst.as_mut_ptr(), src.as_ptr(), dst.len()) }
}

/// Copies up to this long are two moves of a fixed width (see [`copy_short`]).
const SHORT: usize = 32;

/// Copies of up to [`SHORT`] bytes (the blocks of a short alltoall, a short message's
/// payload) as two moves of a fixed width that may overlap, inline, instead of a call
/// to `memcpy` with its dispatch on the length.
///
/// # Safety
///
/// As [`copy_raw`], with `n <= SHORT`.
#[inline(always)]
unsafe fn copy_short(dst: *mut u8, src: *const u8, n: usize) {
    // Both loads come before the stores; the places do not overlap.
    macro_rules! two {
        ($t:ty) => {{
            let w = size_of::<$t>();
            // SAFETY: `w <= n`, so both moves stay within `0..n` of each place.
            unsafe {
                let head = src.cast::<$t>().read_unaligned();
                let tail = src.add(n - w).cast::<$t>().read_unaligned();
                dst.cast::<$t>().write_unaligned(head);
                dst.add(n - w).cast::<$t>().write_unaligned(tail);
            }
        }};
    }
    match n {
        16..=SHORT => two!(u128),
        8..=15 => two!(u64),
        4..=7 => two!(u32),
        2..=3 => two!(u16),
        // SAFETY: one byte of each place, as the caller promises.
        1 => unsafe { dst.write(src.read()) },
        _ => {}
    }
}

/// [`copy`] between raw places, for memory mapped in shared segments.
///
/// # Safety
///
/// `src` is readable and `dst` writable for `n` bytes, and the two do not overlap.
#[inline(always)]
pub(crate) unsafe fn copy_raw(dst: *mut u8, src: *const u8, n: usize) {
    if n <= SHORT {
        // SAFETY: as the caller promises.
        unsafe { copy_short(dst, src, n) };
    } else {
        // SAFETY: as the caller promises.
        unsafe { copy_long(dst, src, n) };
    }
}

/// [`copy_raw`] of more than [`SHORT`] bytes, out of line.
///
/// # Safety
///
/// As [`copy_raw`].
#[inline(never)]
unsafe fn copy_long(dst: *mut u8, src: *const u8, n: usize) {
    if n < LOOP_FROM || !vector_loop() {
        // SAFETY: as the caller promises.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, n) };
        return;
    }
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: as the caller promises; `vector_loop` saw AVX.
    unsafe {
        copy_avx(dst, src, n)
    }
}

/// Whether the vector loop runs here (AVX; never under Miri, which has no AVX).
#[inline]
fn vector_loop() -> bool {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        std::is_x86_feature_detected!("avx")
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    false
}

/// The loop: the first and last 32 bytes unaligned, between them 32-byte stores
/// aligned on the destination, four a round.
///
/// # Safety
///
/// As [`copy_raw`], with `n >= 32`, on a processor with AVX.
#[cfg(all(target_arch = "x86_64", not(miri)))]
#[target_feature(enable = "avx")]
unsafe fn copy_avx(dst: *mut u8, src: *const u8, n: usize) {
    const V: usize = 32;
    // SAFETY: every access below stays within `0..n` of its place, as the caller's
    // promise covers; the aligned stores are at `dst + at` with `dst + at` a multiple
    // of 32 (from `at = skip`, stepping by 32); the processor has AVX (the caller's
    // promise, and this function's target feature).
    unsafe {
        let load = |at: usize| _mm256_loadu_si256(src.add(at).cast::<__m256i>());
        let head = load(0);
        let tail = load(n - V);
        // The first aligned place past `dst` (1 to 32 bytes on): the head covers the
        // bytes before it.
        let skip = V - (dst as usize & (V - 1));
        let mut at = skip;
        while at + 4 * V <= n {
            let (a, b, c, d) = (load(at), load(at + V), load(at + 2 * V), load(at + 3 * V));
            let to = dst.add(at).cast::<__m256i>();
            _mm256_store_si256(to, a);
            _mm256_store_si256(to.add(1), b);
            _mm256_store_si256(to.add(2), c);
            _mm256_store_si256(to.add(3), d);
            at += 4 * V;
        }
        while at + V <= n {
            _mm256_store_si256(dst.add(at).cast::<__m256i>(), load(at));
            at += V;
        }
        // The tail covers whatever of the last 32 bytes the loop left.
        _mm256_storeu_si256(dst.cast::<__m256i>(), head);
        _mm256_storeu_si256(dst.add(n - V).cast::<__m256i>(), tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the loop's edges, at every alignment of the destination
    /// within a vector and many of the source, against `copy_from_slice`; nothing
    /// outside the destination written.
    #[test]
    // Under Miri `copy` is `copy_from_slice` itself, and the many copies take hours.
    #[cfg_attr(miri, ignore)]
    fn copies_like_copy_from_slice() {
        let src: Vec<u8> = (0..LOOP_FROM * 3)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let lens = (0..40)
            .chain(LOOP_FROM - 40..LOOP_FROM + 300)
            .chain([LOOP_FROM * 2 + 17, LOOP_FROM * 3 - 64]);
        let mut dst = vec![0xAAu8; LOOP_FROM * 3 + 128];
        // From `aligned` on, offsets `0..32` are every alignment within a vector.
        let aligned = dst.as_ptr().align_offset(32);
        for len in lens {
            for s in (0..33.min(src.len() - len + 1)).step_by(4) {
                for d in aligned..aligned + 32 {
                    dst.fill(0xAA);
                    copy(&mut dst[d..d + len], &src[s..s + len]);
                    let what = format!("len {len}, src {s}, dst {}", d - aligned);
                    assert_eq!(&dst[d..d + len], &src[s..s + len], "{what}");
                    assert!(dst[..d].iter().all(|&b| b == 0xAA), "before: {what}");
                    assert!(dst[d + len..].iter().all(|&b| b == 0xAA), "after: {what}");
                }
            }
        }
    }

    /// The short copies' unaligned moves, the one part of `copy` under Miri that is
    /// not `copy_nonoverlapping` (the test above is too slow there): every length up
    /// to past [`SHORT`], at a few alignments, nothing outside the places touched.
    #[test]
    fn short_copies_stay_within_their_places() {
        let src: Vec<u8> = (1..=64).collect();
        for len in 0..=SHORT + 1 {
            for (s, d) in [(0, 0), (1, 3), (7, 5)] {
                let mut dst = [0xAAu8; 48];
                copy(&mut dst[d..d + len], &src[s..s + len]);
                assert_eq!(&dst[d..d + len], &src[s..s + len], "len {len}");
                assert!(dst[..d].iter().chain(&dst[d + len..]).all(|&b| b == 0xAA));
            }
        }
    }

    #[test]
    #[should_panic(expected = "different lengths")]
    fn different_lengths_panic() {
        copy(&mut [0u8; 4], &[1u8; 5]);
    }
}
