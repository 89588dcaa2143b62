//! Bruck's allgather: blocks are kept in rank-relative order in a temporary; in step
//! `k` every rank sends the first `min(2^k, p - 2^k)` blocks it holds to the rank
//! `2^k` below it and appends what the rank `2^k` above sends; a final rotation puts
//! the blocks in rank order.
//!
//! Cost: `ceil(log2(p))` steps for any `p` (no folding), `(p - 1) / p` of the result
//! received per rank, plus one local copy of it: the choice for short blocks on
//! non-power-of-two sizes. Equal blocks only (allgather, not allgatherv).

use crate::engine::schedule::{Buf, Schedule, Span};

/// Gathers the `block` bytes of `mine` from every rank into the receive buffer.
pub(crate) fn build(s: &mut Schedule, mine: Span, block: usize) {
    let (rank, size) = (s.rank(), s.size());
    let tmp = s.temp(block * size);
    let at = |first: usize, n: usize| Span::new(tmp, first * block, n * block);
    s.copy(mine, at(0, 1));
    let mut dist = 1;
    while dist < size {
        let n = dist.min(size - dist);
        s.send((rank + size - dist) % size, at(0, n));
        s.recv((rank + dist) % size, at(dist, n));
        s.fence();
        dist <<= 1;
    }
    // tmp holds blocks rank, rank + 1, …, wrapping around.
    let head = size - rank;
    s.copy(
        at(0, head),
        Span::new(Buf::Recv, rank * block, head * block),
    );
    s.copy(at(head, rank), Span::new(Buf::Recv, 0, rank * block));
}
