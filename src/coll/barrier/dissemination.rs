//! Dissemination barrier: in round `k` every rank signals the rank `2^k` above it and
//! waits for the one `2^k` below; after `ceil(log2(p))` rounds every rank has heard,
//! directly or not, from every other.
//!
//! Cost: `ceil(log2(p))` rounds of one empty message in and out per rank, for any
//! `p` (no folding, no root).

use crate::engine::schedule::Schedule;

/// Synchronises every rank of the schedule's communicator.
pub(crate) fn build(s: &mut Schedule) {
    let (rank, size) = (s.rank(), s.size());
    let mut dist = 1;
    while dist < size {
        s.signal((rank + dist) % size);
        s.await_signal((rank + size - dist) % size);
        s.fence();
        dist <<= 1;
    }
}
