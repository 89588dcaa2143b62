//! Which way this process received its large messages (those sent by rendezvous, and
//! mid-size ones offered for reading), counted so that tests can tell that a forced
//! or forbidden path was really taken.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A way a large message is received.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Way {
    /// Read straight from the sender's memory by the receiver alone.
    SingleCopy,
    /// Read from the sender's memory, the sender asked to copy part of it.
    Split,
    /// Sent in data frames after the receiver's clear-to-send.
    Streamed,
}

static COUNTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// Whether start-up found that this node's ranks may read each other's memory.
static PERMITTED: AtomicBool = AtomicBool::new(false);

/// Records what start-up found: whether this node's ranks may read each other's
/// memory (and single copy is not turned off).
pub(crate) fn single_copy_permitted(yes: bool) {
    PERMITTED.store(yes, Ordering::Relaxed);
}

/// Counts a large message received `way`. Only the engine's owner receives, so a load
/// and a store do (a locked add would drain the store buffer).
#[inline]
pub(crate) fn count(way: Way) {
    let counter = &COUNTS[way as usize];
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// How many large messages (those sent by rendezvous, and mid-size ones a sender
/// offered for reading) this process received each way so far. For tests: which
/// path a message takes is otherwise invisible.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargeReceives {
    /// Read straight from the sender's memory (`process_vm_readv`) by the receiver
    /// alone: large messages, and mid-size ones the receiver asked to be offered for
    /// reading (whether their receives were posted or not).
    pub single_copy: u64,
    /// Read from the sender's memory, the copy offered to the sender to share
    /// (`OXMPI_SHM_SPLIT`; it may have found no part left to copy).
    pub split: u64,
    /// Sent in data frames after a clear-to-send: through the shared-memory rings, over
    /// TCP, or to this rank itself.
    pub streamed: u64,
    /// Whether start-up found that the ranks of this node may read each other's memory
    /// (false where the kernel forbids it, `OXMPI_SHM_SINGLE_COPY=0` turns it off, or
    /// the rank is alone on its node).
    pub single_copy_permitted: bool,
}

/// How many large messages this process received each way so far.
///
/// ```
/// let before = oxmpi::large_receives();
/// assert!(oxmpi::large_receives().streamed >= before.streamed);
/// ```
#[doc(hidden)]
pub fn large_receives() -> LargeReceives {
    let read = |way: Way| COUNTS[way as usize].load(Ordering::Relaxed);
    LargeReceives {
        single_copy: read(Way::SingleCopy),
        split: read(Way::Split),
        streamed: read(Way::Streamed),
        single_copy_permitted: PERMITTED.load(Ordering::Relaxed),
    }
}
