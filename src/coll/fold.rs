//! Folding a communicator of any size onto the largest power of two below it, for the
//! algorithms that pair ranks by flipping bits (recursive doubling and halving).
//!
//! With `size = 2^k + rem`, the first `2 * rem` ranks pair up: each even one hands its
//! data to the odd one above it at the start, sits the main phase out, and gets the
//! result back at the end. The `2^k` participants keep rank order: participant `q`
//! stands for ranks `ranks(q)`, a contiguous range of one or two ranks, so an
//! operation combined in participant order is combined in rank order.

use std::ops::Range;

/// The fold of a communicator of `size` ranks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fold {
    /// Number of participants: the largest power of two not above the size.
    pub pof2: usize,
    /// Number of ranks beyond `pof2`, each paired with another.
    rem: usize,
}

/// What one rank does in a fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Hands its data to rank `partner` (its rank + 1) and waits for the result.
    Extra { partner: usize },
    /// Takes part as participant `q`; `absorbs` is the rank whose data it takes over
    /// first (its rank - 1), if any.
    Participant { q: usize, absorbs: Option<usize> },
}

impl Fold {
    pub(crate) fn new(size: usize) -> Fold {
        let pof2 = if size == 0 { 0 } else { 1 << size.ilog2() };
        Fold {
            pof2,
            rem: size - pof2,
        }
    }

    /// The role of `rank`.
    pub(crate) fn role(&self, rank: usize) -> Role {
        if rank < 2 * self.rem {
            if rank.is_multiple_of(2) {
                Role::Extra { partner: rank + 1 }
            } else {
                Role::Participant {
                    q: rank / 2,
                    absorbs: Some(rank - 1),
                }
            }
        } else {
            Role::Participant {
                q: rank - self.rem,
                absorbs: None,
            }
        }
    }

    /// The rank acting as participant `q`.
    pub(crate) fn rank_of(&self, q: usize) -> usize {
        if q < self.rem {
            2 * q + 1
        } else {
            q + self.rem
        }
    }

    /// The ranks participant `q` stands for.
    pub(crate) fn ranks(&self, q: usize) -> Range<usize> {
        if q < self.rem {
            2 * q..2 * q + 2
        } else {
            q + self.rem..q + self.rem + 1
        }
    }

    /// The ranks participants `qs` stand for together.
    pub(crate) fn ranks_of_run(&self, qs: Range<usize>) -> Range<usize> {
        if qs.is_empty() {
            return 0..0;
        }
        self.ranks(qs.start).start..self.ranks(qs.end - 1).end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participants_cover_every_rank_in_order() {
        for size in 1..40 {
            let f = Fold::new(size);
            assert!(f.pof2.is_power_of_two() && f.pof2 <= size && size < 2 * f.pof2);
            assert_eq!(f.ranks_of_run(0..f.pof2), 0..size);
            for q in 0..f.pof2 {
                let r = f.rank_of(q);
                assert!(f.ranks(q).contains(&r));
                assert!(matches!(f.role(r), Role::Participant { q: got, .. } if got == q));
            }
            for r in 0..size {
                if let Role::Extra { partner } = f.role(r) {
                    assert!(
                        matches!(f.role(partner), Role::Participant { absorbs: Some(a), .. } if a == r)
                    );
                }
            }
        }
    }
}
