//! Scatter-allgather broadcast (van de Geijn): the root scatters the buffer in `p`
//! pieces down a binomial tree, then a ring allgather hands every rank the pieces it
//! lacks, the ring pipelining them piece by piece.
//!
//! Cost: `log2(p) + p - 1` steps but only about `2 (p - 1) / p` of the buffer through
//! each rank's link instead of `log2(p)` whole copies on the root's: the choice for
//! long buffers when ranks have cores of their own.

use crate::coll::allgather;
use crate::coll::blocks::Blocks;
use crate::coll::gather::binomial::lowbit;
use crate::engine::schedule::{Buf, Schedule};

/// Broadcasts the `bytes` of the root's receive buffer.
pub(crate) fn build(s: &mut Schedule, bytes: usize, root: usize) {
    let (rank, size) = (s.rank(), s.size());
    // Piece j belongs to relative rank j, so every subtree is one run of pieces.
    let pieces = Blocks::split(bytes, size, 1);
    let v = (rank + size - root) % size;
    let span = if v == 0 {
        size.next_power_of_two()
    } else {
        lowbit(v)
    };
    if v != 0 {
        s.recv(
            (rank + size - span) % size,
            pieces.run(Buf::Recv, v..(v + span).min(size)),
        );
        s.fence();
    }
    let mut mask = span / 2;
    while mask > 0 {
        if v + mask < size {
            let child = v + mask;
            s.send(
                (rank + mask) % size,
                pieces.run(Buf::Recv, child..(child + mask).min(size)),
            );
        }
        mask /= 2;
    }
    s.fence();
    allgather::ring::build(s, Buf::Recv, &pieces.rotated(root));
}
