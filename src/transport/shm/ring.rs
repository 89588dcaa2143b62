//! A rank's inbox: a bounded multi-producer, single-consumer ring of 64-byte lines in
//! shared memory, plus the control words around it (doorbell, waiters).
//!
//! Algorithm: a frame takes `k` consecutive lines (modulo the ring): its first line
//! holds an 8-byte marker, the 40-byte header, the sender's 4-byte local index and the
//! first 12 payload bytes; the payload continues over the following lines. A frame
//! whose header has no request id or offset (every plain eager message) is written
//! compact instead: marker, a 20-byte header that includes the sender, and the first
//! 36 payload bytes, so messages of up to 36 bytes take one line. A producer reserves `k` lines by
//! compare-and-swap on `tail` (checking free space against the consumer's published
//! `head`), asks for the frame's first lines owned (`prefetchw`, so their transfers
//! from the consumer's core overlap), writes the frame, and publishes it with one
//! release store of the marker of its position into the first line: `key + position +
//! 1`, where `key` is drawn at random for the node's segment. The consumer, at
//! position `h`, owns the ring up to the first unpublished frame: it reads line `h`'s
//! marker with acquire, handles the frame and moves on, writing nothing into the ring.
//! A line's old content never looks like the marker it waits for: an old first line
//! holds the marker of another position, and payload bytes (which the consumer
//! cleared at first, one word per continuation line) hold it only where a rank's data
//! holds the key, which none of its data depends on (a chance of 2^-64 per frame).
//! A frame whose last line holds less than a word of it completes that word with
//! zeros ([`Inbox::seal`]): a word made of a few payload bytes and the rest of an old
//! marker could be the marker expected there.
//! Not clearing took `oxbench` latency of 2-8 KiB to 0.94-0.96 of the time and their
//! bandwidth 1.13-1.15x (6 and 5 interleaved rounds, a cache line crossing between the
//! cores in 0.14 us): each clearing store had to take its line back from the
//! producer's core. It publishes `head` lazily (every eighth of the ring, or at once
//! when a producer is waiting), so an 8-byte message costs about one cache-line
//! transfer each way. Invariants: a line is written only by the producer that
//! reserved it, and only after the consumer released it; frames become visible in
//! reservation order, so each sender's frames stay in order.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::segment::{LINE, PAGE, ctl};
use crate::copy::copy_raw;
use crate::prefetch;
use crate::transport::frame::{Envelope, HEADER_LEN, Header, Kind};

const MARKER: usize = 8;
const FROM: usize = 4;
/// Bytes before the payload in a frame's first line.
const PREFIX: usize = MARKER + HEADER_LEN + FROM;
const _: () = assert!(PREFIX < LINE);
/// A compact header: kind (with [`COMPACT`] set), flags, sender (u16), context,
/// source, tag, payload length (u32).
const COMPACT_LEN: usize = 20;
const COMPACT_PREFIX: usize = MARKER + COMPACT_LEN;
/// Set in the first header byte of a compact frame (kinds are small numbers).
const COMPACT: u8 = 0x80;

/// Lines taken by a frame with `payload` bytes after a `prefix`-byte first part.
fn lines_for(prefix: usize, payload: usize) -> u64 {
    (prefix + payload).div_ceil(LINE) as u64
}

/// A compact header's 20 bytes as the words they are stored in (little-endian):
/// kind with [`COMPACT`] set, flags, sender and context; source and tag; length.
/// Both producers lay the header out through this, [`compact`] as bytes and
/// [`Inbox::try_push_eager`] as three stores.
#[inline(always)]
fn compact_words(kind: u8, flags: u8, from: u16, env: Envelope, len: u32) -> (u64, u64, u32) {
    let first = u64::from(kind | COMPACT)
        | u64::from(flags) << 8
        | u64::from(from) << 16
        | u64::from(env.ctx) << 32;
    let second = u64::from(env.src as u32) | u64::from(env.tag as u32) << 32;
    (first, second, len)
}

/// `hdr` and the sender `from` as a compact header, if they fit one.
fn compact(hdr: &Header, from: usize) -> Option<[u8; COMPACT_LEN]> {
    let (Ok(from), Ok(payload)) = (u16::try_from(from), u32::try_from(hdr.payload)) else {
        return None;
    };
    if hdr.a != 0 || hdr.b != 0 || hdr.seq != 0 || hdr.kind & COMPACT != 0 {
        return None;
    }
    let (first, second, len) = compact_words(hdr.kind, hdr.flags, from, hdr.envelope(), payload);
    let mut c = [0u8; COMPACT_LEN];
    c[..8].copy_from_slice(&first.to_le_bytes());
    c[8..16].copy_from_slice(&second.to_le_bytes());
    c[16..].copy_from_slice(&len.to_le_bytes());
    Some(c)
}

/// The header and sender of a compact header.
fn expand(c: &[u8; COMPACT_LEN]) -> (Header, usize) {
    let word = |i: usize| u32::from_le_bytes(c[i..i + 4].try_into().expect("4 bytes"));
    let hdr = Header {
        kind: c[0] & !COMPACT,
        flags: c[1],
        ctx: word(4),
        src: word(8) as i32,
        tag: word(12) as i32,
        payload: u64::from(word(16)),
        ..Header::default()
    };
    (hdr, usize::from(u16::from_le_bytes([c[2], c[3]])))
}

/// Most lines of a frame a producer asks for owned before writing it ([`Inbox::own`]).
const OWNED: u64 = 16;
/// Frames longer than this many lines (4 KiB messages and longer) have up to
/// [`OWNED_LONG`] lines asked for owned instead: `oxbench bw` of 4-8 KiB 1.06-1.09x
/// (5 interleaved rounds, once the consumer no longer wrote into the ring), latency
/// unchanged. Every line of a 2 KiB frame owned (33) made its latency 1.07x.
const LONG: u64 = 64;
/// See [`LONG`].
const OWNED_LONG: u64 = 256;

/// Most lines after its head a consumer fetches while it watches the head.
const MAX_AHEAD: u64 = 4;

/// Lines after the head to fetch while watching it, after a frame of `lines` lines:
/// all the continuation lines of a next frame as long, where they are at most
/// [`MAX_AHEAD`], else one (see [`Inbox::peek`]).
pub(crate) fn lines_ahead(lines: u64) -> u64 {
    if lines <= MAX_AHEAD + 1 {
        lines.saturating_sub(1).max(1)
    } else {
        1
    }
}

/// Largest payload a frame may carry in a ring of `ring_lines` lines (half the ring,
/// so two frames can always be in flight).
pub(crate) fn max_payload(ring_lines: usize) -> usize {
    (ring_lines / 2 * LINE).saturating_sub(PREFIX)
}

/// Raw access to one rank's control page and ring.
#[derive(Clone, Copy)]
pub(crate) struct Inbox {
    ctl: *mut u8,
    ring: *mut u8,
    lines: u64,
    waiter_words: usize,
    /// Markers are this key plus their position plus one (see the module notes).
    key: u64,
    /// See [`Inbox::own`].
    for_write: prefetch::ForWrite,
}

// SAFETY: the pointers address the shared mapping; every shared word is accessed
// atomically and ring bytes follow the ownership protocol above.
unsafe impl Send for Inbox {}

/// A published frame at the consumer's position.
pub(crate) struct Frame {
    pub hdr: Header,
    /// Local index of the sender.
    pub from: usize,
    /// Lines the frame takes.
    pub lines: u64,
    /// Byte offset of the payload in the ring.
    start: usize,
}

impl Inbox {
    /// # Safety
    /// `ctl` must point to a 4 KiB control page and `ring` to `lines * 64` bytes, both
    /// inside a live shared mapping that outlives this value. `lines` is a power of two
    /// (any other count keeps every access inside the ring, but frames would overlap).
    /// Every inbox of a segment has the segment's `key`, which never makes a marker
    /// zero (see `segment::marker_key`).
    pub(crate) unsafe fn new(
        ctl: *mut u8,
        ring: *mut u8,
        lines: usize,
        local_size: usize,
        key: u64,
    ) -> Inbox {
        debug_assert!(lines.is_power_of_two());
        Inbox {
            ctl,
            ring,
            lines: lines as u64,
            waiter_words: local_size.div_ceil(64),
            key,
            for_write: prefetch::ForWrite::detect(),
        }
    }

    fn ctl64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: `off` is one of the fixed, 8-aligned offsets inside the control page.
        unsafe { AtomicU64::from_ptr(self.ctl.add(off).cast()) }
    }

    fn ctl32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: as for ctl64.
        unsafe { AtomicU32::from_ptr(self.ctl.add(off).cast()) }
    }

    /// The word a sleeping consumer waits on: 1 while it sleeps (or is about to).
    pub(crate) fn doorbell(&self) -> &AtomicU32 {
        self.ctl32(ctl::DOORBELL)
    }

    /// 1 when this rank can read and write other ranks' memory directly (single copy).
    pub(crate) fn single_copy(&self) -> &AtomicU32 {
        self.ctl32(ctl::SINGLE_COPY)
    }

    /// This rank's process id.
    pub(crate) fn pid(&self) -> &AtomicU64 {
        self.ctl64(ctl::PID)
    }

    /// This rank's placement key (see [`super::placement`]); 0 until it joined.
    pub(crate) fn place(&self) -> &AtomicU64 {
        self.ctl64(ctl::PLACE)
    }

    /// 1 when this rank registered for `membarrier` fences (see
    /// [`super::membarrier`]).
    pub(crate) fn light_fences(&self) -> &AtomicU32 {
        self.ctl32(ctl::LIGHT_FENCES)
    }

    /// The size classes in which this rank asks for mid-size messages to be offered
    /// for reading (see `segment::ctl::READ_CLASSES`).
    pub(crate) fn read_classes(&self) -> &AtomicU64 {
        self.ctl64(ctl::READ_CLASSES)
    }

    /// The size classes in which this rank asks for a burst of mid-size messages to
    /// come the way [`Inbox::read_classes`] does not say (see
    /// `segment::ctl::EXPLORE_CLASSES`).
    pub(crate) fn explore_classes(&self) -> &AtomicU64 {
        self.ctl64(ctl::EXPLORE_CLASSES)
    }

    /// 1 once this rank withdrew the buffers it lent for reading (see
    /// `segment::ctl::WITHDRAWN`).
    pub(crate) fn withdrawn(&self) -> &AtomicU32 {
        self.ctl32(ctl::WITHDRAWN)
    }

    /// The collective over the area this rank waits for every local rank to enter (0
    /// while it waits for nothing there).
    pub(crate) fn area_wait(&self) -> &AtomicU64 {
        self.ctl64(ctl::AREA_WAIT)
    }

    /// The claim word of this rank's split copies (see [`super::split`]).
    pub(crate) fn claim(&self) -> &AtomicU64 {
        self.ctl64(ctl::CLAIM)
    }

    /// Address of a known value in this rank's memory, for the single-copy probe.
    pub(crate) fn probe_addr(&self) -> &AtomicU64 {
        self.ctl64(ctl::PROBE)
    }

    /// Writes the zero the first line of every page of the ring holds, through this
    /// process's mapping: the first write to a page through a mapping costs extra
    /// (its page-table entry is marked written), which a sender would otherwise pay
    /// page by page in its first pass through the ring. Only before anyone sends.
    pub(crate) fn touch_pages(&self) {
        for pos in (0..self.lines).step_by(PAGE / LINE) {
            self.marker(pos).store(0, Ordering::Relaxed);
        }
    }

    /// The marker that publishes a frame at position `pos`.
    #[inline(always)]
    fn mark(&self, pos: u64) -> u64 {
        self.key.wrapping_add(pos + 1)
    }

    fn marker(&self, pos: u64) -> &AtomicU64 {
        let off = self.line_of(pos) * LINE;
        // SAFETY: `off` is a line start inside the ring; line starts are 64-aligned.
        unsafe { AtomicU64::from_ptr(self.ring.add(off).cast()) }
    }

    /// The line of the ring that position `pos` falls on (the ring's length is a
    /// power of two: a mask, not a division).
    fn line_of(&self, pos: u64) -> usize {
        (pos & (self.lines - 1)) as usize
    }

    fn ring_bytes(&self) -> usize {
        self.lines as usize * LINE
    }

    /// Copies `src` into the ring at byte offset `at`, wrapping at the end.
    fn write_wrapped(&self, at: usize, src: &[u8]) {
        let size = self.ring_bytes();
        let at = at % size;
        let first = src.len().min(size - at);
        // SAFETY: both ranges lie inside the ring, in lines this producer reserved
        // and the consumer released (ring protocol); `src` does not overlap the ring.
        unsafe {
            copy_raw(self.ring.add(at), src.as_ptr(), first);
            copy_raw(self.ring, src.as_ptr().add(first), src.len() - first);
        }
    }

    /// Producer: reserves lines and writes a frame. False when the ring lacks room;
    /// `head_cache` is this producer's last view of the consumer's head.
    #[inline(always)]
    pub(crate) fn try_push(
        &self,
        head_cache: &mut u64,
        from: usize,
        hdr: &Header,
        payload: &[u8],
    ) -> bool {
        // The first line in one copy: header, sender and the payload's first bytes.
        let mut first = [0u8; LINE - MARKER];
        let prefix = match compact(hdr, from) {
            Some(c) => {
                first[..COMPACT_LEN].copy_from_slice(&c);
                COMPACT_PREFIX
            }
            None => {
                first[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(hdr));
                first[HEADER_LEN..HEADER_LEN + FROM].copy_from_slice(&(from as u32).to_le_bytes());
                PREFIX
            }
        };
        let k = lines_for(prefix, payload.len());
        let Some(t) = self.reserve(head_cache, k) else {
            return false;
        };
        self.own(t, k);
        let at = self.line_of(t) * LINE;
        let inline = payload.len().min(LINE - prefix);
        first[prefix - MARKER..prefix - MARKER + inline].copy_from_slice(&payload[..inline]);
        // The whole line after the marker in one fixed-size copy (a few vector stores,
        // where a copy of the used part alone would be a call).
        // SAFETY: the first line lies inside the ring (a frame never starts mid-line)
        // and belongs to this producer (reserved above).
        unsafe {
            std::ptr::copy_nonoverlapping(first.as_ptr(), self.ring.add(at + MARKER), first.len())
        };
        self.finish(t, prefix, payload, inline);
        true
    }

    /// Producer: asks for the first lines of the frame reserved at `t` (`k` lines, at
    /// most [`OWNED`] of them, or [`OWNED_LONG`] beyond [`LONG`]) owned, all at once,
    /// before writing them: the consumer read them on the last round of the ring, so
    /// each store would otherwise wait for its line to leave the consumer's core, one
    /// line after another. `oxbench latency` of 512 B-2 KiB in 0.86-0.94 of the time
    /// (8 interleaved rounds), shorter ones unchanged; with it, a consumer can fetch
    /// all of a five-line frame's continuation lines while it watches
    /// ([`lines_ahead`]).
    #[inline(always)]
    fn own(&self, t: u64, k: u64) {
        let n = if k > LONG {
            k.min(OWNED_LONG)
        } else {
            k.min(OWNED)
        };
        for i in 0..n {
            self.for_write
                .ask(self.ring.wrapping_add(self.line_of(t + i) * LINE));
        }
    }

    /// Producer: reserves `k` lines; their first position, or `None` when the ring
    /// lacks room. `head_cache` is this producer's last view of the consumer's head.
    #[inline(always)]
    fn reserve(&self, head_cache: &mut u64, k: u64) -> Option<u64> {
        debug_assert!(k <= self.lines / 2 + 1);
        let tail = self.ctl64(ctl::TAIL);
        let mut t = tail.load(Ordering::Relaxed);
        loop {
            if !fits(t, k, *head_cache, self.lines) {
                *head_cache = self.ctl64(ctl::HEAD).load(Ordering::Acquire);
                if !fits(t, k, *head_cache, self.lines) {
                    return None;
                }
            }
            match tail.compare_exchange_weak(t, t + k, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(t),
                Err(now) => t = now,
            }
        }
    }

    /// Producer: a plain eager message from local rank `from` ([`Header::eager`]), as
    /// a compact frame whose header is stored straight into the ring: built on the
    /// stack and copied, as [`Inbox::try_push`] does, its wide loads waited for the
    /// narrow stores that built it, behind the stores of the previous message.
    /// False when the ring lacks room, or when the message does not fit a compact
    /// header (then [`Inbox::try_push`] takes it).
    #[inline(always)]
    pub(crate) fn try_push_eager(
        &self,
        head_cache: &mut u64,
        from: usize,
        env: Envelope,
        payload: &[u8],
    ) -> bool {
        let (Ok(from), Ok(len)) = (u16::try_from(from), u32::try_from(payload.len())) else {
            return false;
        };
        let k = lines_for(COMPACT_PREFIX, payload.len());
        let Some(t) = self.reserve(head_cache, k) else {
            return false;
        };
        self.own(t, k);
        let at = self.line_of(t) * LINE;
        let (first, second, len) = compact_words(Kind::Eager as u8, 0, from, env, len);
        let inline = payload.len().min(LINE - COMPACT_PREFIX);
        // SAFETY: the first line lies inside the ring (a frame never starts mid-line),
        // 8-aligned, and belongs to this producer (reserved above); the payload's
        // first `inline` bytes fit the line after the header.
        unsafe {
            let line = self.ring.add(at);
            line.add(MARKER).cast::<u64>().write(first.to_le());
            line.add(MARKER + 8).cast::<u64>().write(second.to_le());
            line.add(MARKER + 16).cast::<u32>().write(len.to_le());
            copy_raw(line.add(COMPACT_PREFIX), payload.as_ptr(), inline);
        }
        self.finish(t, COMPACT_PREFIX, payload, inline);
        true
    }

    /// Producer: the rest of the frame reserved at `t`, whose first line (its header
    /// in `prefix` bytes, then the payload's first `inline` bytes) is written: the
    /// payload's other bytes after it, the last line's first word completed
    /// ([`Inbox::seal`]), then the marker that publishes the frame.
    #[inline(always)]
    fn finish(&self, t: u64, prefix: usize, payload: &[u8], inline: usize) {
        if inline < payload.len() {
            self.write_wrapped((self.line_of(t) + 1) * LINE, &payload[inline..]);
        }
        self.seal(
            t + lines_for(prefix, payload.len()) - 1,
            prefix + payload.len(),
        );
        self.marker(t).store(self.mark(t), Ordering::Release);
    }

    /// Producer: completes the first word of the frame's last line (at position
    /// `last`) with zeros where the frame's `bytes` (from its first line's start) end
    /// inside that word. Otherwise the word would keep the rest of what the line
    /// held before, which may be the marker of a position a whole number of laps
    /// back: such a marker differs from the one expected there a lap or two later in
    /// its low bytes alone, and a byte or two of payload can complete it (a test job
    /// with 4 KiB rings met it in 1-3 runs of 100: a stale frame taken for a new one).
    /// A word of zeros is never a marker.
    fn seal(&self, last: u64, bytes: usize) {
        let tail = bytes % LINE;
        if tail != 0 && tail < MARKER {
            let at = self.line_of(last) * LINE + tail;
            // SAFETY: inside the frame's last line, reserved by this producer (a frame
            // of more than one line ends there: a one-line frame holds its marker
            // and a header, more than a word).
            unsafe { std::ptr::write_bytes(self.ring.add(at), 0, MARKER - tail) };
        }
    }

    /// Consumer: the frame published at position `head`, if any; first asks for the
    /// `ahead` lines after it ([`Inbox::prefetch_line`], [`lines_ahead`]).
    pub(crate) fn peek(&self, head: u64, ahead: u64) -> Option<Frame> {
        for line in 1..=ahead {
            self.prefetch_line(head + line);
        }
        if self.marker(head).load(Ordering::Acquire) != self.mark(head) {
            return None;
        }
        let at = self.line_of(head) * LINE;
        let mut raw = [0u8; HEADER_LEN + FROM];
        // SAFETY: header and sender index lie inside the frame's first line, which the
        // marker published.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ring.add(at + MARKER), raw.as_mut_ptr(), raw.len())
        };
        let (hdr, from, prefix) = if raw[0] & COMPACT != 0 {
            let (hdr, from) = expand(raw[..COMPACT_LEN].try_into().expect("compact header"));
            (hdr, from, COMPACT_PREFIX)
        } else {
            let hdr: Header = bytemuck::pod_read_unaligned(&raw[..HEADER_LEN]);
            let from = u32::from_le_bytes(raw[HEADER_LEN..].try_into().expect("4 bytes"));
            (hdr, from as usize, PREFIX)
        };
        // A length beyond what a frame can hold would make us read past the frame;
        // clamp the line count so a corrupt header stays inside the ring (the caller
        // rejects the frame).
        let len = (hdr.payload as usize).min(max_payload(self.lines as usize));
        Some(Frame {
            hdr,
            from,
            lines: lines_for(prefix, len),
            start: at + prefix,
        })
    }

    /// Brings the line at position `pos` into this core's cache; only a hint. The
    /// consumer asks for the line after its head before each load of the head's
    /// marker, so that the fetch of a frame's second line (written before its first)
    /// overlaps the fetch of the first instead of following it: `oxbench latency`,
    /// 64-128 B in 0.85-0.90 of the time where a cache line crosses between the cores
    /// in 0.25 us (7 interleaved rounds), 0.88-0.96 where it takes 0.06 us (3); 1-32 B
    /// and the message rate unchanged. Asking only after finding the ring empty gained
    /// nothing. After a frame of up to five lines it asks for all the continuation
    /// lines of a next frame as long ([`lines_ahead`]): with two lines ahead after a
    /// three-line frame, 128 B in 0.77-0.82 of the time (10 interleaved rounds, a line
    /// crossing in 0.15 us); four ahead after a five-line frame took 256 B to 0.76 only
    /// once producers asked for their lines owned before writing ([`Inbox::own`]),
    /// and was no faster before (the consumer then pulled lines the producer was still
    /// writing, one at a time). Eight ahead after a nine-line frame made 512 B 1.19x
    /// slower, with or without; a frame longer than the lines asked for waits for its
    /// last lines after the marker all the same.
    fn prefetch_line(&self, pos: u64) {
        prefetch::read(self.ring.wrapping_add(self.line_of(pos) * LINE));
    }

    /// The payload of `frame` when it does not wrap around the ring's end.
    pub(crate) fn payload(&self, frame: &Frame) -> Option<&[u8]> {
        let len = frame.hdr.payload as usize;
        if frame.start + len > self.ring_bytes() {
            return None;
        }
        // SAFETY: inside the ring, in lines the consumer owns until it releases them.
        Some(unsafe { std::slice::from_raw_parts(self.ring.add(frame.start), len) })
    }

    /// Copies the payload of `frame` from byte `from` on into `dst`.
    pub(crate) fn copy_payload(&self, frame: &Frame, from: usize, dst: &mut [u8]) {
        let size = self.ring_bytes();
        // The frame's payload fits its lines (checked against the ring when it was
        // read), so this holds for every caller; checked here all the same, as the
        // copies below rely on it.
        assert!(dst.len() <= size, "payload copy longer than the ring");
        let at = (frame.start + from) % size;
        let first = dst.len().min(size - at);
        // SAFETY: the source ranges lie in the frame's lines, owned by the consumer
        // (`dst` is no longer than the ring, so the second range ends before `at`);
        // `dst` is private memory.
        unsafe {
            copy_raw(dst.as_mut_ptr(), self.ring.add(at), first);
            copy_raw(dst.as_mut_ptr().add(first), self.ring, dst.len() - first);
        }
    }

    /// Consumer: makes everything before `head` free for producers.
    pub(crate) fn publish_head(&self, head: u64) {
        self.ctl64(ctl::HEAD).store(head, Ordering::Release);
    }

    /// Whether the consumer's published head differs from `cache` (room was freed).
    pub(crate) fn head_moved(&self, cache: u64) -> bool {
        self.ctl64(ctl::HEAD).load(Ordering::Acquire) != cache
    }

    /// Producer `local`: asks to be woken when this ring frees space.
    pub(crate) fn add_waiter(&self, local: usize) {
        self.ctl64(ctl::WAITERS + local / 64 * 8)
            .fetch_or(1 << (local % 64), Ordering::SeqCst);
    }

    /// Consumer: takes the set of waiting producers (clearing it), calling `f` on each.
    pub(crate) fn take_waiters(&self, mut f: impl FnMut(usize)) -> bool {
        let mut any = false;
        for w in 0..self.waiter_words {
            let word = self.ctl64(ctl::WAITERS + w * 8);
            if word.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut bits = word.swap(0, Ordering::AcqRel);
            while bits != 0 {
                any = true;
                f(w * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
        any
    }

    /// Whether producers wait for room in this ring.
    pub(crate) fn has_waiters(&self) -> bool {
        (0..self.waiter_words)
            .any(|w| self.ctl64(ctl::WAITERS + w * 8).load(Ordering::Relaxed) != 0)
    }
}

/// Whether `k` lines from position `t` fit in a ring of `lines` lines whose consumer
/// is at `head`. Compared without subtracting: a producer preempted after reading the
/// tail may find the head already past it (others filled the ring and the consumer
/// drained it meanwhile); its exchange of the tail then fails and it retries with the
/// tail as it is now.
#[inline(always)]
fn fits(t: u64, k: u64, head: u64, lines: u64) -> bool {
    t + k <= head + lines
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A private (not shared) inbox for single-process tests of the ring logic.
    pub(in crate::transport::shm) struct Local {
        _mem: Vec<u64>,
        pub(in crate::transport::shm) inbox: Inbox,
    }

    pub(in crate::transport::shm) fn local(lines: usize) -> Local {
        let mut mem = vec![0u64; (4096 + lines * LINE) / 8];
        let base = mem.as_mut_ptr().cast::<u8>();
        // A key as `segment::marker_key` draws them.
        let key = 1 << 62 | 0x2f6a_91c3_5e07;
        // SAFETY: the vector holds a control page and the ring, and lives in `Local`.
        let inbox = unsafe { Inbox::new(base, base.add(4096), lines, 4, key) };
        Local { _mem: mem, inbox }
    }

    /// Frame `i`: odd ones carry a request id (full header), even ones not (compact).
    fn frame(i: u64, len: usize) -> (Header, Vec<u8>) {
        let mut h = Header::new(Kind::Eager);
        h.a = i % 2;
        h.ctx = 7;
        h.src = -3 - i as i32;
        h.tag = i as i32;
        h.payload = len as u64;
        (h, (0..len).map(|b| (b as u64 * 31 + i) as u8).collect())
    }

    fn consume(inbox: &Inbox, head: &mut u64) -> Option<(Header, Vec<u8>)> {
        let f = inbox.peek(*head, 1)?;
        assert!(f.from < 4);
        let mut out = vec![0u8; f.hdr.payload as usize];
        inbox.copy_payload(&f, 0, &mut out);
        if let Some(direct) = inbox.payload(&f) {
            assert_eq!(direct, &out[..]);
        }
        *head += f.lines;
        inbox.publish_head(*head);
        Some((f.hdr, out))
    }

    #[test]
    fn wraps_at_every_offset_with_every_size() {
        // Frame sizes from 0 to several lines, pushed so that frames start at every
        // line of the ring and wrap at every byte boundary that matters.
        let l = local(16);
        let (mut head, mut cache, mut n) = (0u64, 0u64, 0u64);
        for round in 0..200u64 {
            let len = (round as usize * 37) % (max_payload(16) + 1);
            let (h, p) = frame(n, len);
            assert!(
                l.inbox.try_push(&mut cache, 2, &h, &p),
                "room for one frame"
            );
            let (gh, gp) = consume(&l.inbox, &mut head).expect("published");
            assert_eq!(
                (gh, gp),
                (h, p),
                "frame {n} of {len} bytes at line {}",
                head % 16
            );
            n += 1;
        }
        assert!(consume(&l.inbox, &mut head).is_none());
    }

    /// Frame `i` as a plain eager message: its envelope and payload.
    fn eager(i: u64, len: usize) -> (Envelope, Vec<u8>) {
        let env = Envelope {
            ctx: 0x8000_0000 | i as u32,
            src: -1 - i as i32,
            tag: i32::MAX - i as i32,
        };
        (env, (0..len).map(|b| (b as u64 * 7 + i) as u8).collect())
    }

    #[test]
    fn eager_frames_stored_straight_read_as_their_headers_at_every_offset() {
        // Direct and built frames in turn, so that both start at every line of the
        // ring and wrap at every boundary; each must read back as the header it
        // stands for, from the sender that wrote it.
        let l = local(16);
        let (mut head, mut cache) = (0u64, 0u64);
        for n in 0..300u64 {
            let len = (n as usize * 29) % (max_payload(16) + 1);
            let (want, payload, from) = if n % 2 == 0 {
                let (env, p) = eager(n, len);
                assert!(l.inbox.try_push_eager(&mut cache, 3, env, &p));
                (Header::eager(env, len), p, 3)
            } else {
                let (h, p) = frame(n, len);
                assert!(l.inbox.try_push(&mut cache, 1, &h, &p));
                (h, p, 1)
            };
            let f = l.inbox.peek(head, 1).expect("published");
            assert_eq!(f.from, from, "frame {n}");
            if n % 2 == 0 {
                assert_eq!(f.lines, lines_for(COMPACT_PREFIX, len), "frame {n}");
            }
            assert_eq!(
                consume(&l.inbox, &mut head),
                Some((want, payload)),
                "frame {n} of {len} bytes"
            );
        }
        assert!(consume(&l.inbox, &mut head).is_none());
    }

    #[test]
    fn eager_frames_stored_straight_wait_for_room() {
        let l = local(8);
        let mut cache = 0;
        let (env, p) = eager(5, 120); // 3 lines
        assert!(l.inbox.try_push_eager(&mut cache, 0, env, &p));
        assert!(l.inbox.try_push_eager(&mut cache, 0, env, &p));
        assert!(
            !l.inbox.try_push_eager(&mut cache, 0, env, &p),
            "8 lines hold two"
        );
        let mut head = 0;
        assert_eq!(
            consume(&l.inbox, &mut head),
            Some((Header::eager(env, 120), p.clone()))
        );
        assert!(l.inbox.try_push_eager(&mut cache, 0, env, &p));
    }

    #[test]
    fn touched_pages_leave_an_empty_ring_that_still_wraps() {
        let l = local(256);
        l.inbox.touch_pages();
        let (mut head, mut cache) = (0u64, 0u64);
        assert!(consume(&l.inbox, &mut head).is_none());
        for n in 0..600u64 {
            let (h, p) = frame(n, (n as usize * 13) % 200);
            assert!(l.inbox.try_push(&mut cache, 1, &h, &p));
            assert_eq!(consume(&l.inbox, &mut head), Some((h, p)), "frame {n}");
        }
    }

    #[test]
    fn plain_eager_messages_up_to_36_bytes_take_one_line() {
        let l = local(16);
        let (mut head, mut cache) = (0u64, 0u64);
        for (i, len, lines) in [(0, 36, 1), (0, 37, 2), (1, 12, 1), (1, 13, 2), (2, 0, 1)] {
            let (h, p) = frame(i, len);
            assert!(l.inbox.try_push(&mut cache, 3, &h, &p));
            let f = l.inbox.peek(head, 1).expect("published");
            assert_eq!((f.lines, f.from), (lines, 3), "frame {i} of {len} bytes");
            let (gh, gp) = consume(&l.inbox, &mut head).expect("published");
            assert_eq!((gh, gp), (h, p));
        }
    }

    #[test]
    fn full_ring_refuses_then_accepts_after_release() {
        let l = local(8);
        let mut cache = 0;
        let (h, p) = frame(1, 100); // 3 lines
        assert!(l.inbox.try_push(&mut cache, 0, &h, &p));
        assert!(l.inbox.try_push(&mut cache, 0, &h, &p));
        assert!(
            !l.inbox.try_push(&mut cache, 0, &h, &p),
            "8 lines hold two 3-line frames"
        );
        let mut head = 0;
        consume(&l.inbox, &mut head).unwrap();
        assert!(l.inbox.try_push(&mut cache, 0, &h, &p));
    }

    #[test]
    fn stale_payload_never_looks_like_a_marker() {
        // Payload words that count positions (markers as they were before the key, and
        // what data often holds) stay in the ring, never cleared, lap after lap; none
        // is taken for a frame.
        let l = local(8);
        let (mut head, mut cache) = (0u64, 0u64);
        let mut h = Header::new(Kind::Eager);
        let evil: Vec<u8> = (0..200u64)
            .flat_map(|i| (i + 4).to_le_bytes())
            .take(200)
            .collect();
        h.payload = evil.len() as u64;
        for _ in 0..20 {
            assert!(l.inbox.try_push(&mut cache, 1, &h, &evil));
            assert_eq!(consume(&l.inbox, &mut head), Some((h, evil.clone())));
            for probe in head..head + 8 {
                assert!(l.inbox.peek(probe, 1).is_none(), "position {probe}");
            }
        }
    }

    #[test]
    fn a_frame_ending_early_in_a_line_leaves_no_marker_behind() {
        // Line 0 holds the marker of position 0; a lap later (position 16) the last
        // line of a frame covers only its first byte, which is the low byte of the
        // marker the consumer expects there another lap on (position 32): the rest
        // of the old marker must not complete that marker (it differs from it in the
        // low byte alone).
        let l = local(16);
        let (mut head, mut cache) = (0u64, 0u64);
        let push = |cache: &mut u64, head: &mut u64, i: u64, len: usize, last: Option<u8>| {
            let (h, mut p) = frame(i, len);
            if let (Some(b), Some(end)) = (last, p.last_mut()) {
                *end = b;
            }
            assert!(l.inbox.try_push(cache, 1, &h, &p));
            assert_eq!(consume(&l.inbox, head), Some((h, p)));
        };
        push(&mut cache, &mut head, 0, 8, None); // line 0
        push(&mut cache, &mut head, 2, 8 * 64 - COMPACT_PREFIX, None); // lines 1-8
        // Lines 9-16, 1 byte in the last: the low byte of the marker of position 32.
        let low = l.inbox.mark(32) as u8;
        push(
            &mut cache,
            &mut head,
            4,
            7 * 64 + 1 - COMPACT_PREFIX,
            Some(low),
        );
        assert_eq!(head, 17);
        push(&mut cache, &mut head, 6, 8 * 64 - COMPACT_PREFIX, None); // lines 17-24
        push(&mut cache, &mut head, 8, 7 * 64 - COMPACT_PREFIX, None); // lines 25-31
        assert_eq!(head, 32);
        assert!(
            l.inbox.peek(32, 1).is_none(),
            "a stale line taken for a frame"
        );
    }

    #[test]
    fn waiters_are_taken_once() {
        let l = local(8);
        l.inbox.add_waiter(1);
        l.inbox.add_waiter(3);
        assert!(l.inbox.has_waiters());
        let mut got = vec![];
        assert!(l.inbox.take_waiters(|w| got.push(w)));
        assert_eq!(got, [1, 3]);
        assert!(!l.inbox.has_waiters());
    }

    /// A producer whose tail is stale finds the head past it: that is room (its
    /// exchange then fails and retries), not a subtraction below zero, which panicked
    /// in debug builds (16 ranks sending to one through 4 KiB rings).
    #[test]
    fn a_stale_tail_behind_the_head_is_not_an_underflow() {
        assert!(fits(100, 3, 110, 16));
        assert!(fits(100, 16, 100, 16));
        assert!(!fits(100, 17, 100, 16));
    }

    /// Three producers and the consumer on threads of their own through a small ring,
    /// every size, compact and full frames: each producer's frames arrive in order
    /// and whole.
    #[test]
    fn producers_on_threads_keep_order_and_bytes() {
        let l = local(16);
        let (producers, n) = (3usize, if cfg!(miri) { 60 } else { 20_000 });
        let max = max_payload(16);
        let size = |p: usize, i: u64| (i as usize * 37 + p * 13) % (max + 1);
        let inbox = l.inbox;
        std::thread::scope(|s| {
            for p in 0..producers {
                s.spawn(move || {
                    let mut cache = 0;
                    for i in 0..n {
                        let (id, len) = ((p as u64) << 32 | i, size(p, i));
                        while !if i % 2 == 0 {
                            let (env, payload) = eager(id, len);
                            inbox.try_push_eager(&mut cache, p, env, &payload)
                        } else {
                            let (h, payload) = frame(id, len);
                            inbox.try_push(&mut cache, p, &h, &payload)
                        } {
                            std::thread::yield_now();
                        }
                    }
                });
            }
            let (mut head, mut next) = (0, vec![0u64; producers]);
            for _ in 0..n * producers as u64 {
                let f = loop {
                    match inbox.peek(head, 1) {
                        Some(f) => break f,
                        None => std::thread::yield_now(),
                    }
                };
                let (p, i) = (f.from, next[f.from]);
                let (id, len) = ((p as u64) << 32 | i, size(p, i));
                let want = if i % 2 == 0 {
                    let (env, payload) = eager(id, len);
                    (Header::eager(env, len), payload)
                } else {
                    frame(id, len)
                };
                assert_eq!(
                    consume(&inbox, &mut head),
                    Some(want),
                    "producer {p} frame {i}"
                );
                next[p] += 1;
            }
        });
    }
}
