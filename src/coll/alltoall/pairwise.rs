//! Pairwise-exchange alltoall: in step `k` (1 ≤ k < p) every rank sends to the rank
//! `k` above it and receives from the rank `k` below, one exchange at a time.
//!
//! Cost: `p - 1` steps of one block each: latency linear in `p`, but at most one
//! message in and one out per rank at any time, so long blocks never pile up: the
//! choice for long blocks. Works for varying blocks (alltoallv).

use crate::coll::blocks::Blocks;
use crate::engine::schedule::{Buf, Schedule};

/// Sends block `i` of `input` (laid out as `sends`) to rank `i` and receives rank
/// `i`'s block into block `i` of the receive buffer (laid out as `recvs`).
pub(crate) fn build(s: &mut Schedule, input: Buf, sends: &Blocks, recvs: &Blocks) {
    let (rank, size) = (s.rank(), s.size());
    s.copy(sends.span(input, rank), recvs.span(Buf::Recv, rank));
    for k in 1..size {
        let (to, from) = ((rank + k) % size, (rank + size - k) % size);
        s.recv(from, recvs.span(Buf::Recv, from));
        s.send(to, sends.span(input, to));
        s.fence();
    }
}
