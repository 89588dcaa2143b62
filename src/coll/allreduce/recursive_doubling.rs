//! Recursive-doubling allreduce: in step `k` every rank swaps its whole partial result
//! with the rank `2^k` away and combines the two; after `log2(p)` steps every rank
//! holds the result.
//!
//! Cost: `log2(p)` steps of the whole vector (plus two for non-power-of-two sizes,
//! folded by [`Fold`]): the fewest steps, so the choice for short vectors. Partials
//! cover contiguous runs of ranks and the lower run is always the left operand, so
//! rank order holds and both partners compute the same values from the same
//! operands. Their kernels differ (each combines in place into its own operand), and
//! with them which NaN a float add or multiply passes on: the kernels settle every
//! float NaN as they compute it (`kernels.rs`), so every rank ends with identical
//! bits.

use crate::coll::fold::{Fold, Role};
use crate::engine::schedule::{Buf, Schedule, Span};

/// Reduces `bytes` of `input` on every rank into the receive buffer.
pub(crate) fn build(s: &mut Schedule, input: Buf, bytes: usize) {
    let fold = Fold::new(s.size());
    let (mine, out) = (Span::new(input, 0, bytes), Span::new(Buf::Recv, 0, bytes));
    let (q, absorbed) = match fold.role(s.rank()) {
        Role::Extra { partner } => {
            s.send(partner, mine);
            s.fence();
            s.recv(partner, out);
            return;
        }
        Role::Participant { q, absorbs } => (q, absorbs),
    };
    // A partner's partial lands in the output while this rank's own partial is still
    // its input (2-rank 512 KiB-1 MiB, see docs/collectives.md), else in a temporary.
    let mut temp = None;
    let mut cur = mine;
    if let Some(lower) = absorbed {
        let theirs = s.landing(cur, out, &mut temp);
        s.recv(lower, theirs);
        s.fence();
        s.reduce(theirs, cur, out);
        cur = out;
    }
    let mut mask = 1;
    while mask < fold.pof2 {
        let partner = fold.rank_of(q ^ mask);
        let theirs = s.landing(cur, out, &mut temp);
        s.send(partner, cur);
        s.recv(partner, theirs);
        s.fence();
        if q & mask == 0 {
            s.reduce(cur, theirs, out);
        } else {
            s.reduce(theirs, cur, out);
        }
        cur = out;
        mask <<= 1;
    }
    s.copy(cur, out);
    if let Some(lower) = absorbed {
        s.send(lower, out);
    }
}
