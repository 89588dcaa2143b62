//! Huge pages under lent memory. A peer's `process_vm_readv` (or `_writev`) of a
//! buffer this rank lends pins every page of it first, and on 4 KiB pages the pinning
//! costs more than the copy: on the AMD EPYC VM a 1 MiB read took 115-122 us from
//! 4 KiB pages and 50-56 us from 2 MiB ones (`benches/rendezvous_floor.c` with the
//! sender's buffer on huge pages; the receiver's pages made no difference, it copies
//! into its own memory without pinning).
//!
//! So a rank counts the bytes it lends from each 2 MiB-aligned region of its memory,
//! and once a region has lent [`COLLAPSE_AFTER`] bytes it asks the kernel to back the
//! region by one huge page (`MADV_COLLAPSE`, Linux 6.1; a best effort, independent of
//! the system's transparent-huge-page mode unless that is `never`). The collapse
//! copies the region (0.6-1.3 ms measured here), as much as lending about 16 MiB from
//! 4 KiB pages loses, so a region is collapsed only once it has lent that much:
//! memory lent again and again pays it back, memory lent once never pays it.
//!
//! A collapse keeps every byte as it was (the pages are transparent to the program);
//! it may fill pages of the region that were never touched, at most 2 MiB a region.
//! It runs in the lender before the address is published, so no peer has the pages
//! pinned (pinned pages make it fail). A region's count restarts after each try, and
//! each try doubles what the region must lend before the next, up to
//! [`MOST_DOUBLINGS`] times: a try that cannot succeed (a region reaching past the
//! ends of its mapping of anonymous memory) took
//! 10-70 us here, now and then 1 ms (the kernel first drains every CPU's page
//! lists), as long as 16 ping-pongs of 1 MiB take; memory unmapped and mapped again
//! at the same place is still tried again, after 1 GiB at most.
//! `OXMPI_SHM_HUGE_PAGES=0` turns it off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// A huge page's size and alignment (a PMD on x86-64, and on arm64 with 4 KiB pages).
const REGION: usize = 2 << 20;

/// Bytes lent from a region before it is collapsed (see the module's comment).
const COLLAPSE_AFTER: u64 = 16 << 20;

/// The most times the bytes lent between a region's tries double.
const MOST_DOUBLINGS: u32 = 6;

/// Regions counted at once; a region whose slot another takes starts over.
const SLOTS: usize = 256;

/// `MADV_COLLAPSE` (Linux 6.1; the libc crate may not name it yet).
const MADV_COLLAPSE: libc::c_int = 25;

static ON: AtomicBool = AtomicBool::new(false);
static TALLY: Mutex<Tally> = Mutex::new(Tally::new());

/// Turns the collapsing of often-lent regions on or off for this process.
pub(crate) fn enable(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Counts `len` bytes at `addr` in this process as lent to another process's
/// `process_vm_*` call about to be told of them, collapsing the regions that have
/// lent enough. Called before the address is published; kept out of line, off the
/// paths of the small messages beside its callers.
#[inline(never)]
pub(crate) fn lent(addr: usize, len: usize) {
    if !ON.load(Ordering::Relaxed) || len == 0 {
        return;
    }
    let mut tally = TALLY.lock().unwrap_or_else(PoisonError::into_inner);
    tally.add(addr, len, collapse);
}

/// Asks the kernel to back the region at `base` by one huge page; failures (an old
/// kernel, transparent huge pages off, a region not all anonymous memory, pages
/// pinned) leave it as it was.
fn collapse(base: usize) {
    // SAFETY: `MADV_COLLAPSE` changes no byte of this process's memory, only the pages
    // under it; for addresses not mapped, or not eligible, the kernel fails cleanly.
    unsafe {
        libc::madvise(base as *mut libc::c_void, REGION, MADV_COLLAPSE);
    }
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
