//! Linear scatter: the root sends every other rank its block directly.
//!
//! Cost: one step, `p - 1` messages from the root, each block moved once: the choice
//! for long blocks, and the only way for scatterv (where only the root knows the
//! counts).

use crate::coll::blocks::Blocks;
use crate::engine::schedule::{Buf, Schedule, Span};

/// Sends block `i` of the root's `input` (laid out as `blocks`, significant at the
/// root only) to rank `i`, which receives it into `mine`.
pub(crate) fn build(s: &mut Schedule, input: Buf, blocks: &Blocks, root: usize, mine: Span) {
    let (rank, size) = (s.rank(), s.size());
    if rank != root {
        s.recv(root, mine);
        return;
    }
    s.copy(blocks.span(input, root), mine);
    for k in 1..size {
        let to = (root + k) % size;
        s.send(to, blocks.span(input, to));
    }
}
