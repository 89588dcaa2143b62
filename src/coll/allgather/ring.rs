//! Ring allgather: in step `k` every rank passes the block it received in step `k - 1`
//! to its right neighbour. `size - 1` steps, each moving one block per rank: optimal
//! in bandwidth, linear in latency, any rank count, any block sizes (allgatherv).

use crate::coll::blocks::Blocks;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Completes `buf`, laid out as `blocks`, whose block `rank` is already in place; the
/// first step sends that block from `own` (see [`super`]).
pub(crate) fn build(s: &mut Schedule, buf: Buf, blocks: &Blocks, own: Span) {
    let (rank, size) = (s.rank(), s.size());
    let (left, right) = ((rank + size - 1) % size, (rank + 1) % size);
    for k in 0..size.saturating_sub(1) {
        let out = if k == 0 {
            own
        } else {
            blocks.span(buf, (rank + size - k) % size)
        };
        s.send(right, out);
        s.recv(left, blocks.span(buf, (rank + size - k - 1) % size));
        s.fence();
    }
}
