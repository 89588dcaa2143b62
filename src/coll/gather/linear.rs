//! Linear gather: the root posts a receive from every other rank and each rank sends
//! its block straight to the root.
//!
//! Cost: one step, `p - 1` messages all arriving at the root, each block moved once:
//! the choice for long blocks, and the only way for gatherv (where only the root
//! knows the counts).

use crate::coll::blocks::Blocks;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Gathers `mine` from every rank into the root's receive buffer, laid out as
/// `blocks` (significant at the root only).
pub(crate) fn build(s: &mut Schedule, mine: Span, blocks: &Blocks, root: usize) {
    let (rank, size) = (s.rank(), s.size());
    if rank != root {
        s.send(root, mine);
        return;
    }
    s.copy(mine, blocks.span(Buf::Recv, root));
    for k in 1..size {
        let from = (root + k) % size;
        s.recv(from, blocks.span(Buf::Recv, from));
    }
}
