//! Context ids: which communicator a message belongs to.
//!
//! Each communicator owns a pair of ids, `2p` for point-to-point and `2p + 1` for its
//! collectives, so user messages and collective traffic never match each other. Pairs
//! are chosen without a central server: the ranks of the parent communicator combine
//! their free masks with a bitwise AND and take the lowest pair free everywhere
//! (MPICH's scheme). Invariant: a pair is claimed locally before first use and released
//! only when the last handle to its communicator has been dropped and none of this
//! rank's receives or collectives still uses it: MPI lets a program free a
//! communicator with operations pending, which complete on it, and a new communicator
//! given the pair at once would take their messages. Messages that arrived on the
//! pair and that no receive took are dropped then (nothing can receive them). One
//! that a peer sends on its handle after this rank released the pair, with no
//! receive for it here, is erroneous in MPI (every message must be received before
//! finalize); the next communicator given the pair may take it. A handle dropped
//! where the engine cannot be reached (on another thread, or inside an oxmpi call)
//! leaves its pair in [`ORPHANED`] for the owner to release at its next communicator
//! call.

use std::sync::{Mutex, PoisonError};

use super::Engine;
use super::matching::Body;
use super::protocol::{control, credit_matched, refusal};
use super::requests::Op;
use crate::transport::frame::Kind;

/// Whether context id `ctx` carries a communicator's collectives (else its
/// point-to-point messages).
#[inline]
pub(crate) fn is_collective(ctx: u32) -> bool {
    ctx & 1 == 1
}

/// Number of id pairs (communicators alive at once in one process, the world
/// included): twice MPICH's 2048 ids. Each split and dup gathers every rank's free
/// mask (512 bytes).
pub(crate) const PAIRS: usize = 4096;
/// Words of a free mask.
pub(crate) const MASK_WORDS: usize = PAIRS / 64;

/// Pairs whose last handle was dropped where the engine could not be reached.
static ORPHANED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Leaves `pair` for the engine's owner to release (see [`ORPHANED`]).
pub(crate) fn orphan_pair(pair: u32) {
    ORPHANED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(pair);
}

/// The free id pairs of this process.
pub(crate) struct ContextIds {
    free: [u64; MASK_WORDS],
    /// Pairs whose communicators are gone, still used by operations in flight.
    draining: Vec<u32>,
}

impl ContextIds {
    /// All pairs free but pair 0, which the world communicator holds.
    pub(crate) fn new() -> ContextIds {
        let mut free = [u64::MAX; MASK_WORDS];
        free[0] &= !1;
        ContextIds {
            free,
            draining: Vec::new(),
        }
    }

    /// The lowest pair free in `mask` (an AND of every rank's mask).
    pub(crate) fn lowest(mask: &[u64; MASK_WORDS]) -> Option<u32> {
        mask.iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| (i * 64 + w.trailing_zeros() as usize) as u32)
    }

    pub(crate) fn claim(&mut self, pair: u32) {
        self.free[pair as usize / 64] &= !(1u64 << (pair % 64));
    }

    fn release(&mut self, pair: u32) {
        self.free[pair as usize / 64] |= 1u64 << (pair % 64);
    }
}

impl Engine {
    /// The last handle to the communicator of id pair `pair` was dropped: the pair is
    /// free again once no operation of this rank uses it.
    pub(crate) fn drop_pair(&mut self, pair: u32) {
        self.ctx_ids.draining.push(pair);
        self.settle_pairs();
    }

    /// This process's free mask, to be combined with the other ranks', once the
    /// pairs no operation uses any more are released.
    pub(crate) fn free_pairs(&mut self) -> [u64; MASK_WORDS] {
        self.settle_pairs();
        self.ctx_ids.free
    }

    fn settle_pairs(&mut self) {
        let orphans = std::mem::take(&mut *ORPHANED.lock().unwrap_or_else(PoisonError::into_inner));
        self.ctx_ids.draining.extend(orphans);
        let mut i = 0;
        while i < self.ctx_ids.draining.len() {
            let pair = self.ctx_ids.draining[i];
            if self.pair_in_use(pair) {
                i += 1;
                continue;
            }
            self.ctx_ids.draining.swap_remove(i);
            self.ctx_ids.release(pair);
            self.core.finalized.unregister(pair);
            self.drop_unexpected_of(pair);
        }
    }

    /// Whether a receive posted here or a collective in flight uses pair `pair`.
    fn pair_in_use(&self, pair: u32) -> bool {
        let reqs = &self.core.reqs;
        self.core.matcher.any_posted(|p, _| p.ctx() / 2 == pair)
            || self
                .colls
                .iter()
                .any(|&id| matches!(reqs.get(id), Some(Op::Coll(s)) if s.route().ctx / 2 == pair))
    }

    /// Drops the messages of pair `pair` that no receive took, completing their
    /// senders as a receive would (credit back, synchronous sends acknowledged,
    /// announcements answered with nothing to send).
    fn drop_unexpected_of(&mut self, pair: u32) {
        let core = &mut self.core;
        let (outbox, credits) = (&mut core.outbox, &mut core.credits);
        core.matcher.drop_unexpected_where(|u| {
            if u.env.ctx / 2 != pair {
                return false;
            }
            if let Some(len) = u.credit() {
                credit_matched(outbox, credits, u.peer, len);
            }
            match u.body {
                Body::Eager { sync, .. } => {
                    if let Some(sreq) = sync {
                        outbox.push((u.peer, control(Kind::SyncAck, sreq, 0)));
                    }
                }
                Body::Rts { sreq, .. } => outbox.push((u.peer, refusal(sreq))),
            }
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agree_on_lowest_common_pair() {
        let mut a = ContextIds::new();
        let mut b = ContextIds::new();
        a.claim(1);
        b.claim(2);
        let both: [u64; MASK_WORDS] = std::array::from_fn(|i| a.free[i] & b.free[i]);
        assert_eq!(ContextIds::lowest(&both), Some(3));
        a.release(1);
        let both: [u64; MASK_WORDS] = std::array::from_fn(|i| a.free[i] & b.free[i]);
        assert_eq!(ContextIds::lowest(&both), Some(1));
        let mut full = ContextIds::new();
        for p in 1..PAIRS as u32 {
            full.claim(p);
        }
        assert_eq!(ContextIds::lowest(&full.free), None);
    }
}
