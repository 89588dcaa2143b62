//! The shared-memory segment of one node's ranks: its layout, creation by the node's
//! first rank, mapping by the others, and removal from /dev/shm.
//!
//! Layout: a 4 KiB header, then one block per local rank: a 4 KiB control page
//! (its ring's tail, head and waiters, its doorbell with its pid, single-copy and
//! `membarrier` flags and placement key, the claim word of its split copies, what it
//! waits for in the collective area, each hot word on its own cache line) followed by
//! its inbox ring; then the collective area (one block per local rank, see
//! [`super::area`]). Positions are offsets, never pointers. Invariants: the segment is created 0600 under a random name and
//! unlinked by whichever rank maps it last (every rank maps it during init), so after
//! init nothing of it is left in /dev/shm whatever happens to the ranks later; the
//! launcher removes it if a rank dies before mapping it; under another launcher, the
//! node's next job does ([`super::stale`]).

use std::ffi::CString;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::area::{self, Area};
use super::ring::Inbox;
use super::stale;
use crate::error::{Error, Result};

/// Cache-line size all hot words are padded to.
pub(crate) const LINE: usize = 64;
pub(crate) const PAGE: usize = 4096;
const HEADER: usize = PAGE;
const CONTROL: usize = PAGE;
/// What every segment's name in /dev/shm starts with.
pub(super) const PREFIX: &str = "oxmpi-";
pub(super) const MAGIC: u64 = 0x6f78_6d70_695f_7368; // "oxmpi_sh"
/// Header counters: local ranks attached, and local ranks done with their probe.
const ATTACHED: usize = 24;
const PROBED: usize = 28;
/// Header word: the process id of the rank that created the segment (see
/// [`super::stale`]).
pub(super) const CREATOR: usize = 32;
/// Header word: the key the rings' frame markers are drawn with ([`marker_key`]).
const MARKER_KEY: usize = 40;
/// Header word: the PID namespace [`CREATOR`] is a process id in (see
/// [`super::stale`]).
pub(super) const CREATOR_NAMESPACE: usize = 48;
/// Header word: 0, or the world rank (plus one) of a local rank that will never
/// attach, with why in the high half ([`Decline`]): the ranks waiting for every local
/// rank to attach fail instead of waiting for ever.
const DECLINED: usize = 56;

/// Why a local rank will not attach to its node's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decline {
    /// It talks to its node's ranks over TCP (`OXMPI_TRANSPORT` set otherwise there).
    Tcp = 1,
    /// Its rings would have another size (`OXMPI_SHM_RING_KB` set otherwise there).
    RingSize = 2,
}

/// A key for the rings' frame markers (see [`Inbox`]): random, in `[2^62, 2^63)`, so
/// that no marker of a position below `2^62` is zero, the value of a ring line no
/// frame has used yet.
fn marker_key() -> u64 {
    let mut raw = [0u8; 8];
    crate::bootstrap::random_bytes(&mut raw);
    u64::from_le_bytes(raw) >> 2 | 1 << 62
}

/// Whether `key` is one [`marker_key`] could draw.
fn valid_marker_key(key: u64) -> bool {
    key >> 62 == 1
}

/// Offsets inside a rank's control page.
pub(crate) mod ctl {
    pub const TAIL: usize = 0;
    pub const HEAD: usize = 64;
    pub const DOORBELL: usize = 128;
    pub const SINGLE_COPY: usize = 132;
    pub const PID: usize = 136;
    pub const PROBE: usize = 144;
    /// The rank's placement key (`placement::key`), on the doorbell's line.
    pub const PLACE: usize = 152;
    /// 1 when the rank registered for `membarrier` fences (see `membarrier.rs`).
    pub const LIGHT_FENCES: usize = 160;
    /// The size classes (bit `c`: messages of `2^c` to `2^(c+1) - 1` bytes) in which
    /// the rank asks the ranks of its node to offer mid-size messages for reading
    /// rather than send them eagerly (`Shm::sends_eagerly`), on the doorbell's line,
    /// which senders read anyway.
    pub const READ_CLASSES: usize = 168;
    /// 1 once the rank gave its program back buffers that peers may still be reading
    /// (`Shm::withdraw`), on the doorbell's line: written once, read after each read.
    pub const WITHDRAWN: usize = 176;
    /// The size classes in which the rank asks for the next few mid-size messages to
    /// come the way `READ_CLASSES` does not say; a sender claims such an ask by
    /// clearing its bit (`read_asks`), on the doorbell's line.
    pub const EXPLORE_CLASSES: usize = 184;
    pub const CLAIM: usize = 192;
    /// The collective over the area the rank waits for every local rank to enter,
    /// while it waits there (`Shm::mark_area_wait`), on a line of its own: it changes
    /// twice per wait, and every rank that publishes in the area reads the doorbells.
    pub const AREA_WAIT: usize = 256;
    /// A bitmap of waiting producers, one bit per local rank, to the page's end.
    pub const WAITERS: usize = 320;
}

/// Most ranks one node's segment serves (the waiters bitmap fills the control page).
const MAX_LOCAL_RANKS: usize = (CONTROL - ctl::WAITERS) * 8;

/// A mapped segment.
pub(crate) struct Segment {
    base: *mut u8,
    len: usize,
    name: CString,
    pub(crate) local_size: usize,
    pub(crate) ring_lines: usize,
}

// SAFETY: the mapping is process-wide memory; all shared words are accessed through
// atomics, and ring bytes are only touched by the one rank the ring protocol gives
// them to at that moment.
unsafe impl Send for Segment {}

fn block_size(ring_lines: usize) -> usize {
    CONTROL + ring_lines * LINE
}

/// Total bytes of a segment for `local_size` ranks with rings of `ring_lines` lines.
pub(crate) fn footprint(local_size: usize, ring_lines: usize) -> usize {
    HEADER + local_size * (block_size(ring_lines) + area::BLOCK)
}

/// The error of a rank waiting for the local ranks to attach when one declined
/// (`word` as [`Segment::decline`] stores it).
fn declined_error(word: u64) -> Error {
    let rank = (word & 0xffff_ffff) - 1;
    let (var, what) = if word >> 32 == Decline::RingSize as u64 {
        ("OXMPI_SHM_RING_KB", "sets another ring size")
    } else {
        ("OXMPI_TRANSPORT", "talks to its node's ranks over TCP")
    };
    Error::Bootstrap(format!(
        "rank {rank} of this node {what}, so it never joins the node's shared memory: every rank of a node must set {var} alike"
    ))
}

fn os_error(what: &str, name: &CString) -> Error {
    Error::io(
        format!("{what} {}", name.to_string_lossy()),
        std::io::Error::last_os_error(),
    )
}

impl Segment {
    /// The segment's name for a job and node: `/oxmpi-<job>-n<node>`.
    pub(crate) fn name(job: &str, node: u32) -> String {
        let job: String = job
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        format!("/{PREFIX}{job}-n{node}")
    }

    /// Creates the segment (the node's first rank does this, before the other ranks
    /// open it).
    pub(crate) fn create(name: &str, local_size: usize, ring_lines: usize) -> Result<Segment> {
        let cname = CString::new(name)
            .map_err(|_| Error::InvalidArgument(format!("bad segment name {name}")))?;
        if local_size > MAX_LOCAL_RANKS {
            return Err(Error::Bootstrap(format!(
                "{local_size} ranks on one node; shared memory serves at most {MAX_LOCAL_RANKS}"
            )));
        }
        let len = footprint(local_size, ring_lines);
        stale::remove_stale(Path::new("/dev/shm"), SystemTime::now());
        // SAFETY: plain syscalls on a NUL-terminated name; the fd is closed below.
        let fd = unsafe {
            libc::shm_open(
                cname.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                0o600,
            )
        };
        if fd < 0 {
            return Err(os_error("creating shared memory", &cname));
        }
        // Sized and reserved at once (zero-filled): on a /dev/shm too small for it, a
        // size set by `ftruncate` alone would show only when a rank first touched a
        // page beyond what fits, killing it with SIGBUS.
        // SAFETY: fd is ours; posix_fallocate returns its error number.
        let seg = match unsafe { libc::posix_fallocate(fd, 0, len as libc::off_t) } {
            0 => Segment::map(fd, len, cname.clone(), local_size, ring_lines),
            err => Err(Error::io(
                format!(
                    "reserving {len} bytes in /dev/shm for {} ({local_size} local ranks)",
                    cname.to_string_lossy()
                ),
                std::io::Error::from_raw_os_error(err),
            )),
        };
        // SAFETY: closing our own descriptor; the mapping (if any) stays valid.
        unsafe { libc::close(fd) };
        let seg = match seg {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: removing the name we just created.
                unsafe { libc::shm_unlink(cname.as_ptr()) };
                return Err(e);
            }
        };
        // The creator before the magic word (`stale` reads them in that order).
        seg.word64(CREATOR)
            .store(u64::from(std::process::id()), Ordering::Relaxed);
        seg.word64(CREATOR_NAMESPACE)
            .store(super::stale::pid_namespace(), Ordering::Relaxed);
        seg.word64(MARKER_KEY)
            .store(marker_key(), Ordering::Relaxed);
        seg.word64(0).store(MAGIC, Ordering::Release);
        seg.word64(8).store(local_size as u64, Ordering::Relaxed);
        seg.word64(16).store(ring_lines as u64, Ordering::Release);
        Ok(seg)
    }

    /// Opens and maps a segment another rank created.
    pub(crate) fn open(name: &str) -> Result<Segment> {
        let cname = CString::new(name)
            .map_err(|_| Error::InvalidArgument(format!("bad segment name {name}")))?;
        // SAFETY: plain syscalls on a NUL-terminated name and our own fd.
        let fd = unsafe { libc::shm_open(cname.as_ptr(), libc::O_RDWR, 0) };
        if fd < 0 {
            return Err(os_error("opening shared memory", &cname));
        }
        // SAFETY: `stat` is plain data, for which all-zero bytes are a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat fills `st` for our fd.
        let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
        let result = if !ok {
            Err(os_error("inspecting", &cname))
        } else {
            Segment::map(fd, st.st_size as usize, cname.clone(), 0, 0)
        };
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
        let mut seg = result?;
        let bad = || Error::Bootstrap(format!("shared memory {name} is not an oxmpi segment"));
        if seg.len < HEADER || seg.word64(0).load(Ordering::Acquire) != MAGIC {
            return Err(bad());
        }
        seg.local_size = seg.word64(8).load(Ordering::Relaxed) as usize;
        seg.ring_lines = seg.word64(16).load(Ordering::Relaxed) as usize;
        // Sizes as `create` allows them, so that the footprint cannot overflow.
        if seg.local_size > MAX_LOCAL_RANKS
            || !valid_marker_key(seg.word64(MARKER_KEY).load(Ordering::Relaxed))
            || !seg.ring_lines.is_power_of_two()
            || seg.ring_lines > seg.len
            || footprint(seg.local_size, seg.ring_lines) != seg.len
        {
            return Err(bad());
        }
        Ok(seg)
    }

    fn map(
        fd: i32,
        len: usize,
        name: CString,
        local_size: usize,
        ring_lines: usize,
    ) -> Result<Segment> {
        // SAFETY: mapping `len` bytes of the shared object behind `fd`, fresh address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(os_error("mapping", &name));
        }
        Ok(Segment {
            base: base.cast(),
            len,
            name,
            local_size,
            ring_lines,
        })
    }

    fn word64(&self, off: usize) -> &AtomicU64 {
        assert!(off + 8 <= self.len && off.is_multiple_of(8));
        // SAFETY: in bounds and aligned (checked); the mapping lives as long as self.
        unsafe { AtomicU64::from_ptr(self.base.add(off).cast()) }
    }

    fn word32(&self, off: usize) -> &AtomicU32 {
        assert!(off + 4 <= self.len && off.is_multiple_of(4));
        // SAFETY: in bounds and aligned (checked); the mapping lives as long as self.
        unsafe { AtomicU32::from_ptr(self.base.add(off).cast()) }
    }

    /// Counts this rank as attached; the last rank to attach removes the name.
    pub(crate) fn attach(&self) {
        let n = self.word32(ATTACHED).fetch_add(1, Ordering::AcqRel) + 1;
        if n as usize == self.local_size {
            // SAFETY: removing the segment's name; mappings stay valid.
            unsafe { libc::shm_unlink(self.name.as_ptr()) };
        }
    }

    /// Says that world rank `rank` of this node will never attach, and why, and
    /// removes the segment's name (the job cannot start, and nobody else may be left
    /// to remove it).
    pub(crate) fn decline(&self, rank: usize, why: Decline) {
        let word = (rank as u64 + 1) | (why as u64) << 32;
        self.word64(DECLINED).store(word, Ordering::Release);
        // SAFETY: removing the segment's name; mappings stay valid.
        unsafe { libc::shm_unlink(self.name.as_ptr()) };
    }

    /// Waits until every local rank has attached; fails once one has declined to.
    pub(crate) fn wait_all_attached(&self) -> Result<()> {
        self.wait_count(ATTACHED)
    }

    /// Counts this rank's single-copy probe as done (its flag is set or never will be).
    pub(crate) fn probed(&self) {
        self.word32(PROBED).fetch_add(1, Ordering::AcqRel);
    }

    /// Waits until every local rank's single-copy probe is done.
    pub(crate) fn wait_all_probed(&self) -> Result<()> {
        self.wait_count(PROBED)
    }

    /// Waits (yielding, then sleeping briefly) until the counter at `off` reaches the
    /// number of local ranks (ranks count themselves during init), or fails where a
    /// local rank declined to attach ([`Segment::decline`]).
    fn wait_count(&self, off: usize) -> Result<()> {
        let mut spins = 0u32;
        while (self.word32(off).load(Ordering::Acquire) as usize) < self.local_size {
            let declined = self.word64(DECLINED).load(Ordering::Acquire);
            if declined != 0 {
                return Err(declined_error(declined));
            }
            spins += 1;
            if spins < 1000 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Ok(())
    }

    /// The inbox of local rank `i`.
    pub(crate) fn inbox(&self, i: usize) -> Inbox {
        assert!(i < self.local_size);
        let block = HEADER + i * block_size(self.ring_lines);
        // SAFETY: the block lies inside the mapping, which outlives every Inbox (the
        // transport owns both and drops the inboxes first).
        unsafe {
            Inbox::new(
                self.base.add(block),
                self.base.add(block + CONTROL),
                self.ring_lines,
                self.local_size,
                self.word64(MARKER_KEY).load(Ordering::Relaxed),
            )
        }
    }

    /// The collective area of the node's ranks.
    pub(crate) fn area(&self) -> Area {
        let off = HEADER + self.local_size * block_size(self.ring_lines);
        debug_assert_eq!(off % LINE, 0);
        // SAFETY: the area is the last `local_size * area::BLOCK` bytes of the mapping
        // (see `footprint`), zero-filled at creation and line-aligned; the transport
        // owns the segment and keeps it mapped while it uses the Area.
        unsafe { Area::new(self.base.add(off), self.local_size) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped; no Inbox outlives the segment.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footprint_grows_linearly_with_local_ranks() {
        // The default ring (256 KiB); docs/shared-memory.md quotes these sizes.
        let lines = 256 * 1024 / LINE;
        let per_rank = footprint(2, lines) - footprint(1, lines);
        assert_eq!(per_rank, (4 + 256 + 4 * 512 + 2) * 1024 + 128 * 4160);
        for n in [2, 16, 64] {
            assert_eq!(footprint(n, lines), HEADER + n * per_rank);
        }
        let mib = |n| footprint(n, lines) as f64 / (1024.0 * 1024.0);
        assert_eq!(
            format!("{:.2} {:.2} {:.1}", mib(2), mib(16), mib(64)),
            "5.53 44.22 176.9"
        );
    }

    #[test]
    fn marker_keys_are_valid_and_differ() {
        let keys: Vec<u64> = (0..64).map(|_| marker_key()).collect();
        assert!(keys.iter().all(|&k| valid_marker_key(k)));
        assert!(keys.windows(2).any(|w| w[0] != w[1]));
        assert!(!valid_marker_key(0) && !valid_marker_key(u64::MAX));
    }
}
