//! An asymmetric memory fence between the ranks of a node, from `membarrier(2)`.
//!
//! Waking a sleeper is a store-then-load race on both sides: a rank publishes data and
//! then reads the other's doorbell, the other sets its doorbell and then re-checks for
//! data; without a full fence on each side both can read the old value, and the
//! sleeper misses its wake-up. Publishing is frequent and going to sleep is rare, so
//! the publisher keeps only a compiler fence ([`light`]: its store and load stay in
//! program order in the code) and the rank about to sleep pays for both ([`heavy`]):
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED` makes every CPU that runs a process registered
//! for it execute a full memory fence before the call returns. Whichever side's
//! access comes first in that fence's order is seen by the other: a publisher's
//! store still in its store buffer is drained by the fence, and a load of the
//! doorbell after the fence sees the doorbell set before the call.
//!
//! A node uses this only if every local rank registered (`Shm::join` agrees on it);
//! otherwise the collective area's publishers issue a full fence, and point-to-point
//! senders, which never fence (a fence would cost every send a store-buffer drain),
//! leave a window in which a wake-up can be missed; a miss costs at most the sleep it
//! falls in (100 µs for a wait's first, doubling up to 50 ms, `engine::wait`). Publishers that find a sleeper fence fully before
//! they look at what other publishers wrote (`Shm::wake_sleepers`): the sleeper's
//! fence orders each of them against the sleeper, not two of them against each
//! other.

use std::sync::atomic::{Ordering, compiler_fence};

/// `MEMBARRIER_CMD_QUERY`, `_GLOBAL_EXPEDITED` and `_REGISTER_GLOBAL_EXPEDITED` of
/// `<linux/membarrier.h>` (Linux 4.16).
const CMD_QUERY: libc::c_long = 0;
const CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
const CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes two integers and touches no user memory.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    }
}

/// Registers this process for global expedited fences. Whether the kernel (and any
/// seccomp filter in front of it) offers them.
pub(crate) fn register() -> bool {
    let both = CMD_GLOBAL_EXPEDITED | CMD_REGISTER_GLOBAL_EXPEDITED;
    let offered = membarrier(CMD_QUERY);
    offered >= 0 && offered & both == both && membarrier(CMD_REGISTER_GLOBAL_EXPEDITED) == 0
}

/// The publisher's side: keeps its store before its load in the compiled code; the
/// sleeper's [`heavy`] supplies the fence.
#[inline]
pub(crate) fn light() {
    compiler_fence(Ordering::SeqCst);
}

/// The sleeper's side: a full fence on every CPU that runs a registered process.
/// Whether it was issued (it only fails if the kernel took back what it offered at
/// [`register`]).
pub(crate) fn heavy() -> bool {
    membarrier(CMD_GLOBAL_EXPEDITED) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_process_can_fence_every_cpu() {
        // Kernels without the command (or a seccomp filter) make `register` false;
        // where it is offered the fence must work.
        if register() {
            assert!(heavy());
        }
        light();
    }
}
