//! Recursive-doubling allgather: in step `k` every rank swaps everything it has with
//! the rank `2^k` away, doubling what it holds.
//!
//! Cost: `log2(p)` steps, `(p - 1) / p` of the result received per rank: the fewest
//! steps, for short blocks. Non-power-of-two sizes fold ([`Fold`]): a paired rank
//! hands its block up first and receives the whole result at the end (two more
//! steps). Participants hold contiguous runs of ranks, so each swap is one message.

use crate::coll::blocks::Blocks;
use crate::coll::fold::{Fold, Role};
use crate::engine::schedule::{Buf, Schedule, Span};

/// Completes `buf`, laid out as contiguous, in-order `blocks`, whose block `rank` is
/// already in place; a message of that block alone is sent from `own` (see
/// [`super`]).
pub(crate) fn build(s: &mut Schedule, buf: Buf, blocks: &Blocks, own: Span) {
    let (rank, size) = (s.rank(), s.size());
    let fold = Fold::new(size);
    let whole = blocks.run(buf, 0..size);
    let (q, absorbed) = match fold.role(rank) {
        Role::Extra { partner } => {
            s.send(partner, own);
            s.fence();
            s.recv(partner, whole);
            return;
        }
        Role::Participant { q, absorbs } => (q, absorbs),
    };
    if let Some(lower) = absorbed {
        s.recv(lower, blocks.span(buf, lower));
        s.fence();
    }
    let mut mask = 1;
    while mask < fold.pof2 {
        let mine = q & !(mask - 1);
        let theirs = mine ^ mask;
        let partner = fold.rank_of(q ^ mask);
        let ours = fold.ranks_of_run(mine..mine + mask);
        s.send(
            partner,
            if ours == (rank..rank + 1) {
                own
            } else {
                blocks.run(buf, ours)
            },
        );
        s.recv(
            partner,
            blocks.run(buf, fold.ranks_of_run(theirs..theirs + mask)),
        );
        s.fence();
        mask <<= 1;
    }
    if let Some(lower) = absorbed {
        s.send(lower, whole);
    }
}
