//! Scatter-allgather broadcast (van de Geijn): the root scatters the buffer in `p`
//! pieces down the binomial tree ([`Tree`]), then a ring allgather hands every rank
//! the pieces it lacks, the ring pipelining them piece by piece.
//!
//! Cost: `log2(p) + p - 1` steps but only about `2 (p - 1) / p` of the buffer through
//! each rank's link instead of `log2(p)` whole copies on the root's: the choice for
//! long buffers when ranks have cores of their own.

use crate::coll::allgather;
use crate::coll::blocks::Blocks;
use crate::coll::tree::Tree;
use crate::engine::schedule::{Buf, Schedule};

/// Broadcasts the `bytes` of the root's receive buffer.
pub(crate) fn build(s: &mut Schedule, bytes: usize, root: usize) {
    let size = s.size();
    let tree = Tree::new(s.rank(), size, root);
    // Piece j belongs to relative rank j, so every subtree is one run of pieces.
    let pieces = Blocks::split(bytes, size, 1);
    if let Some(parent) = tree.parent() {
        s.recv(parent, pieces.run(Buf::Recv, tree.v..tree.v + tree.ranks()));
        s.fence();
    }
    for child in tree.children().rev() {
        let first = tree.v + child.offset;
        s.send(
            child.rank,
            pieces.run(Buf::Recv, first..first + child.ranks),
        );
    }
    s.fence();
    let placed = pieces.rotated(root);
    let own = placed.span(Buf::Recv, s.rank());
    allgather::ring::build(s, Buf::Recv, &placed, own);
}
