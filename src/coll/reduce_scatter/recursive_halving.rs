//! Recursive-halving reduce-scatter: in each of `log2(p)` steps a rank swaps half of
//! the segments it still holds with a partner one bit away, and reduces the half it
//! keeps; at the end each participant holds one segment reduced over all ranks.
//!
//! Cost: `log2(p)` steps, `(p - 1) / p` of the vector sent and reduced per rank:
//! bandwidth-optimal and logarithmic in latency (Rabenseifner's first half).
//! Non-power-of-two sizes fold first ([`Fold`]): paired ranks add one full-vector
//! step. With [`Order::Doubling`] the partner distance grows from 1, so every partial
//! covers a contiguous run of ranks and the lower run is always the left operand: rank
//! order holds, and participant `q` ends with segment `bitrev(q)`. With
//! [`Order::Halving`] the distance shrinks from `p / 2` and participant `q` ends with
//! segment `q`, but operands mix out of rank order (commutative operations only).

use std::ops::Range;

use crate::coll::blocks::Blocks;
use crate::coll::fold::{Fold, Role};
use crate::engine::schedule::{Buf, Schedule, Span};

/// In which order the partner distances go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// 1, 2, 4, …: keeps rank order; participant `q` ends with segment `bitrev(q)`.
    Doubling,
    /// p/2, p/4, …, 1: participant `q` ends with segment `q`.
    Halving,
}

/// One swap of the reduce-scatter.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    /// The partner's participant number differs from ours in this bit.
    pub mask: usize,
    /// The partner's rank.
    pub partner: usize,
    /// Segments this rank kept (and reduced).
    pub keep: Range<usize>,
    /// Segments this rank gave to the partner.
    pub give: Range<usize>,
}

/// What a rank holds after the reduce-scatter.
pub(crate) enum Halved {
    /// Folded away: its data went to the participant above it.
    Extra { partner: usize },
    /// Participant `q`, holding segment `held` of the work buffer, reduced; the swaps
    /// it made are in `steps`, in order.
    Participant {
        q: usize,
        absorbed: Option<usize>,
        held: usize,
        steps: Vec<Exchange>,
    },
}

/// Reduces `input` (laid out as `segs`, one segment per participant of `fold`) into
/// `work`, which has the same layout.
pub(crate) fn build(
    s: &mut Schedule,
    fold: &Fold,
    input: Buf,
    work: Buf,
    segs: &Blocks,
    order: Order,
) -> Halved {
    let whole = |buf| segs.run(buf, 0..fold.pof2);
    let vector = whole(work).len;
    let (q, absorbed) = match fold.role(s.rank()) {
        Role::Extra { partner } => {
            s.send(partner, whole(input));
            return Halved::Extra { partner };
        }
        Role::Participant { q, absorbs } => (q, absorbs),
    };
    let tmp = s.temp(vector);
    let at = |buf: Buf, r: Range<usize>| segs.run(buf, r);
    let mut cur = input;
    if let Some(lower) = absorbed {
        s.recv(lower, whole(tmp));
        s.fence();
        s.reduce(whole(tmp), whole(input), whole(work));
        cur = work;
    }
    let masks: Vec<usize> = match order {
        Order::Doubling => (0..fold.pof2.trailing_zeros()).map(|b| 1 << b).collect(),
        Order::Halving => (0..fold.pof2.trailing_zeros())
            .rev()
            .map(|b| 1 << b)
            .collect(),
    };
    let (mut lo, mut hi) = (0, fold.pof2);
    let mut steps = Vec::with_capacity(masks.len());
    for mask in masks {
        let mid = (lo + hi) / 2;
        let (keep, give) = if q & mask == 0 {
            (lo..mid, mid..hi)
        } else {
            (mid..hi, lo..mid)
        };
        let partner = fold.rank_of(q ^ mask);
        s.send(partner, at(cur, give.clone()));
        s.recv(partner, at(tmp, keep.clone()));
        s.fence();
        let (mine, theirs) = (at(cur, keep.clone()), at(tmp, keep.clone()));
        let (left, right): (Span, Span) = if q & mask == 0 {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        s.reduce(left, right, at(work, keep.clone()));
        cur = work;
        (lo, hi) = (keep.start, keep.end);
        steps.push(Exchange {
            mask,
            partner,
            keep,
            give,
        });
    }
    if cur != work {
        // A single participant: nothing was exchanged.
        s.copy(whole(input), whole(work));
    }
    Halved::Participant {
        q,
        absorbed,
        held: lo,
        steps,
    }
}

/// `q` with its low `bits` bits reversed: the segment participant `q` holds after a
/// [`Order::Doubling`] reduce-scatter over `2^bits` participants.
pub(crate) fn bit_reverse(q: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        q.reverse_bits() >> (usize::BITS - bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_reverse_small() {
        assert_eq!(bit_reverse(0b001, 3), 0b100);
        assert_eq!(bit_reverse(0b110, 3), 0b011);
        assert_eq!(bit_reverse(0, 0), 0);
        assert_eq!(bit_reverse(1, 1), 1);
    }
}
