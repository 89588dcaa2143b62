//! Ring allreduce: a ring reduce-scatter (each rank ends with one block reduced) and a
//! ring allgather of those blocks.
//!
//! Cost: `2 (p - 1)` steps of `1/p` of the vector each; `2 (p - 1) / p` of the vector
//! sent per rank, no folding for any size: the choice for long vectors when latency
//! no longer matters. Commutative operations only (the partial sums wrap around the
//! ring); each block is reduced once and then copied, so every rank ends with
//! identical bits.

use crate::coll::allgather;
use crate::coll::blocks::Blocks;
use crate::coll::reduce_scatter;
use crate::engine::schedule::{Buf, Schedule};

/// Reduces `count` elements of `esz` bytes of `input` into the receive buffer on
/// every rank.
pub(crate) fn build(s: &mut Schedule, input: Buf, count: usize, esz: usize) {
    let blocks = Blocks::split(count, s.size(), esz);
    let mine = blocks.span(Buf::Recv, s.rank());
    reduce_scatter::ring::build(s, input, &blocks, mine, Some(Buf::Recv));
    allgather::ring::build(s, Buf::Recv, &blocks, mine);
}
