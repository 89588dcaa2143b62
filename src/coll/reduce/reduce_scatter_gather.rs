//! Reduce-scatter-gather reduce (Rabenseifner): a recursive-halving reduce-scatter
//! leaves each participant one reduced segment, then the same swaps run backwards as
//! a binomial gather of the segments toward the root.
//!
//! Cost: `2 log2(p)` steps, about `2 (p - 1) / p` of the vector through each link
//! instead of `log2(p)` whole vectors into the root: the choice for long vectors.
//! Non-power-of-two sizes fold first; a root folded away gets the result from its
//! partner at the end. Non-commutative operations reduce in [`Order::Doubling`],
//! which keeps rank order.

use crate::coll::blocks::Blocks;
use crate::coll::fold::{Fold, Role};
use crate::coll::reduce_scatter::recursive_halving::{self, Halved, Order};
use crate::engine::schedule::{Buf, Schedule};

/// Reduces `count` elements of `esz` bytes of `input` from every rank into the root's
/// receive buffer.
pub(crate) fn build(
    s: &mut Schedule,
    input: Buf,
    count: usize,
    esz: usize,
    root: usize,
    commutative: bool,
) {
    let rank = s.rank();
    let fold = Fold::new(s.size());
    let segs = Blocks::split(count, fold.pof2, esz);
    let work = if rank == root {
        Buf::Recv
    } else {
        s.temp(count * esz)
    };
    let whole = |buf| segs.run(buf, 0..fold.pof2);
    let order = if commutative {
        Order::Halving
    } else {
        Order::Doubling
    };
    // The participant the segments gather to: the root, or the one standing for it.
    let (target, root_folded) = match fold.role(root) {
        Role::Extra { partner } => (partner, true),
        Role::Participant { .. } => (root, false),
    };
    let Role::Participant { q: target_q, .. } = fold.role(target) else {
        unreachable!("a folded rank's partner participates");
    };
    match recursive_halving::build(s, &fold, input, work, &segs, order) {
        Halved::Extra { partner } => {
            if rank == root {
                s.fence();
                s.recv(partner, whole(Buf::Recv));
            }
        }
        Halved::Participant { q, steps, .. } => {
            for step in steps.iter().rev() {
                if q & step.mask == target_q & step.mask {
                    s.recv(step.partner, segs.run(work, step.give.clone()));
                    s.fence();
                } else {
                    s.send(step.partner, segs.run(work, step.keep.clone()));
                    return;
                }
            }
            if root_folded && rank == target {
                s.send(root, whole(work));
            }
        }
    }
}
