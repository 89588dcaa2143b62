//! Rabenseifner's allreduce: a recursive-halving reduce-scatter leaves each
//! participant one reduced segment, and a recursive-doubling allgather (the same
//! swaps in reverse) hands every segment to everyone.
//!
//! Cost: `2 log2(p)` steps, `2 (p - 1) / p` of the vector sent per rank and
//! `(p - 1) / p` reduced: bandwidth-optimal with logarithmic latency, for medium and
//! long vectors. Non-power-of-two sizes fold (two more full-vector steps). The
//! reduce-scatter runs in [`Order::Doubling`], so non-commutative operations stay in
//! rank order; each segment is reduced on one rank only and then copied, so every
//! rank ends with identical bits.

use crate::coll::blocks::Blocks;
use crate::coll::fold::Fold;
use crate::coll::reduce_scatter::recursive_halving::{self, Halved, Order};
use crate::engine::schedule::{Buf, Schedule};

/// Reduces `count` elements of `esz` bytes of `input` into the receive buffer on
/// every rank.
pub(crate) fn build(s: &mut Schedule, input: Buf, count: usize, esz: usize) {
    let fold = Fold::new(s.size());
    let segs = Blocks::split(count, fold.pof2, esz);
    let whole = segs.run(Buf::Recv, 0..fold.pof2);
    match recursive_halving::build(s, &fold, input, Buf::Recv, &segs, Order::Doubling) {
        Halved::Extra { partner } => {
            s.fence();
            s.recv(partner, whole);
        }
        Halved::Participant {
            absorbed, steps, ..
        } => {
            for step in steps.iter().rev() {
                s.send(step.partner, segs.run(Buf::Recv, step.keep.clone()));
                s.recv(step.partner, segs.run(Buf::Recv, step.give.clone()));
                s.fence();
            }
            if let Some(lower) = absorbed {
                s.send(lower, whole);
            }
        }
    }
}
