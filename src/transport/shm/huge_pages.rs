//! Huge pages under lent memory. A peer's `process_vm_readv` (or `_writev`) of a
//! buffer this rank lends pins every page of it first, and on 4 KiB pages the pinning
//! costs more than the copy: on the AMD EPYC VM a 1 MiB read took 115-122 us from
//! 4 KiB pages and 50-56 us from 2 MiB ones (`benches/rendezvous_floor.c` with the
//! sender's buffer on huge pages; the receiver's pages made no difference, it copies
//! into its own memory without pinning).
//!
//! So a rank counts the bytes it lends from each 2 MiB-aligned region of its memory,
//! and once a region has lent [`COLLAPSE_AFTER`] bytes it asks the kernel to back the
//! region by one huge page (`MADV_COLLAPSE`, Linux 6.1; a best effort). The collapse
//! copies the region (0.6-1.3 ms measured here), as much as lending about 16 MiB from
//! 4 KiB pages loses, so a region is collapsed only once it has lent that much:
//! memory lent again and again pays it back, memory lent once never pays it.
//!
//! Only a region wholly inside one mapping of private anonymous memory is tried (by
//! `/proc/self/maps`, read at each try): the kernel would collapse shared memory and
//! files too, which other processes see. A collapse keeps every byte as it was (the
//! pages are transparent to the program), but it fills the region's pages never
//! touched, brings back pages swapped out and gives a forked child its own copy of
//! pages it shared: up to 2 MiB more memory a region. It runs before the address is
//! published, so no peer has this lend's pages pinned (a peer still copying an earlier
//! message from the region makes it fail). A region's count restarts after each try,
//! and each try that fails doubles what the region must lend before the next, up to
//! [`MOST_DOUBLINGS`] times: such a try took 10-70 us here, now and then 1 ms (the
//! kernel first drains every CPU's page lists), as long as 16 ping-pongs of 1 MiB
//! take. A region collapsed waits the longest, 1 GiB, in case it is unmapped and
//! mapped again: tried again at every doubling, a fifth of 8-rank alltoall calls had
//! a rank trying, 100-700 us each. Such calls are also left out of an alltoall's
//! learning ([`lent`] says so) and of a 2-rank learned collective's ([`tries`]).
//! Nothing is collapsed where the system's transparent huge pages are `never` (the
//! kernel would collapse all the same) or with `OXMPI_SHM_HUGE_PAGES=0`. A region is
//! 2 MiB whatever the page size: with 16 or 64 KiB pages (some arm64 kernels) every
//! try fails, once in a long while.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A huge page's size and alignment (a PMD on x86-64, and on arm64 with 4 KiB pages).
const REGION: usize = 2 << 20;

/// Bytes lent from a region before it is collapsed (see the module's comment).
const COLLAPSE_AFTER: u64 = 16 << 20;

/// The most times the bytes lent between a region's tries double.
const MOST_DOUBLINGS: u32 = 6;

/// Regions counted at once (2 GiB of them); a region whose slot another takes
/// starts over.
const SLOTS: usize = 1024;

/// `MADV_COLLAPSE` (Linux 6.1), named here: the libc crate names it for glibc targets
/// only.
const MADV_COLLAPSE: libc::c_int = 25;

static ON: AtomicBool = AtomicBool::new(false);
static TALLY: Mutex<Tally> = Mutex::new(Tally::new());
/// Calls of [`lent`] that tried a collapse in this process ([`tries`]).
static TRIES: AtomicU64 = AtomicU64::new(0);

/// Turns the collapsing of often-lent regions on or off for this process. It stays
/// off where the system's transparent huge pages are `never`: the kernel would
/// collapse all the same, against the choice of whoever set that.
pub(crate) fn enable(on: bool) {
    let never = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| mode.contains("[never]"));
    ON.store(on && !never, Ordering::Relaxed);
}

/// Counts `len` bytes at `addr` in this process as lent to another process's
/// `process_vm_*` call about to be told of them, collapsing the regions that have
/// lent enough; says whether it tried a collapse, which adds up to a millisecond or
/// more to the call that lent (a caller timing its calls leaves it out). Called
/// before the address is published; kept out of line, off the paths of the small
/// messages beside its callers.
#[inline(never)]
pub(crate) fn lent(addr: usize, len: usize) -> bool {
    if !ON.load(Ordering::Relaxed) || len == 0 {
        return false;
    }
    let mut due = Vec::new();
    TALLY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .add(addr, len, |base| due.push(base));
    if due.is_empty() {
        return false;
    }
    // Not under the lock: a collapse takes a millisecond, and other threads lend too.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut tried = false;
    for base in due.into_iter().filter(|&b| private_anonymous(&maps, b)) {
        tried = true;
        if collapse(base) {
            TALLY
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .collapsed(base);
        }
    }
    if tried {
        TRIES.fetch_add(1, Ordering::Relaxed);
    }
    tried
}

/// How many times [`lent`] has tried collapses in this process so far: a call that
/// times itself and sees this change between its start and its end paid for a
/// collapse (up to a millisecond or more) and is left out of what it learns.
pub(crate) fn tries() -> u64 {
    TRIES.load(Ordering::Relaxed)
}

/// Whether the region at `base` lies wholly inside one mapping of private anonymous
/// memory, by `maps` (`/proc/self/maps`): the kernel would collapse shared memory and
/// files too, which other processes see (a tmpfs file's holes filled), and a region
/// across mappings fails only after a try that may take a millisecond.
fn private_anonymous(maps: &str, base: usize) -> bool {
    maps.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms), Some(_offset), Some(_dev), Some(inode)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return false;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            return false;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            return false;
        };
        lo <= base && base.saturating_add(REGION) <= hi && perms.ends_with('p') && inode == "0"
    })
}

/// Asks the kernel to back the region at `base` by one huge page, and says whether
/// it did; failures (an old kernel, transparent huge pages refused to this process,
/// pages pinned by a peer still copying an earlier message) leave it as it was.
fn collapse(base: usize) -> bool {
    // SAFETY: `MADV_COLLAPSE` changes no byte of this process's memory, only the pages
    // under it; for addresses not mapped, or not eligible, the kernel fails cleanly.
    unsafe { libc::madvise(base as *mut libc::c_void, REGION, MADV_COLLAPSE) == 0 }
}

/// One region's count.
#[derive(Clone, Copy)]
struct Slot {
    /// The region's base; 0 for an empty slot.
    base: usize,
    /// Bytes lent since its last try.
    lent: u64,
    /// Its tries so far, up to [`MOST_DOUBLINGS`].
    tries: u32,
}

/// Bytes lent per region, in slots picked by the region's number.
struct Tally {
    slots: [Slot; SLOTS],
}

impl Tally {
    const fn new() -> Tally {
        Tally {
            slots: [Slot {
                base: 0,
                lent: 0,
                tries: 0,
            }; SLOTS],
        }
    }

    /// Counts `len` bytes at `addr` against every region they touch, and calls
    /// `due` with the base of each region whose count reaches [`COLLAPSE_AFTER`],
    /// doubled once for each earlier try (its count restarts).
    fn add(&mut self, addr: usize, len: usize, mut due: impl FnMut(usize)) {
        let end = addr.saturating_add(len);
        let mut base = addr & !(REGION - 1);
        while base < end {
            let next = base.saturating_add(REGION);
            let bytes = (end.min(next) - addr.max(base)) as u64;
            let slot = &mut self.slots[(base / REGION) % SLOTS];
            if slot.base != base {
                *slot = Slot {
                    base,
                    lent: 0,
                    tries: 0,
                };
            }
            slot.lent += bytes;
            if slot.lent >= COLLAPSE_AFTER << slot.tries {
                slot.lent = 0;
                slot.tries = (slot.tries + 1).min(MOST_DOUBLINGS);
                if base != 0 {
                    due(base);
                }
            }
            base = next;
        }
    }

    /// The region at `base` is on a huge page now: it is tried again only after the
    /// most it ever waits, in case it is unmapped and mapped again.
    fn collapsed(&mut self, base: usize) {
        let slot = &mut self.slots[(base / REGION) % SLOTS];
        if slot.base == base {
            slot.tries = MOST_DOUBLINGS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dues(tally: &mut Tally, addr: usize, len: usize) -> Vec<usize> {
        let mut out = Vec::new();
        tally.add(addr, len, |b| out.push(b));
        out
    }

    #[test]
    fn each_try_doubles_what_a_region_lends_before_the_next_up_to_a_limit() {
        let mut t = Tally::new();
        let base = 7 * REGION;
        let mib = 1 << 20;
        let due_after: Vec<u64> = (1..=4000u64)
            .filter(|_| !dues(&mut t, base + 4096, mib).is_empty())
            .collect();
        // 16 MiB, then 32, 64, 128, 256, 512 more, then 1 GiB each time.
        assert_eq!(due_after, [16, 48, 112, 240, 496, 1008, 2032, 3056]);
    }

    #[test]
    fn a_region_on_a_huge_page_is_tried_again_only_after_the_longest_wait() {
        let mut t = Tally::new();
        let base = 9 * REGION;
        let mib = 1 << 20;
        let mut due_after = Vec::new();
        for n in 1..=2100u64 {
            if !dues(&mut t, base, mib).is_empty() {
                due_after.push(n);
                t.collapsed(base);
            }
        }
        assert_eq!(due_after, [16, 16 + 1024, 16 + 2048]);
    }

    #[test]
    fn a_lend_across_regions_counts_each_its_own_share() {
        let mut t = Tally::new();
        // 1.5 MiB in the first region, 2 MiB in the second, 0.5 MiB in the third.
        let addr = 10 * REGION + (REGION / 4);
        let len = 2 * REGION;
        let mut all = Vec::new();
        for _ in 0..33 {
            all.extend(dues(&mut t, addr, len));
        }
        // The region lent in full is due after the 8th lend and the 24th (16 MiB,
        // then 32 more), the one lent 3/4 of it after the 11th and the 33rd, the one
        // lent 1/4 of it after the 32nd.
        let count = |b: usize| all.iter().filter(|&&x| x == b).count();
        assert_eq!(count(11 * REGION), 2);
        assert_eq!(count(10 * REGION), 2);
        assert_eq!(count(12 * REGION), 1);
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn regions_sharing_a_slot_start_over() {
        let mut t = Tally::new();
        let a = 3 * REGION;
        let b = a + SLOTS * REGION;
        for _ in 0..COLLAPSE_AFTER as usize / REGION {
            assert!(dues(&mut t, a, REGION).is_empty());
            assert!(dues(&mut t, b, REGION).is_empty());
        }
    }

    #[test]
    fn the_end_of_the_address_space_does_not_overflow() {
        let mut t = Tally::new();
        assert!(dues(&mut t, usize::MAX - 100, 1000).is_empty());
    }

    #[test]
    fn only_regions_wholly_inside_one_private_anonymous_mapping_are_collapsed() {
        let maps = "\
55d0a0000000-55d0a0400000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000200000 rw-s 00000000 00:1a 1234                       /dev/shm/x
7f0000200000-7f0000600000 rw-p 00000000 00:00 0
7f0000600000-7f0000a00000 rw-p 00001000 08:01 4321                       /tmp/file
7f0000a00000-7f0000b00000 rw-p 00000000 00:00 0
";
        assert!(private_anonymous(maps, 0x55d0a0000000));
        assert!(private_anonymous(maps, 0x55d0a0200000));
        assert!(
            !private_anonymous(maps, 0x55d0a0400000),
            "past the heap's end"
        );
        assert!(!private_anonymous(maps, 0x7f0000000000), "shared memory");
        assert!(private_anonymous(maps, 0x7f0000400000));
        assert!(!private_anonymous(maps, 0x7f0000600000), "a file");
        assert!(!private_anonymous(maps, 0x7f0000a00000), "half a region");
        assert!(!private_anonymous("", 0x7f0000200000));
        assert!(!private_anonymous("garbage\n", 0x7f0000200000));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // reads /proc/self/maps, madvise is a system call
    fn a_lend_that_tries_a_collapse_is_counted() {
        enable(true);
        if !ON.load(Ordering::Relaxed) {
            eprintln!("transparent huge pages are off here: nothing is collapsed");
            return;
        }
        let v = vec![1u8; 3 * REGION];
        let base = (v.as_ptr() as usize).next_multiple_of(REGION);
        let before = tries();
        // Lent in pieces of a region, as often as a region must lend before its try.
        let lends = (COLLAPSE_AFTER / REGION as u64) as usize;
        let tried: Vec<bool> = (0..lends).map(|_| lent(base, REGION)).collect();
        assert_eq!(tried.iter().filter(|&&t| t).count(), 1, "{tried:?}");
        assert!(tried[lends - 1], "{tried:?}");
        assert!(tries() > before);
        drop(v);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // madvise is a system call
    fn collapsing_keeps_every_byte() {
        let len = 3 * REGION;
        let mut v: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let base = (v.as_ptr() as usize).next_multiple_of(REGION);
        collapse(base);
        // A region partly outside this vector (its neighbour is this process's too).
        collapse(base - REGION);
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i * 7 % 251) as u8));
        v[REGION] = 1;
        assert_eq!(v[REGION], 1);
    }
}
