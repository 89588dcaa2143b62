//! Linear alltoall: every rank posts all its receives, then all its sends, and waits
//! for everything at once.
//!
//! Cost: one round in which each rank has `p - 1` messages in flight each way: the
//! transports overlap them all, so medium blocks finish in about the time of the
//! slowest link; long blocks would flood the unexpected queues (use pairwise).
//! Works for varying blocks (alltoallv).

use crate::coll::blocks::Blocks;
use crate::engine::schedule::{Buf, Schedule};

/// Sends block `i` of `input` (laid out as `sends`) to rank `i` and receives rank
/// `i`'s block into block `i` of the receive buffer (laid out as `recvs`).
pub(crate) fn build(s: &mut Schedule, input: Buf, sends: &Blocks, recvs: &Blocks) {
    let (rank, size) = (s.rank(), s.size());
    s.copy(sends.span(input, rank), recvs.span(Buf::Recv, rank));
    for k in 1..size {
        let from = (rank + size - k) % size;
        s.recv(from, recvs.span(Buf::Recv, from));
    }
    for k in 1..size {
        let to = (rank + k) % size;
        s.send(to, sends.span(input, to));
    }
}
