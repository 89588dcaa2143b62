//! Recursive-doubling scan (inclusive and exclusive): in step `k` every rank swaps its
//! running total of the aligned run of `2^k` ranks around it with the rank `2^k` away;
//! a total from below also joins the rank's prefix.
//!
//! Cost: `ceil(log2(p))` steps of the whole vector, two reductions per step. Totals
//! cover contiguous runs of ranks and the lower run is always the left operand, so
//! non-commutative operations are applied in rank order.

use crate::engine::schedule::{Buf, Schedule, Span};

/// Computes into the receive buffer the reduction of `bytes` of `input` over ranks
/// `0..=rank` (or `0..rank` when `exclusive`; rank 0's buffer is then left alone).
pub(crate) fn build(s: &mut Schedule, input: Buf, bytes: usize, exclusive: bool) {
    let (rank, size) = (s.rank(), s.size());
    let mine = Span::new(input, 0, bytes);
    let out = Span::new(Buf::Recv, 0, bytes);
    if !exclusive {
        s.copy(mine, out);
    }
    if size == 1 {
        return;
    }
    let total = Span::new(s.temp(bytes), 0, bytes);
    let theirs = Span::new(s.temp(bytes), 0, bytes);
    s.copy(mine, total);
    // Whether `out` holds anything yet (exclusive scans start empty).
    let mut have_prefix = !exclusive;
    let mut mask = 1;
    while mask < size {
        let partner = rank ^ mask;
        if partner < size {
            s.send(partner, total);
            s.recv(partner, theirs);
            s.fence();
            if partner < rank {
                s.reduce(theirs, total, total);
                if have_prefix {
                    s.reduce(theirs, out, out);
                } else {
                    s.copy(theirs, out);
                    have_prefix = true;
                }
            } else {
                s.reduce(total, theirs, total);
            }
        }
        mask <<= 1;
    }
}
