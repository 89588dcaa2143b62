//! The node's collective area: the narrow door through which short collectives of a
//! communicator whose ranks all share this node's segment skip point-to-point messages
//! (see `src/coll/shared_memory.rs` for the protocol that runs over it).
//!
//! Layout, per local rank after the inboxes: [`DEPTH`] slots (collective `s` uses slot
//! `s % DEPTH`), each starting on a cache line with the slot's sequence word
//! (the number of the last collective that used it) and the length of the data,
//! followed at once by up to [`SLOT`] data bytes, so a reader that sees the sequence
//! word change has the length and the first 48 data bytes in the same line.
//! Invariants: only the owning rank writes its slots; it writes a slot only when every
//! rank has entered the collective after the one that last used it (so nobody still
//! reads it), and publishes what it wrote with one release store of the slot's
//! sequence word; a rank has entered collective `s` exactly when its slot
//! `s % DEPTH` holds a sequence number of at least `s`. Several slots let a root run
//! ahead of slow ranks by up to `DEPTH - 1` collectives (a broadcast loop on ranks
//! that share cores then switches rank only every few broadcasts).

use std::sync::atomic::{AtomicU64, Ordering};

use super::segment::LINE;

/// Data bytes of one slot: the largest contribution a rank makes to one collective
/// over the area.
pub(crate) const SLOT: usize = 8 * 1024;

/// Slots per rank.
pub(crate) const DEPTH: u64 = 8;

/// Bytes before a slot's data: its sequence word and length.
const PREFIX: usize = 16;
/// Bytes of one slot, whole cache lines.
const SLOT_SPAN: usize = (PREFIX + SLOT).div_ceil(LINE) * LINE;

/// Bytes of one rank's part of the area.
pub(crate) const BLOCK: usize = DEPTH as usize * SLOT_SPAN;

/// Raw access to the area of one node's segment.
#[derive(Clone, Copy)]
pub(crate) struct Area {
    base: *mut u8,
    ranks: usize,
}

// SAFETY: the pointer addresses the shared mapping, which the transport keeps mapped
// while any Area of it is in use; shared words are atomics and slot bytes follow the
// ownership protocol above.
unsafe impl Send for Area {}

impl Area {
    /// # Safety
    /// `base` points to `ranks * BLOCK` bytes of the mapping, zeroed at creation,
    /// aligned to a cache line, mapped while the Area is used.
    pub(crate) unsafe fn new(base: *mut u8, ranks: usize) -> Area {
        Area { base, ranks }
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        assert!(off + 8 <= self.ranks * BLOCK && off % 8 == 0);
        // SAFETY: in bounds and aligned (checked); mapped while the Area is used.
        unsafe { AtomicU64::from_ptr(self.base.add(off).cast()) }
    }

    fn slot_off(local: usize, seq: u64) -> usize {
        local * BLOCK + (seq % DEPTH) as usize * SLOT_SPAN
    }

    /// The sequence word of local rank `l`'s slot `seq % DEPTH`: `l` has entered
    /// collective `seq` once it holds at least `seq`.
    pub(crate) fn seq(&self, l: usize, seq: u64) -> &AtomicU64 {
        assert!(l < self.ranks);
        self.word(Self::slot_off(l, seq))
    }

    /// Writes `len` bytes into `l`'s slot for collective `seq`, produced by `fill`
    /// (which gets the slot's first `len` data bytes). Only rank `l` calls this, and
    /// only when nobody reads that slot; [`Area::seq`] publishes it.
    pub(crate) fn write(&self, l: usize, seq: u64, len: usize, fill: impl FnOnce(&mut [u8])) {
        assert!(len <= SLOT && l < self.ranks);
        let off = Self::slot_off(l, seq);
        self.word(off + 8).store(len as u64, Ordering::Relaxed);
        // SAFETY: the data lies inside the mapping (checked above) and, by the area's
        // protocol, no other rank reads or writes it until the owner publishes.
        let data = unsafe { std::slice::from_raw_parts_mut(self.base.add(off + PREFIX), len) };
        fill(data);
    }

    /// What local rank `l` wrote into its slot for collective `seq`. The caller has
    /// seen (with acquire) `l` publish `seq`, and stops using the bytes before it
    /// enters collective `seq + 1`.
    pub(crate) fn read(&self, l: usize, seq: u64) -> &[u8] {
        assert!(l < self.ranks);
        let off = Self::slot_off(l, seq);
        let len = (self.word(off + 8).load(Ordering::Relaxed) as usize).min(SLOT);
        // SAFETY: inside the mapping; by the area's protocol the owner does not write
        // the slot again until every rank (this one too) has entered a later collective.
        unsafe { std::slice::from_raw_parts(self.base.add(off + PREFIX), len) }
    }
}
