//! The node's collective area: the narrow door through which short collectives of a
//! communicator whose ranks all share this node's segment skip point-to-point messages
//! (see `src/coll/shared_memory.rs` for the protocol that runs over it).
//!
//! Layout, per local rank after the inboxes: [`DEPTH`] small slots (collective `s`
//! uses slot `s % DEPTH`), each starting on a cache line with the slot's sequence word
//! (the number of the last collective that used it), where its data is and the
//! length of the whole operation the data belongs to (for operations that go in
//! pieces), followed at once by up to [`SMALL`] data bytes, so a reader that sees the
//! sequence word change has the first 40 data bytes in the same line; then [`LARGE_DEPTH`] large
//! buffers of [`LARGE`] bytes, one region that the rank's [`Books`] hand out in
//! granules to the collectives whose data does not fit a small slot ([`Room`]).
//! Invariants: only the owning rank writes its slots and large region; it writes a
//! slot or granule only when every rank has entered the collective after the one that
//! last used it (so nobody still reads it), and publishes what it wrote with one release
//! store of the slot's sequence word; a rank has entered collective `s` exactly when
//! its slot `s % DEPTH` holds a sequence number of at least `s` (a rank that runs
//! the collective as messages instead flags the number it publishes, so ranks that
//! meet in the area see the disagreement). Many small slots let
//! a root run ahead of slow ranks by up to `DEPTH - 1` short collectives (a broadcast
//! loop on ranks that share cores then switches rank only every few dozen
//! broadcasts), at a small memory cost.

use std::sync::atomic::{AtomicU64, Ordering};

use super::segment::{LINE, PAGE};
use crate::prefetch;

/// Data bytes of a small slot: 4 KiB and the line the prefix shares with the first
/// data bytes, so that a 4 KiB contribution fits whole. Slots a whole page long
/// (4 KiB exactly) made 512 B - 1 KiB alltoall and allgather 7-18% slower (the
/// slots of one rank then fall on the same cache sets); docs/collectives.md has
/// the measurements.
pub(crate) const SMALL: usize = 4096 + LINE - PREFIX;
/// Small slots per rank. A rank that shares its core with others waits by yielding
/// it, so a loop of short collectives switches ranks about once every `DEPTH` calls,
/// when the root has filled its slots: 128 slots instead of 32 took 4-rank bcast of
/// 1-64 B to 0.60-0.65 of the time in the VM's fast phase and 0.62-0.89 in the slow
/// one, 8 ranks to 0.50-0.61 and 0.79-0.89 (docs/collectives.md); 2-rank allreduce
/// of 4 B-1 KiB took 0.93-1.08 of its time (within the noise, a few percent more on
/// average), for 400 KiB more per rank.
pub(crate) const DEPTH: u64 = 128;
/// Data bytes of a large buffer: the largest contribution a rank makes to one
/// collective over the area (a piece of a long bcast, allreduce or alltoall; other
/// collectives stay below `coll::shared_memory::WHOLE`). Each piece costs every rank
/// a meeting, and ranks that share cores switch at each: against 128 KiB, 512 KiB
/// took allreduce of 256 KiB-1 MiB to 0.44-0.69 of the time on 2 ranks, 0.66-1.03 on
/// 4 (three sets) and 0.67-0.80 on 8, bcast to 0.75-0.83 on 4 and 0.84-0.95 on 8
/// (medians of 8-16 interleaved rounds); 256 KiB and 1 MiB buffers were slower than
/// 512 KiB (on 8 ranks 1.03-1.71 and 1.01-1.07), and two buffers instead of four
/// 1.13-1.38 on 4 ranks. The cost is 1.5 MiB more per rank than 128 KiB.
pub(crate) const LARGE: usize = 512 * 1024;
/// Large buffers per rank.
pub(crate) const LARGE_DEPTH: u64 = 4;
/// Bytes of a rank's large region (its [`LARGE_DEPTH`] large buffers end to end).
const REGION: usize = LARGE_DEPTH as usize * LARGE;
/// The unit the large region is handed out in ([`Room::Ahead`]), and how the books
/// track its last uses.
const GRANULE: usize = 4096;
/// Lines of its data in a small slot a rank asks for owned (`prefetchw`) before it
/// writes them, all at once: the other ranks read them the last time, so each store
/// would otherwise wait for its line to leave their core, one line after another (as
/// the rings' producers do, `ring.rs`). 2 ranks, allreduce of 512 B-4 KiB in
/// 0.88-0.96 of the time (6 interleaved rounds, a cache line crossing between the
/// cores in 0.14 us); 4 ranks, alltoall of 128 B-1 KiB 0.91-0.96, allreduce
/// 0.95-1.01, bcast of 256 B-4 KiB 0.84-0.94 (4-5 rounds); 8 ranks, alltoall of
/// 64 B-8 KiB 0.95-0.99, bcast of 2-4 KiB 0.87-0.97 (shorter broadcasts on 8 ranks
/// vary by 30% between rounds either way). All 32 lines of 2 KiB took 1.08x. Counted
/// from the line the data starts in (mid-line in a small slot): 2-rank allreduce of
/// 64-512 B in 0.86-0.96 of the time of owning from the data's start (6 rounds).
const OWNED_SMALL: usize = 16;
/// The same in the large region: against 16, 2-rank allreduce through the area of
/// 8 KiB in 0.82-0.84 of the time and 16 KiB in 0.93, 4-rank bcast of 8-16 KiB
/// 0.89-0.96 (5-8 rounds); longer writes unchanged, where every line owned at once
/// made 64-256 KiB 1.08-1.13x slower.
const OWNED_LARGE: usize = 256;
/// Granules of the large region.
const GRANULES: usize = REGION / GRANULE;
/// Granules of one large buffer.
const BUFFER_GRANULES: u64 = (LARGE / GRANULE) as u64;
const _: () = assert!(LARGE.is_multiple_of(GRANULE) && GRANULES < 1 << 20);

/// Bytes before a slot's data: its sequence word, where its data is, and the length
/// of the whole operation.
const PREFIX: usize = 24;
/// Bytes of one small slot, whole cache lines.
const SLOT_SPAN: usize = (PREFIX + SMALL).div_ceil(LINE) * LINE;
/// Where the large buffers start in a rank's block.
const LARGE_START: usize = DEPTH as usize * SLOT_SPAN;
/// Tells a slot's length word that the data is in the large region, from granule
/// `word >> 32` on.
const IN_LARGE: u64 = 1 << 31;

/// Bytes of one rank's part of the area.
pub(crate) const BLOCK: usize = LARGE_START + REGION + STAGGER;
/// Padding that puts the same slot of consecutive ranks half a page apart, as it was
/// with 32 slots: the loads from one and the stores to the other would otherwise look
/// alike to the processor's 4 KiB alias check.
const STAGGER: usize = 2048;
const _: () = assert!(BLOCK % PAGE == PAGE / 2);
// The words of the area lie at offsets built from these, so all are 8-byte aligned.
const _: () = assert!(
    BLOCK.is_multiple_of(8)
        && SLOT_SPAN.is_multiple_of(8)
        && LARGE_START.is_multiple_of(8)
        && PREFIX.is_multiple_of(8)
        && LARGE.is_multiple_of(8)
);

/// Set in a sequence word by a rank that entered the collective but runs it as
/// messages (the selection sent it there: it disagrees on the counts with any rank
/// that meets in the area in the same collective).
const VIA_MESSAGES: u64 = 1 << 62;
/// Set in a sequence word by a rank that entered the collective without writing for
/// it (a barrier's, a broadcast's reader): its slot still holds what it wrote for an
/// earlier collective, which nobody may take for this one's. Ranks that disagree on
/// the counts or the root read such a slot (a gather's root that finds a rank
/// contributing another count, and looks for loans to release), and fail instead.
const NO_DATA: u64 = 1 << 63;
/// Where a sequence word holds what the rank entered (the caller's code for the
/// operation, below 64): ranks that disagree on which collective comes next see it.
const WHAT_SHIFT: u32 = 56;
const WHAT_BITS: u64 = 0x3f;
/// The collective's number in a sequence word.
const SEQ_BITS: u64 = (1 << WHAT_SHIFT) - 1;

/// The sequence word of a rank that entered collective `seq`, an operation the
/// caller numbers `what`, in the area or (`via_messages`) as messages.
#[inline(always)]
fn published(seq: u64, what: u8, via_messages: bool) -> u64 {
    debug_assert!(seq <= SEQ_BITS && u64::from(what) <= WHAT_BITS);
    let flag = if via_messages { VIA_MESSAGES } else { 0 };
    seq | (u64::from(what) & WHAT_BITS) << WHAT_SHIFT | flag
}

/// How a rank took part in a collective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// It met in the area.
    InArea,
    /// It published only that it sends messages instead.
    ViaMessages,
}

/// Where a collective's data goes: its small slot, or the large region from a
/// granule on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Small,
    Large(u64),
}

/// The room a rank asks for its data of the next collective.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// Its small slot (at most [`SMALL`] bytes).
    Slot,
    /// The next of its first `turns` large buffers (at most [`LARGE_DEPTH`]) in turn,
    /// for `bytes` (at most [`LARGE`]): collectives whose ranks all write and all wait
    /// for one another, which keep coming back to the same few buffers (and caches).
    Buffer { bytes: usize, turns: u64 },
    /// The next stretch of `bytes` in a window of `window` bytes at the end of the
    /// large region, going round it: a rank that writes for readers who do not write
    /// back (a broadcast's root) may run ahead of them by as many collectives as the
    /// window holds, not just [`LARGE_DEPTH`]. Data longer than half the window goes
    /// as [`Room::Buffer`].
    Ahead { bytes: usize, window: usize },
}

/// How a collective's data larger than a small slot takes the large region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Large {
    /// The next of the first this many large buffers in turn ([`Room::Buffer`]).
    InTurn(u64),
    /// The next stretch of a window of this many bytes ([`Room::Ahead`]).
    Ahead(usize),
}

impl Room {
    /// Room for `bytes` of data: a small slot where they fit, else large room as
    /// `large` says.
    pub(crate) fn for_bytes(bytes: usize, large: Large) -> Room {
        match (bytes <= SMALL, large) {
            (true, _) => Room::Slot,
            (false, Large::Ahead(window)) => Room::Ahead { bytes, window },
            (false, Large::InTurn(turns)) => Room::Buffer { bytes, turns },
        }
    }
}

/// Raw access to the area of one node's segment.
#[derive(Clone, Copy)]
pub(crate) struct Area {
    base: *mut u8,
    ranks: usize,
    /// See [`Area::prefetch_write`].
    for_write: prefetch::ForWrite,
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
        Area {
            base,
            ranks,
            for_write: prefetch::ForWrite::detect(),
        }
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        // Every offset is built from multiples of 8 (see the assertion below `BLOCK`).
        debug_assert!(off.is_multiple_of(8));
        assert!(off + 8 <= self.ranks * BLOCK);
        // SAFETY: in bounds (checked) and 8-byte aligned (the base is line-aligned and
        // the offset a multiple of 8); mapped while the Area is used.
        unsafe { AtomicU64::from_ptr(self.base.add(off).cast()) }
    }

    /// Maps local rank `l`'s small slots into this process ahead of use, page tables
    /// and all: to be written if `write` (`l` is this rank), else to be read. Each slot
    /// spans a page (4160 bytes), and a page's first touch through a mapping faults;
    /// untouched, the first [`DEPTH`] collectives paid those faults (2 ranks: allreduce
    /// of 4 B in 1.3-3 us over the first thousand calls after init, 0.25-0.35 us once
    /// warm). The kernel maps them without this process reading or writing a byte, so
    /// nothing here races with the owner's first collectives; the half pages at the
    /// region's ends fault in. A kernel without `MADV_POPULATE_READ`/`WRITE` (before
    /// Linux 5.14) has each slot's sequence word touched instead (stored, or loaded),
    /// which every rank only ever accesses atomically: all but two of the 130 pages.
    pub(crate) fn map_small_slots(&self, l: usize, write: bool) {
        let start = l * BLOCK;
        if !self.populate(start..start + LARGE_START, write) {
            self.touch_sequence_words(l, write);
        }
    }

    /// Stores 0 into each of local rank `l`'s sequence words if `write` (`l` is this
    /// rank, before any collective), else loads each.
    fn touch_sequence_words(&self, l: usize, write: bool) {
        for seq in 0..DEPTH {
            let word = self.seq_word(l, seq);
            if write {
                word.store(0, Ordering::Relaxed);
            } else {
                word.load(Ordering::Relaxed);
            }
        }
    }

    /// Maps every local rank's large region into this process ahead of use, page
    /// tables and all: this rank's own (`local`) to be written, the others' to be read.
    /// Untouched, a collective's first uses of each stretch of large buffers faulted on
    /// every page each rank wrote or read, and rank 0's estimate of an alltoall in
    /// pieces through the area started from those uses: in a sweep of sizes on 4
    /// ranks, 128 KiB blocks in pieces looked slower than lent copies, which took
    /// 1.5 times as long (mapped ahead, the alltoall took 0.60-0.68 of the time, three
    /// A/B runs of 8 interleaved rounds; mapping only its own region left it as it
    /// was: the others' pages fault in each reader too). Only a hint: a kernel without
    /// `MADV_POPULATE_READ`/`WRITE` (before Linux 5.14) leaves the pages to fault in
    /// as before.
    pub(crate) fn map_large_regions(&self, local: usize) {
        for l in 0..self.ranks {
            let start = l * BLOCK + LARGE_START;
            self.populate(start..start + REGION, l == local);
        }
    }

    /// Has the kernel map the whole pages within `range` (offsets into the area) into
    /// this process, to be written if `write`, else read: the pages that share
    /// `range`'s ends with what lies beside it are left alone. Whether it could.
    fn populate(&self, range: std::ops::Range<usize>, write: bool) -> bool {
        assert!(range.end <= self.ranks * BLOCK);
        let base = self.base as usize;
        let from = (base + range.start).next_multiple_of(PAGE);
        let to = (base + range.end) / PAGE * PAGE;
        if from >= to {
            return true;
        }
        let advice = if write {
            libc::MADV_POPULATE_WRITE
        } else {
            libc::MADV_POPULATE_READ
        };
        // SAFETY: `from..to` are whole pages inside the area's mapping (checked above);
        // populating faults pages in without changing what they hold, and a failure
        // changes nothing either.
        unsafe { libc::madvise(from as *mut libc::c_void, to - from, advice) == 0 }
    }

    fn slot_off(local: usize, seq: u64) -> usize {
        local * BLOCK + (seq % DEPTH) as usize * SLOT_SPAN
    }

    /// Offset of the data of `l`'s collective `seq` in `place`, and its capacity.
    fn data_off(local: usize, seq: u64, place: Place) -> (usize, usize) {
        match place {
            Place::Small => (Self::slot_off(local, seq) + PREFIX, SMALL),
            Place::Large(g) => {
                let g = (g as usize).min(GRANULES - 1);
                (
                    local * BLOCK + LARGE_START + g * GRANULE,
                    LARGE.min(REGION - g * GRANULE),
                )
            }
        }
    }

    /// The sequence word of local rank `l`'s slot `seq % DEPTH`.
    fn seq_word(&self, l: usize, seq: u64) -> &AtomicU64 {
        assert!(l < self.ranks);
        self.word(Self::slot_off(l, seq))
    }

    /// Brings the line of `l`'s slot for `seq` (its sequence word, shape and first
    /// data bytes) into this core's cache ahead of use; only a hint.
    pub(crate) fn prefetch(&self, l: usize, seq: u64) {
        prefetch::read(self.seq_word(l, seq).as_ptr().cast());
    }

    /// Asks for the line of `l`'s slot for `seq` in this core's cache, owned (to be
    /// written), where the processor can; only a hint.
    pub(crate) fn prefetch_write(&self, l: usize, seq: u64) {
        self.for_write.ask(self.seq_word(l, seq).as_ptr().cast());
    }

    /// Whether local rank `l` has entered collective `seq` (acquire: what it wrote
    /// for `seq` is visible after a `true`).
    pub(crate) fn entered(&self, l: usize, seq: u64) -> bool {
        self.seq_word(l, seq).load(Ordering::Acquire) & SEQ_BITS >= seq
    }

    /// Local rank `l` (the caller) enters collective `seq`, an operation the caller
    /// numbers `what` (below 64), publishing what it `wrote` for it (if anything)
    /// with a release store; `via_messages`: it runs this collective as messages
    /// instead (see [`Area::arrival`]).
    pub(crate) fn publish(&self, l: usize, seq: u64, what: u8, via_messages: bool, wrote: bool) {
        let word = published(seq, what, via_messages) | if wrote { 0 } else { NO_DATA };
        self.seq_word(l, seq).store(word, Ordering::Release);
    }

    /// Whether local rank `l` entered collective `seq` as the operation the caller
    /// numbers `what`, meeting in the area, and has not moved on (acquire, as
    /// [`Area::entered`]): one load and one compare, the common case of
    /// [`Area::arrival`].
    #[inline]
    pub(crate) fn entered_as(&self, l: usize, seq: u64, what: u8) -> bool {
        self.seq_word(l, seq).load(Ordering::Acquire) & !NO_DATA == published(seq, what, false)
    }

    /// [`Area::entered_as`], and `l` wrote for `seq`: one load and one compare, the
    /// common case before a read.
    #[inline]
    pub(crate) fn entered_with_data(&self, l: usize, seq: u64, what: u8) -> bool {
        self.seq_word(l, seq).load(Ordering::Acquire) == published(seq, what, false)
    }

    /// Whether `l` entered collective `seq` without writing for it (then its slot
    /// holds what it wrote for an earlier collective).
    pub(crate) fn wrote_nothing(&self, l: usize, seq: u64) -> bool {
        let word = self.seq_word(l, seq).load(Ordering::Acquire);
        word & SEQ_BITS == seq && word & NO_DATA != 0
    }

    /// How local rank `l` took part in collective `seq`, and which operation it
    /// entered (the `what` it published), if it entered it and has not moved on to
    /// the next collective of its slot.
    pub(crate) fn arrival(&self, l: usize, seq: u64) -> Option<(Arrival, u8)> {
        let word = self.seq_word(l, seq).load(Ordering::Acquire);
        let how = if word & VIA_MESSAGES != 0 {
            Arrival::ViaMessages
        } else {
            Arrival::InArea
        };
        (word & SEQ_BITS == seq).then_some((how, (word >> WHAT_SHIFT & WHAT_BITS) as u8))
    }

    /// Writes `len` bytes (at most the ticket's room) for `l`'s collective
    /// `ticket.seq` into the ticket's place, produced by `fill` (which gets the first
    /// `len` bytes there), as a piece of an operation described by `shape` (its
    /// length and element size, see `coll/shared_memory.rs`); [`Area::publish`]
    /// publishes it.
    ///
    /// # Safety
    /// Only rank `l` calls this, with a ticket of its own books, and only when every
    /// rank has entered the ticket's `free_after` (then nobody reads or writes these
    /// bytes meanwhile).
    pub(crate) unsafe fn write(
        &self,
        l: usize,
        ticket: &Ticket,
        (len, shape): (usize, u64),
        fill: impl FnOnce(&mut [u8]),
    ) {
        let (seq, place) = (ticket.seq, ticket.place);
        let (off, cap) = Self::data_off(l, seq, place);
        assert!(len <= cap.min(ticket.room) && l < self.ranks);
        let tag = match place {
            Place::Small => 0,
            Place::Large(g) => IN_LARGE | g << 32,
        };
        self.word(Self::slot_off(l, seq) + 8)
            .store(tag | len as u64, Ordering::Relaxed);
        self.word(Self::slot_off(l, seq) + 16)
            .store(shape, Ordering::Relaxed);
        // SAFETY: the data lies inside the mapping (checked above) and, by this
        // function's contract, no other process reads or writes it until we publish.
        let data = unsafe { std::slice::from_raw_parts_mut(self.base.add(off), len) };
        let owned = match place {
            Place::Small => OWNED_SMALL,
            Place::Large(_) => OWNED_LARGE,
        };
        // Every line the data touches (it starts mid-line in a small slot).
        let first = off - off % LINE;
        for line in (first..off + len).step_by(LINE).take(owned) {
            self.for_write.ask(self.base.wrapping_add(line));
        }
        fill(data);
    }

    /// What local rank `l` wrote for its collective `seq`, and the shape of the
    /// operation it belongs to.
    ///
    /// # Safety
    /// The caller has seen (with acquire) `l` publish `seq` having written for it
    /// (not [`Area::wrote_nothing`]), and stops using the bytes before it enters
    /// collective `seq + 1` (until then `l` does not write them).
    pub(crate) unsafe fn read(&self, l: usize, seq: u64) -> (&[u8], u64) {
        assert!(l < self.ranks);
        let word = self
            .word(Self::slot_off(l, seq) + 8)
            .load(Ordering::Relaxed);
        let place = match word & IN_LARGE {
            0 => Place::Small,
            _ => Place::Large(word >> 32),
        };
        let (off, cap) = Self::data_off(l, seq, place);
        let len = ((word & (IN_LARGE - 1)) as usize).min(cap);
        let shape = self
            .word(Self::slot_off(l, seq) + 16)
            .load(Ordering::Relaxed);
        // SAFETY: inside the mapping; by this function's contract the owner does not
        // write there while the caller uses the bytes.
        let data = unsafe { std::slice::from_raw_parts(self.base.add(off), len) };
        (data, shape)
    }
}

/// Whether a rank that waits for every local rank to enter collective `theirs` can
/// do nothing in the area before this rank, which waits for every local rank to enter
/// `mine`, is done waiting (0: not waiting so): every rank entering `theirs` means
/// every rank entered `mine`, which has not happened. A rank further behind could
/// move on (this one waits for it), and what a rank that waits otherwise waits for is
/// not known. Only a guess for the CPU's sake: such a rank may still have other
/// traffic to progress, which then waits for this rank's spin (at most 100 us).
pub(crate) fn waits_as_long(mine: u64, theirs: u64) -> bool {
    mine != 0 && theirs >= mine
}

/// This rank's numbering of the collectives over the area, and the last use of each
/// granule of its large region. Every local rank takes part in every collective over
/// the area, so all number them alike; where a rank puts data that does not fit a
/// small slot is its own affair (it alone writes its large region, and readers find
/// the place named in its slot), so ranks that disagree on whether a collective
/// needs large room, or how much, stay safe.
#[derive(Debug)]
pub(crate) struct Books {
    seq: u64,
    /// Large buffers handed out ([`Room::Buffer`]).
    buffers: u64,
    /// The granule the next [`Room::Ahead`] starts at, if it fits before the end.
    ahead: usize,
    /// The last collective that used each granule (0: none yet).
    last_use: Box<[u64; GRANULES]>,
    /// Every rank is known to have entered this collective.
    entered: u64,
}

impl Default for Books {
    fn default() -> Books {
        Books {
            seq: 0,
            buffers: 0,
            ahead: 0,
            last_use: Box::new([0; GRANULES]),
            entered: 0,
        }
    }
}

/// One collective's place in the area.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    /// The collective's number.
    pub seq: u64,
    /// Where ranks write their data.
    pub place: Place,
    /// The most this rank may write there: the room it asked for, whole granules.
    pub room: usize,
    /// Every rank must have entered this collective before this rank writes (0 when
    /// that is already known).
    pub free_after: u64,
}

impl Books {
    /// Numbers the next collective and finds `room` for this rank's data in it.
    #[inline(always)]
    pub(crate) fn next(&mut self, room: Room) -> Ticket {
        self.seq += 1;
        let seq = self.seq;
        // The small slot was last used by collective `seq - DEPTH`: everyone must
        // have moved past it.
        let mut free_after = (seq + 1).saturating_sub(DEPTH);
        let large = match room {
            Room::Slot => None,
            Room::Buffer { bytes, turns } => {
                let n = granules(bytes);
                Some((self.buffer_in_turn(n, seq, turns), n))
            }
            Room::Ahead { bytes, window } => {
                let n = granules(bytes);
                let first = self.stretch_ahead(n, window, seq);
                let first = first.unwrap_or_else(|| self.buffer_in_turn(n, seq, LARGE_DEPTH));
                Some((first, n))
            }
        };
        let (place, granted) = match large {
            None => (Place::Small, SMALL),
            Some((first, n)) => {
                free_after = free_after.max(self.take(first, n, seq));
                (Place::Large(first as u64), n * GRANULE)
            }
        };
        if free_after <= self.entered {
            free_after = 0;
        }
        Ticket {
            seq,
            place,
            room: granted,
            free_after,
        }
    }

    /// The first granule of the next of the first `turns` large buffers in turn whose
    /// first `n` granules collective `seq - 1` did not use. That used one stretch, so
    /// it clashes with two buffers at most: where all of the `turns` do, the next of
    /// all [`LARGE_DEPTH`].
    fn buffer_in_turn(&mut self, n: usize, seq: u64, turns: u64) -> usize {
        let mut turns = turns.clamp(1, LARGE_DEPTH);
        for tried in 1.. {
            let first = (self.buffers % turns * BUFFER_GRANULES) as usize;
            self.buffers += 1;
            if self.last_clash(first, n, seq).is_none() {
                return first;
            }
            if tried >= turns {
                turns = LARGE_DEPTH;
            }
        }
        unreachable!("one stretch clashes with two large buffers at most")
    }

    /// The first granule of the next `n` in a window of `window` bytes at the end of
    /// the large region ([`Room::Ahead`]), from where the last stretch ended,
    /// wrapping at the window's end; `None` where they do not fit twice in the
    /// window, or where collective `seq - 1` used them (a large buffer in turn that
    /// overlaps the window; then the caller takes the next buffer in turn instead).
    fn stretch_ahead(&mut self, n: usize, window: usize, seq: u64) -> Option<usize> {
        let start = GRANULES - (window / GRANULE).min(GRANULES);
        if 2 * n > GRANULES - start {
            return None;
        }
        let first = if self.ahead < start || self.ahead + n > GRANULES {
            start
        } else {
            self.ahead
        };
        if self.last_clash(first, n, seq).is_some() {
            return None;
        }
        self.ahead = first + n;
        Some(first)
    }

    /// The last of the `n` granules from `first` on that collective `seq - 1` used:
    /// this rank could not write there in collective `seq` before every rank has
    /// entered `seq`, itself included.
    fn last_clash(&self, first: usize, n: usize, seq: u64) -> Option<usize> {
        self.last_use[first..first + n]
            .iter()
            .rposition(|&u| u > 0 && u + 1 == seq)
            .map(|j| first + j)
    }

    /// Marks the `n` granules from `first` on as used by collective `seq`; the
    /// collective every rank must have entered before they are written again (0:
    /// none).
    fn take(&mut self, first: usize, n: usize, seq: u64) -> u64 {
        let uses = &mut self.last_use[first..first + n];
        let last = uses.iter().copied().max().unwrap_or(0);
        uses.fill(seq);
        if last > 0 { last + 1 } else { 0 }
    }

    /// Every rank has been seen to have entered collective `seq`.
    pub(crate) fn all_entered(&mut self, seq: u64) {
        self.entered = self.entered.max(seq);
    }
}

/// Granules that `bytes` of large room take (at least one, at most a buffer's).
fn granules(bytes: usize) -> usize {
    bytes.div_ceil(GRANULE).clamp(1, BUFFER_GRANULES as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next of all the large buffers in turn, for `bytes`.
    fn in_turn(bytes: usize) -> Room {
        Room::Buffer {
            bytes,
            turns: LARGE_DEPTH,
        }
    }

    #[test]
    fn large_buffers_wait_for_the_collective_after_their_last_use() {
        let mut books = Books::default();
        let first = books.next(Room::Slot);
        assert_eq!(
            (first.seq, first.place, first.free_after, first.room),
            (1, Place::Small, 0, SMALL)
        );
        for k in 0..LARGE_DEPTH {
            let t = books.next(in_turn(LARGE));
            assert_eq!(t.place, Place::Large(k * BUFFER_GRANULES));
            assert_eq!(t.room, LARGE);
            assert_eq!(t.free_after, 0, "fresh buffer {k}: nothing to wait for");
        }
        // Buffer 0 was last used by collective 2.
        let again = books.next(in_turn(LARGE / 2));
        assert_eq!((again.place, again.free_after), (Place::Large(0), 3));
        // Far enough on, the small-slot rule dominates.
        for _ in 0..2 * DEPTH {
            books.next(Room::Slot);
        }
        let t = books.next(Room::Slot);
        assert_eq!(t.free_after, t.seq + 1 - DEPTH);
        // Once every rank is known to be past that, nothing is left to wait for.
        books.all_entered(t.seq);
        assert_eq!(books.next(Room::Slot).free_after, 0);
        assert_eq!(books.next(in_turn(SMALL + 1)).free_after, 0);
    }

    #[test]
    fn stretches_ahead_go_round_their_window_and_wait_only_when_they_come_back() {
        let window = LARGE;
        let start = GRANULES - window / GRANULE;
        let ahead = |bytes| Room::Ahead { bytes, window };
        let mut books = Books::default();
        let n = window / GRANULE / 8;
        for i in 0..8 {
            let t = books.next(ahead(n * GRANULE));
            assert_eq!(t.place, Place::Large((start + i * n) as u64));
            assert_eq!((t.free_after, t.room), (0, n * GRANULE));
        }
        // Round again: the first stretch was used by collective 1.
        let t = books.next(ahead(n * GRANULE - 1));
        assert_eq!((t.place, t.free_after), (Place::Large(start as u64), 2));
        // A stretch that does not fit before the window's end starts at its start.
        let mut books = Books::default();
        books.next(ahead(window / 2));
        books.next(ahead(GRANULE));
        let t = books.next(ahead(window / 2));
        assert_eq!((t.place, t.free_after), (Place::Large(start as u64), 2));
        // Longer data goes to the buffers in turn.
        let t = books.next(ahead(window / 2 + 1));
        assert_eq!(t.place, Place::Large(0));
        // A narrower window starts further on; a wider one than the region is the
        // region.
        let narrow = Books::default().next(Room::Ahead {
            bytes: GRANULE,
            window: 4 * GRANULE,
        });
        assert_eq!(narrow.place, Place::Large((GRANULES - 4) as u64));
        let wide = Books::default().next(Room::Ahead {
            bytes: GRANULE,
            window: 4 * REGION,
        });
        assert_eq!(wide.place, Place::Large(0));
    }

    #[test]
    fn room_never_reuses_what_the_collective_just_before_used() {
        // A buffer in turn that a stretch ahead just used is skipped...
        let mut books = Books::default();
        for _ in 0..LARGE_DEPTH - 1 {
            books.next(in_turn(LARGE));
        }
        books.next(Room::Ahead {
            bytes: 2 * GRANULE,
            window: LARGE,
        });
        let t = books.next(in_turn(2 * GRANULE));
        assert_eq!(
            t.place,
            Place::Large(0),
            "buffer {} skipped",
            LARGE_DEPTH - 1
        );
        // ...and a stretch ahead that a buffer just used goes to a buffer in turn.
        let mut books = Books::default();
        for _ in 0..LARGE_DEPTH {
            books.next(in_turn(LARGE));
        }
        let t = books.next(Room::Ahead {
            bytes: GRANULE,
            window: LARGE,
        });
        assert_eq!((t.place, t.free_after), (Place::Large(0), 2));
    }

    /// Collectives that go round two large buffers alternate between them, each
    /// waiting only for the collective before the last (which every rank has entered
    /// once this rank has waited for all in the last), and go round all four where a
    /// stretch just used covers both.
    #[test]
    fn two_buffers_in_turn_alternate_and_make_room_beside_a_stretch() {
        let mut books = Books::default();
        let two = Room::Buffer {
            bytes: LARGE,
            turns: 2,
        };
        let mut places = Vec::new();
        for _ in 0..6 {
            let t = books.next(two);
            places.push(t.place);
            assert_eq!(t.free_after, 0, "nothing to wait for: {t:?}");
            books.all_entered(t.seq);
        }
        let (a, b) = (Place::Large(0), Place::Large(BUFFER_GRANULES));
        assert_eq!(places, [a, b, a, b, a, b]);
        // A stretch over the ends of both buffers: the next is the third.
        let wide = Room::Ahead {
            bytes: 2 * GRANULE,
            window: REGION,
        };
        books.next(Room::Slot);
        books.ahead = BUFFER_GRANULES as usize - 1;
        assert_eq!(books.next(wide).place, Place::Large(BUFFER_GRANULES - 1));
        assert_eq!(books.next(two).place, Place::Large(2 * BUFFER_GRANULES));
    }

    /// Random rooms, against a model that remembers every granule's last use: no
    /// ticket lets its rank write before every rank moved past the last reader of
    /// any byte it may write, and none waits for its own collective.
    #[test]
    fn every_ticket_waits_for_the_last_use_of_every_byte_it_covers() {
        let mut books = Books::default();
        let mut model = vec![0u64; GRANULES];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let bytes = SMALL + 1 + (x >> 8) as usize % (LARGE - SMALL);
            let room = match x % 3 {
                0 => Room::Slot,
                1 => Room::Buffer {
                    bytes,
                    turns: 1 + (x >> 20) % LARGE_DEPTH,
                },
                _ => Room::Ahead {
                    bytes,
                    window: GRANULE << ((x >> 40) % 11),
                },
            };
            let t = books.next(room);
            assert!(t.free_after < t.seq, "{room:?}: waits for itself");
            let Place::Large(g) = t.place else {
                assert_eq!(room, Room::Slot);
                continue;
            };
            let (g, n) = (g as usize, t.room / GRANULE);
            assert!(t.room >= bytes && g + n <= GRANULES);
            for u in &mut model[g..g + n] {
                if *u > 0 {
                    assert!(t.free_after > *u, "granule last used by {u}");
                }
                *u = t.seq;
            }
        }
    }

    #[test]
    fn a_rank_waiting_for_as_much_as_this_one_is_blocked_and_one_behind_is_not() {
        assert!(waits_as_long(5, 5) && waits_as_long(5, 6));
        // Behind: this rank needs it to enter collective 5.
        assert!(!waits_as_long(5, 4));
        // Not waiting in the area, or this rank is not: nothing is known.
        assert!(!waits_as_long(5, 0) && !waits_as_long(0, 5));
    }

    /// A zeroed, line-aligned stand-in for the mapping, for `ranks` ranks.
    fn mapping(ranks: usize) -> Vec<AtomicU64> {
        (0..ranks * BLOCK / 8).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn a_rank_on_messages_has_entered_but_is_told_apart_and_says_what_it_entered() {
        let words = mapping(2);
        // SAFETY: the vector is zeroed, 8-byte aligned (all this test touches: sequence
        // words and slot data through `write`/`read`), and outlives the Area.
        let area = unsafe { Area::new(words.as_ptr() as *mut u8, 2) };
        let seq = 5;
        assert!(!area.entered(1, seq) && area.arrival(1, seq).is_none());
        area.publish(1, seq, 63, true, false);
        assert!(area.entered(1, seq));
        assert_eq!(area.arrival(1, seq), Some((Arrival::ViaMessages, 63)));
        // The flag does not make the rank look further on than it is: the next
        // collective of the same slot is not entered.
        assert!(!area.entered(1, seq + DEPTH));
        assert!(area.arrival(1, seq + DEPTH).is_none());
        let ticket = Ticket {
            seq,
            place: Place::Small,
            room: SMALL,
            free_after: 0,
        };
        // SAFETY: nobody else uses the stand-in mapping.
        unsafe { area.write(0, &ticket, (3, 7), |d| d.copy_from_slice(b"abc")) };
        area.publish(0, seq, 0, false, true);
        assert_eq!(area.arrival(0, seq), Some((Arrival::InArea, 0)));
        assert!(area.entered_as(0, seq, 0) && !area.entered_as(0, seq, 1));
        assert!(
            !area.entered_as(1, seq, 63),
            "on messages: not as in the area"
        );
        assert!(area.entered_with_data(0, seq, 0) && !area.wrote_nothing(0, seq));
        // SAFETY: rank 0 published `seq` having written for it, and writes nothing more.
        assert_eq!(unsafe { area.read(0, seq) }, (&b"abc"[..], 7));
        // Entering the slot's next collective without writing: what the slot holds
        // is not that collective's.
        area.publish(0, seq + DEPTH, 0, false, false);
        assert!(area.entered_as(0, seq + DEPTH, 0) && !area.entered_with_data(0, seq + DEPTH, 0));
        assert!(area.wrote_nothing(0, seq + DEPTH));
        area.publish(0, seq + 2 * DEPTH, 1, false, true);
        assert!(
            area.arrival(0, seq + DEPTH).is_none() && !area.entered_as(0, seq + DEPTH, 0),
            "moved on: no longer at `seq`"
        );
    }

    /// Which pages of `len` bytes at `p` (page-aligned) are in memory.
    fn resident(p: *mut u8, len: usize) -> Vec<bool> {
        let mut vec = vec![0u8; len.div_ceil(PAGE)];
        // SAFETY: `p..p + len` is mapped and `vec` has a byte per page.
        let rc = unsafe { libc::mincore(p.cast(), len, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        vec.iter().map(|b| b & 1 == 1).collect()
    }

    /// A fresh shared anonymous mapping of `len` bytes (shared memory, as the
    /// segment is), zeroed and page-aligned; the caller unmaps it.
    fn shared_anonymous(len: usize) -> *mut libc::c_void {
        // SAFETY: a new mapping the kernel places; nothing else is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        p
    }

    /// Whether this kernel knows `MADV_POPULATE_READ`: asked of a page of its own.
    fn populating_known() -> bool {
        let p = shared_anonymous(PAGE);
        // SAFETY: advice on, then the unmapping of, the fresh page.
        unsafe {
            let rc = libc::madvise(p, PAGE, libc::MADV_POPULATE_READ);
            libc::munmap(p, PAGE);
            rc == 0
        }
    }

    /// Which pages of a fresh area of `ranks` ranks are in memory after `map` ran on
    /// it; `None` where the kernel maps nothing ahead (`MADV_POPULATE_*` arrived in
    /// Linux 5.14).
    fn mapped_pages(ranks: usize, map: impl FnOnce(&Area)) -> Option<Vec<bool>> {
        let len = ranks * BLOCK;
        let p = shared_anonymous(len);
        // Pages one by one, whatever the machine's huge-page settings for shared
        // memory: `mincore` tells of whole folios.
        // SAFETY: advice on the fresh mapping, which changes nothing it holds.
        let rc = unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
        assert_eq!(rc, 0, "madvise: {}", std::io::Error::last_os_error());
        let base = p.cast::<u8>();
        // SAFETY: `len` zeroed bytes, page-aligned, mapped until the end of the test.
        map(&unsafe { Area::new(base, ranks) });
        let pages = resident(base, len);
        // SAFETY: the mapping is no longer used.
        unsafe { libc::munmap(p, len) };
        if !populating_known() {
            eprintln!("this kernel maps nothing ahead");
            return None;
        }
        Some(pages)
    }

    /// Checks that exactly the whole pages inside `ranges` (offsets into the area)
    /// are in `pages`.
    fn only_whole_pages_of(pages: &[bool], ranges: &[std::ops::Range<usize>]) {
        for (i, &r) in pages.iter().enumerate() {
            let (from, to) = (i * PAGE, (i + 1) * PAGE);
            let inside = ranges.iter().position(|g| from >= g.start && to <= g.end);
            assert_eq!(r, inside.is_some(), "page {i} (inside range {inside:?})");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, madvise and mincore are system calls
    fn large_regions_are_mapped_whole_and_nothing_else() {
        let ranks = 3;
        let Some(pages) = mapped_pages(ranks, |area| area.map_large_regions(1)) else {
            return;
        };
        let regions: Vec<_> = (0..ranks)
            .map(|l| l * BLOCK + LARGE_START..l * BLOCK + LARGE_START + REGION)
            .collect();
        only_whole_pages_of(&pages, &regions);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, madvise and mincore are system calls
    fn without_populating_the_slots_pages_come_in_through_their_sequence_words() {
        let slot_pages = |l: usize| -> Vec<usize> {
            (0..DEPTH as usize)
                .map(|k| (l * BLOCK + k * SLOT_SPAN) / PAGE)
                .collect()
        };
        let pages = mapped_pages(3, |area| {
            area.touch_sequence_words(0, true);
            area.touch_sequence_words(2, false);
        });
        // `mapped_pages` skips where the kernel cannot populate; touching needs none.
        let Some(pages) = pages else { return };
        let mut want = vec![false; pages.len()];
        for p in slot_pages(0).into_iter().chain(slot_pages(2)) {
            want[p] = true;
        }
        assert_eq!(pages, want);
        // All but two of the 130 pages of a rank's slots.
        assert_eq!(want.iter().filter(|&&w| w).count(), 2 * 128);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, madvise and mincore are system calls
    fn small_slots_are_mapped_whole_and_nothing_else() {
        // Rank 1's slots start half a page in (the stagger), rank 0's and 2's on a page.
        let Some(pages) = mapped_pages(3, |area| {
            area.map_small_slots(1, true);
            area.map_small_slots(2, false);
        }) else {
            return;
        };
        only_whole_pages_of(
            &pages,
            &[
                BLOCK..BLOCK + LARGE_START,
                2 * BLOCK..2 * BLOCK + LARGE_START,
            ],
        );
    }
}
