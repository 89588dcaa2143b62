//! Copies of message data that avoid the processor's string move (`rep movsb`).
//!
//! glibc's `memcpy` (2.36, Debian 12) moves from 2112 bytes up with `rep movsb` on a
//! processor that says it moves strings fast (ERMS, FSRM). On the AMD EPYC this was
//! tuned on, that was the slow way: `oxbench bw` of 4-64 KiB went 1.4-1.9x the
//! bandwidth, and a 4-rank alltoall through the node's area 0.56-0.77 of the time,
//! with glibc told to use its vector loop instead
//! (`GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold`, docs/shared-memory.md); on
//! an Intel Xeon the two are alike (docs/benchmarks.md). Newer glibc avoids
//! `rep movsb` on such processors itself; this module does it for the copies of
//! message data on the shared-memory paths (ring, area, landing an eager message, a
//! schedule's local copies), with a loop of 64-byte vector moves where the processor
//! has AVX-512 (32-byte ones where it has AVX), two fixed-width moves inline for up
//! to 32 bytes, and `memcpy` for the other short copies (below `rep movsb`'s
//! threshold, where glibc uses vector moves anyway) and elsewhere. Not through it: an
//! unexpected message stored aside (at most the eager limit, with an allocation), the
//! copy an in-place alltoall makes of its buffer, and reduction kernels' copies.
//!
//! Invariant: the result is that of `copy_from_slice`; only the instructions differ.

/// Copies shorter than this go to `memcpy`: below glibc's `rep movsb` threshold its
/// own vector moves run, and a loop's set-up would cost more than it saves.
const LOOP_FROM: usize = 2048;
// The loop's head and tail are a vector each.
const _: () = assert!(LOOP_FROM >= 64);

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
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if n >= LOOP_FROM {
        // SAFETY: as the caller promises, with `n >= LOOP_FROM >= 64`, and the loop
        // taken only where the processor has its instructions.
        unsafe {
            if std::is_x86_feature_detected!("avx512f") {
                return copy_avx512(dst, src, n);
            }
            if std::is_x86_feature_detected!("avx") {
                return copy_avx(dst, src, n);
            }
        }
    }
    // SAFETY: as the caller promises.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, n) };
}

/// How far ahead of its stores the AVX-512 loop asks for the destination's lines
/// owned (`prefetchw`): a store to a line that a rank on another core read last (an
/// area's slot, a ring's) otherwise waits for the line to leave that core, one
/// after another. Against no such asking, on an Intel Xeon (docs/shared-memory.md),
/// medians of 4-6 interleaved rounds: bcast of 16 KiB-1 MiB in 0.88-0.96 of the time
/// on 4 ranks and, from 64 KiB, 0.89-0.95 on 8; 4-rank allreduce of 64 KiB-1 MiB
/// 0.93-0.97; 2-rank latency (0.95-1.05) and bandwidth (0.89-1.09, 5-8 rounds)
/// within the noise. 4 KiB ahead did worse at 256 KiB.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const OWN_AHEAD: usize = 1024;

/// Defines a copy loop of `$v`-byte vectors: the first and last vector unaligned,
/// between them stores aligned on the destination, four a round, with the
/// destination's lines asked for owned [`OWN_AHEAD`] bytes ahead if `$own`.
#[cfg(all(target_arch = "x86_64", not(miri)))]
macro_rules! vector_loop {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $vec:ty, $load:ident, $store:ident, $storeu:ident, own: $own:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// As [`copy_raw`], with `n` at least one vector, on a processor with the
        /// target feature.
        #[target_feature(enable = $feature)]
        unsafe fn $name(dst: *mut u8, src: *const u8, n: usize) {
            use crate::transport::shm::segment::LINE;
            use std::arch::x86_64::{$vec, $load, $store, $storeu};
            const V: usize = size_of::<$vec>();
            // SAFETY: every access below stays within `0..n` of its place, as the
            // caller's promise covers; the aligned stores are at `dst + at` with
            // `dst + at` a multiple of `V` (from `at = skip`, stepping by `V`); the
            // processor has the instructions (the caller's promise, and this
            // function's target feature), and `prefetchw` where `$own` (every
            // processor with AVX-512 has it).
            unsafe {
                let load = |at: usize| $load(src.add(at).cast::<$vec>());
                let head = load(0);
                let tail = load(n - V);
                // The first aligned place past `dst` (1 to `V` bytes on): the head
                // covers the bytes before it.
                let skip = V - (dst as usize & (V - 1));
                let mut at = skip;
                while at + 4 * V <= n {
                    if $own && at + OWN_AHEAD + 4 * V <= n {
                        // One ask per line of the round's stores.
                        for line in (0..4 * V).step_by(LINE) {
                            crate::prefetch::write(dst.add(at + OWN_AHEAD + line));
                        }
                    }
                    let (a, b, c, d) = (load(at), load(at + V), load(at + 2 * V), load(at + 3 * V));
                    let to = dst.add(at).cast::<$vec>();
                    $store(to, a);
                    $store(to.add(1), b);
                    $store(to.add(2), c);
                    $store(to.add(3), d);
                    at += 4 * V;
                }
                while at + V <= n {
                    $store(dst.add(at).cast::<$vec>(), load(at));
                    at += V;
                }
                // The tail covers whatever of the last vector the loop left.
                $storeu(dst.cast::<$vec>(), head);
                $storeu(dst.add(n - V).cast::<$vec>(), tail);
            }
        }
    };
}

#[cfg(all(target_arch = "x86_64", not(miri)))]
vector_loop!(
    /// The loop in 32-byte (AVX) vectors (on processors that may lack `prefetchw`).
    copy_avx, "avx", __m256i, _mm256_loadu_si256, _mm256_store_si256, _mm256_storeu_si256, own: false
);

#[cfg(all(target_arch = "x86_64", not(miri)))]
vector_loop!(
    /// The loop in 64-byte (AVX-512) vectors, where the processor has them: against
    /// the AVX loop, on an Intel Xeon with AVX-512 (docs/shared-memory.md), 4-rank bcast
    /// of 64 KiB-1 MiB in 0.90-0.95 of the time and allreduce 0.83-0.95, 2-rank
    /// latency of 4 KiB-4 MiB 0.94-0.97, bandwidth within the noise (medians of 5-6
    /// interleaved rounds).
    copy_avx512, "avx512f", __m512i, _mm512_loadu_si512, _mm512_store_si512, _mm512_storeu_si512, own: true
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length around the loops' edges, at every alignment of the destination
    /// within a vector and many of the source, against `copy_from_slice`; nothing
    /// outside the destination written. Each loop the processor has runs, not only
    /// the one `copy` picks.
    #[test]
    // Under Miri `copy` is `copy_from_slice` itself, and the many copies take hours.
    #[cfg_attr(miri, ignore)]
    fn copies_like_copy_from_slice() {
        type Way = unsafe fn(*mut u8, *const u8, usize);
        #[allow(unused_mut)]
        let mut ways: Vec<(&str, Way)> = vec![("copy", |d, s, n| {
            // SAFETY: the test passes places of `n` bytes that do not overlap.
            unsafe { copy_raw(d, s, n) }
        })];
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        {
            if std::is_x86_feature_detected!("avx") {
                ways.push(("avx", copy_avx));
            }
            if std::is_x86_feature_detected!("avx512f") {
                ways.push(("avx512", copy_avx512));
            }
        }
        let src: Vec<u8> = (0..LOOP_FROM * 3)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let mut dst = vec![0xAAu8; LOOP_FROM * 3 + 128];
        // From `aligned` on, offsets `0..64` are every alignment within a vector.
        let aligned = dst.as_ptr().align_offset(64);
        for (name, way) in ways {
            let shortest = if name == "copy" { 0 } else { 64 };
            let lens = (shortest..shortest + 40)
                .chain(LOOP_FROM - 40..LOOP_FROM + 300)
                .chain([LOOP_FROM * 2 + 17, LOOP_FROM * 3 - 64]);
            for len in lens {
                for s in (0..65.min(src.len() - len + 1)).step_by(4) {
                    for d in aligned..aligned + 64 {
                        dst.fill(0xAA);
                        let (to, from) = (&mut dst[d..d + len], &src[s..s + len]);
                        // SAFETY: both places hold `len` bytes, at least a vector for
                        // the loops, and do not overlap; the loops run only where
                        // the processor has them.
                        unsafe { way(to.as_mut_ptr(), from.as_ptr(), len) };
                        let what = format!("{name}: len {len}, src {s}, dst {}", d - aligned);
                        assert_eq!(&dst[d..d + len], &src[s..s + len], "{what}");
                        assert!(dst[..d].iter().all(|&b| b == 0xAA), "before: {what}");
                        assert!(dst[d + len..].iter().all(|&b| b == 0xAA), "after: {what}");
                    }
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
