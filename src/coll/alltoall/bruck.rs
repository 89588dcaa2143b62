//! Bruck's alltoall: blocks are rotated into rank-relative order; in step `k` every
//! rank sends, in one message, all blocks whose relative index has bit `k` set to the
//! rank `2^k` above it; a final rotation puts the received blocks in rank order.
//!
//! Cost: `ceil(log2(p))` messages per rank instead of `p - 1`, but each carries about
//! half the blocks and every block is copied locally about `log2(p) / 2 + 2` times:
//! the choice for very short blocks. Equal blocks only.

use crate::engine::schedule::{Buf, Schedule, Span};

/// Exchanges blocks of `block` bytes: block `i` of `input` goes to rank `i`.
pub(crate) fn build(s: &mut Schedule, input: Buf, block: usize) {
    let (rank, size) = (s.rank(), s.size());
    let work = s.temp(block * size);
    let half = size.div_ceil(2);
    let (out_pack, in_pack) = (s.temp(block * half), s.temp(block * half));
    let at = |buf: Buf, first: usize, n: usize| Span::new(buf, first * block, n * block);
    // work[i] = the block for rank + i.
    s.copy(at(input, rank, size - rank), at(work, 0, size - rank));
    s.copy(at(input, 0, rank), at(work, size - rank, rank));
    let mut dist = 1;
    while dist < size {
        // Indices with bit `dist` set come in runs [j, j + dist) for j = dist, 3 dist, ….
        let runs: Vec<(usize, usize)> = (dist..size)
            .step_by(2 * dist)
            .map(|j| (j, dist.min(size - j)))
            .collect();
        let mut packed = 0;
        for &(j, n) in &runs {
            s.copy(at(work, j, n), at(out_pack, packed, n));
            packed += n;
        }
        s.send((rank + dist) % size, at(out_pack, 0, packed));
        s.recv((rank + size - dist) % size, at(in_pack, 0, packed));
        s.fence();
        let mut unpacked = 0;
        for &(j, n) in &runs {
            s.copy(at(in_pack, unpacked, n), at(work, j, n));
            unpacked += n;
        }
        dist <<= 1;
    }
    // work[i] came from rank - i.
    for i in 0..size {
        s.copy(at(work, i, 1), at(Buf::Recv, (rank + size - i) % size, 1));
    }
}
